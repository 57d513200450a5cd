// FaceTracker: greedy IoU association against constant-velocity predictions, crossings and re-appearances
// decided by embeddings, which are computed only when they decide something or improve a track's identity.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "facekit/error.hpp"
#include "facekit/video.hpp"

namespace facekit {
namespace {

struct State {
  TrackerTrack t;
  Box last;                  ///< last detected box
  float vx = 0, vy = 0;      ///< centre velocity, pixels per frame
  bool has_velocity = false;
  Box predicted;             ///< at the frame being processed
};

Box predict_box(const State& s, int frame, int max_predict) {
  const int dt = std::min(frame - s.t.last_frame, max_predict);
  Box b = s.last;
  b.x += s.vx * static_cast<float>(dt);
  b.y += s.vy * static_cast<float>(dt);
  return b;
}

}  // namespace

struct FaceTracker::Impl {
  TrackerOptions o;
  int keep_best;
  std::vector<State> live;
  std::vector<TrackerTrack> ended;
  int next_id = 0, last_frame = -1, last_update = -1;
  std::vector<std::pair<int, int>> merges;  ///< (merged track, the track it continues) at the last update

  void record(State& s, int frame, const TrackedBox& b) {
    s.t.boxes.push_back(b);
    s.t.box_frames.push_back(frame);
  }

  // Keeps `e` among the track's best embeddings by quality.
  void keep(State& s, Embedding e, float quality) {
    auto& q = s.t.qualities;
    if (static_cast<int>(q.size()) < keep_best) {
      s.t.embeddings.push_back(std::move(e));
      q.push_back(quality);
      return;
    }
    const auto worst = std::min_element(q.begin(), q.end()) - q.begin();
    if (quality <= q[static_cast<size_t>(worst)]) return;
    s.t.embeddings[static_cast<size_t>(worst)] = std::move(e);
    q[static_cast<size_t>(worst)] = quality;
  }

  // Merges each track into an earlier one that was last seen before it began, when their mean embeddings
  // are within `distance` (the closest pair first).
  void merge_returning(float distance) {
    merges.clear();
    for (;;) {
      float best = distance;
      size_t into = 0, from = 0;
      bool found = false;
      for (size_t a = 0; a < live.size(); ++a)
        for (size_t b = 0; b < live.size(); ++b) {
          if (live[b].t.first_frame <= live[a].t.last_frame || live[a].t.embeddings.empty() ||
              live[b].t.embeddings.empty())
            continue;
          if (const float d = l2_distance(FaceTracker::mean_embedding(live[a].t), FaceTracker::mean_embedding(live[b].t));
              d <= best)
            best = d, into = a, from = b, found = true;
        }
      if (!found) return;
      State& a = live[into];
      State& b = live[from];
      a.t.boxes.insert(a.t.boxes.end(), b.t.boxes.begin(), b.t.boxes.end());
      for (auto& tb : a.t.boxes) tb.track = a.t.id;
      a.t.box_frames.insert(a.t.box_frames.end(), b.t.box_frames.begin(), b.t.box_frames.end());
      for (size_t i = 0; i < b.t.embeddings.size(); ++i) keep(a, b.t.embeddings[i], b.t.qualities[i]);
      a.t.last_frame = b.t.last_frame;
      a.t.last_time_s = b.t.last_time_s;
      a.t.detections += b.t.detections;
      a.t.reassociations += 1 + b.t.reassociations;
      a.last = b.last;
      a.vx = b.vx, a.vy = b.vy, a.has_velocity = b.has_velocity;
      merges.push_back({b.t.id, a.t.id});
      live.erase(live.begin() + static_cast<long>(from));
    }
  }

  bool wants(const State& s, float quality) const {
    const auto& q = s.t.qualities;
    return static_cast<int>(q.size()) < keep_best || quality > *std::min_element(q.begin(), q.end());
  }
};

FaceTracker::FaceTracker(TrackerOptions options, int keep_best)
    : impl_(std::make_unique<Impl>(Impl{options, keep_best, {}, {}, 0, -1, -1, {}})) {
  if (!(options.iou_threshold > 0 && options.iou_threshold <= 1) || options.max_lost_frames < 0 ||
      options.max_predict_frames < 0 || keep_best < 1 ||
      !(options.velocity_smoothing >= 0 && options.velocity_smoothing <= 1) || !(options.ambiguity_margin >= 0))
    throw Error(ErrorCode::kInvalidArgument,
                "tracker options: iou_threshold in (0,1], max_lost_frames >= 0, max_predict_frames >= 0, "
                "best faces >= 1, velocity_smoothing in [0,1], ambiguity_margin >= 0");
}
FaceTracker::~FaceTracker() = default;
FaceTracker::FaceTracker(FaceTracker&&) noexcept = default;

Embedding FaceTracker::mean_embedding(const TrackerTrack& t) {
  if (t.embeddings.empty()) return {};
  Embedding m(t.embeddings[0].size(), 0.f);
  for (const auto& e : t.embeddings)
    for (size_t i = 0; i < m.size() && i < e.size(); ++i) m[i] += e[i];
  double n = 0;
  for (float v : m) n += static_cast<double>(v) * v;
  n = std::sqrt(n);
  if (n > 0)
    for (float& v : m) v = static_cast<float>(v / n);
  return m;
}

std::vector<TrackedBox> FaceTracker::update(int frame, double time_s, const std::vector<TrackerDetection>& dets,
                                            const EmbedFn& embed) {
  Impl& m = *impl_;
  if (frame <= m.last_frame) throw Error(ErrorCode::kInvalidArgument, "tracker: frames must increase");
  m.last_frame = m.last_update = frame;
  const float reassoc = m.o.reassociate_distance;
  const bool can_embed = static_cast<bool>(embed);

  // Each detection's embedding, computed at most once.
  std::map<size_t, Embedding> cache;
  auto emb = [&](size_t d) -> const Embedding& {
    auto it = cache.find(d);
    if (it == cache.end()) it = cache.emplace(d, embed(d)).first;
    return it->second;
  };

  // Candidate pairs: a detection overlapping a recently seen track's prediction.
  struct Pair {
    size_t track, det;
    float iou;
  };
  std::vector<Pair> pairs;
  std::vector<int> det_candidates(dets.size(), 0), track_candidates(m.live.size(), 0);
  for (size_t k = 0; k < m.live.size(); ++k) {
    State& s = m.live[k];
    s.predicted = predict_box(s, frame, m.o.max_predict_frames);
    if (frame - s.t.last_frame > m.o.max_predict_frames) continue;  // too long unseen: by embedding only
    for (size_t d = 0; d < dets.size(); ++d)
      if (const float v = iou(s.predicted, dets[d].box); v >= m.o.iou_threshold) {
        pairs.push_back({k, d, v});
        ++det_candidates[d], ++track_candidates[k];
      }
  }
  std::vector<int> track_of(dets.size(), -1);
  std::vector<bool> matched(m.live.size(), false);
  auto assign = [&](size_t k, size_t d) {
    track_of[d] = static_cast<int>(k);
    matched[k] = true;
  };

  // Crossings: where a detection could continue two tracks (or a track two detections), the embeddings
  // decide when they are clear (the better choice closer by ambiguity_margin); IoU decides the rest.
  if (can_embed && std::isfinite(reassoc)) {
    std::vector<std::pair<float, Pair>> by_distance;
    for (const auto& p : pairs) {
      if (det_candidates[p.det] < 2 && track_candidates[p.track] < 2) continue;
      const Embedding mean = mean_embedding(m.live[p.track].t);
      if (mean.empty()) continue;
      by_distance.push_back({l2_distance(mean, emb(p.det)), p});
    }
    std::sort(by_distance.begin(), by_distance.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < by_distance.size(); ++i) {
      const auto& [dist, p] = by_distance[i];
      if (matched[p.track] || track_of[p.det] >= 0 || dist > reassoc) continue;
      // The runner-up for this detection or this track must be clearly worse.
      float next = std::numeric_limits<float>::infinity();
      for (size_t j = i + 1; j < by_distance.size(); ++j) {
        const auto& q = by_distance[j].second;
        if ((q.det == p.det && !matched[q.track]) || (q.track == p.track && track_of[q.det] < 0)) {
          next = by_distance[j].first;
          break;
        }
      }
      if (next - dist >= m.o.ambiguity_margin) assign(p.track, p.det);
    }
  }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.iou > b.iou; });
  for (const auto& p : pairs)
    if (!matched[p.track] && track_of[p.det] < 0) assign(p.track, p.det);

  // Faces that continue no track: re-join the nearest lost track by embedding, else start a new one.
  for (size_t d = 0; d < dets.size(); ++d) {
    if (track_of[d] >= 0) continue;
    if (can_embed && std::isfinite(reassoc)) {
      float best = reassoc;
      int best_k = -1;
      for (size_t k = 0; k < m.live.size(); ++k) {
        if (matched[k]) continue;
        const Embedding mean = mean_embedding(m.live[k].t);
        if (mean.empty()) continue;
        if (const float dist = l2_distance(mean, emb(d)); dist <= best) best = dist, best_k = static_cast<int>(k);
      }
      if (best_k >= 0) {
        assign(static_cast<size_t>(best_k), d);
        ++m.live[static_cast<size_t>(best_k)].t.reassociations;
        continue;
      }
    }
    State s;
    s.t.id = m.next_id++;
    s.t.first_frame = s.t.last_frame = frame;
    s.t.first_time_s = s.t.last_time_s = time_s;
    s.last = dets[d].box;
    m.live.push_back(std::move(s));
    matched.push_back(true);
    track_of[d] = static_cast<int>(m.live.size() - 1);
  }

  // Update the matched tracks: velocity, box, embeddings.
  std::vector<TrackedBox> out;
  for (size_t d = 0; d < dets.size(); ++d) {
    State& s = m.live[static_cast<size_t>(track_of[d])];
    const Box& b = dets[d].box;
    if (s.t.detections > 0) {
      const float dt = static_cast<float>(frame - s.t.last_frame);
      const float mx = (b.center().x - s.last.center().x) / dt, my = (b.center().y - s.last.center().y) / dt;
      const float a = s.has_velocity ? m.o.velocity_smoothing : 1.f;
      s.vx = a * mx + (1 - a) * s.vx;
      s.vy = a * my + (1 - a) * s.vy;
      s.has_velocity = true;
    }
    s.last = b;
    s.t.last_frame = frame;
    s.t.last_time_s = time_s;
    ++s.t.detections;
    if (can_embed && (cache.count(d) || m.wants(s, dets[d].quality))) m.keep(s, emb(d), dets[d].quality);
    const TrackedBox tb{s.t.id, b, true, static_cast<int>(d)};
    m.record(s, frame, tb);
    out.push_back(tb);
  }

  // A face that came back poorly seen (half hidden, turned) may have started a new track; once the new
  // track's embeddings match a lost track that it never overlapped in time, it is that track continued.
  if (std::isfinite(reassoc)) m.merge_returning(reassoc);

  // End tracks unseen too long.
  for (size_t k = m.live.size(); k-- > 0;)
    if (frame - m.live[k].t.last_frame > m.o.max_lost_frames) {
      m.ended.push_back(std::move(m.live[k].t));
      m.live.erase(m.live.begin() + static_cast<long>(k));
    }
  return out;
}

std::vector<TrackedBox> FaceTracker::predict(int frame, double /*time_s*/) {
  Impl& m = *impl_;
  if (frame <= m.last_frame) throw Error(ErrorCode::kInvalidArgument, "tracker: frames must increase");
  m.last_frame = frame;
  std::vector<TrackedBox> out;
  // Only tracks seen at the last detection frame are shown; the others wait for re-association unseen.
  for (auto& s : m.live)
    if (s.t.last_frame == m.last_update) {
      const TrackedBox tb{s.t.id, predict_box(s, frame, m.o.max_predict_frames), false, -1};
      m.record(s, frame, tb);
      out.push_back(tb);
    }
  return out;
}

const std::vector<std::pair<int, int>>& FaceTracker::merges() const { return impl_->merges; }

const TrackerTrack* FaceTracker::track(int id) const {
  for (const auto& s : impl_->live)
    if (s.t.id == id) return &s.t;
  return nullptr;
}

std::vector<TrackerTrack> FaceTracker::finish() {
  Impl& m = *impl_;
  std::vector<TrackerTrack> all = std::move(m.ended);
  for (auto& s : m.live) all.push_back(std::move(s.t));
  m.live.clear();
  m.ended.clear();
  std::sort(all.begin(), all.end(), [](const TrackerTrack& a, const TrackerTrack& b) { return a.id < b.id; });
  return all;
}

}  // namespace facekit
