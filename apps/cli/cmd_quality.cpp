// facekit quality IMG... [--json]: per face sharpness, exposure, pose, size, eyes, border; score and level.
#include <cstdio>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/engine.hpp"
#include "facekit/json.hpp"
#include "facekit/quality.hpp"

namespace facekit::cli {

using nlohmann::json;

namespace {

struct QualityArgs {
  std::vector<std::string> images;
  bool as_json = false;
};

int cmd_quality(const Common& c, const QualityArgs& a) {
  const Engine engine(engine_options(c));
  AnalyzeOptions ao;
  ao.rescue = true;  // a photo given to be judged is expected to hold a face: search again at the rescue score
  json out = json::array();
  int without_face = 0;
  for (const auto& f : a.images) {
    const Image img = engine.load(f);
    const auto faces = engine.analyze(img, ao);
    if (faces.empty()) ++without_face;
    if (a.as_json) {
      out.push_back(json_view::quality_report(f, img, faces));
      continue;
    }
    std::printf("%s: %zu face%s\n", f.c_str(), faces.size(), faces.size() == 1 ? "" : "s");
    for (const auto& fa : faces) {
      const FaceQuality& q = fa.quality;
      const Face& face = fa.face;
      std::printf("  box x=%.0f y=%.0f w=%.0f h=%.0f: %s (score %.2f)\n", face.box.x, face.box.y, face.box.width,
                  face.box.height, to_string(q.level), q.score);
      std::printf("    sharpness %.1f, brightness %.0f, contrast %.0f, yaw %.0f, pitch %.0f, roll %.0f, "
                  "eye distance %.0f px, eye aspect ratio %.2f, %.0f%% inside\n",
                  q.sharpness, q.brightness, q.contrast, q.pose.yaw, q.pose.pitch, q.pose.roll, q.eye_distance,
                  q.eye_aspect_ratio, 100.0 * q.inside_fraction);
      for (const auto& r : q.reasons) std::printf("    - %s\n", r.c_str());
    }
  }
  if (a.as_json) std::cout << out.dump(2) << "\n";
  if (without_face == 0) return 0;
  // Every photo is reported; the status still says that some held no face.
  std::fprintf(stderr, "facekit: error: %d of %zu photos hold no face\n", without_face, a.images.size());
  return exit_status(ErrorCode::kNoFace);
}

}  // namespace

void add_quality_commands(CLI::App& app, Common& c, Commands& out) {
  auto args = std::make_shared<QualityArgs>();
  auto* cmd = app.add_subcommand("quality", "face quality: sharpness, exposure, pose, size, eyes, border; good/fair/poor");
  cmd->add_option("images", args->images, "photos (each must hold a face)")->required();
  cmd->add_flag("--json", args->as_json, "print JSON");
  out.emplace_back(cmd, [&c, args] { return cmd_quality(c, *args); });
}

}  // namespace facekit::cli
