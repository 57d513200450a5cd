// The video mode of `facekit liveness` (the command lives in cmd_spoof.cpp): --video FILE | --frames DIR
// [--challenge blink,left,right] [--json]: active liveness with the passive checker's score on every frame.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "facekit/engine.hpp"
#include "facekit/json.hpp"
#include "facekit/liveness.hpp"

namespace facekit::cli {

using nlohmann::json;

int run_active_liveness(const Engine& engine, const ActiveLivenessArgs& a, bool as_json) {
  if (a.video.empty() == a.frames.empty())
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --video FILE and --frames DIR");
  ActiveLivenessOptions o;
  if (!a.challenge.empty()) o.challenges = parse_challenges(a.challenge);
  o.challenge_window_s = a.window_s;
  o.turn_yaw_deg = a.turn_deg;
  auto source = a.video.empty() ? open_frames(a.frames, a.fps, engine.options().image_limits) : open_video(a.video);
  const ActiveLivenessResult r = engine.liveness(*source, o, !a.no_passive, a.max_frames);
  if (as_json) {
    json j = json_view::active_liveness(r, a.timeline);
    j["source"] = source->description();
    j["fps"] = source->fps();
    const SpoofChecker& checker = engine.spoof_checker();
    j["passive"] = a.no_passive ? json(nullptr)
                                : json{{"checker", checker.name()}, {"threshold", checker.thresholds().decision}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("%s: %s (%zu frames, face in %d, %.1f s)\n", source->description().c_str(), to_string(r.state),
              r.frames.size(), r.frames_with_face, r.duration_s);
  for (const auto& s : r.reasons) std::printf("  - %s\n", s.c_str());
  return 0;
}

void add_active_liveness_options(CLI::App* cmd, ActiveLivenessArgs& a) {
  cmd->add_option("--video", a.video, "a video file (any format OpenCV's video I/O reads)");
  cmd->add_option("--frames", a.frames, "a folder of frames (images, in file-name order)");
  cmd->add_option("--fps", a.fps, "frame rate of --frames")->capture_default_str()->check(CLI::Range(0.1, 1000.0));
  cmd->add_option("--challenge", a.challenge, "challenges to do in order, e.g. blink,left,right (subject's left/right)");
  cmd->add_option("--window", a.window_s, "seconds allowed for each challenge")->capture_default_str()->check(CLI::Range(0.1, 600.0));
  cmd->add_option("--turn-degrees", a.turn_deg, "yaw change that counts as a head turn")->capture_default_str()->check(CLI::Range(1.0, 80.0));
  cmd->add_option("--max-frames", a.max_frames, "read at most this many frames (0: all)")->capture_default_str()->check(CLI::Range(0, 1000000));
  cmd->add_flag("--timeline", a.timeline, "with --json: every frame's EAR, pose and passive score");
  cmd->add_flag("--no-passive", a.no_passive, "video mode: judge blinks, turns and challenges only (no per-frame spoof check)");
}

}  // namespace facekit::cli
