// bench bias: false match / non-match rates per demographic group (facekit/bias.hpp), as text, JSON and HTML.
#include <cmath>
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "facekit/bias.hpp"
#include "facekit/error.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace facekit::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct BiasArgs {
  LfwOptions lo;
  std::string groups_csv, attribute_model = defaults::kAttributeEstimator, json_out, html, write_groups;
  bool estimate = false, per_photo = false, all_pairs = false;
  BiasOptions bias;
};

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json rate_json(const Rate& r) {
  return {{"value", num(r.value)},         {"errors", r.errors},
          {"pairs", r.pairs},              {"bootstrap_interval", {num(r.boot_low), num(r.boot_high)}},
          {"wilson_interval", {num(r.wilson_low), num(r.wilson_high)}}};
}

json spread_json(const Spread& s) {
  return {{"max", num(s.max)},       {"max_group", s.max_group}, {"min", num(s.min)},
          {"min_group", s.min_group}, {"ratio", num(s.ratio)},    {"ratio_nonzero", num(s.ratio_nonzero)},
          {"zero_groups", s.zero_groups}, {"groups", s.groups}};
}

json report_json(const BiasReport& r, std::int64_t left_out) {
  json groups = json::array();
  for (const auto& g : r.groups)
    groups.push_back({{"group", g.group},
                      {"fmr", rate_json(g.fmr)},
                      {"fnmr", rate_json(g.fnmr)},
                      {"failures_to_acquire", g.failures_to_acquire},
                      {"own_threshold", num(g.own_threshold)},
                      {"own_fmr", rate_json(g.own_fmr)},
                      {"own_fnmr", rate_json(g.own_fnmr)}});
  json cross = json::array();
  for (const auto& c : r.cross) cross.push_back({{"groups", {c.group_a, c.group_b}}, {"fmr", rate_json(c.fmr)}});
  return {{"attribute", r.attribute},
          {"resampled", r.resampled == Resample::kSubjects ? "subjects" : "pairs"},
          {"subjects", r.subjects},
          {"threshold", r.threshold},
          {"target_fmr", r.target_fmr},
          {"fmr", rate_json(r.fmr)},
          {"fnmr", rate_json(r.fnmr)},
          {"mixed_genuine_pairs", r.mixed_genuine},
          {"pairs_without_label", left_out},
          {"groups", groups},
          {"cross_group_impostors", cross},
          {"spread", {{"fmr", spread_json(r.fmr_spread)}, {"fnmr", spread_json(r.fnmr_spread)}}},
          {"spread_own_thresholds", {{"fmr", spread_json(r.own_fmr_spread)}, {"fnmr", spread_json(r.own_fnmr_spread)}}}};
}

std::string pct(double v, int digits = 3) {
  if (!std::isfinite(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f%%", digits, 100 * v);
  return b;
}

std::string interval(const Rate& r) {
  if (r.pairs == 0) return "-";
  return "[" + pct(r.errors > 0 ? r.boot_low : r.wilson_low) + ", " + pct(r.errors > 0 ? r.boot_high : r.wilson_high) +
         "]" + (r.errors > 0 ? "" : " W");
}

std::string ratio(const Spread& s) {
  char b[64];
  if (std::isnan(s.ratio)) return "-";
  if (std::isinf(s.ratio)) {
    if (std::isnan(s.ratio_nonzero)) return "inf";
    std::snprintf(b, sizeof b, "inf (%.2f without the %d group%s with none)", s.ratio_nonzero, s.zero_groups,
                  s.zero_groups == 1 ? "" : "s");
    return b;
  }
  std::snprintf(b, sizeof b, "%.2f", s.ratio);
  return b;
}

void print_report(const BiasReport& r, std::int64_t left_out) {
  std::printf("\n== %s: threshold %.4f (FMR %.1e over %lld impostor pairs: measured %s, FNMR %s of %lld genuine)\n",
              r.attribute.c_str(), r.threshold, r.target_fmr, static_cast<long long>(r.fmr.pairs), pct(r.fmr.value, 4).c_str(),
              pct(r.fnmr.value, 2).c_str(), static_cast<long long>(r.fnmr.pairs));
  if (r.resampled == Resample::kSubjects)
    std::printf("intervals: bootstrap over the %d people (a person's pairs move together)\n", r.subjects);
  else
    std::printf("intervals: bootstrap over pairs (people not named, or --resample pairs): narrower than over people\n");
  std::printf("%-10s %10s %8s %-26s %9s %8s %-22s | own thr   FMR       FNMR\n", "group", "impostors", "FMR",
              "  95% interval", "genuine", "FNMR", "  95% interval");
  for (const auto& g : r.groups)
    std::printf("%-10s %10lld %8s %-26s %9lld %8s %-22s | %6s  %8s  %8s\n", g.group.c_str(),
                static_cast<long long>(g.fmr.pairs), pct(g.fmr.value).c_str(), interval(g.fmr).c_str(),
                static_cast<long long>(g.fnmr.pairs), pct(g.fnmr.value, 2).c_str(), interval(g.fnmr).c_str(),
                std::isnan(g.own_threshold) ? "-" : std::to_string(g.own_threshold).substr(0, 6).c_str(),
                pct(g.own_fmr.value).c_str(), pct(g.own_fnmr.value, 2).c_str());
  std::printf("spread max/min: FMR %s (%s / %s), FNMR %s (%s / %s)\n", ratio(r.fmr_spread).c_str(),
              r.fmr_spread.max_group.c_str(), r.fmr_spread.min_group.c_str(), ratio(r.fnmr_spread).c_str(),
              r.fnmr_spread.max_group.c_str(), r.fnmr_spread.min_group.c_str());
  std::printf("with per-group thresholds: FMR %s, FNMR %s\n", ratio(r.own_fmr_spread).c_str(), ratio(r.own_fnmr_spread).c_str());
  for (const auto& c : r.cross)
    std::printf("  cross %s x %s: %lld impostor pairs, FMR %s %s\n", c.group_a.c_str(), c.group_b.c_str(),
                static_cast<long long>(c.fmr.pairs), pct(c.fmr.value).c_str(), interval(c.fmr).c_str());
  if (r.mixed_genuine > 0)
    std::printf("  %lld genuine pairs had their two photos put in different groups (left out of per-group FNMR)\n",
                static_cast<long long>(r.mixed_genuine));
  if (left_out > 0) std::printf("  %lld pairs left out: a photo without a group label\n", static_cast<long long>(left_out));
}

void write_html(const fs::path& dir, const json& doc, const std::vector<BiasReport>& reports, bool estimated) {
  std::ofstream h(dir / "index.html");
  if (!h) throw Error(ErrorCode::kInvalidArgument, "cannot write " + (dir / "index.html").string());
  h << "<!doctype html><html lang=en><meta charset=utf-8><title>facekit bias report</title>"
       "<style>body{font:14px system-ui,sans-serif;max-width:1360px;margin:2em auto;color:#222}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "th{background:#f3f3f3}td:first-child{text-align:left}.warn{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px}"
       "img{max-width:100%}</style>\n";
  h << "<h1>Demographic differentials in verification</h1>\n";
  h << "<p>Pairs: " << html_escape(doc["pairs_file"].get<std::string>()) << " (" << doc["pair_mode"].get<std::string>()
    << "), embedder " << html_escape(doc["embedder"].get<std::string>()) << ". One global threshold, set where the false "
    << "match rate over every impostor pair is " << doc["target_fmr"].get<double>()
    << "; each group's rates at it, with " << doc["confidence"].get<double>() * 100
    << "% intervals (percentile bootstrap, " << doc["bootstrap"].get<int>() << " resamples, "
    << (doc["resample"] == "subjects"
            ? "over people: each resample draws the people with replacement and keeps the pairs between them, so "
              "one person's pairs move together"
            : "over pairs, as if independent: narrower than the uncertainty over people")
    << "; where no error was seen, Wilson's interval, marked W).</p>\n";
  if (estimated)
    h << "<p class=warn><b>The groups are estimates.</b> They come from an attribute model (" <<
        html_escape(doc["groups_source"].get<std::string>()) << "), not from the people themselves. A wrong label moves "
        "a person into another group, so per-group rates mix groups, and the labels the model is worst at are the ones "
        "the report needs most. The model's confidence and how often one person's photos agree are below; no labelled "
        "set exists here to measure its accuracy.</p>\n";
  if (doc.contains("reliability")) {
    h << "<table><tr><th>attribute</th><th>mean confidence</th><th>photos agreeing with their person's label</th><th>people per label</th></tr>\n";
    for (const auto& r : doc["reliability"]) {
      std::string per;
      for (const auto& [k, v] : r["people_per_label"].items()) per += html_escape(k) + ": " + std::to_string(v.get<int>()) + " ";
      h << "<tr><td>" << html_escape(r["attribute"].get<std::string>()) << "</td><td>" << pct(r["mean_top_probability"].get<double>(), 1)
        << "</td><td>" << (r["photo_agreement"].is_null() ? "-" : pct(r["photo_agreement"].get<double>(), 1)) << " of "
        << r["photos"].get<int>() << "</td><td>" << per << "</td></tr>\n";
    }
    h << "</table>\n";
  }
  for (const auto& r : reports) {
    h << "<h2>" << html_escape(r.attribute) << "</h2>\n<p>Threshold " << r.threshold << ": FMR " << pct(r.fmr.value, 4)
      << " over " << r.fmr.pairs << " impostor pairs, FNMR " << pct(r.fnmr.value, 2) << " over " << r.fnmr.pairs
      << " genuine pairs. Spread (max/min): FMR <b>" << ratio(r.fmr_spread) << "</b>, FNMR <b>" << ratio(r.fnmr_spread)
      << "</b>; with per-group thresholds FMR " << ratio(r.own_fmr_spread) << ", FNMR " << ratio(r.own_fnmr_spread) << ".</p>\n";
    h << "<table><tr><th>group</th><th>impostor pairs</th><th>FMR</th><th>interval</th><th>genuine pairs</th><th>FNMR</th>"
         "<th>interval</th><th>own threshold</th><th>FMR at it</th><th>FNMR at it</th></tr>\n";
    for (const auto& g : r.groups)
      h << "<tr><td>" << html_escape(g.group) << "</td><td>" << g.fmr.pairs << "</td><td>" << pct(g.fmr.value) << "</td><td>"
        << interval(g.fmr) << "</td><td>" << g.fnmr.pairs << "</td><td>" << pct(g.fnmr.value, 2) << "</td><td>"
        << interval(g.fnmr) << "</td><td>" << (std::isnan(g.own_threshold) ? std::string("-") : std::to_string(g.own_threshold))
        << "</td><td>" << pct(g.own_fmr.value) << "</td><td>" << pct(g.own_fnmr.value, 2) << "</td></tr>\n";
    h << "</table>\n";
    if (!r.cross.empty()) {
      h << "<table><tr><th>impostors across</th><th>pairs</th><th>FMR</th><th>interval</th></tr>\n";
      for (const auto& c : r.cross)
        h << "<tr><td>" << html_escape(c.group_a + " x " + c.group_b) << "</td><td>" << c.fmr.pairs << "</td><td>"
          << pct(c.fmr.value) << "</td><td>" << interval(c.fmr) << "</td></tr>\n";
      h << "</table>\n";
    }
    h << "<img src=\"" << html_escape(r.attribute) << ".png\" alt=\"" << html_escape(r.attribute) << " rates per group\">\n";
  }
  h << "</html>\n";
  if (!h) throw Error(ErrorCode::kInvalidArgument, "cannot write " + (dir / "index.html").string());
}

int cmd_bench_bias(const Common& c, BiasArgs a) {
  if (a.estimate == !a.groups_csv.empty())
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --groups CSV and --estimate-groups");
  if (a.lo.root.empty()) a.lo.root = a.lo.pairs.parent_path();
  GroupTable table;
  if (!a.groups_csv.empty()) table = read_group_csv(a.groups_csv);  // a bad file fails before minutes of work
  std::unique_ptr<AttributeEstimator> model;
  if (a.estimate) {
    AttributeOptions ao;
    ao.device = c.device;
    model = create_attribute_estimator(a.attribute_model, ao);
  }
  if (!a.html.empty()) fs::create_directories(a.html);
  FacePipeline pipe(pipeline_options(c));
  const auto report = score_pairs(pipe, a.lo, "pairs");
  std::vector<AttributeReliability> reliability;
  if (a.estimate) {
    GroupEstimateOptions go;
    go.by_person = !a.per_photo;
    go.threads = a.lo.threads;
    std::unique_ptr<ProgressBar> bar;
    table = estimate_groups(report, a.lo.root, *model, go, &reliability, [&](int done, int total) {
      if (!bar) bar = std::make_unique<ProgressBar>("attributes", total);
      bar->update(done);
    });
    if (bar) bar->finish();
  }
  if (!a.write_groups.empty()) write_group_csv(a.write_groups, table);

  json doc = {{"schema_version", json_view::kSchemaVersion},
              {"pairs_file", a.lo.pairs.string()},
              {"pair_mode", a.all_pairs ? "every pair of the listed photos" : "the listed pairs"},
              {"embedder", pipe.embedder().manifest().name},
              {"target_fmr", a.bias.target_fmr},
              {"bootstrap", a.bias.bootstrap},
              {"resample", a.bias.resample == Resample::kSubjects ? "subjects" : "pairs"},
              {"confidence", a.bias.confidence},
              {"seed", a.bias.seed},
              {"groups_estimated", table.estimated},
              {"groups_source", a.estimate ? a.attribute_model + (a.per_photo ? " (per photo)" : " (per person: photos' probabilities averaged)")
                                           : a.groups_csv}};
  if (a.estimate) {
    std::printf("groups ESTIMATED by %s%s: estimates, not facts about anyone\n", a.attribute_model.c_str(),
                a.per_photo ? " per photo" : " per person");
    json rel = json::array();
    for (const auto& r : reliability) {
      std::printf("  %-7s mean confidence %.1f%%, photos agreeing with their person %s of %d;", r.attribute.c_str(),
                  100 * r.mean_top_probability, pct(r.photo_agreement, 1).c_str(), r.photos);
      for (const auto& [k, v] : r.people_per_label) std::printf(" %s %d", k.c_str(), v);
      std::printf("\n");
      rel.push_back({{"attribute", r.attribute},
                     {"mean_top_probability", r.mean_top_probability},
                     {"photo_agreement", num(r.photo_agreement)},
                     {"photos", r.photos},
                     {"people", r.people},
                     {"people_per_label", r.people_per_label}});
    }
    doc["reliability"] = rel;
  }
  std::vector<BiasReport> reports;
  json rj = json::array();
  for (size_t k = 0; k < table.attributes.size(); ++k) {
    std::vector<std::string> names;
    std::int64_t left_out = 0;
    const auto pairs = grouped_pairs(report, table, k, a.all_pairs, names, &left_out);
    if (names.empty()) {
      std::printf("\n== %s: no photo has a label; skipped\n", table.attributes[k].c_str());
      continue;
    }
    a.bias.threads = a.lo.threads;
    BiasReport r = bias_report(pairs, names, table.attributes[k], a.bias);
    print_report(r, left_out);
    rj.push_back(report_json(r, left_out));
    if (!a.html.empty()) write_bias_plot(fs::path(a.html) / (r.attribute + ".png"), r);
    reports.push_back(std::move(r));
  }
  doc["attributes"] = rj;
  if (!a.json_out.empty()) {
    std::ofstream o(a.json_out);
    o << dump_json(doc) << "\n";
    if (!o) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.json_out);
  }
  if (!a.html.empty()) {
    write_html(a.html, doc, reports, table.estimated);
    std::printf("wrote %s\n", (fs::path(a.html) / "index.html").string().c_str());
  }
  return 0;
}

}  // namespace

void add_bias_commands(CLI::App& app, Common& c, Commands& out) {
  auto* bench = app.get_subcommand("bench");
  auto a = std::make_shared<BiasArgs>();
  a->lo.threads = 2;
  a->lo.folds = 10;
  auto* b = bench->add_subcommand("bias", "false match and non-match rates per demographic group, with intervals and spread");
  b->add_option("--pairs", a->lo.pairs, "pair list: CSV a,b,same[,fold] or LFW's pairs.txt format")->required()->check(CLI::ExistingFile);
  b->add_option("--root", a->lo.root, "folder the image paths are relative to (default: the pairs file's folder)")
      ->check(CLI::ExistingDirectory);
  b->add_option("--groups", a->groups_csv, "CSV image,ATTR[,ATTR...]: one row per image path or per person folder")
      ->check(CLI::ExistingFile);
  b->add_flag("--estimate-groups", a->estimate, "estimate gender, group and age band with an attribute model instead");
  b->add_option("--attribute-model", a->attribute_model, "the attribute model for --estimate-groups")->capture_default_str();
  b->add_flag("--per-photo", a->per_photo, "label each photo on its own (default: per person, the folder)");
  b->add_flag("--all-pairs", a->all_pairs,
              "compare every pair of the listed photos (same person = same folder), not only the listed pairs");
  b->add_option("--target-fmr", a->bias.target_fmr, "the global threshold's FMR over all impostor pairs")
      ->capture_default_str()
      ->check(finite_range(0, 1, true, true));
  b->add_option("--bootstrap", a->bias.bootstrap, "resamples per interval (0: none)")->capture_default_str()->check(CLI::Range(0, 100000));
  b->add_option("--confidence", a->bias.confidence, "of the intervals")->capture_default_str()->check(finite_range(0, 1, true, true));
  b->add_option("--seed", a->bias.seed, "the bootstrap's seed")->capture_default_str();
  b->add_option("--resample", a->bias.resample, "what the bootstrap resamples: subjects (people; pairs' folders) or pairs")
      ->transform(CLI::CheckedTransformer(std::map<std::string, Resample>{{"subjects", Resample::kSubjects}, {"pairs", Resample::kPairs}}))
      ->default_str("subjects");
  b->add_option("--json", a->json_out, "write the report as JSON");
  b->add_option("--html", a->html, "write an HTML report with plots into this folder");
  b->add_option("--write-groups", a->write_groups, "write the groups used (e.g. the estimates, to correct and pass back with --groups)");
  b->add_option("--face-cache", a->lo.face_cache, "detections and landmarks cache (see bench lfw)");
  b->add_option("--workers", a->lo.threads, "images processed in parallel")->capture_default_str()->check(CLI::Range(1, 64));
  b->add_option("--batch", a->lo.batch, "photos per batch through the networks")->capture_default_str()->check(CLI::Range(1, 64));
  b->add_option("--limit", a->lo.limit_pairs, "use only this many pairs (quick runs)");
  out.emplace_back(b, [&c, a] { return cmd_bench_bias(c, *a); });
}

}  // namespace facekit::cli
