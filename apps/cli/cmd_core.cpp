// The core subcommands: detect, embed, verify, bench fuse and crops, models.
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <fstream>
#include <map>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/crop_eval.hpp"
#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/image.hpp"
#include "facekit/model.hpp"
#include "facekit/pipeline.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace facekit::cli {
namespace {

using nlohmann::json;

void draw_faces(Image& img, const std::vector<Face>& faces) {
  const int t = std::max(1, std::max(img.cols, img.rows) / 400);
  for (const auto& f : faces) {
    cv::rectangle(img, cv::Rect2f(f.box.x, f.box.y, f.box.width, f.box.height), {0, 255, 0}, t);
    cv::putText(img, cv::format("%.2f", f.score), {int(f.box.x), std::max(10, int(f.box.y) - 3)},
                cv::FONT_HERSHEY_SIMPLEX, 0.4 * t, {0, 255, 0}, t);
    if (f.landmarks)
      for (const auto& p : *f.landmarks) cv::circle(img, p, t, {255, 0, 0}, cv::FILLED);
  }
}

int cmd_detect(const Common& c, const std::vector<std::string>& files, bool as_json, const std::string& draw,
               const std::string& attributes) {
  if (!draw.empty() && files.size() != 1) throw Error(ErrorCode::kInvalidArgument, "--draw takes exactly one input image");
  EngineOptions eo = engine_options(c);
  if (!attributes.empty()) eo.attribute_estimator = attributes;
  const Engine engine(eo);
  if (!attributes.empty()) engine.attribute_estimator();  // an unknown model fails before any photo is read
  json out = json::array();
  for (const auto& f : files) {
    Image img = engine.load(f);
    const auto faces = engine.detect(img);
    std::vector<FaceAttributes> attrs;
    if (!attributes.empty()) attrs = engine.attributes(img, faces);
    if (as_json) {
      out.push_back(attributes.empty() ? json_view::detection(f, img, faces)
                                       : json_view::detection(f, img, faces, attrs, attributes));
    } else {
      std::printf("%s: %zu face%s\n", f.c_str(), faces.size(), faces.size() == 1 ? "" : "s");
      for (size_t i = 0; i < faces.size(); ++i) {
        const Face& face = faces[i];
        std::printf("  box x=%.1f y=%.1f w=%.1f h=%.1f score=%.3f", face.box.x, face.box.y, face.box.width,
                    face.box.height, face.score);
        if (!attrs.empty()) {
          const auto& a = attrs[i];
          // Estimates, said as such: the network's guess with its probability.
          std::printf("  estimated:");
          if (!a.age_group.empty())
            std::printf(" age %.0f (%s %.2f)", a.age, a.age_group.front().label.c_str(), a.age_group.front().probability);
          for (const auto* v : {&a.gender, &a.group})
            if (!v->empty()) std::printf(" %s %.2f", v->front().label.c_str(), v->front().probability);
        }
        std::printf("\n");
      }
    }
    if (!draw.empty()) {
      draw_faces(img, faces);
      save_image(draw, img);
    }
  }
  if (as_json) std::cout << out.dump(2) << "\n";
  return 0;
}

int cmd_embed(const Common& c, const std::vector<std::string>& files, bool as_json) {
  const Engine engine(engine_options(c));
  json out = json::array();
  for (const auto& f : files) {
    const auto faces = engine.embed(engine.load(f));
    if (as_json) {
      out.push_back(json_view::embeddings(f, engine.embedder_id().name, faces));
    } else {
      std::printf("%s: %zu face%s\n", f.c_str(), faces.size(), faces.size() == 1 ? "" : "s");
      for (const auto& a : faces) {
        std::printf("  [");
        for (size_t i = 0; i < a.embedding.size(); ++i) std::printf(i ? " %.5f" : "%.5f", a.embedding[i]);
        std::printf("]\n");
      }
    }
  }
  if (as_json) std::cout << out.dump(2) << "\n";
  return 0;
}

int cmd_verify(const Common& c, const std::string& a, const std::string& b, bool as_json, float threshold) {
  const Engine engine(engine_options(c));
  const Image ia = engine.load(a), ib = engine.load(b);
  const VerifyResult r = engine.verify(ia, ib, threshold);
  const std::string model = engine.embedder_id().name;
  if (as_json) {
    std::cout << json_view::verification(r, model).dump(2) << "\n";
  } else {
    std::printf("%s\ndistance %.4f, threshold %.4f (%s)\n", r.same ? "same person" : "different people", r.distance,
                r.threshold, model.c_str());
    if (r.probability) std::printf("P(same person) %.3f (score calibration)\n", *r.probability);
    if (r.faces_in_a > 1 || r.faces_in_b > 1)
      std::fprintf(stderr, "note: %d and %d faces found; the largest face of each photo was compared\n",
                   r.faces_in_a, r.faces_in_b);
  }
  return 0;
}

// Fits fusion weights on a pairs file (View 1's pairsDevTrain.txt: never the test pairs) and prints the
// fusion manifest.
int cmd_bench_fuse(const Common& c, const LfwOptions& lo, const std::string& models, double step,
                   const std::string& name, const std::string& out) {
  const std::vector<std::string> names = split_list(models);
  if (names.size() < 2) throw Error(ErrorCode::kInvalidArgument, "--models needs at least two embedders");
  std::vector<std::vector<ScoredPair>> scored;
  for (const auto& m : names) {
    Common cm = c;
    cm.model = m;
    FacePipeline pipe(pipeline_options(cm));
    auto r = score_pairs(pipe, lo, m);
    std::printf("%-16s accuracy %.2f%% (threshold %.4f)\n", m.c_str(), 100 * r.verification.accuracy_mean,
                r.verification.best_threshold);
    scored.push_back(std::move(r.scored));
  }
  const FusionFit fit = fit_fusion(scored, step);
  std::printf("fusion           accuracy %.2f%% AUC %.5f (threshold %.4f), weights", 100 * fit.accuracy, fit.auc, fit.threshold);
  for (size_t i = 0; i < names.size(); ++i) std::printf(" %s=%.2f", names[i].c_str(), fit.weights[i]);
  std::printf("\n");
  const std::string pairs = (lo.pairs.empty() ? lo.root / "pairs.txt" : lo.pairs).filename().string();
  ModelManifest m;
  m.name = name;
  m.kind = "embedder";
  m.arch = "fusion";
  m.version = "1";
  m.package = "facekit (members from their own packages)";
  m.licence = "that of each member";
  m.provenance = "score-level fusion: squared distance = weighted mean of the members' squared distances";
  for (size_t i = 0; i < names.size(); ++i) {
    m.members.emplace_back(names[i], fit.weights[i]);
    if (fit.weights[i] > 0) m.embedding_dim += load_manifest(names[i]).embedding_dim;
  }
  m.metric = "euclidean_l2norm";
  m.threshold = fit.threshold;
  m.threshold_source = "weights and threshold fitted by `facekit bench fuse` on LFW " + pairs + " (" +
                       std::to_string(scored[0].size()) + " pairs), flip " + (c.no_flip ? "off" : "on") +
                       ", weights maximising the AUC there (" + std::to_string(fit.auc) + "; accuracy " +
                       std::to_string(100 * fit.accuracy) + "%)";
  if (out.empty())
    std::cout << manifest_to_json(m);
  else
    save_manifest(out, m);
  return 0;
}

// The tight-crop benchmark (facekit/crop_eval.hpp).
struct CropsArgs {
  CropBenchOptions opt;
  std::string photos = "1-10", margins = "0,0.1,0.25,0.5", sizes, reference = "ssd_mobilenetv1", json_out;
  bool no_grey = false, no_original = false, no_augment = false;
};

int cmd_bench_crops(const Common& c, CropsArgs a) {
  int first = 0, last = 0;
  char dash = 0;
  std::stringstream ps(a.photos);
  if (!(ps >> first >> dash >> last) || dash != '-' || !ps.eof())
    throw Error(ErrorCode::kInvalidArgument, "--photos takes a range FIRST-LAST, e.g. 1-10");
  a.opt.first_index = first, a.opt.last_index = last;
  a.opt.margins = parse_list<float>(a.margins, "--margins");
  a.opt.sizes = parse_list<int>(a.sizes, "--sizes");
  a.opt.grey = !a.no_grey;
  a.opt.include_original = !a.no_original;
  a.opt.augment.enabled = !a.no_augment;
  FacePipeline pipe(pipeline_options(c));
  Common rc = c;
  rc.detector = a.reference;
  FacePipeline ref(pipeline_options(rc));
  std::unique_ptr<ProgressBar> bar;
  const auto r = run_crop_bench(pipe, ref, a.opt, [&](int done, int total) {
    if (!bar) bar = std::make_unique<ProgressBar>("crops", total);
    bar->update(done);
  });
  if (bar) bar->finish();
  std::printf("%d people, %d photos (%d without a reference face, skipped), detector %s, model %s, enrolment %s\n",
              r.people, r.photos, r.reference_missing, pipe.detector().name().c_str(),
              pipe.embedder().manifest().name.c_str(), a.no_augment ? "plain" : "augmented");
  std::printf("%-22s %7s %9s %7s %9s %9s %9s\n", "variant", "photos", "one box", "none", "several", "misplaced",
              "rank-1");
  json variants = json::array();
  for (const auto& v : r.variants) {
    std::printf("%-22s %7d %8.2f%% %7d %9d %9d %8.2f%%\n", v.name.c_str(), v.photos, 100 * v.one_box_rate(), v.zero,
                v.several, v.one_elsewhere, 100 * v.rank1_rate());
    variants.push_back({{"name", v.name}, {"photos", v.photos}, {"one_box", v.one}, {"one_box_rate", v.one_box_rate()},
                        {"none", v.zero}, {"several", v.several}, {"misplaced", v.one_elsewhere},
                        {"probes", v.probes}, {"rank1", v.rank1}, {"rank1_rate", v.rank1_rate()},
                        {"enrolment_failures", v.enrolment_failures},
                        {"augmented_enrolments", v.augmented_enrolments}, {"failures", v.failures}});
  }
  std::printf("wall %.1f s\n", r.wall_seconds);
  if (!a.json_out.empty()) {
    json j = {{"root", a.opt.root.string()}, {"photos_range", a.photos}, {"detector", pipe.detector().name()},
              {"reference_detector", a.reference}, {"model", pipe.embedder().manifest().name},
              {"enrolment", a.no_augment ? "plain" : "augmented"},
              {"people", r.people}, {"photos", r.photos}, {"reference_missing", r.reference_missing},
              {"variants", variants}, {"wall_seconds", r.wall_seconds}};
    std::ofstream f(a.json_out);
    if (!(f << j.dump(2) << "\n")) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.json_out);
  }
  return 0;
}

int cmd_models() {
  for (const auto& n : list_manifests()) {
    const auto m = load_manifest(n);
    std::string state = "ok";
    try {
      verify_model_files(m);
    } catch (const Error& e) {
      state = to_string(e.code());
    }
    std::printf("%-18s %-11s %-16s %s\n", m.name.c_str(), m.kind.c_str(), state.c_str(), m.package.c_str());
  }
  return 0;
}

}  // namespace

void add_core_commands(CLI::App& app, Common& c, Commands& out) {
  struct State {
    std::vector<std::string> files;
    bool as_json = false;
    std::string draw, img_a, img_b, json_out, attributes;
    float threshold = std::numeric_limits<float>::quiet_NaN();  // NaN: the model's calibrated threshold
    LfwOptions lfw;
  };
  auto st = std::make_shared<State>();
  st->lfw.threads = 2;

  auto* detect = app.add_subcommand("detect", "find faces (boxes, scores, 68 landmarks)");
  detect->add_option("images", st->files, "image files")->required();
  detect->add_flag("--json", st->as_json, "print JSON");
  detect->add_option("--draw", st->draw, "write the image with faces drawn on it");
  auto with_attributes = std::make_shared<bool>(false);
  detect->add_flag("--attributes", *with_attributes, "also estimate age, gender and group per face (estimates: docs/bias.md)");
  st->attributes = defaults::kAttributeEstimator;
  detect->add_option("--attribute-model", st->attributes, "the attribute model")->capture_default_str();
  out.emplace_back(detect, [&c, st, with_attributes] {
    return cmd_detect(c, st->files, st->as_json, st->draw, *with_attributes ? st->attributes : std::string());
  });

  auto* embed = app.add_subcommand("embed", "print the embedding of every face");
  embed->add_option("images", st->files, "image files")->required();
  embed->add_flag("--json", st->as_json, "print JSON");
  out.emplace_back(embed, [&c, st] { return cmd_embed(c, st->files, st->as_json); });

  auto* verify = app.add_subcommand("verify", "are the largest faces of two photos the same person?");
  verify->add_option("a", st->img_a, "first photo")->required();
  verify->add_option("b", st->img_b, "second photo")->required();
  verify->add_flag("--json", st->as_json, "print JSON");
  // Distances between unit vectors lie in [0, 2]: 0 would call no one the same, 2 everyone.
  verify->add_option("--threshold", st->threshold, "override the model's calibrated distance threshold")
      ->check(finite_range(0, 2, true, true));
  out.emplace_back(verify, [&c, st] { return cmd_verify(c, st->img_a, st->img_b, st->as_json, st->threshold); });

  // Other command files add their benchmarks under this one: app.get_subcommand("bench").
  auto* bench = app.add_subcommand("bench", "benchmarks");
  bench->require_subcommand(1);
  // bench lfw and bench pairs: cmd_eval.cpp.

  struct FuseState {
    std::string models, name = "fusion", out;
    double step = 0.05;
  };
  auto fs = std::make_shared<FuseState>();
  auto* fuse = bench->add_subcommand("fuse", "fit fusion weights of several embedders on LFW pairs (use pairsDevTrain.txt)");
  fuse->add_option("--models", fs->models, "comma-separated embedder names")->required();
  fuse->add_option("--root", st->lfw.root, "LFW folder")->required()->check(CLI::ExistingDirectory);
  fuse->add_option("--pairs", st->lfw.pairs, "pairs file to fit on")->required()->check(CLI::ExistingFile);
  fuse->add_option("--face-cache", st->lfw.face_cache, "detections and landmarks cache (see bench lfw)");
  fuse->add_option("--step", fs->step, "weight grid step")->capture_default_str()->check(CLI::Range(0.01, 1.0));
  fuse->add_option("--name", fs->name, "name of the fusion manifest")->capture_default_str();
  fuse->add_option("--out", fs->out, "write the manifest here (default: stdout)");
  fuse->add_option("--workers", st->lfw.threads, "images processed in parallel")->capture_default_str();
  out.emplace_back(fuse, [&c, st, fs] { return cmd_bench_fuse(c, st->lfw, fs->models, fs->step, fs->name, fs->out); });

  auto ca = std::make_shared<CropsArgs>();
  auto* crops = bench->add_subcommand("crops", "tight crops, greyscale and resized copies: one box per face? one-shot rank-1");
  crops->add_option("--root", ca->opt.root, "photos in LFW layout (Person/Person_NNNN.jpg)")->required()->check(CLI::ExistingDirectory);
  crops->add_option("--photos", ca->photos, "photo numbers used, FIRST-LAST (cfp-dev frontal: 1-10)")->capture_default_str();
  crops->add_option("--margins", ca->margins, "crop margins around the landmarks, fractions of the face size")->capture_default_str();
  crops->add_option("--sizes", ca->sizes, "also resize each crop so its longer side is each of these (pixels)");
  crops->add_flag("--no-grey", ca->no_grey, "no greyscale copies");
  crops->add_flag("--no-original", ca->no_original, "leave out the uncropped photos");
  crops->add_option("--reference-detector", ca->reference, "detector that places the crops (on the original photos)")->capture_default_str();
  crops->add_option("--limit-people", ca->opt.limit_people, "only the first N people");
  crops->add_option("--workers", ca->opt.workers, "photos processed in parallel")->capture_default_str()->check(CLI::Range(1, 64));
  crops->add_flag("--detect-only", [ca](int64_t) { ca->opt.identify = false; }, "count faces only (no one-shot identification)");
  crops->add_flag("--no-augment", ca->no_augment, "enrol each person's first photo plain (default: as enroll does, the mean of augmented copies)");
  crops->add_option("--write", ca->opt.write_dir, "write every variant photo under this folder");
  crops->add_option("--json", ca->json_out, "write the report as JSON");
  crops->add_flag("--reference-landmarks", ca->opt.reference_landmarks,
                  "diagnostic: align each crop with the landmarks found on the whole photo");
  crops->add_option("--embeddings-out", ca->opt.embeddings_dir,
                    "write every embedding under this folder (index.tsv, embeddings.f32)");
  out.emplace_back(crops, [&c, ca] { return cmd_bench_crops(c, *ca); });

  auto* models = app.add_subcommand("models", "list the models and whether their files are set up");
  out.emplace_back(models, [] { return cmd_models(); });
}

}  // namespace facekit::cli
