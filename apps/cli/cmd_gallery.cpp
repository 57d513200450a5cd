// Gallery subcommands: enroll, identify, people list|show|rename|remove, gallery stats|export|import|reindex,
// bench identify, bench gallery-scale.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/json.hpp"
#include "facekit/gallery.hpp"
#include "facekit/identification_eval.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"
#include "facekit/model.hpp"
#include "progress.hpp"

namespace facekit::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

using json_view::iso_time;

// ---- enroll ---------------------------------------------------------------------------------------------

struct EnrollArgs {
  GalleryArgs gallery;
  std::string name, metadata = "{}";
  std::vector<std::string> images;
  bool augment = false, no_augment = false, new_only = false, as_json = false, allow_poor = false;
};

int cmd_enroll(const Common& c, const EnrollArgs& a) {
  Engine engine(gallery_engine_options(c, a.gallery, true));
  EnrollOptions eo = engine.options().enroll;
  if (a.augment) eo.augment.enabled = true;
  if (a.no_augment) eo.augment.enabled = false;
  eo.on_conflict = a.new_only ? OnConflict::kFail : OnConflict::kMerge;
  eo.metadata = a.metadata;
  eo.allow_poor = a.allow_poor;
  std::vector<EnrollPhoto> photos;
  for (const auto& f : a.images) photos.push_back({f, {}, {}, f});
  const EnrollResult r = engine.enroll(a.name, photos, eo);
  const auto& s = r.stored;
  if (a.as_json) {
    std::cout << dump_json(json_view::enrolment(r, eo.augment.enabled, engine.embedder_id().str(),
                                                engine.gallery().location()))
              << "\n";
  } else {
    std::printf("%s %s (id %lld): %d template%s added%s, %d in total\n", s.created ? "enrolled" : "updated",
                s.person.name.c_str(), static_cast<long long>(s.person.id), s.added, s.added == 1 ? "" : "s",
                s.duplicates ? (" (" + std::to_string(s.duplicates) + " photo(s) already enrolled, skipped)").c_str() : "",
                s.person.templates);
    // Quality below good is worth a word even when it was accepted (fair, or poor with --allow-poor).
    for (const auto& p : r.photos) {
      if (p.quality.level == QualityLevel::kGood) continue;
      std::string why;
      for (const auto& w : p.quality.reasons) why += (why.empty() ? "" : "; ") + w;
      std::printf("  %s: quality %s (%s)\n", p.label.c_str(), to_string(p.quality.level), why.c_str());
    }
  }
  return 0;
}

// ---- identify -------------------------------------------------------------------------------------------

struct IdentifyArgs {
  GalleryArgs gallery;
  std::vector<std::string> images;
  bool as_json = false;
  int top = 3;
  std::string classifier = "knn", aggregation = "auto";
  float threshold = std::numeric_limits<float>::quiet_NaN();
  double fpir = 0.01;
  IdentifyOptions defaults;
  float template_min_quality = defaults.template_min_quality;
  float mean_norm_power = defaults.mean_norm_power;
  double turned_fpir_factor = defaults.turned_fpir_factor;
  int ef_search = 0;
};

IdentifyOptions identify_options(const IdentifyArgs& a) {
  IdentifyOptions io;
  io.classifier = a.classifier;
  io.aggregation = parse_aggregation(a.aggregation);
  io.top_k = a.top;
  io.threshold = a.threshold;
  io.fpir = a.fpir;
  io.template_min_quality = a.template_min_quality;
  io.mean_norm_power = a.mean_norm_power;
  io.turned_fpir_factor = a.turned_fpir_factor;
  if (a.ef_search > 0) io.index.ef_search = a.ef_search;
  return io;
}

void print_identified(const std::string& image, const IdentifyResult& r) {
  std::printf("%s: %zu face%s\n", image.c_str(), r.faces.size(), r.faces.size() == 1 ? "" : "s");
  for (size_t i = 0; i < r.faces.size(); ++i) {
    const auto& id = r.faces[i].identification;
    const auto& b = r.faces[i].face.box;
    std::printf("  face %zu (x=%.0f y=%.0f w=%.0f h=%.0f): ", i + 1, b.x, b.y, b.width, b.height);
    if (id.known) {
      const auto& best = id.candidates[0];
      std::printf("%s (id %lld), similarity %.3f, probability %.3f\n", best.name.c_str(),
                  static_cast<long long>(best.person_id), best.similarity, best.probability);
    } else if (!id.candidates.empty()) {
      std::printf("unknown (closest: %s, score %.3f < threshold %.3f%s)\n", id.candidates[0].name.c_str(),
                  id.candidates[0].score, id.threshold, id.turned ? ", a turned face's" : "");
    } else {
      std::printf("unknown\n");
    }
    for (size_t k = 1; k < id.candidates.size(); ++k)
      std::printf("      %zu. %s (id %lld), similarity %.3f, probability %.3f\n", k + 1, id.candidates[k].name.c_str(),
                  static_cast<long long>(id.candidates[k].person_id), id.candidates[k].similarity,
                  id.candidates[k].probability);
  }
}

int cmd_identify(const Common& c, const IdentifyArgs& a) {
  EngineOptions o = gallery_engine_options(c, a.gallery, false);
  o.identify = identify_options(a);
  Engine engine(o);
  // Before the models load: a gallery that cannot be opened, and what its index says, are reported at once.
  const IndexStatus st = engine.refresh_index();
  if (!st.refresh.cache_error.empty()) std::fprintf(stderr, "note: %s\n", st.refresh.cache_error.c_str());
  if (st.rows == 0)
    std::fprintf(stderr, "note: the gallery %s holds no %s template; every face is unknown\n",
                 engine.gallery().location().c_str(), engine.embedder_id().str().c_str());
  json out = json::array();
  IdentifyResult last;
  for (const auto& f : a.images) {
    const Image img = engine.load(f);
    last = engine.identify(img);
    if (a.as_json)
      out.push_back(json_view::identified_image(f, img, last));
    else
      print_identified(f, last);
  }
  if (a.as_json) std::cout << dump_json(json_view::identification(last, out)) << "\n";
  return 0;
}

// ---- people -----------------------------------------------------------------------------------------------

struct PeopleArgs {
  GalleryArgs gallery;
  std::string ref, new_name;
  std::vector<std::string> refs;
  bool as_json = false;
};

Engine people_engine(const PeopleArgs& a) {
  EngineOptions o;  // no model is loaded for these commands
  o.gallery = a.gallery.resolved();
  o.gallery_options = a.gallery.options(false);
  return Engine(o);
}

std::unique_ptr<Gallery> open_existing(const GalleryArgs& g, bool read_only = false) {
  return open_gallery(g.resolved(), g.options(false, read_only));
}

int cmd_people_list(const PeopleArgs& a) {
  const auto people = people_engine(a).people();
  if (a.as_json) {
    json j = json::array();
    for (const auto& p : people) j.push_back(json_view::person(p));
    std::cout << dump_json(j) << "\n";
    return 0;
  }
  std::printf("%-8s %-32s %9s  %s\n", "id", "name", "templates", "enrolled");
  for (const auto& p : people)
    std::printf("%-8lld %-32s %9d  %s\n", static_cast<long long>(p.id), p.name.c_str(), p.templates,
                iso_time(p.created_at).c_str());
  std::printf("%zu %s\n", people.size(), people.size() == 1 ? "person" : "people");
  return 0;
}

int cmd_people_show(const PeopleArgs& a) {
  const PersonRecord r = people_engine(a).person(a.ref);
  const Person& p = r.person;
  if (a.as_json) {
    std::cout << dump_json(json_view::person_record(r)) << "\n";
    return 0;
  }
  std::printf("id        %lld\nname      %s\nmetadata  %s\nenrolled  %s\ntemplates %zu\n", static_cast<long long>(p.id),
              p.name.c_str(), p.metadata.c_str(), iso_time(p.created_at).c_str(), r.templates.size());
  for (const auto& t : r.templates)
    std::printf("  #%-8lld %-22s %-10s quality %.3f  photo %s  %s\n", static_cast<long long>(t.id),
                t.embedder.str().c_str(), t.kind.c_str(), t.quality,
                t.source_sha256.empty() ? "-" : t.source_sha256.substr(0, 12).c_str(), iso_time(t.created_at).c_str());
  return 0;
}

int cmd_people_rename(const PeopleArgs& a) {
  const Person p = people_engine(a).rename(a.ref, a.new_name);
  std::printf("renamed %lld: %s -> %s\n", static_cast<long long>(p.id), p.name.c_str(), a.new_name.c_str());
  return 0;
}

int cmd_people_remove(const PeopleArgs& a) {
  for (const auto& p : people_engine(a).remove(a.refs))
    std::printf("removed %s (id %lld, %d template%s)\n", p.name.c_str(), static_cast<long long>(p.id), p.templates,
                p.templates == 1 ? "" : "s");
  return 0;
}

// ---- gallery ----------------------------------------------------------------------------------------------

struct GalleryCmdArgs {
  GalleryArgs gallery;
  std::string file;
  bool merge = false, as_json = false;
  std::string classifier = "knn", aggregation = "auto";
  std::string export_key_file, new_key_file;
  bool plaintext = false, decrypt = false;
};

int cmd_gallery_stats(const GalleryCmdArgs& a) {
  auto g = open_existing(a.gallery);
  const GalleryStats st = g->stats();
  if (a.as_json) {
    std::cout << json_view::gallery_stats(st, g->uuid()).dump(2) << "\n";
    return 0;
  }
  std::printf("gallery   %s\nformat    %d%s\nrevision  %lld\npeople    %lld\ntemplates %lld\nsize      %.1f MiB\n",
              st.location.c_str(), st.format_version, st.encrypted ? " (templates encrypted)" : "",
              static_cast<long long>(st.revision),
              static_cast<long long>(st.people), static_cast<long long>(st.templates), st.bytes / 1048576.0);
  for (const auto& [e, n] : st.templates_by_embedder)
    std::printf("  %-24s %lld templates of %lld people\n", e.str().c_str(), static_cast<long long>(n),
                static_cast<long long>(st.people_by_embedder.at(e)));
  return 0;
}

int cmd_gallery_export(const GalleryCmdArgs& a) {
  auto g = open_existing(a.gallery, true);
  // An encrypted gallery's export is sealed with its own key unless another key, or plain text, is asked for.
  std::optional<GalleryKey> key;
  if (!a.export_key_file.empty()) {
    key = GalleryKey::from_file(a.export_key_file);
  } else if (g->encrypted() && !a.plaintext) {
    key = a.gallery.key();
  }
  const auto n = export_gallery(*g, a.file, key);
  std::printf("exported %lld people to %s%s\n", static_cast<long long>(n), a.file.c_str(),
              key ? " (embeddings sealed)" : "");
  return 0;
}

struct CopyArgs {
  GalleryArgs from;
  std::string to, to_key_file;
  int probes = 1000;
};

int cmd_gallery_copy(const CopyArgs& a) {
  auto from = open_existing(a.from, true);
  GalleryArgs to_args;
  to_args.path = a.to;
  to_args.key_file = a.to_key_file;
  GalleryOptions to_options = to_args.options(true);
  if (a.to_key_file.empty()) to_options.key.reset();  // the source's key (or the environment's) is not the copy's
  auto to = open_gallery(to_args.resolved(), to_options);
  if (to->stats().people > 0)
    throw Error(ErrorCode::kInvalidArgument, to->location() + " already holds people; copy into an empty gallery");
  std::unique_ptr<ProgressBar> bar;
  const GalleryCopy n = copy_gallery(*from, *to, [&](std::int64_t done, std::int64_t total) {
    if (!bar) bar = std::make_unique<ProgressBar>("reading people", static_cast<int>(total));
    bar->update(static_cast<int>(done));
  });
  if (bar) bar->finish();
  std::printf("copied %lld people and %lld templates from %s to %s\n", static_cast<long long>(n.people),
              static_cast<long long>(n.templates), from->location().c_str(), to->location().c_str());
  const GalleryComparison cmp = compare_galleries(*from, *to, a.probes);
  for (const auto& p : cmp.problems) std::fprintf(stderr, "  %s\n", p.c_str());
  if (!cmp.same())
    throw Error(ErrorCode::kStorage, "the copy differs from the original (" + std::to_string(cmp.problems.size()) +
                                         " problems above)");
  std::printf("verified: %lld people and %lld templates in both; %lld probes answered identically\n",
              static_cast<long long>(cmp.people_b), static_cast<long long>(cmp.templates_b),
              static_cast<long long>(cmp.probes));
  return 0;
}

int cmd_gallery_import(const GalleryCmdArgs& a) {
  auto g = open_gallery(a.gallery.resolved(), a.gallery.options(true));
  std::optional<GalleryKey> key =
      a.export_key_file.empty() ? (g->encrypted() ? a.gallery.key() : std::nullopt) : GalleryKey::from_file(a.export_key_file);
  const auto res = import_gallery(*g, a.file, a.merge ? OnConflict::kMerge : OnConflict::kFail, key);
  int created = 0, added = 0, dup = 0;
  for (const auto& r : res) created += r.created, added += r.added, dup += r.duplicates;
  std::printf("imported %zu people (%d new) and %d templates (%d duplicates skipped) into %s\n", res.size(), created,
              added, dup, g->location().c_str());
  return 0;
}

int cmd_gallery_reindex(const Common& c, const GalleryCmdArgs& a) {
  auto g = open_existing(a.gallery);
  IdentifyOptions io;
  io.classifier = a.classifier;
  io.aggregation = parse_aggregation(a.aggregation);
  Identifier::clear_cache(*g, io);
  // The embedder's identity comes from its manifest; no network weights need loading.
  check_model_name(c.model, "embedder", "--model");
  const auto m = load_manifest(c.model);
  Identifier ident(*g, {m.name, m.version}, io);
  const auto& r = ident.last_refresh();
  std::size_t rows = 0;
  std::string kind = "none (no templates)";
  try {
    rows = static_cast<std::size_t>(ident.index().size());
    kind = ident.index().index().description();
  } catch (const Error&) {
  }
  // Writing the cache is what reindex is for: a cache that cannot be written is a failure, not a note.
  if (!r.cache_error.empty())
    throw Error(ErrorCode::kStorage, "reindex of " + g->location() + " failed: " + r.cache_error +
                                         " (the gallery itself is unchanged)");
  std::printf("reindexed %s templates at revision %lld: %zu rows, %s, %s; %.2f s\n", m.name.c_str(),
              static_cast<long long>(r.revision), rows, kind.c_str(), ident.classifier().describe().c_str(), r.seconds);
  return 0;
}

int cmd_gallery_check(const GalleryCmdArgs& a) {
  auto g = open_existing(a.gallery, true);
  const GalleryCheck r = g->check();
  for (const auto& p : r.problems) std::printf("damaged: %s\n", p.c_str());
  std::printf("%s: %lld people and %lld templates read, %zu problem%s\n", g->location().c_str(),
              static_cast<long long>(r.people), static_cast<long long>(r.templates), r.problems.size(),
              r.problems.size() == 1 ? "" : "s");
  if (r.ok()) return 0;
  std::fprintf(stderr, "facekit: error: the gallery %s is damaged (%zu problem%s above)\n", g->location().c_str(),
               r.problems.size(), r.problems.size() == 1 ? "" : "s");
  return exit_status(ErrorCode::kStorage);
}

int cmd_gallery_rekey(const GalleryCmdArgs& a) {
  if (a.decrypt == !a.new_key_file.empty())
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --new-key-file FILE and --decrypt");
  GalleryOptions go = a.gallery.options(false);
  go.key_optional = true;  // encrypting a plain gallery: a key in the environment is the old key of none
  auto g = open_gallery(a.gallery.resolved(), go);
  const bool was = g->encrypted();
  std::optional<GalleryKey> key;
  if (!a.decrypt) key = GalleryKey::from_file(a.new_key_file);
  g->rekey(key);
  // The caches held the templates in their old form: they are rebuilt (sealed) by the next identify.
  IdentifyOptions io;
  Identifier::clear_cache(*g, io);
  const auto st = g->stats();
  std::printf("%s %lld templates of %s\n", !key ? "decrypted" : was ? "re-encrypted" : "encrypted",
              static_cast<long long>(st.templates), g->location().c_str());
  return 0;
}

int cmd_gallery_keygen(const std::string& file) {
  GalleryKey::generate().write_file(file);
  std::printf("wrote a new gallery key to %s (mode 0600); keep a copy: without it the templates are lost\n", file.c_str());
  return 0;
}

// ---- benchmarks -------------------------------------------------------------------------------------------

struct BenchArgs {
  LfwIdentificationOptions lfw;
  std::string json_out, cache_dir, calibration_out;
  bool no_cache = false;
  GalleryScaleOptions scale;
  std::string scale_dir;
};

json protocol_json(const ProtocolResult& r) {
  json j = {{"protocol", r.protocol},
            {"classifier", r.classifier},
            {"enrolment", r.enrolment},
            {"aggregation", r.aggregation},
            {"gallery_people", r.gallery_people},
            {"gallery_rows", r.gallery_rows},
            {"mated_probes", r.mated_probes},
            {"nonmated_probes", r.nonmated_probes},
            {"rank1", r.rank1},
            {"rank5", r.rank5},
            {"train_seconds", r.train_seconds},
            {"median_search_ms", r.median_search_ms},
            {"classifier_state", r.classifier_state}};
  if (r.nonmated_probes > 0)
    j["open_set"] = {{"dir", r.open_set.dir}, {"fpir", r.open_set.fpir}, {"threshold", r.open_set.threshold},
                     {"calibrated", {{"dir", r.calibrated.dir}, {"fpir", r.calibrated.fpir},
                                     {"threshold", r.calibrated.threshold}, {"source", r.calibrated_source},
                                     {"turned", {{"mated", r.turned_mated}, {"strangers", r.turned_nonmated},
                                                 {"threshold", r.calibrated_turned.threshold},
                                                 {"fpir", r.calibrated_turned.fpir}, {"dir", r.calibrated_turned.dir}}}}}};
  if (!r.far_table.empty()) {
    j["far_table"] = r.far_table;
    j["impostor_comparisons"] = r.impostor_comparisons;
  }
  return j;
}

EmbeddingCacheOptions cache_options(const Common& c, const BenchArgs& a) {
  EmbeddingCacheOptions co;
  co.dir = a.cache_dir;
  co.enabled = !a.no_cache;
  co.recipe = "flip=" + std::to_string(!c.no_flip) + " jitter=" + std::to_string(c.jitter);
  return co;
}

int cmd_bench_identify(const Common& c, BenchArgs a) {
  FacePipeline pipe(pipeline_options(c));
  a.lfw.cache = cache_options(c, a);
  std::unique_ptr<ProgressBar> bar;
  std::string stage;
  const auto rep = run_lfw_identification(pipe, a.lfw, [&](const std::string& s, int done, int total) {
    if (s == "embed") {
      if (!bar) bar = std::make_unique<ProgressBar>("embed", total);
      bar->update(done);
    } else {
      if (bar) bar->finish(), bar.reset();
      std::fprintf(stderr, "[%d/%d] %s\n", done + 1, total, s.c_str());
    }
  });
  if (bar) bar->finish();
  std::printf("LFW identification: %d people with 2+ photos, %d photos, %s, %d without a face; embeddings %.0f s "
              "(%d computed, the rest cached)\n",
              rep.people, rep.photos, rep.embedder.c_str(), rep.no_face, rep.embed_seconds, rep.computed);
  std::printf("%-9s %-4s %-9s %-5s %7s %7s %7s %8s %8s %9s %8s %8s\n", "protocol", "clf", "enrolment", "agg", "people",
              "rows", "probes", "rank-1", "rank-5", "DIR@FPIR", "thresh", "train s");
  for (const auto& r : rep.results) {
    std::printf("%-9s %-4s %-9s %-5s %7d %7d %7d %7.2f%% %7.2f%%", r.protocol.c_str(), r.classifier.c_str(),
                r.enrolment.c_str(), r.aggregation.c_str(), r.gallery_people, r.gallery_rows,
                r.mated_probes + r.nonmated_probes, 100 * r.rank1, 100 * r.rank5);
    if (r.nonmated_probes > 0)
      std::printf(" %8.2f%% %8.4f", 100 * r.open_set.dir, r.open_set.threshold);
    else
      std::printf(" %9s %8s", "-", "-");
    std::printf(" %8.2f\n", r.train_seconds);
  }
  for (const auto& r : rep.results)
    if (r.nonmated_probes > 0 && r.enrolment == "plain")
      std::printf("open-set %s/%s at the calibrated threshold %.4f (%s): FPIR %.2f%% (target %.2f%%), DIR %.2f%%\n",
                  r.classifier.c_str(), r.aggregation.c_str(), r.calibrated.threshold, r.calibrated_source.c_str(),
                  100 * r.calibrated.fpir, 100 * a.lfw.fpir, 100 * r.calibrated.dir);
  for (const auto& r : rep.results)
    if (r.nonmated_probes > 0 && r.enrolment == "plain" && r.turned_mated + r.turned_nonmated > 0)
      std::printf("  of which turned probes (%d mated, %d strangers), threshold %.4f (FPIR x %g from 45 degrees): FPIR %.2f%%, DIR %.2f%%\n",
                  r.turned_mated, r.turned_nonmated, r.calibrated_turned.threshold, r.turned_fpir_factor,
                  100 * r.calibrated_turned.fpir,
                  100 * r.calibrated_turned.dir);
  for (const auto& r : rep.results)
    if (r.classifier == "svm" && r.enrolment == "plain")
      std::printf("%s svm: %s\n", r.protocol.c_str(), r.classifier_state.c_str());
  std::vector<std::pair<std::string, OpenSetCalibration>> calibrations;  // by classifier
  for (const auto& r : rep.results) {
    if (r.far_table.empty()) continue;
    const Aggregation agg = parse_aggregation(r.aggregation);
    const std::string key = open_set_key(r.classifier, agg);
    std::printf("%s score reached by impostors (%lld comparisons):", key.c_str(),
                static_cast<long long>(r.impostor_comparisons));
    for (const auto& [far, t] : r.far_table) std::printf(" FAR %.0e: %.4f;", far, t);
    std::printf("\n");
    OpenSetCalibration cal;
    for (const auto& [far, t] : r.far_table) cal.far.push_back(far), cal.threshold.push_back(t);
    std::ostringstream power;
    power << rep.mean_norm_power;
    const std::string scored =
        r.classifier == "svm"    ? "SVM over " + std::string(agg == Aggregation::kMean ? "per-person mean templates" : "every template") +
                                       " (score = Platt probability)"
        : agg == Aggregation::kMean ? "kNN over per-person mean templates (score = x.m/|m|^" + power.str() + ", mean_row)"
                                    : "kNN over every template (score = the person's nearest template's similarity; FAR per template)";
    cal.source = "facekit bench identify: LFW people with 2+ photos, open-set split (840 enrolled, photos of the "
                 "other 840 as strangers), plain enrolment, " +
                 scored + ", " + std::to_string(r.impostor_comparisons) + " stranger-person comparisons";
    cal.mean_norm_power = rep.mean_norm_power;
    cal.turned_fpir_factor = r.turned_fpir_factor;
    calibrations.emplace_back(key, std::move(cal));
  }
  std::printf("wall %.1f s\n", rep.wall_seconds);
  if (!a.calibration_out.empty()) {
    for (const auto& [classifier, cal] : calibrations)
      save_open_set_calibration(a.calibration_out, embedder_id(pipe), classifier, cal);
  }
  if (!a.json_out.empty()) {
    json res = json::array();
    for (const auto& r : rep.results) res.push_back(protocol_json(r));
    json j = {{"embedder", rep.embedder},      {"flip", !c.no_flip},          {"jitter", c.jitter},
              {"detector_input", c.detect_size}, {"people", rep.people},     {"photos", rep.photos},
              {"no_face", rep.no_face},        {"no_face_photos", rep.no_face_photos},
              {"fpir_target", a.lfw.fpir},     {"embed_seconds", rep.embed_seconds},
              {"computed", rep.computed},      {"wall_seconds", rep.wall_seconds}, {"results", res}};
    std::ofstream f(a.json_out);
    if (!(f << j.dump(2) << "\n")) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.json_out);
  }
  return 0;
}

json latency_json(const LatencyStats& l) { return {{"p50_ms", l.p50_ms}, {"p99_ms", l.p99_ms}, {"mean_ms", l.mean_ms}}; }

int cmd_bench_scale(const Common& c, BenchArgs a) {
  FacePipeline pipe(pipeline_options(c));
  // Real embeddings: every photo of the LFW people with 2+ photos, from the bench identify cache.
  const auto people = lfw_people(a.lfw.root, 2);
  std::vector<std::string> paths, names;
  for (const auto& p : people)
    for (const auto& ph : p.photos) paths.push_back(ph), names.push_back(p.name);
  std::vector<bool> augmented(paths.size());
  for (size_t i = 0, k = 0; i < people.size(); ++i)
    for (size_t j = 0; j < people[i].photos.size(); ++j, ++k) augmented[k] = j % 2 == 0;  // same key as bench identify
  std::unique_ptr<ProgressBar> bar;
  const auto embs = embed_lfw_photos(pipe, a.lfw.root, paths, augmented, a.lfw.augment, cache_options(c, a),
                                     a.lfw.workers, [&](int d, int n) {
                                       if (!bar) bar = std::make_unique<ProgressBar>("embed", n);
                                       bar->update(d);
                                     });
  if (bar) bar->finish();
  std::vector<LabelledEmbedding> real;
  for (size_t i = 0; i < embs.size(); ++i)
    if (embs[i].ok) real.push_back({names[i], embs[i].variants[0]});
  a.scale.embedder = embedder_id(pipe);
  a.scale.dir = a.scale_dir;
  const auto r = run_gallery_scale(real, a.scale, [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); });
  std::printf("gallery at scale: %lld templates of %lld people (%lld real LFW, %lld synthetic), %d held-out queries\n",
              static_cast<long long>(r.templates), static_cast<long long>(r.people),
              static_cast<long long>(r.real_templates), static_cast<long long>(r.synthetic_templates), r.queries);
  std::printf("distribution    mean distance same person: real %.3f, synthetic %.3f; different people: real %.3f, "
              "synthetic %.3f\n",
              r.real_within, r.synthetic_within, r.real_between, r.synthetic_between);
  std::printf("enrolment       %.1f people/s (%.0f templates/s) one durable transaction each; %.0f templates/s in "
              "batches of %d people\n",
              r.durable_people_per_s, r.durable_templates_per_s, r.bulk_templates_per_s, a.scale.batch_people);
  std::printf("index           %s over every template: built from the store in %.1f s, loaded from its cache in %.2f s\n",
              r.index_description.c_str(), r.build_seconds, r.load_seconds);
  std::printf("memory          %.0f MiB resident for the loaded index, peak RSS %.0f MiB; gallery file %.0f MiB, "
              "cache %.0f MiB\n",
              r.rss_index_mb, r.peak_rss_mb, r.gallery_bytes / 1048576.0, r.cache_bytes / 1048576.0);
  std::printf("exact search    p50 %.2f ms, p99 %.2f ms (IndexFlatL2, one query, one thread)\n", r.exact_latency.p50_ms,
              r.exact_latency.p99_ms);
  for (const auto& e : r.ef)
    std::printf("efSearch %-5d  p50 %.3f ms, p99 %.3f ms, recall@1 %.4f vs exact, rank-1 (nearest template) %.2f%%\n", e.ef_search,
                e.latency.p50_ms, e.latency.p99_ms, e.recall_at_1, 100 * e.rank1);
  std::printf("identify        default options (kNN over per-person means: %lld rows, %s, built in %.1f s): p50 %.3f ms, "
              "p99 %.3f ms including names from the store, rank-1 %.2f%%\n",
              static_cast<long long>(r.default_rows), r.default_index.c_str(), r.default_build_seconds,
              r.identify_latency.p50_ms, r.identify_latency.p99_ms, 100 * r.identify_rank1);
  if (r.svm_people)
    std::printf("svm             %lld people (%lld templates) trained in %.1f s; rank-1 %.2f%% on their queries\n",
                static_cast<long long>(r.svm_people), static_cast<long long>(r.svm_rows), r.svm_train_seconds,
                100 * r.svm_rank1);
  std::printf("wall            %.0f s\n", r.wall_seconds);
  if (!a.json_out.empty()) {
    json ef = json::array();
    for (const auto& e : r.ef)
      ef.push_back({{"ef_search", e.ef_search}, {"latency", latency_json(e.latency)}, {"recall_at_1", e.recall_at_1},
                    {"rank1", e.rank1}});
    json j = {{"templates", r.templates},
              {"people", r.people},
              {"real_templates", r.real_templates},
              {"synthetic_templates", r.synthetic_templates},
              {"queries", r.queries},
              {"distance_same_person", {{"real", r.real_within}, {"synthetic", r.synthetic_within}}},
              {"distance_different_people", {{"real", r.real_between}, {"synthetic", r.synthetic_between}}},
              {"durable_people_per_s", r.durable_people_per_s},
              {"durable_templates_per_s", r.durable_templates_per_s},
              {"bulk_templates_per_s", r.bulk_templates_per_s},
              {"index", r.index_description},
              {"build_seconds", r.build_seconds},
              {"load_seconds", r.load_seconds},
              {"rss_index_mib", r.rss_index_mb},
              {"peak_rss_mib", r.peak_rss_mb},
              {"gallery_bytes", r.gallery_bytes},
              {"cache_bytes", r.cache_bytes},
              {"exact_latency", latency_json(r.exact_latency)},
              {"hnsw", ef},
              {"identify_default", {{"rows", r.default_rows},
                                    {"index", r.default_index},
                                    {"build_seconds", r.default_build_seconds},
                                    {"latency", latency_json(r.identify_latency)},
                                    {"rank1", r.identify_rank1}}},
              {"svm_people", r.svm_people},
              {"svm_rows", r.svm_rows},
              {"svm_train_seconds", r.svm_train_seconds},
              {"svm_rank1", r.svm_rank1},
              {"wall_seconds", r.wall_seconds}};
    std::ofstream f(a.json_out);
    if (!(f << j.dump(2) << "\n")) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.json_out);
  }
  return 0;
}

}  // namespace

void add_gallery_commands(CLI::App& app, Common& c, Commands& out) {
  // enroll
  auto en = std::make_shared<EnrollArgs>();
  auto* enroll_cmd = app.add_subcommand("enroll", "enrol a person from one or more photos (one face each)");
  enroll_cmd->add_option("--name", en->name, "the person's name (an enrolled name gets these photos added)")->required();
  enroll_cmd->add_option("images", en->images, "photos, each showing exactly one face")->required();
  add_gallery_option(enroll_cmd, en->gallery);
  enroll_cmd->add_option("--metadata", en->metadata, "a JSON object stored with the person");
  enroll_cmd->add_flag("--augment", en->augment,
                       "average each photo's embedding over rotated, scaled, re-lit copies (the default)");
  enroll_cmd->add_flag("--no-augment", en->no_augment, "embed each photo once (7x less work)");
  enroll_cmd->add_flag("--allow-poor", en->allow_poor,
                       "enrol photos whose face quality is poor (blurred, dark, turned away, tiny, eyes closed, cut off)");
  enroll_cmd->add_flag("--new", en->new_only, "fail if the name is already enrolled instead of adding to it");
  enroll_cmd->add_flag("--json", en->as_json, "print JSON");
  out.emplace_back(enroll_cmd, [&c, en] { return cmd_enroll(c, *en); });

  // identify
  auto id = std::make_shared<IdentifyArgs>();
  auto* identify_cmd = app.add_subcommand("identify", "who is each face? (enrolled people or unknown)");
  identify_cmd->add_option("images", id->images, "photos")->required();
  add_gallery_option(identify_cmd, id->gallery);
  identify_cmd->add_flag("--json", id->as_json, "print JSON");
  identify_cmd->add_option("--top", id->top, "candidates per face")->capture_default_str()->check(CLI::Range(1, 100));
  identify_cmd->add_option("--classifier", id->classifier, "knn or svm")
      ->capture_default_str()
      ->check(CLI::IsMember({"knn", "svm"}));
  identify_cmd->add_option("--aggregation", id->aggregation,
                           "mean (a row per person), none (a row per template) or auto (mean for knn, none for svm)")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "none", "mean"}));
  // Scores are cosine similarities (knn) or probabilities (svm): both within [-1, 1].
  identify_cmd->add_option("--threshold", id->threshold,
                           "open-set threshold on the best candidate's score (default: from --fpir and the LFW calibration)")
      ->check(finite_range(-1, 1));
  identify_cmd->add_option("--fpir", id->fpir, "share of strangers the default threshold may name as someone")
      ->capture_default_str()
      ->check(finite_range(1e-9, 1.0));
  identify_cmd->add_option("--template-min-quality", id->template_min_quality,
                           "mean templates: leave out a person's templates of lower quality when they have one at least this good (0 = keep all)")
      ->capture_default_str()
      ->check(finite_range(0, 1));
  identify_cmd->add_option("--mean-norm-power", id->mean_norm_power,
                           "mean templates: a person scores x.m/|m|^this against the mean m of their templates (1 = cosine to the normalised mean; default: the power the embedder's open-set calibration was measured with)")
      ->check(finite_range(0, 1));
  identify_cmd->add_option("--turned-fpir-factor", id->turned_fpir_factor,
                           "a face turned 45 degrees or more must pass the default threshold for FPIR x this; from 25 degrees in proportion (1 = as frontal faces; default: the factor the embedder's open-set calibration records)")
      ->check(finite_range(1e-6, 1.0));
  identify_cmd->add_option("--ef-search", id->ef_search, "HNSW search beam for large galleries")->check(CLI::Range(1, 1 << 20));
  out.emplace_back(identify_cmd, [&c, id] { return cmd_identify(c, *id); });

  // people
  auto pa = std::make_shared<PeopleArgs>();
  auto* people = app.add_subcommand("people", "list, show, rename or remove enrolled people");
  people->require_subcommand(1);
  auto* list = people->add_subcommand("list", "every enrolled person");
  add_gallery_option(list, pa->gallery);
  list->add_flag("--json", pa->as_json, "print JSON");
  out.emplace_back(list, [pa] { return cmd_people_list(*pa); });
  auto* show = people->add_subcommand("show", "one person and their templates");
  show->add_option("person", pa->ref, "id or name")->required();
  add_gallery_option(show, pa->gallery);
  show->add_flag("--json", pa->as_json, "print JSON");
  out.emplace_back(show, [pa] { return cmd_people_show(*pa); });
  auto* rename = people->add_subcommand("rename", "give a person another name");
  rename->add_option("person", pa->ref, "id or name")->required();
  rename->add_option("new_name", pa->new_name, "the new name")->required();
  add_gallery_option(rename, pa->gallery);
  out.emplace_back(rename, [pa] { return cmd_people_rename(*pa); });
  auto* remove = people->add_subcommand("remove", "remove people and all their templates");
  remove->add_option("people", pa->refs, "ids or names")->required();
  add_gallery_option(remove, pa->gallery);
  out.emplace_back(remove, [pa] { return cmd_people_remove(*pa); });

  // gallery
  auto ga = std::make_shared<GalleryCmdArgs>();
  auto* gal = app.add_subcommand("gallery", "gallery statistics, export, import and reindexing");
  gal->require_subcommand(1);
  auto* stats = gal->add_subcommand("stats", "people, templates per embedder, size");
  add_gallery_option(stats, ga->gallery);
  stats->add_flag("--json", ga->as_json, "print JSON");
  out.emplace_back(stats, [ga] { return cmd_gallery_stats(*ga); });
  auto* exp = gal->add_subcommand("export", "write every person and template to a JSON Lines file");
  exp->add_option("file", ga->file, "output file")->required();
  add_gallery_option(exp, ga->gallery);
  out.emplace_back(exp, [ga] { return cmd_gallery_export(*ga); });
  auto* imp = gal->add_subcommand("import", "add the people of an export (all or nothing)");
  imp->add_option("file", ga->file, "an export file")->required()->check(CLI::ExistingFile);
  imp->add_flag("--merge", ga->merge, "add to people already enrolled under the same name (default: fail)");
  add_gallery_option(imp, ga->gallery);
  out.emplace_back(imp, [ga] { return cmd_gallery_import(*ga); });
  exp->add_option("--export-key-file", ga->export_key_file,
                  "seal the embeddings with this key (default: an encrypted gallery's own key)");
  exp->add_flag("--plaintext", ga->plaintext, "write an encrypted gallery's embeddings unsealed");
  imp->add_option("--export-key-file", ga->export_key_file,
                  "key of a sealed export (default: an encrypted gallery's own key)");
  auto cp = std::make_shared<CopyArgs>();
  auto* copy = gal->add_subcommand("copy", "copy a gallery into an empty one (SQLite <-> PostgreSQL), then verify it");
  copy->add_option("--from", cp->from.path, "the gallery to copy: an SQLite file or a postgresql:// URL")
      ->required()->check(non_empty());
  copy->add_option("--key-file", cp->from.key_file, "key of an encrypted source gallery")->check(non_empty());
  copy->add_option("--to", cp->to, "the new gallery: an SQLite file or a postgresql:// URL")->required()->check(non_empty());
  copy->add_option("--to-key-file", cp->to_key_file, "encrypt the copy's templates with this key (SQLite only)")
      ->check(non_empty());
  copy->add_option("--probes", cp->probes, "templates identified against both to verify the copy")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  out.emplace_back(copy, [cp] { return cmd_gallery_copy(*cp); });
  auto* chk = gal->add_subcommand("check", "read every row and report every damaged one (exit 11 if any)");
  add_gallery_option(chk, ga->gallery);
  out.emplace_back(chk, [ga] { return cmd_gallery_check(*ga); });
  auto* rk = gal->add_subcommand("rekey", "encrypt the templates with a new key (or --decrypt), in one transaction");
  add_gallery_option(rk, ga->gallery);
  rk->add_option("--new-key-file", ga->new_key_file, "the new key (see gallery keygen)")->check(non_empty());
  rk->add_flag("--decrypt", ga->decrypt, "store the templates unencrypted again");
  out.emplace_back(rk, [ga] { return cmd_gallery_rekey(*ga); });
  auto* kg = gal->add_subcommand("keygen", "write a new random gallery key to a file (mode 0600)");
  kg->add_option("file", ga->file, "the key file to create (never overwritten)")->required()->check(non_empty());
  out.emplace_back(kg, [ga] { return cmd_gallery_keygen(ga->file); });
  auto* re = gal->add_subcommand("reindex", "rebuild the search index and retrain the classifier from the store");
  add_gallery_option(re, ga->gallery);
  re->add_option("--classifier", ga->classifier, "knn or svm")->capture_default_str()->check(CLI::IsMember({"knn", "svm"}));
  re->add_option("--aggregation", ga->aggregation, "auto, none or mean")->capture_default_str()->check(CLI::IsMember({"auto", "none", "mean"}));
  out.emplace_back(re, [&c, ga] { return cmd_gallery_reindex(c, *ga); });

  // benchmarks, under the core "bench" command
  auto* bench = app.get_subcommand("bench");
  auto ba = std::make_shared<BenchArgs>();
  auto* bid = bench->add_subcommand("identify", "LFW identification: rank-1 (one-shot, 50/50), DIR at FPIR=1%");
  bid->add_option("--root", ba->lfw.root, "LFW folder (lfw-names.txt, Name/Name_NNNN.jpg)")->required()->check(CLI::ExistingDirectory);
  bid->add_option("--json", ba->json_out, "write the report as JSON");
  bid->add_option("--workers", ba->lfw.workers, "photos embedded in parallel")->capture_default_str()->check(CLI::Range(1, 64));
  bid->add_option("--limit-people", ba->lfw.limit_people, "use only the first N people (quick runs)");
  bid->add_option("--cache-dir", ba->cache_dir, "embedding cache folder (default ~/.cache/facekit)");
  bid->add_flag("--no-cache", ba->no_cache, "neither read nor write the embedding cache");
  bid->add_flag("--no-augment", [ba](std::int64_t) { ba->lfw.measure_augmentation = false; },
                "measure plain enrolment only (embeds no augmented copies: 7x less work for the enrolled photos)");
  bid->add_option("--fpir", ba->lfw.fpir, "false-positive identification rate of the open-set point")->capture_default_str();
  bid->add_option("--template-min-quality", ba->lfw.template_min_quality,
                  "mean templates: leave out a person's templates of lower quality when they have one at least this good (0 = keep all)")
      ->capture_default_str()
      ->check(finite_range(0, 1));
  bid->add_option("--mean-norm-power", ba->lfw.mean_norm_power,
                  "mean templates: a person scores x.m/|m|^this against the mean m of their templates (1 = cosine to the normalised mean; default: the power the embedder's open-set calibration was measured with, which --calibration-out records)")
      ->check(finite_range(0, 1));
  bid->add_option("--turned-fpir-factor", ba->lfw.turned_fpir_factor,
                  "probes turned 45 degrees or more meet the threshold for FPIR x this; from 25 degrees in proportion (1 = none; default: the factor the embedder's open-set calibration records, which --calibration-out records)")
      ->check(finite_range(1e-6, 1.0));
  bid->add_option("--seed", ba->lfw.seed, "which half of the people the open-set protocol enrols (a seeded shuffle)")
      ->capture_default_str();
  bid->add_option("--knn-k", ba->lfw.classifier.knn_k, "kNN voters")->capture_default_str();
  bid->add_option("--svm-c", ba->lfw.classifier.svm_c, "SVM C")->capture_default_str();
  bid->add_option("--svm-hard", ba->lfw.classifier.svm_hard_negative_people, "SVM hard-negative people")->capture_default_str();
  bid->add_option("--svm-random", ba->lfw.classifier.svm_random_negatives, "SVM random negatives")->capture_default_str();
  bid->add_option("--classifiers", ba->lfw.classifiers, "which classifiers to measure")->capture_default_str();
  bid->add_option("--calibration-out", ba->calibration_out,
                  "write the open-set calibration (impostor score table) into this JSON file, e.g. share/gallery/open_set.json");
  out.emplace_back(bid, [&c, ba] { return cmd_bench_identify(c, *ba); });

  auto* bsc = bench->add_subcommand("gallery-scale", "1M-template gallery: enrolment, index build/load, latency, recall");
  bsc->add_option("--root", ba->lfw.root, "LFW folder (the real embeddings; cached by bench identify)")->required()->check(CLI::ExistingDirectory);
  bsc->add_option("--templates", ba->scale.templates, "gallery size")->capture_default_str();
  bsc->add_option("--queries", ba->scale.queries, "held-out real probes")->capture_default_str();
  bsc->add_option("--ef-search", ba->scale.ef_search, "HNSW beams to measure")->capture_default_str();
  bsc->add_option("--index", ba->scale.index.kind, "auto, flat or hnsw")->capture_default_str();
  bsc->add_option("--svm-people", ba->scale.svm_people, "train the SVM on this many people (0: skip)")->capture_default_str();
  bsc->add_option("--dir", ba->scale_dir, "keep the gallery here (default: a temporary folder, removed)");
  bsc->add_option("--json", ba->json_out, "write the report as JSON");
  bsc->add_option("--workers", ba->lfw.workers, "photos embedded in parallel")->capture_default_str();
  bsc->add_option("--cache-dir", ba->cache_dir, "embedding cache folder (default ~/.cache/facekit)");
  out.emplace_back(bsc, [&c, ba] { return cmd_bench_scale(c, *ba); });
}

}  // namespace facekit::cli
