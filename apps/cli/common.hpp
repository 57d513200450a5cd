#pragma once
// What every facekit subcommand shares: the global options, how they become pipeline options, JSON views of
// results, and the registry through which each command file adds its subcommands.
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/image.hpp"
#include "facekit/json.hpp"
#include "facekit/liveness.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/spoof.hpp"

namespace facekit {
struct FaceQuality;
}

namespace facekit::cli {

/// Global options (given before the subcommand).
struct Common {
  std::string device = PipelineOptions{}.device;
  std::string model = PipelineOptions{}.embedder;
  std::string detector = PipelineOptions{}.detector;
  std::string landmarker = PipelineOptions{}.landmarker;
  int threads = 1;
  float min_score = 0.5f;
  int detect_size = DetectorOptions{}.input_size;
  int large_face_input = DetectorOptions{}.large_face_input;
  int max_faces = 100;
  bool no_flip = false;
  int jitter = 0;
  bool accept_damaged = false;  ///< use damaged images as decoded, with a warning on stderr
  std::string precision = EmbedderOptions{}.precision;  ///< the embedder's arithmetic: fp32, bf16 or auto
  std::string calibration;  ///< a calibration file (facekit calibrate) instead of the manifest's map
};

/// The pipeline the global options describe. Throws Error(kInvalidArgument) for a --model or --detector that
/// names no registered model of that kind and no model directory.
PipelineOptions pipeline_options(const Common& c);
/// The engine the global options describe (pipeline, image limits); callers add the gallery and the rest.
EngineOptions engine_options(const Common& c);
/// How every command reads images: the default limits, damaged files refused unless --accept-damaged (then a
/// warning on stderr names the damage).
ImageLimits image_limits(const Common& c);
/// JSON text for stdout (json_view::dump: invalid UTF-8 shown as U+FFFD instead of failing the command).
inline std::string dump_json(const nlohmann::json& j) { return json_view::dump(j); }

/// --gallery and --key-file of the commands that use a gallery.
struct GalleryArgs {
  std::string path;  // "" = default_gallery_path() (an explicit "" is refused by the option)
  std::string key_file;
  std::filesystem::path resolved() const;
  /// --key-file, else the environment's key, else none.
  std::optional<GalleryKey> key() const;
  GalleryOptions options(bool create, bool read_only = false) const;
};
void add_gallery_option(CLI::App* cmd, GalleryArgs& g);
/// The engine of a gallery command: the global options' pipeline (models load only when used) and the gallery.
EngineOptions gallery_engine_options(const Common& c, const GalleryArgs& g, bool create, bool read_only = false);

/// A network input size: a multiple of 32 in [64, 2048] (or 0, "the model's own", when `zero_allowed`).
CLI::Validator input_size(bool zero_allowed);
/// CLI11 validators that state the allowed range and refuse NaN and infinity (CLI::Range lets NaN through).
CLI::Validator finite_range(double min, double max, bool min_open = false, bool max_open = false);
/// Refuses an empty value (`--gallery ""` is not "the default").
CLI::Validator non_empty();

/// Active (video) liveness options of `facekit liveness` (cmd_liveness.cpp).
struct ActiveLivenessArgs {
  std::string video, frames, challenge;
  double fps = 30, window_s = ActiveLivenessOptions{}.challenge_window_s;
  float turn_deg = ActiveLivenessOptions{}.turn_yaw_deg;
  int max_frames = 0;
  bool timeline = false, no_passive = false;
  bool requested() const { return !video.empty() || !frames.empty(); }
};
/// Arguments of `facekit liveness` (cmd_spoof.cpp); the video modes add theirs here.
struct LivenessArgs {
  std::vector<std::string> images;
  bool as_json = false;
  std::string checker = defaults::kSpoofChecker;  ///< which SpoofChecker scores each face
  bool whole_image = false;                ///< each image is a face crop: no detection
  std::string manifests;                   ///< spoof manifests folder; empty: the committed ones
  ActiveLivenessArgs active;               ///< --video / --frames mode (cmd_liveness.cpp)
};


/// The non-empty items of a comma-separated list, as written.
inline std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> v;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) v.push_back(t);
  return v;
}

/// A comma-separated list of numbers ("0,0.1,0.25"; empty items skipped). Throws Error(kInvalidArgument), naming
/// the option `what`, for an item that is not entirely a finite number.
template <typename T>
std::vector<T> parse_list(const std::string& s, const char* what) {
  std::vector<T> v;
  for (const auto& t : split_list(s)) {
    try {
      size_t used = 0;
      const double x = std::stod(t, &used);
      if (used != t.size() || !std::isfinite(x)) throw std::invalid_argument(t);
      v.push_back(static_cast<T>(x));
    } catch (const std::exception&) {
      throw Error(ErrorCode::kInvalidArgument, std::string(what) + ": '" + t + "' is not a number");
    }
  }
  return v;
}

/// `s` with &, <, > and " escaped for HTML text and attribute values (the reports' pages).
std::string html_escape(const std::string& s);

/// A subcommand and the function that runs it once it was parsed; it returns the exit status.
using Commands = std::vector<std::pair<CLI::App*, std::function<int()>>>;

/// Each command file registers its subcommands here (state captured by the handlers must outlive parsing:
/// allocate it with std::make_shared).
void add_core_commands(CLI::App& app, Common& c, Commands& out);
/// enroll, identify, people, gallery, bench identify, bench gallery-scale (cmd_gallery.cpp).
void add_gallery_commands(CLI::App& app, Common& c, Commands& out);
/// run_lfw with a progress bar named `bar_name` on stderr (bench lfw, bench pairs, bench fuse, calibrate).
LfwReport score_pairs(const FacePipeline& pipe, const LfwOptions& lo, const std::string& bar_name);
/// bench lfw, bench pairs, calibrate (after the core commands: it adds to "bench").
void add_eval_commands(CLI::App& app, Common& c, Commands& out);
/// bench bias (cmd_bias.cpp; after the core commands: it adds to "bench").
void add_bias_commands(CLI::App& app, Common& c, Commands& out);
/// cluster, bench cluster (cmd_cluster.cpp; after the core commands: it adds to "bench").
void add_cluster_commands(CLI::App& app, Common& c, Commands& out);
/// video (cmd_video.cpp).
void add_video_commands(CLI::App& app, Common& c, Commands& out);
/// quality (cmd_quality.cpp).
void add_quality_commands(CLI::App& app, Common& c, Commands& out);

/// Adds --video, --frames, --fps, --challenge, --window, --turn-degrees, --max-frames, --timeline to `cmd`.
void add_active_liveness_options(CLI::App* cmd, ActiveLivenessArgs& a);
/// Runs the video mode with the engine's spoof checker scoring every frame (unless --no-passive); returns the
/// exit status.
int run_active_liveness(const Engine& engine, const ActiveLivenessArgs& a, bool as_json);

/// liveness (passive anti-spoofing per face), bench spoof (cmd_spoof.cpp).
void add_spoof_commands(CLI::App& app, Common& c, Commands& out);
/// train (cmd_train.cpp).
void add_train_commands(CLI::App& app, Common& c, Commands& out);
/// serve, keys create|list|revoke.
void add_serve_commands(CLI::App& app, Common& c, Commands& out);

}  // namespace facekit::cli
