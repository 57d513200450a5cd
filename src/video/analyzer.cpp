// VideoAnalyzer: the engine's detector, quality, embedder, gallery and spoof checker around FaceTracker.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <opencv2/imgproc.hpp>

#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/video.hpp"

namespace facekit {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// What a track is identified as so far, and what it was identified from.
struct Identity {
  bool known = false;
  std::string name, best_candidate;
  std::int64_t person_id = 0;
  float similarity = 0, score = 0, threshold = 0;
  size_t faces = 0;
  std::vector<float> qualities;  ///< of the embeddings behind it: re-identify when they change
};

struct TrackExtras {
  Image crop;
  float crop_quality = -1;
  double live_sum = 0;
  int live_n = 0;
};

}  // namespace

struct VideoAnalyzer::Impl {
  const Engine& engine;
  VideoOptions o;
  FaceTracker tracker;
  VideoFrame frame;
  VideoTimes times;
  int index = 0;
  std::map<int, Identity> identity;
  std::map<int, TrackExtras> extras;

  Identity identify(const TrackerTrack& t) {
    Identity id;
    id.qualities = t.qualities;
    id.faces = t.embeddings.size();
    if (!o.identify || t.embeddings.empty()) return id;
    const auto t0 = Clock::now();
    const IdentifyResult r = engine.identify(FaceTracker::mean_embedding(t));
    times.identify_ms += ms_since(t0);
    id.threshold = r.threshold;
    if (r.faces.empty() || r.faces[0].identification.candidates.empty()) return id;
    const Identification& who = r.faces[0].identification;
    const Candidate& c = who.candidates[0];
    id.known = who.known;
    id.best_candidate = c.name;
    id.similarity = c.similarity;
    id.score = c.score;
    id.threshold = who.threshold;
    if (who.known) id.name = c.name, id.person_id = c.person_id;
    return id;
  }

  // The track's identity, identified again when its kept embeddings changed.
  const Identity& current(const TrackerTrack& t) {
    Identity& id = identity[t.id];
    if (id.qualities != t.qualities || id.faces != t.embeddings.size()) id = identify(t);
    return id;
  }

  // Track `from` turned out to continue `into`: its best crop and liveness scores go with it.
  void merge(int from, int into) {
    TrackExtras& a = extras[into];
    TrackExtras& b = extras[from];
    if (b.crop_quality > a.crop_quality) a.crop = b.crop, a.crop_quality = b.crop_quality;
    a.live_sum += b.live_sum;
    a.live_n += b.live_n;
    extras.erase(from);
    identity.erase(from);
  }

  Image crop(const Image& rgb, const Box& b) const { return face_region(rgb, b, o.crop_margin).clone(); }
};

namespace {
FaceTracker make_tracker(const Engine& engine, const VideoOptions& o) {
  TrackerOptions t = o.tracker;
  if (std::isnan(t.reassociate_distance)) t.reassociate_distance = engine.pipeline().embedder().threshold();
  return FaceTracker(t, o.best_faces);
}
}  // namespace

VideoAnalyzer::VideoAnalyzer(const Engine& engine, VideoOptions options)
    : impl_(std::make_unique<Impl>(Impl{engine, options, make_tracker(engine, options), {}, {}, 0, {}, {}})) {
  if (options.detect_every < 1 || options.best_faces < 1 || options.min_detections < 1)
    throw Error(ErrorCode::kInvalidArgument, "video options: detect_every, best_faces and min_detections must be >= 1");
}
VideoAnalyzer::~VideoAnalyzer() = default;
VideoAnalyzer::VideoAnalyzer(VideoAnalyzer&&) noexcept = default;

const VideoTimes& VideoAnalyzer::times() const { return impl_->times; }
const VideoOptions& VideoAnalyzer::options() const { return impl_->o; }

const VideoFrame& VideoAnalyzer::push(const Image& rgb, double time_s) {
  Impl& m = *impl_;
  const auto start = Clock::now();
  VideoFrame& f = m.frame;
  f = VideoFrame{};
  f.index = m.index++;
  f.time_s = time_s;
  f.detection_frame = f.index % m.o.detect_every == 0;
  std::vector<TrackedBox> boxes;
  if (f.detection_frame) {
    auto t0 = Clock::now();
    const std::vector<Face> faces = m.engine.detect(rgb);
    m.times.detect_ms += ms_since(t0);
    t0 = Clock::now();
    AnalyzeOptions qo;
    qo.quality = true;
    const std::vector<FaceAnalysis> analysed = m.engine.analyze(rgb, faces, qo);
    std::vector<TrackerDetection> dets;
    for (const auto& a : analysed) dets.push_back({a.face.box, a.quality.score});
    m.times.quality_ms += ms_since(t0);
    std::vector<bool> embedded(faces.size(), false);
    const FaceTracker::EmbedFn embed = [&](size_t d) {
      const auto te = Clock::now();
      std::vector<AnalyzedFace> e = m.engine.pipeline().embed(rgb, {faces[d]});
      m.times.embed_ms += ms_since(te);
      ++m.times.embeddings;
      embedded[d] = true;
      return e.empty() ? Embedding{} : std::move(e[0].embedding);
    };
    t0 = Clock::now();
    const double embed_before = m.times.embed_ms;
    boxes = m.tracker.update(f.index, time_s, dets, embed);
    m.times.track_ms += ms_since(t0) - (m.times.embed_ms - embed_before);
    ++m.times.detection_frames;
    for (const auto& [from, into] : m.tracker.merges()) m.merge(from, into);
    for (const auto& b : boxes) {
      TrackExtras& x = m.extras[b.track];
      const auto d = static_cast<size_t>(b.detection);
      if (m.o.crop_margin >= 0 && dets[d].quality > x.crop_quality) {
        x.crop = m.crop(rgb, b.box);
        x.crop_quality = dets[d].quality;
      }
      // The spoof checker scores the faces that were embedded: the track's best ones, at no more frames.
      if (m.o.liveness && embedded[d]) {
        const auto tl = Clock::now();
        x.live_sum += m.engine.spoof_checker().check(rgb, faces[d]).score;
        ++x.live_n;
        m.times.liveness_ms += ms_since(tl);
      }
    }
  } else {
    boxes = m.tracker.predict(f.index, time_s);
  }
  for (const auto& b : boxes) {
    VideoFrameTrack v{b.track, b.box, b.detected, "", 0};
    if (const TrackerTrack* t = m.tracker.track(b.track)) {
      const Identity& id = m.current(*t);
      v.name = id.name;
      v.similarity = id.similarity;
    }
    f.tracks.push_back(v);
  }
  ++m.times.frames;
  f.ms = ms_since(start);
  return f;
}

std::vector<Track> VideoAnalyzer::finish() {
  Impl& m = *impl_;
  std::vector<Track> out;
  for (const TrackerTrack& t : m.tracker.finish()) {
    if (t.detections < m.o.min_detections) continue;
    const Identity& id = m.current(t);
    Track r;
    r.id = t.id;
    r.first_frame = t.first_frame;
    r.last_frame = t.last_frame;
    r.first_time_s = t.first_time_s;
    r.last_time_s = t.last_time_s;
    r.detections = t.detections;
    r.reassociations = t.reassociations;
    r.known = id.known;
    r.name = id.name;
    r.person_id = id.person_id;
    r.similarity = id.similarity;
    r.score = id.score;
    r.threshold = id.threshold;
    r.best_candidate = id.best_candidate;
    r.faces_aggregated = static_cast<int>(id.faces);
    TrackExtras& x = m.extras[t.id];
    r.best_crop = x.crop;
    r.best_quality = std::max(0.f, x.crop_quality);
    if (m.o.liveness && x.live_n > 0) {
      r.liveness = static_cast<float>(x.live_sum / x.live_n);
      const SpoofThresholds& th = m.engine.spoof_checker().thresholds();
      r.liveness_state = *r.liveness >= th.decision ? SpoofState::kLive : SpoofState::kSpoof;
    }
    for (size_t i = 0; i < t.boxes.size(); ++i) {
      r.frames.push_back(t.box_frames[i]);
      r.boxes.push_back(t.boxes[i].box);
      r.detected.push_back(t.boxes[i].detected);
    }
    out.push_back(std::move(r));
  }
  return out;
}

void draw_tracks(Image& rgb, const VideoFrame& frame) {
  for (const auto& t : frame.tracks) {
    const cv::Scalar colour = t.name.empty() ? cv::Scalar(255, 140, 0) : cv::Scalar(0, 200, 0);  // RGB
    const cv::Rect r(static_cast<int>(t.box.x), static_cast<int>(t.box.y), static_cast<int>(t.box.width),
                     static_cast<int>(t.box.height));
    cv::rectangle(rgb, r, colour, t.detected ? 2 : 1);
    const std::string label = "#" + std::to_string(t.track) + " " + (t.name.empty() ? "unknown" : t.name);
    int base = 0;
    const cv::Size ts = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, 0.5, 1, &base);
    const cv::Point at(r.x, std::max(ts.height + 2, r.y - 3));
    cv::rectangle(rgb, cv::Rect(at.x, at.y - ts.height - 2, ts.width + 2, ts.height + base + 2), colour, cv::FILLED);
    cv::putText(rgb, label, cv::Point(at.x + 1, at.y), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
}

}  // namespace facekit
