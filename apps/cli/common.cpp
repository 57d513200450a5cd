#include "common.hpp"

namespace facekit::cli {

using nlohmann::json;

PipelineOptions pipeline_options(const Common& c) {
  PipelineOptions o;
  o.device = c.device;
  o.embedder = c.model;
  o.detector = c.detector;
  o.detection.min_score = c.min_score;
  o.detection.input_size = c.detect_size;
  o.detection.max_faces = c.max_faces;
  o.embedding.flip = !c.no_flip;
  o.embedding.jitter = c.jitter;
  return o;
}

json box_json(const Box& b) { return {{"x", b.x}, {"y", b.y}, {"width", b.width}, {"height", b.height}}; }

json face_json(const Face& f) {
  json j = {{"box", box_json(f.box)}, {"score", f.score}};
  if (f.landmarks) {
    json pts = json::array();
    for (const auto& p : *f.landmarks) pts.push_back({p.x, p.y});
    j["landmarks68"] = pts;
    json five = json::array();
    for (const auto& p : reduce_to_5(*f.landmarks)) five.push_back({p.x, p.y});
    j["landmarks5"] = five;
  }
  return j;
}

}  // namespace facekit::cli
