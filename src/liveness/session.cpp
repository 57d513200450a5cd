// Active liveness: detection and IoU tracking of one face through frames, per-frame EAR and pose (GeometryMeter),
// passive score.
#include "facekit/error.hpp"
#include "facekit/liveness.hpp"

namespace facekit {

struct ActiveLivenessSession::Impl {
  Impl(const FacePipeline& p, ActiveLivenessOptions o)
      : pipeline(p),
        options(std::move(o)),
        geometry(GeometryMeter::landmarker_for(options.geometry_landmarker, p.landmarker().name())) {}
  const FacePipeline& pipeline;
  ActiveLivenessOptions options;
  GeometryMeter geometry;
  std::vector<FrameObservation> frames;
  int track = -1, next_track = 0, lost = 0;
  Box last_box;
};

ActiveLivenessSession::ActiveLivenessSession(const FacePipeline& pipeline, ActiveLivenessOptions options)
    : impl_(std::make_unique<Impl>(pipeline, std::move(options))) {
  if (impl_->options.track_iou <= 0 || impl_->options.track_iou > 1 || impl_->options.max_lost_frames < 0 ||
      impl_->options.blink_close_ratio >= impl_->options.blink_open_ratio || impl_->options.turn_yaw_deg <= 0 ||
      impl_->options.challenge_window_s <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                "liveness options: track_iou in (0,1], max_lost_frames >= 0, blink_close_ratio < blink_open_ratio, "
                "turn_yaw_deg > 0 and challenge_window_s > 0");
}
ActiveLivenessSession::~ActiveLivenessSession() = default;
ActiveLivenessSession::ActiveLivenessSession(ActiveLivenessSession&&) noexcept = default;

const ActiveLivenessOptions& ActiveLivenessSession::options() const { return impl_->options; }

const FrameObservation& ActiveLivenessSession::push(const Image& rgb, double time_s) {
  Impl& s = *impl_;
  FrameObservation ob;
  ob.index = static_cast<int>(s.frames.size());
  ob.time_s = time_s;
  const std::vector<Face> faces = s.pipeline.detect(rgb);
  ob.faces = static_cast<int>(faces.size());
  const Face* chosen = nullptr;
  if (s.track >= 0) {
    float best = s.options.track_iou;
    for (const auto& f : faces)
      if (const float v = iou(f.box, s.last_box); v >= best) best = v, chosen = &f;
  }
  if (!chosen && (s.track < 0 || ++s.lost > s.options.max_lost_frames)) {
    // No face followed (or it has been gone too long): follow the largest face of this frame, if any.
    s.track = -1;
    for (const auto& f : faces)
      if (!chosen || f.box.area() > chosen->box.area()) chosen = &f;
    if (chosen) s.track = s.next_track++;
  }
  if (chosen && chosen->landmarks) {
    s.lost = 0;
    s.last_box = chosen->box;
    ob.track = s.track;
    ob.box = chosen->box;
    const FaceGeometry geo = s.geometry.measure(rgb, *chosen);
    ob.ear = geo.eye_aspect_ratio;
    ob.pose = geo.pose;
    if (s.options.passive) ob.passive = s.options.passive(rgb, *chosen);
  }
  s.frames.push_back(ob);
  return s.frames.back();
}

ActiveLivenessResult ActiveLivenessSession::finish() const { return judge_liveness(impl_->frames, impl_->options); }

ActiveLivenessResult check_active_liveness(FrameSource& source, const FacePipeline& pipeline,
                                           const ActiveLivenessOptions& options, int max_frames) {
  ActiveLivenessSession session(pipeline, options);
  Image rgb;
  double t = 0;
  for (int n = 0; (max_frames <= 0 || n < max_frames) && source.next(rgb, t); ++n) session.push(rgb, t);
  return session.finish();
}

}  // namespace facekit
