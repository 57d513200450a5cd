// Frontalisation experiments (issue 11): build the frontal reference from LFW training photos, and score a
// pair list with and without frontal chips.
//   facekit_frontalize_exp mean OUT.json ROOT PAIRS           (the images of PAIRS: training pairs only)
//   facekit_frontalize_exp eval MODEL.json ROOT PAIRS [DUMPDIR N]   (FRONT_SKIP=1: baseline only, faster)
//   facekit_frontalize_exp unsure - ROOT PAIRS  (how often BlazeFace-back's best face scores below 0.6-0.9)
// eval prints accuracy for the baseline chips, frontal chips, the mean of both embeddings, and frontal chips for
// faces turned 25 degrees or more; DUMPDIR gets N chip pairs (aligned | frontal) and the baseline's 40 worst
// genuine pairs.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "frontalize.hpp"
#include "facekit/detector.hpp"
#include "facekit/eval.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"

using namespace facekit;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 5) return std::fprintf(stderr, "usage: see source\n"), 2;
  const std::string mode = argv[1], model_path = argv[2];
  const fs::path root = argv[3];
  const auto pairs = read_lfw_pairs(argv[4]);
  std::set<std::string> images;
  for (const auto& p : pairs) images.insert(p.a), images.insert(p.b);
  PipelineOptions po;
  FacePipeline pipe(po);
  const auto* src = dynamic_cast<const detail::MeshSource*>(&pipe.landmarker());
  if (!src) return std::fprintf(stderr, "landmarker has no mesh\n"), 2;
  if (mode == "unsure") {
    // How often BlazeFace-back's best face scores below each threshold (the cascade's second detector runs).
    const auto blaze = create_detector("blazeface-back");
    const float th[] = {0.6f, 0.7f, 0.75f, 0.8f, 0.9f};
    int below[5] = {}, total = 0;
    for (const auto& name : images) {
      const auto faces = blaze->detect(load_image(root / name));
      const float best = faces.empty() ? 0.f : faces.front().score;
      for (int k = 0; k < 5; ++k) below[k] += best < th[k];
      ++total;
    }
    for (int k = 0; k < 5; ++k) std::printf("best < %.2f: %d of %d (%.1f%%)\n", th[k], below[k], total, 100.0 * below[k] / total);
    return 0;
  }
  if (mode == "mean") {
    std::vector<detail::Mesh468> meshes;
    for (const auto& name : images) {
      try {
        const Image rgb = load_image(root / name);
        const Face f = pipe.detect_one(rgb, FacePick::kMain);
        meshes.push_back(src->meshes(rgb, {f.box}).at(0));
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
      }
    }
    auto fm = detail::build_frontal_model(meshes);
    int self = 0, consistent = 0;
    for (int i = 0; i < 468; ++i) self += fm.mirror[i] == i, consistent += fm.mirror[fm.mirror[i]] == i;
    std::printf("%zu meshes; %zu triangles; %d self-mirrors, %d consistent pairs\n", meshes.size(), fm.triangles.size(), self, consistent);
    detail::write_frontal_model(model_path, fm);
    return 0;
  }
  const auto fm = detail::read_frontal_model(model_path);
  const fs::path dump = argc > 5 ? argv[5] : "";
  const int ndump = argc > 6 ? std::atoi(argv[6]) : 0;
  if (!dump.empty()) fs::create_directories(dump);
  detail::FrontalizeOptions fo;
  if (const char* e = std::getenv("FRONT_VIS")) fo.visible_above = std::stof(e);
  if (const char* e = std::getenv("FRONT_HID")) fo.hidden_below = std::stof(e);
  const float min_yaw = std::getenv("FRONT_MIN_YAW") ? std::stof(std::getenv("FRONT_MIN_YAW")) : 0.f;
  struct Rec { Embedding base, front; double yaw = 0; bool ok = false; Image chip; };
  const bool skip = std::getenv("FRONT_SKIP") != nullptr;
  std::map<std::string, Rec> recs;
  const auto& emb = pipe.embedder();
  int n = 0;
  for (const auto& name : images) {
    Rec r;
    try {
      const Image rgb = load_image(root / name);
      const Face f = pipe.detect_one(rgb, FacePick::kMain);
      const auto mesh = src->meshes(rgb, {f.box}).at(0);
      r.chip = align_face(rgb, src->to_68(mesh), emb.alignment());
      r.base = emb.embed({r.chip}).at(0);
      detail::MeshPose pose;
      const Image chip = skip ? r.chip : detail::frontal_chip(rgb, mesh, fm, *src, emb.alignment(), fo, &pose);
      if (skip) pose = detail::mesh_pose(mesh, fm);
      r.yaw = pose.yaw;
      r.front = skip ? r.base : std::abs(pose.yaw) >= min_yaw ? emb.embed({chip}).at(0) : r.base;
      r.ok = true;
      if (n < ndump) {
        cv::Mat both, bgr;
        cv::hconcat(r.chip, chip, both);
        cv::cvtColor(both, bgr, cv::COLOR_RGB2BGR);
        std::string flat = name;
        std::replace(flat.begin(), flat.end(), '/', '_');
        char tag[32];
        std::snprintf(tag, sizeof tag, "_yaw%+03d", int(pose.yaw));
        cv::imwrite((dump / (flat + tag + ".png")).string(), bgr);
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
    }
    recs[name] = std::move(r);
    if (++n % 500 == 0) std::fprintf(stderr, "%d/%zu\n", n, images.size());
  }
  auto mix = [](const Embedding& a, const Embedding& b) {
    Embedding m(a.size());
    double ss = 0;
    for (size_t i = 0; i < a.size(); ++i) m[i] = a[i] + b[i], ss += double(m[i]) * m[i];
    for (auto& v : m) v = float(v / std::sqrt(ss));
    return m;
  };
  const char* names[] = {"baseline", "frontal", "mean(base,frontal)", "frontal for profiles only(|yaw|>=25)"};
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<ScoredPair> sp;
    for (const auto& p : pairs) {
      const auto& a = recs[p.a];
      const auto& b = recs[p.b];
      ScoredPair s;
      s.same = p.same, s.fold = p.fold, s.valid = a.ok && b.ok;
      if (s.valid) {
        auto pick = [&](const Rec& r) {
          if (variant == 0) return r.base;
          if (variant == 1) return r.front;
          if (variant == 2) return mix(r.base, r.front);
          return std::abs(r.yaw) >= 25 ? r.front : r.base;
        };
        s.distance = l2_distance(pick(a), pick(b));
      }
      sp.push_back(s);
    }
    int folds = 0;
    for (const auto& p : pairs) folds = std::max(folds, p.fold + 1);
    const auto rep = evaluate_verification(sp, folds);
    std::printf("%-40s acc %.2f%% +- %.2f  AUC %.4f  EER %.2f%%\n", names[variant], 100 * rep.accuracy_mean,
                100 * rep.accuracy_std, rep.auc, 100 * rep.eer);
  }
  if (!dump.empty()) {
    // The worst genuine pairs of the baseline, side by side.
    std::vector<std::pair<float, const LfwPair*>> gen;
    for (const auto& p : pairs)
      if (p.same && recs[p.a].ok && recs[p.b].ok) gen.push_back({l2_distance(recs[p.a].base, recs[p.b].base), &p});
    std::sort(gen.begin(), gen.end(), [](auto& x, auto& y) { return x.first > y.first; });
    std::vector<cv::Mat> rows;
    for (size_t i = 0; i < std::min<size_t>(40, gen.size()); i += 4) {
      std::vector<cv::Mat> cells;
      for (size_t k = i; k < i + 4 && k < gen.size(); ++k) {
        cells.push_back(recs[gen[k].second->a].chip);
        cells.push_back(recs[gen[k].second->b].chip);
        std::printf("worst %zu: %s %s %.3f yaw %.0f %.0f\n", k, gen[k].second->a.c_str(), gen[k].second->b.c_str(),
                    gen[k].first, recs[gen[k].second->a].yaw, recs[gen[k].second->b].yaw);
      }
      if (cells.size() == 8) {
        cv::Mat row;
        cv::hconcat(cells, row);
        rows.push_back(row);
      }
    }
    cv::Mat all, bgr;
    cv::vconcat(rows, all);
    cv::cvtColor(all, bgr, cv::COLOR_RGB2BGR);
    cv::imwrite((dump / "worst_genuine.png").string(), bgr);
  }
  return 0;
}
