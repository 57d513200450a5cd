// Evaluation on anyone's pairs: bench lfw / bench pairs (accuracy, ROC, TAR@FAR, per-pair scores, plots) and
// calibrate (a distance -> P(same) map fitted on labelled pairs).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "facekit/calibration.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/model.hpp"
#include "facekit/pipeline.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace facekit::cli {

LfwReport score_pairs(const FacePipeline& pipe, const LfwOptions& lo, const std::string& bar_name) {
  std::unique_ptr<ProgressBar> bar;
  auto report = run_lfw(pipe, lo, [&](int done, int total) {
    if (!bar) bar = std::make_unique<ProgressBar>(bar_name, total);
    bar->update(done);
  });
  if (bar) bar->finish();
  return report;
}

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct PairsArgs {
  LfwOptions lo;
  std::string json_out, scores, plot, label;
  std::vector<std::string> compare;  // earlier runs' score files, FILE or FILE=LABEL
};

std::vector<LabelledScore> labelled(const std::vector<ScoredPair>& s) {
  std::vector<LabelledScore> out;
  for (const auto& p : s)
    if (p.valid) out.push_back({p.distance, p.same});
  return out;
}

std::vector<double> predict(const ScoreCalibration& c, const std::vector<LabelledScore>& s) {
  std::vector<double> p;
  for (const auto& x : s) p.push_back(c.probability_at(x.distance));
  return p;
}

// What an uncalibrated service reports as a confidence: the cosine similarity of unit vectors, 1 - d^2 / 2
// (CompreFace's "similarity"), clipped to [0, 1].
std::vector<double> similarity(const std::vector<LabelledScore>& s) {
  std::vector<double> p;
  for (const auto& x : s) p.push_back(std::clamp(1.0 - 0.5 * x.distance * x.distance, 0.0, 1.0));
  return p;
}

json bins_json(const std::vector<ReliabilityBin>& bins) {
  json a = json::array();
  for (const auto& b : bins)
    a.push_back({{"lo", b.lo}, {"hi", b.hi}, {"count", b.count}, {"mean_predicted", b.mean_predicted},
                 {"fraction_same", b.fraction_same}});
  return a;
}

std::string far_label(double far) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.0e", far);
  return buf;
}

int cmd_bench_pairs(const Common& c, PairsArgs a, bool lfw) {
  if (a.lo.root.empty()) a.lo.root = a.lo.pairs.parent_path();
  if (a.lo.pairs.empty()) a.lo.pairs = a.lo.root / "pairs.txt";
  // Earlier runs are read first: a bad file fails before minutes of work.
  std::vector<PlotRun> runs;
  for (const auto& spec : a.compare) {
    const auto eq = spec.rfind('=');
    const std::string file = eq == std::string::npos ? spec : spec.substr(0, eq);
    const std::string label = eq == std::string::npos ? fs::path(file).stem().string() : spec.substr(eq + 1);
    runs.push_back({label, read_pair_scores(file)});
  }
  FacePipeline pipe(pipeline_options(c));
  const auto report = score_pairs(pipe, a.lo, lfw ? "lfw" : "pairs");
  const auto& v = report.verification;
  const std::string model = pipe.embedder().manifest().name;
  std::printf("%s: %d pairs (%zu folds), %d images, model %s%s, jitter %d, detector %s input %d\n",
              a.lo.pairs.filename().string().c_str(), v.pairs, v.folds.size(), report.images, model.c_str(),
              c.no_flip ? "" : " +flip", c.jitter, c.detector.c_str(), c.detect_size);
  std::printf("accuracy        %.2f%% +- %.2f%% (no-face pairs counted wrong)\n", 100 * v.accuracy_mean,
              100 * v.accuracy_std);
  std::printf("AUC             %.5f\n", v.auc);
  std::printf("EER             %.2f%% (threshold %.4f)\n", 100 * v.eer, v.eer_threshold);
  for (const auto& f : v.tar_at_far) {
    if (f.supported)
      std::printf("TAR@FAR=%-7s %.2f%% (threshold %.4f; %d of %d impostor pairs may pass)\n", far_label(f.far).c_str(),
                  100 * f.tar, f.threshold, f.allowed_false_accepts, f.impostors);
    else
      std::printf("TAR@FAR=%-7s -      (needs >= %.0f impostor pairs, has %d)\n", far_label(f.far).c_str(), 1 / f.far,
                  f.impostors);
  }
  std::printf("no face         %d images, %d pairs\n", report.no_face, v.invalid_pairs);
  std::printf("best threshold  %.4f (over all pairs)\n", v.best_threshold);

  const auto ls = labelled(report.scored);
  std::vector<double> probability;
  json cal_j;
  const auto& cal = pipe.calibration();
  if (!cal.empty() && !ls.empty()) {
    std::vector<ReliabilityBin> bins;
    const double ece = expected_calibration_error(predict(cal, ls), ls, 10, &bins);
    std::vector<ReliabilityBin> sim_bins;
    const double ece_sim = expected_calibration_error(similarity(ls), ls, 10, &sim_bins);
    std::printf("calibration     %s (%s): ECE %.4f on these pairs (uncalibrated similarity 1-d^2/2: %.4f)\n",
                cal.method.c_str(), cal.fitted_on.c_str(), ece, ece_sim);
    cal_j = {{"method", cal.method}, {"fitted_on", cal.fitted_on}, {"ece", ece}, {"bins", bins_json(bins)},
             {"similarity_ece", ece_sim}};
    for (const auto& s : report.scored) probability.push_back(s.valid ? cal.probability_at(s.distance) : 0.0);
  }
  std::printf("median ms       detect %.2f, landmarks %.2f, align+embed %.2f (per image, %d worker%s)\n",
              report.median_detect_ms, report.median_landmarks_ms, report.median_embed_ms, a.lo.threads,
              a.lo.threads == 1 ? "" : "s");
  std::printf("wall            %.1f s (%.1f images/s)\n", report.wall_seconds,
              report.wall_seconds > 0 ? report.images / report.wall_seconds : 0.0);

  if (!a.scores.empty()) write_pair_scores(a.scores, report.pairs, report.scored, probability);
  if (!a.plot.empty()) {
    const std::string label = a.label.empty() ? model + (c.no_flip ? "" : " +flip") : a.label;
    runs.insert(runs.begin(), {label, report.scored});
    write_roc_plot(a.plot, runs, a.lo.pairs.filename().string() + ": " + std::to_string(v.pairs) + " pairs");
  }
  if (!a.json_out.empty()) {
    json errors = json::array();
    for (const auto& e : report.errors)
      errors.push_back({{"a", e.pair.a}, {"b", e.pair.b}, {"same", e.pair.same}, {"fold", e.pair.fold},
                        {"distance", e.distance}, {"threshold", e.threshold}, {"face_found", e.valid}});
    json folds = json::array();
    for (const auto& f : v.folds) folds.push_back({{"threshold", f.threshold}, {"accuracy", f.accuracy}});
    json images = json::array();
    for (const auto& im : report.image_faces) {
      json j = {{"image", im.path}, {"faces", im.faces}};
      if (im.picked) j["picked"] = {{"box", json_view::box(im.picked->box)}, {"score", im.picked->score}};
      images.push_back(std::move(j));
    }
    json fars = json::array();
    for (const auto& f : v.tar_at_far)
      fars.push_back({{"far", f.far}, {"tar", f.tar}, {"threshold", f.threshold}, {"impostors", f.impostors},
                      {"allowed_false_accepts", f.allowed_false_accepts}, {"supported", f.supported}});
    json j = {{"model", model},
              {"flip", !c.no_flip},
              {"jitter", c.jitter},
              {"precision", c.precision},
              {"detector", c.detector},
              {"detector_input", c.detect_size},
              {"pairs_file", a.lo.pairs.string()},
              {"pairs", v.pairs},
              {"images", report.images},
              {"accuracy_mean", v.accuracy_mean},
              {"accuracy_std", v.accuracy_std},
              {"tar_at_far_1e-3", v.tar_at_far_1e3},
              {"threshold_at_far_1e-3", v.threshold_at_far_1e3},
              {"tar_at_far", fars},
              {"best_threshold", v.best_threshold},
              {"auc", v.auc},
              {"eer", v.eer},
              {"eer_threshold", v.eer_threshold},
              {"pick", to_string(a.lo.pick)},
              {"images_picked", images},
              {"no_face", report.no_face},
              {"no_face_images", report.no_face_images},
              {"invalid_pairs", v.invalid_pairs},
              {"folds", folds},
              {"errors", errors},
              {"median_ms", {{"detect", report.median_detect_ms},
                             {"landmarks", report.median_landmarks_ms},
                             {"embed", report.median_embed_ms}}},
              {"workers", a.lo.threads},
              {"wall_seconds", report.wall_seconds}};
    if (!cal_j.is_null()) j["calibration"] = cal_j;
    std::ofstream f(a.json_out);
    if (!(f << j.dump(2) << "\n")) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.json_out);
  }
  return 0;
}

struct CalibrateArgs {
  LfwOptions fit, eval;
  std::string method = "platt", out, reliability;
};

int cmd_calibrate(const Common& c, CalibrateArgs a) {
  for (auto* lo : {&a.fit, &a.eval})
    if (lo->root.empty() && !lo->pairs.empty()) lo->root = lo->pairs.parent_path();
  // Fitting a map to refit: the manifest's own map only serves as the "before" figure.
  FacePipeline pipe(pipeline_options(c));
  const std::string model = pipe.embedder().manifest().name;
  const auto fit_report = score_pairs(pipe, a.fit, "fit pairs");
  const auto fit_scores = labelled(fit_report.scored);
  ScoreCalibration cal = a.method == "isotonic" ? fit_isotonic(fit_scores) : fit_platt(fit_scores);
  cal.fitted_on = a.fit.pairs.filename().string() + " (" + std::to_string(fit_scores.size()) + " pairs with both faces), " +
                  model + (c.no_flip ? "" : " +flip") + ", by facekit calibrate";
  std::printf("fitted %s on %zu pairs of %s", cal.method.c_str(), fit_scores.size(), a.fit.pairs.string().c_str());
  if (cal.method == "platt") std::printf(": P(same) = 1 / (1 + exp(%.4f * d + %.4f))", cal.a, cal.b);
  else std::printf(": %zu knots", cal.distance.size());
  std::printf("\n");
  std::printf("  d = %.2f -> P(same) %.3f; d = threshold %.4f -> %.3f\n", 0.3, cal.probability_at(0.3f),
              pipe.embedder().threshold(), cal.probability_at(pipe.embedder().threshold()));

  std::vector<ReliabilityRun> runs;
  auto report_ece = [&](const std::string& where, const std::vector<LabelledScore>& s, bool plot) {
    std::vector<ReliabilityBin> bins;
    const double sim = expected_calibration_error(similarity(s), s, 10, &bins);
    std::printf("ECE on %s (%zu pairs): similarity 1-d^2/2 %.4f", where.c_str(), s.size(), sim);
    if (plot) runs.push_back({"similarity 1-d^2/2 (uncalibrated)", bins, sim});
    const auto& old = pipe.calibration();
    if (!old.empty()) {
      const double e = expected_calibration_error(predict(old, s), s, 10, &bins);
      std::printf(", current map (%s) %.4f", old.method.c_str(), e);
      if (plot) runs.push_back({"current map (" + old.method + ")", bins, e});
    }
    const double e = expected_calibration_error(predict(cal, s), s, 10, &bins);
    std::printf(", fitted %.4f\n", e);
    if (plot) runs.push_back({"fitted " + cal.method, bins, e});
  };
  const bool held_out = !a.eval.pairs.empty();
  report_ece("the fitting pairs (in-sample)", fit_scores, !held_out);
  if (held_out) {
    const auto eval_report = score_pairs(pipe, a.eval, "eval pairs");
    report_ece(a.eval.pairs.filename().string() + " (held out)", labelled(eval_report.scored), true);
  }
  if (!a.reliability.empty())
    write_reliability_plot(a.reliability, runs,
                           "reliability on " + (held_out ? a.eval.pairs : a.fit.pairs).filename().string());
  save_calibration(a.out, cal, model);
  std::printf("wrote %s (use it with: facekit --calibration %s ...)\n", a.out.c_str(), a.out.c_str());
  return 0;
}

void add_pairs_options(CLI::App* cmd, PairsArgs& a, bool lfw) {
  if (lfw) {
    cmd->add_option("--root", a.lo.root, "LFW folder (Name/Name_NNNN.jpg)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--pairs", a.lo.pairs, "pairs file, LFW's format or CSV (default ROOT/pairs.txt)")->check(CLI::ExistingFile);
  } else {
    cmd->add_option("--pairs", a.lo.pairs, "pair list: CSV a,b,same[,fold] or LFW's pairs.txt format")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--root", a.lo.root, "folder the image paths are relative to (default: the pairs file's folder)")
        ->check(CLI::ExistingDirectory);
    cmd->add_option("--folds", a.lo.folds, "folds for a CSV without a fold column (round robin)")
        ->capture_default_str()
        ->check(CLI::Range(1, 100));
  }
  cmd->add_option("--json", a.json_out, "write the report as JSON");
  cmd->add_option("--scores", a.scores, "write every pair's distance (and probability) as CSV");
  cmd->add_option("--plot", a.plot, "write ROC and DET curves as PNG");
  cmd->add_option("--compare", a.compare, "overlay an earlier run's --scores file on the plot (FILE or FILE=LABEL; repeatable)")
      ->check([](const std::string& s) {
        const auto eq = s.rfind('=');
        return fs::is_regular_file(eq == std::string::npos ? s : s.substr(0, eq)) ? std::string() : "no such scores file: " + s;
      });
  cmd->add_option("--label", a.label, "this run's name on the plot (default: the model)");
  cmd->add_option("--workers", a.lo.threads, "images processed in parallel")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--batch", a.lo.batch, "photos per batch through the networks (each worker takes a batch)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--limit", a.lo.limit_pairs, "use only this many pairs (quick runs)");
  cmd->add_option("--face-cache", a.lo.face_cache,
                  "keep detections and landmarks in this file and reuse them (compare embedders quickly; same detector and --pick)");
  cmd->add_option("--pick", a.lo.pick, "which face of each photo: main (default), center or largest")
      ->transform(CLI::CheckedTransformer(std::map<std::string, FacePick>{
          {"main", FacePick::kMain}, {"center", FacePick::kNearestCenter}, {"largest", FacePick::kLargest}}));
}

}  // namespace

void add_eval_commands(CLI::App& app, Common& c, Commands& out) {
  auto* bench = app.get_subcommand("bench");
  auto lfw_args = std::make_shared<PairsArgs>();
  lfw_args->lo.threads = 2;
  auto* lfw = bench->add_subcommand("lfw", "LFW pair verification, 10-fold protocol (accuracy, ROC, TAR@FAR)");
  add_pairs_options(lfw, *lfw_args, true);
  out.emplace_back(lfw, [&c, lfw_args] { return cmd_bench_pairs(c, *lfw_args, true); });

  auto pairs_args = std::make_shared<PairsArgs>();
  pairs_args->lo.threads = 2;
  pairs_args->lo.folds = 10;
  auto* pairs = bench->add_subcommand("pairs", "verification on any pair list (CSV or LFW format): accuracy, ROC, TAR@FAR, scores, plots");
  add_pairs_options(pairs, *pairs_args, false);
  out.emplace_back(pairs, [&c, pairs_args] { return cmd_bench_pairs(c, *pairs_args, false); });

  auto ca = std::make_shared<CalibrateArgs>();
  ca->fit.threads = ca->eval.threads = 2;
  auto* cal = app.add_subcommand("calibrate", "fit a distance -> P(same) map on labelled pairs (then use --calibration FILE)");
  cal->add_option("--pairs", ca->fit.pairs, "pairs to fit on (CSV a,b,same or LFW's format); never your test pairs")
      ->required()
      ->check(CLI::ExistingFile);
  cal->add_option("--root", ca->fit.root, "folder the image paths are relative to (default: the pairs file's folder)")
      ->check(CLI::ExistingDirectory);
  cal->add_option("--eval-pairs", ca->eval.pairs, "held-out pairs to report the calibration error on")->check(CLI::ExistingFile);
  cal->add_option("--eval-root", ca->eval.root, "their folder (default: their file's folder)")->check(CLI::ExistingDirectory);
  cal->add_option("--method", ca->method, "platt (logistic, smooth) or isotonic (monotone steps, needs more pairs)")
      ->capture_default_str()
      ->check(CLI::IsMember({"platt", "isotonic"}));
  cal->add_option("--out", ca->out, "calibration file to write")->required();
  cal->add_option("--reliability", ca->reliability, "write a reliability diagram (PNG)");
  cal->add_option("--face-cache", ca->fit.face_cache, "detections cache for the fitting pairs (see bench lfw)");
  cal->add_option("--workers", ca->fit.threads, "images processed in parallel")->capture_default_str()->check(CLI::Range(1, 64));
  out.emplace_back(cal, [&c, ca] {
    ca->eval.threads = ca->fit.threads;
    return cmd_calibrate(c, *ca);
  });
}

}  // namespace facekit::cli
