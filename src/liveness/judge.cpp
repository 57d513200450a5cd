// Active liveness verdict from per-frame observations: main track, blinks, turns, challenges, passive score.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "facekit/error.hpp"
#include "facekit/liveness.hpp"

namespace facekit {

const char* to_string(Challenge c) {
  switch (c) {
    case Challenge::kBlink:
      return "blink";
    case Challenge::kTurnLeft:
      return "left";
    case Challenge::kTurnRight:
      return "right";
  }
  return "unknown";
}

std::vector<Challenge> parse_challenges(const std::string& list) {
  std::vector<Challenge> out;
  std::stringstream ss(list);
  for (std::string w; std::getline(ss, w, ',');) {
    w.erase(0, w.find_first_not_of(" \t"));
    w.erase(w.find_last_not_of(" \t") + 1);
    if (w == "blink")
      out.push_back(Challenge::kBlink);
    else if (w == "left" || w == "turn_left")
      out.push_back(Challenge::kTurnLeft);
    else if (w == "right" || w == "turn_right")
      out.push_back(Challenge::kTurnRight);
    else
      throw Error(ErrorCode::kInvalidArgument, "unknown challenge '" + w + "' (known: blink, left, right)");
  }
  if (out.empty()) throw Error(ErrorCode::kInvalidArgument, "the challenge list is empty");
  return out;
}

namespace {

const char* event_kind(Challenge c) {
  return c == Challenge::kBlink ? "blink" : c == Challenge::kTurnLeft ? "turn_left" : "turn_right";
}

std::string printf_str(const char* f, double a, double b = 0, double c = 0) {
  char buf[200];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}

// Blinks over the main track's frames `m` (indices into `fr`): a run of closed frames that follows an open
// frame and ends with the eyes open again, with no frame of the run missing the face.
bool frontal(const FrameObservation& f, float yaw_base, const ActiveLivenessOptions& o) {
  return std::abs(f.pose.yaw - yaw_base) <= o.blink_max_yaw_deg;
}

void find_blinks(const std::vector<FrameObservation>& fr, const std::vector<int>& m, float base, float yaw_base,
                 const ActiveLivenessOptions& o, std::vector<LivenessEvent>& out) {
  const float closed = o.blink_close_ratio * base, open = o.blink_open_ratio * base;
  bool seen_open = false, in_run = false;
  int first = -1, last = -1, n_closed = 0;
  float lowest = 0;
  for (size_t k = 0; k < m.size(); ++k) {
    const FrameObservation& f = fr[static_cast<size_t>(m[k])];
    // The face went missing, or turned away: start over.
    if ((k > 0 && m[k] != m[k - 1] + 1) || !frontal(f, yaw_base, o)) {
      seen_open = in_run = false;
      continue;
    }
    if (f.ear > open) {
      if (in_run && n_closed >= o.blink_min_closed_frames &&
          fr[static_cast<size_t>(last)].time_s - fr[static_cast<size_t>(first)].time_s <= o.blink_max_closed_s)
        out.push_back({"blink", first, last, fr[static_cast<size_t>(first)].time_s,
                       fr[static_cast<size_t>(last)].time_s, lowest / base});
      seen_open = true;
      in_run = false;
    } else if (f.ear < closed && seen_open) {
      if (!in_run) in_run = true, first = f.index, n_closed = 0, lowest = f.ear;
      last = f.index;
      ++n_closed;
      lowest = std::min(lowest, f.ear);
    }
    // Between the two thresholds: a run goes on (eyes still closing or opening), nothing starts.
  }
}

// Turns: runs of at least turn_min_frames consecutive frames whose yaw is past the threshold on one side.
void find_turns(const std::vector<FrameObservation>& fr, const std::vector<int>& m, float base,
                const ActiveLivenessOptions& o, std::vector<LivenessEvent>& out) {
  int side = 0, first = -1, last = -1, n = 0;
  float peak = 0;
  auto close_run = [&] {
    if (side != 0 && n >= o.turn_min_frames)
      out.push_back({side > 0 ? "turn_left" : "turn_right", first, last, fr[static_cast<size_t>(first)].time_s,
                     fr[static_cast<size_t>(last)].time_s, peak});
    side = 0, n = 0;
  };
  for (size_t k = 0; k < m.size(); ++k) {
    const FrameObservation& f = fr[static_cast<size_t>(m[k])];
    if (k > 0 && m[k] != m[k - 1] + 1) close_run();
    const float d = f.pose.yaw - base;
    // Yaw grows as the subject turns to their own left (HeadPose).
    const int s = d >= o.turn_yaw_deg ? 1 : d <= -o.turn_yaw_deg ? -1 : 0;
    if (s != side) {
      close_run();
      if (s != 0) side = s, first = f.index, peak = 0;
    }
    if (s != 0) last = f.index, ++n, peak = std::max(peak, std::abs(d));
  }
  close_run();
}

}  // namespace

ActiveLivenessResult judge_liveness(std::vector<FrameObservation> frames, const ActiveLivenessOptions& o) {
  ActiveLivenessResult r;
  r.frames = std::move(frames);
  const auto& fr = r.frames;
  for (size_t i = 0; i < fr.size(); ++i)
    if (fr[i].index != static_cast<int>(i)) throw Error(ErrorCode::kInvalidArgument, "frame indices must be 0, 1, 2, ...");
  std::map<int, int> per_track;
  for (const auto& f : fr)
    if (f.track >= 0) ++per_track[f.track];
  r.tracks = static_cast<int>(per_track.size());
  int best = 0;
  for (const auto& [t, n] : per_track)
    if (n > best) best = n, r.main_track = t;
  for (Challenge c : o.challenges) r.challenges.push_back({c, false, -1, -1, 0});

  std::vector<int> m;
  for (const auto& f : fr)
    if (f.track == r.main_track && r.main_track >= 0) m.push_back(f.index);
  r.frames_with_face = static_cast<int>(m.size());
  if (static_cast<int>(m.size()) < std::max(1, o.baseline_frames)) {
    r.state = LivenessState::kUncertain;
    r.reasons.push_back(printf_str("the face was found in %.0f of %.0f frames (at least %.0f needed)",
                                   static_cast<double>(m.size()), static_cast<double>(fr.size()),
                                   static_cast<double>(std::max(1, o.baseline_frames))));
    return r;
  }
  const auto& first = fr[static_cast<size_t>(m.front())];
  r.duration_s = fr[static_cast<size_t>(m.back())].time_s - first.time_s;

  std::vector<float> ears, yaws;
  for (size_t k = 0; k < m.size() && k < static_cast<size_t>(o.baseline_frames); ++k)
    yaws.push_back(fr[static_cast<size_t>(m[k])].pose.yaw);
  std::nth_element(yaws.begin(), yaws.begin() + static_cast<long>(yaws.size() / 2), yaws.end());
  r.yaw_baseline = yaws[yaws.size() / 2];
  for (int i : m)
    if (frontal(fr[static_cast<size_t>(i)], r.yaw_baseline, o)) ears.push_back(fr[static_cast<size_t>(i)].ear);
  if (!ears.empty()) {
    std::sort(ears.begin(), ears.end());
    const float p = std::clamp(o.ear_baseline_percentile, 0.f, 1.f);
    r.ear_baseline = ears[static_cast<size_t>(std::lround(p * static_cast<float>(ears.size() - 1)))];
  }

  if (r.ear_baseline > 0) find_blinks(fr, m, r.ear_baseline, r.yaw_baseline, o, r.events);
  find_turns(fr, m, r.yaw_baseline, o, r.events);
  std::sort(r.events.begin(), r.events.end(),
            [](const LivenessEvent& a, const LivenessEvent& b) { return a.first_frame < b.first_frame; });

  double n_passive = 0, sum_passive = 0;
  for (int i : m)
    if (!std::isnan(fr[static_cast<size_t>(i)].passive)) sum_passive += fr[static_cast<size_t>(i)].passive, ++n_passive;
  if (n_passive > 0) r.passive_mean = static_cast<float>(sum_passive / n_passive);

  // Challenges in order, each after the previous one and within its window.
  double t_prev = first.time_s;
  int frame_prev = first.index - 1;
  bool all_passed = true;
  for (auto& c : r.challenges) {
    if (!all_passed) break;
    c.deadline_s = t_prev + o.challenge_window_s;
    for (const auto& e : r.events)
      if (e.kind == event_kind(c.challenge) && e.first_frame > frame_prev && e.end_s <= c.deadline_s) {
        c.passed = true, c.first_frame = e.first_frame, c.last_frame = e.last_frame;
        t_prev = e.end_s, frame_prev = e.last_frame;
        break;
      }
    all_passed = c.passed;
  }

  // The verdict.
  int other_tracks = 0;
  for (const auto& [t, n] : per_track)
    if (t != r.main_track && n >= o.baseline_frames) ++other_tracks;
  for (const auto& e : r.events)
    r.reasons.push_back(e.kind + printf_str(" at frames %.0f-%.0f (%.2f)", e.first_frame, e.last_frame, e.magnitude));
  if (!o.challenges.empty()) {
    r.state = all_passed ? LivenessState::kLive : LivenessState::kSpoof;
    for (size_t i = 0; i < r.challenges.size(); ++i) {
      const auto& c = r.challenges[i];
      if (c.passed) {
        r.reasons.push_back(std::string("challenge ") + to_string(c.challenge) +
                            printf_str(" passed at frames %.0f-%.0f", c.first_frame, c.last_frame));
      } else {
        r.reasons.push_back(std::string("challenge ") + to_string(c.challenge) +
                            printf_str(" (%.0f of %.0f) not done by %.1f s", static_cast<double>(i + 1),
                                       static_cast<double>(r.challenges.size()), c.deadline_s));
        break;
      }
    }
  } else if (!r.events.empty()) {
    r.state = LivenessState::kLive;
  } else if (r.duration_s >= o.min_duration_s) {
    r.state = LivenessState::kSpoof;
    r.reasons.push_back(printf_str("no blink and no head turn in %.1f s", r.duration_s));
  } else {
    r.state = LivenessState::kUncertain;
    r.reasons.push_back(printf_str("no blink and no head turn, but the face was seen for only %.1f s (< %.1f)",
                                   r.duration_s, o.min_duration_s));
  }
  if (other_tracks > 0 && r.state == LivenessState::kLive) {
    r.state = LivenessState::kUncertain;
    r.reasons.push_back(printf_str("the face changed during the video (%.0f other faces followed)", other_tracks));
  }
  if (n_passive > 0 && r.passive_mean < o.passive_threshold) {
    r.state = LivenessState::kSpoof;
    r.reasons.push_back(printf_str("passive score %.2f < %.2f", r.passive_mean, o.passive_threshold));
  }
  return r;
}

}  // namespace facekit
