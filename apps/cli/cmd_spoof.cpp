// Passive anti-spoofing: `liveness IMG...` (every face: per-signal scores, combined score, state) and
// `bench spoof` (APCER / BPCER / ACER, ROC).
#include <cstdio>
#include <fstream>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "facekit/engine.hpp"
#include "facekit/json.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/spoof.hpp"
#include "facekit/spoof_eval.hpp"
#include "progress.hpp"

namespace facekit::cli {

using nlohmann::json;

namespace {

int cmd_liveness(const Common& c, const LivenessArgs& a) {
  if (a.active.requested() == !a.images.empty())
    throw Error(ErrorCode::kInvalidArgument, "give photos, or one of --video FILE / --frames DIR");
  EngineOptions eo = engine_options(c);
  eo.spoof_checker = a.checker;
  eo.spoof.manifests = a.manifests;
  const Engine engine(eo);
  const SpoofChecker& checker = engine.spoof_checker();
  // Video mode: blinks, turns and challenges, with this checker's score on every frame's face.
  if (a.active.requested()) return run_active_liveness(engine, a.active, a.as_json);
  json out = json::array();
  int without_face = 0;
  for (const auto& f : a.images) {
    const Image img = engine.load(f);
    const auto faces = engine.spoof(img, a.whole_image);
    if (faces.empty()) {
      ++without_face;
      std::fprintf(stderr, "facekit: %s: no face found\n", f.c_str());
    }
    out.push_back(json_view::spoof_report(f, img, checker, faces));
    if (a.as_json) continue;
    std::printf("%s: %zu face%s\n", f.c_str(), faces.size(), faces.size() == 1 ? "" : "s");
    for (const auto& [face, r] : faces) {
      std::printf("  box x=%.0f y=%.0f w=%.0f h=%.0f: %s (live score %.3f)", face.box.x, face.box.y, face.box.width,
                  face.box.height, to_string(r.state), r.score);
      for (const auto& s : r.signals)
        if (r.signals.size() > 1) std::printf(" %s %.3f", s.name.c_str(), s.score);
      std::printf("\n");
    }
  }
  if (a.as_json) std::cout << out.dump(2) << "\n";
  return without_face ? exit_status(ErrorCode::kNoFace) : 0;
}

json metrics_json(const PadMetrics& m) {
  return {{"threshold", m.threshold}, {"apcer", m.apcer}, {"bpcer", m.bpcer}, {"acer", m.acer}};
}

int cmd_bench_spoof(const SpoofBenchOptions& o, const std::string& json_out, const std::string& roc_out) {
  std::unique_ptr<ProgressBar> bar;
  const SpoofBenchReport r = run_spoof_bench(o, [&](int done, int total) {
    if (!bar) bar = std::make_unique<ProgressBar>("spoof", total);
    bar->update(done);
  });
  if (bar) bar->finish();
  std::printf("spoof bench: %d bona fide (%s), %d attacks (%s)%s\n", r.bona_fide, o.live_dir.c_str(), r.attacks,
              o.spoof_dir.c_str(), o.detect ? (", " + std::to_string(r.no_face) + " images without a face left out").c_str() : ", images as face crops");
  if (r.fitted)
    std::printf("calibrated on %d bona fide and %d attacks of %zu set%s\n", r.fit_bona_fide, r.fit_attacks,
                o.fit_live_dirs.size(), o.fit_live_dirs.size() == 1 ? "" : "s");
  else
    std::printf("calibration: from the manifests\n");
  std::printf("%-15s %9s %7s %7s %7s %12s %12s %6s %10s\n", "signal", "threshold", "APCER", "BPCER", "ACER",
              "BPCER@APCER5", "BPCER@APCER1", "AUC", "uncertain");
  for (const auto& s : r.signals)
    std::printf("%-15s %9.4f %6.2f%% %6.2f%% %6.2f%% %11.2f%% %11.2f%% %6.3f %4.0f%%/%3.0f%%\n", s.name.c_str(),
                s.thresholds.decision, 100 * s.at_threshold.apcer, 100 * s.at_threshold.bpcer, 100 * s.at_threshold.acer,
                100 * s.at_apcer5.bpcer, 100 * s.at_apcer1.bpcer, s.auc, 100 * s.uncertain_bona_fide,
                100 * s.uncertain_attacks);
  std::printf("(uncertain: share of bona fide / attacks between the spoof and live thresholds; wall %.1f s)\n", r.wall_seconds);
  if (!roc_out.empty()) {
    std::vector<std::pair<std::string, std::vector<RocPoint>>> curves;
    for (const auto& s : r.signals) curves.emplace_back(s.name, s.roc);
    draw_pad_roc(roc_out, curves, o.live_dir.parent_path().filename().string() + (r.fitted ? " (calibrated elsewhere)" : ""));
  }
  if (!json_out.empty()) {
    json signals = json::array();
    for (const auto& s : r.signals)
      signals.push_back({{"name", s.name},
                         {"thresholds", {{"decision", s.thresholds.decision}, {"live", s.thresholds.live}, {"spoof", s.thresholds.spoof}}},
                         {"at_threshold", metrics_json(s.at_threshold)},
                         {"bpcer_at_apcer_5", metrics_json(s.at_apcer5)},
                         {"bpcer_at_apcer_1", metrics_json(s.at_apcer1)},
                         {"auc", s.auc},
                         {"uncertain_bona_fide", s.uncertain_bona_fide},
                         {"uncertain_attacks", s.uncertain_attacks}});
    json j = {{"live_dir", o.live_dir.string()},
              {"spoof_dir", o.spoof_dir.string()},
              {"fit_live_dirs", o.fit_live_dirs},
              {"fit_spoof_dirs", o.fit_spoof_dirs},
              {"fitted", r.fitted},
              {"detect", o.detect},
              {"bona_fide", r.bona_fide},
              {"attacks", r.attacks},
              {"no_face", r.no_face},
              {"fit_bona_fide", r.fit_bona_fide},
              {"fit_attacks", r.fit_attacks},
              {"signals", signals},
              {"wall_seconds", r.wall_seconds}};
    std::ofstream f(json_out);
    if (!(f << j.dump(2) << "\n")) throw Error(ErrorCode::kInvalidArgument, "cannot write " + json_out);
  }
  return 0;
}

}  // namespace

void add_spoof_commands(CLI::App& app, Common& c, Commands& out) {
  auto la = std::make_shared<LivenessArgs>();
  auto* live = app.add_subcommand("liveness", "passive anti-spoofing: is each face live or a replay/print?");
  live->add_option("images", la->images, "image files (or --video / --frames)");
  add_active_liveness_options(live, la->active);
  live->add_flag("--json", la->as_json, "print JSON");
  live->add_option("--checker", la->checker, "antispoof, liveness, texture, frequency or combined")->capture_default_str();
  live->add_flag("--whole-image", la->whole_image, "each image is already a face crop: score it whole, no detection");
  live->add_option("--manifests", la->manifests, "read the spoof manifests from this folder (see bench spoof --save-manifests)")
      ->check(CLI::ExistingDirectory);
  out.emplace_back(live, [&c, la] { return cmd_liveness(c, *la); });

  struct BenchState {
    SpoofBenchOptions o;
    std::string json_out, roc_out;
  };
  auto st = std::make_shared<BenchState>();
  auto* bench = app.get_subcommand("bench");
  auto* spoof = bench->add_subcommand("spoof", "anti-spoofing error rates (APCER, BPCER, ACER) on folders of live and attack images");
  spoof->add_option("--live", st->o.live_dir, "bona fide images")->required()->check(CLI::ExistingDirectory);
  spoof->add_option("--spoof", st->o.spoof_dir, "attack images")->required()->check(CLI::ExistingDirectory);
  spoof->add_option("--fit-live", st->o.fit_live_dirs, "calibrate on these bona fide folders first (one per set)")
      ->check(CLI::ExistingDirectory);
  spoof->add_option("--fit-spoof", st->o.fit_spoof_dirs, "... and these attack folders (same set order)")->check(CLI::ExistingDirectory);
  spoof->add_option("--save-manifests", st->o.save_manifests, "write the calibrated spoof manifests into this folder");
  spoof->add_option("--manifests", st->o.spoof.manifests, "read the spoof manifests from this folder")->check(CLI::ExistingDirectory);
  spoof->add_flag("--detect", st->o.detect, "find the face with the detector (default: each image is a face crop)");
  spoof->add_option("--json", st->json_out, "write the report as JSON");
  spoof->add_option("--roc", st->roc_out, "draw the ROC curves into this PNG");
  spoof->add_option("--workers", st->o.workers, "images processed in parallel")->capture_default_str()->check(CLI::Range(1, 64));
  spoof->add_option("--texture-c", st->o.texture_c, "texture model: inverse L2 strength")->capture_default_str();
  spoof->add_option("--fusion-c", st->o.fusion_c, "fusion: inverse L2 strength")->capture_default_str();
  out.emplace_back(spoof, [&c, st] {
    st->o.spoof.device = c.device;
    st->o.detector = c.detector;
    return cmd_bench_spoof(st->o, st->json_out, st->roc_out);
  });
}

}  // namespace facekit::cli
