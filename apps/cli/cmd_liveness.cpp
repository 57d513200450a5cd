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
#include "facekit/liveness.hpp"

namespace facekit::cli {

using nlohmann::json;

namespace {

json num(float v) { return std::isnan(v) ? json(nullptr) : json(v); }

json active_json(const ActiveLivenessResult& r, bool timeline) {
  json ev = json::array(), ch = json::array();
  for (const auto& e : r.events)
    ev.push_back({{"kind", e.kind}, {"first_frame", e.first_frame}, {"last_frame", e.last_frame},
                  {"start_s", e.start_s}, {"end_s", e.end_s}, {"magnitude", e.magnitude}});
  for (const auto& c : r.challenges)
    ch.push_back({{"challenge", to_string(c.challenge)}, {"passed", c.passed}, {"first_frame", c.first_frame},
                  {"last_frame", c.last_frame}, {"deadline_s", c.deadline_s}});
  json j = {{"state", to_string(r.state)},
            {"reasons", r.reasons},
            {"frames", r.frames.size()},
            {"frames_with_face", r.frames_with_face},
            {"tracks", r.tracks},
            {"duration_s", r.duration_s},
            {"ear_baseline", num(r.ear_baseline)},
            {"yaw_baseline", num(r.yaw_baseline)},
            {"passive_mean", num(r.passive_mean)},
            {"events", ev},
            {"challenges", ch}};
  if (timeline) {
    json t = json::array();
    for (const auto& f : r.frames)
      t.push_back({{"index", f.index}, {"time_s", f.time_s}, {"faces", f.faces}, {"track", f.track},
                   {"ear", num(f.ear)}, {"yaw", f.track >= 0 ? json(f.pose.yaw) : json(nullptr)},
                   {"pitch", f.track >= 0 ? json(f.pose.pitch) : json(nullptr)},
                   {"roll", f.track >= 0 ? json(f.pose.roll) : json(nullptr)}, {"passive", num(f.passive)}});
    j["timeline"] = t;
  }
  return j;
}

}  // namespace

int run_active_liveness(const Common& c, const ActiveLivenessArgs& a) {
  if (a.video.empty() == a.frames.empty())
    throw Error(ErrorCode::kInvalidArgument, "give exactly one of --video FILE and --frames DIR");
  ActiveLivenessOptions o;
  if (!a.challenge.empty()) o.challenges = parse_challenges(a.challenge);
  o.challenge_window_s = a.window_s;
  o.turn_yaw_deg = a.turn_deg;
  if (a.passive) o.passive = a.passive, o.passive_threshold = a.passive_threshold;
  auto source = a.video.empty() ? open_frames(a.frames, a.fps, image_limits(c)) : open_video(a.video);
  FacePipeline pipe(pipeline_options(c));
  const ActiveLivenessResult r = check_active_liveness(*source, pipe, o, a.max_frames);
  if (a.as_json) {
    json j = active_json(r, a.timeline);
    j["source"] = source->description();
    j["fps"] = source->fps();
    j["passive"] = a.passive ? json{{"checker", a.passive_name}, {"threshold", a.passive_threshold}} : json(nullptr);
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
