#include "common.hpp"

#include <cmath>
#include <cstdio>

#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace facekit::cli {

using nlohmann::json;

void check_model_name(const std::string& name, const std::string& kind, const std::string& option) {
  ModelManifest m;
  try {
    m = load_manifest(name);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    std::string known;
    for (const auto& n : list_manifests()) {
      try {
        if (load_manifest(n).kind == kind) known += (known.empty() ? "" : ", ") + n;
      } catch (const Error&) {
      }
    }
    throw Error(ErrorCode::kInvalidArgument, option + " " + name + ": no such " + kind + " (known: " + known +
                                                 (kind == "embedder" ? "; or a model directory written by facekit train" : "") + ")");
  }
  if (m.kind != kind) throw Error(ErrorCode::kInvalidArgument, option + " " + name + ": a " + m.kind + ", not a " + kind);
}

ImageLimits image_limits(const Common& c) {
  ImageLimits l;
  l.accept_damaged = c.accept_damaged;
  l.on_damage = [](const std::string& m) { std::fprintf(stderr, "facekit: warning: %s\n", m.c_str()); };
  return l;
}

std::string dump_json(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace); }

CLI::Validator finite_range(double min, double max, bool min_open, bool max_open) {
  const auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  const std::string range = std::string(min_open ? "(" : "[") + num(min) + ", " + num(max) + (max_open ? ")" : "]");
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
        const bool low = min_open ? !(v > min) : !(v >= min), high = max_open ? !(v < max) : !(v <= max);
        if (!std::isfinite(v) || low || high) return "'" + s + "' is outside the allowed range " + range;
        return {};
      },
      "FLOAT in " + range);
}

CLI::Validator non_empty() {
  return CLI::Validator([](std::string& s) -> std::string { return s.empty() ? "must not be empty" : ""; }, "TEXT");
}

PipelineOptions pipeline_options(const Common& c) {
  check_model_name(c.model, "embedder", "--model");
  check_model_name(c.detector, "detector", "--detector");
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
