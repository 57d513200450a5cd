// facekit quality IMG... [--json]: per face sharpness, exposure, pose, size, eyes, border; score and level.
#include <cstdio>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/quality.hpp"

namespace facekit::cli {

using nlohmann::json;

json quality_json(const FaceQuality& q) {
  return {{"score", q.score},
          {"level", to_string(q.level)},
          {"reasons", q.reasons},
          {"sharpness", q.sharpness},
          {"exposure",
           {{"brightness", q.brightness}, {"contrast", q.contrast}, {"too_dark", q.too_dark},
            {"too_bright", q.too_bright}, {"low_contrast", q.low_contrast}}},
          {"pose", {{"yaw", q.pose.yaw}, {"pitch", q.pose.pitch}, {"roll", q.pose.roll}}},
          {"face_size", q.face_size},
          {"eye_distance", q.eye_distance},
          {"eye_aspect_ratio", q.eye_aspect_ratio},
          {"eyes_open", q.eyes_open},
          {"inside_fraction", q.inside_fraction},
          {"cut_by_border", q.cut_by_border}};
}

namespace {

struct QualityArgs {
  std::vector<std::string> images;
  bool as_json = false;
};

int cmd_quality(const Common& c, const QualityArgs& a) {
  FacePipeline pipe(pipeline_options(c));
  const auto assessor = create_quality_assessor();
  json out = json::array();
  int without_face = 0;
  for (const auto& f : a.images) {
    const Image img = load_image(f, image_limits(c));
    auto faces = pipe.detect(img);
    // A photo given to be judged is expected to hold a face: search again at the rescue score.
    if (faces.empty()) {
      try {
        faces.push_back(pipe.detect_one(img, FacePick::kLargest));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kNoFace) throw;
        ++without_face;
      }
    }
    json fj = json::array();
    if (!a.as_json) std::printf("%s: %zu face%s\n", f.c_str(), faces.size(), faces.size() == 1 ? "" : "s");
    for (const auto& face : faces) {
      const FaceQuality q = assessor->assess(img, face);
      if (a.as_json) {
        json j = {{"box", box_json(face.box)}, {"detection_score", face.score}};
        j["quality"] = quality_json(q);
        fj.push_back(j);
        continue;
      }
      std::printf("  box x=%.0f y=%.0f w=%.0f h=%.0f: %s (score %.2f)\n", face.box.x, face.box.y, face.box.width,
                  face.box.height, to_string(q.level), q.score);
      std::printf("    sharpness %.1f, brightness %.0f, contrast %.0f, yaw %.0f, pitch %.0f, roll %.0f, "
                  "eye distance %.0f px, eye aspect ratio %.2f, %.0f%% inside\n",
                  q.sharpness, q.brightness, q.contrast, q.pose.yaw, q.pose.pitch, q.pose.roll, q.eye_distance,
                  q.eye_aspect_ratio, 100.0 * q.inside_fraction);
      for (const auto& r : q.reasons) std::printf("    - %s\n", r.c_str());
    }
    if (a.as_json) out.push_back({{"image", f}, {"width", img.cols}, {"height", img.rows}, {"faces", fj}});
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
