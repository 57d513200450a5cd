#include "common.hpp"

#include <cmath>
#include <cstdio>

#include "facekit/error.hpp"
#include "facekit/engine.hpp"

namespace facekit::cli {

using nlohmann::json;

ImageLimits image_limits(const Common& c) {
  ImageLimits l;
  l.accept_damaged = c.accept_damaged;
  l.on_damage = [](const std::string& m) { std::fprintf(stderr, "facekit: warning: %s\n", m.c_str()); };
  return l;
}

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

CLI::Validator input_size(bool zero_allowed) {
  const std::string what = std::string(zero_allowed ? "0 or " : "") + "a multiple of 32 in [64, 2048]";
  return CLI::Validator(
      [zero_allowed, what](std::string& s) -> std::string {
        int v = 0;
        if (!CLI::detail::lexical_cast(s, v) || ((v != 0 || !zero_allowed) && (v < 64 || v > 2048 || v % 32)))
          return "'" + s + "' is not " + what;
        return {};
      },
      "INT: " + what);
}

CLI::Validator non_empty() {
  return CLI::Validator([](std::string& s) -> std::string { return s.empty() ? "must not be empty" : ""; }, "TEXT");
}

PipelineOptions pipeline_options(const Common& c) {
  check_model_name(c.model, "embedder", "--model");
  check_model_name(c.detector, "detector", "--detector");
  check_model_name(c.landmarker, "landmarker", "--landmarker");
  PipelineOptions o;
  o.device = c.device;
  o.embedder = c.model;
  o.detector = c.detector;
  o.landmarker = c.landmarker;
  o.detection.min_score = c.min_score;
  o.detection.input_size = c.detect_size;
  o.detection.large_face_input = c.large_face_input;
  o.detection.max_faces = c.max_faces;
  o.embedding.flip = !c.no_flip;
  o.embedding.jitter = c.jitter;
  o.embedding.precision = c.precision;
  if (!c.calibration.empty()) o.calibration = load_calibration(c.calibration);
  return o;
}

EngineOptions engine_options(const Common& c) {
  EngineOptions o;
  o.pipeline = pipeline_options(c);
  o.image_limits = image_limits(c);
  return o;
}

std::filesystem::path GalleryArgs::resolved() const {
  return path.empty() ? default_gallery_path() : std::filesystem::path(path);
}
std::optional<GalleryKey> GalleryArgs::key() const {
  if (!key_file.empty()) return GalleryKey::from_file(key_file);
  return gallery_key_from_environment();
}
GalleryOptions GalleryArgs::options(bool create, bool read_only) const {
  GalleryOptions go;
  go.create = create;
  go.read_only = read_only;
  go.key = key();
  return go;
}

void add_gallery_option(CLI::App* cmd, GalleryArgs& g) {
  cmd->add_option("--gallery", g.path, "gallery: an SQLite file or a postgresql:// URL (default $FACEKIT_GALLERY, else ~/.local/share/facekit/gallery.db)")
      ->check(non_empty());
  cmd->add_option("--key-file", g.key_file,
                  "key of an encrypted gallery: a file of 64 hex digits, mode 0600 (default $FACEKIT_GALLERY_KEY_FILE, "
                  "else the key in $FACEKIT_GALLERY_KEY)")
      ->check(non_empty());
}

EngineOptions gallery_engine_options(const Common& c, const GalleryArgs& g, bool create, bool read_only) {
  EngineOptions o = engine_options(c);
  o.gallery = g.resolved();
  o.gallery_options = g.options(create, read_only);
  return o;
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (const char ch : s) {
    switch (ch) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

}  // namespace facekit::cli
