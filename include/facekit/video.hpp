#pragma once
// Face tracking and identification through a video: detection every k-th frame, tracking between detections
// (IoU with a constant-velocity prediction), lost tracks re-found by embedding, and one identity per track
// from the mean embedding of its best-quality faces, matched against the gallery.
//
//   facekit::Engine engine(options);                      // with a gallery, or none (every track unknown)
//   facekit::VideoAnalyzer video(engine, {});             // VideoOptions: defaults below
//   auto source = facekit::open_stream("clip.mp4");       // a file, a camera index or an rtsp:// URL
//   while (source->next(rgb, t)) draw(video.push(rgb, t)); // the tracks seen in this frame
//   std::vector<facekit::Track> tracks = video.finish();
//
// Two layers: FaceTracker is the model-free tracker (boxes in, track ids out; embeddings asked for through a
// callback only when they decide something), VideoAnalyzer runs the engine's detector, quality, embedder,
// gallery and spoof checker around it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "facekit/image.hpp"
#include "facekit/liveness.hpp"
#include "facekit/types.hpp"

namespace facekit {

class Engine;

// ---- sources --------------------------------------------------------------------------------------------------

/// A video file (as open_video), a camera given as its index ("0", "1", ...) or a stream URL (rtsp://,
/// http(s)://, udp://, ...). Error(kNotFound / kBadImage / kInvalidArgument) as open_video, naming the camera
/// or URL when it does not open or gives no frame.
std::unique_ptr<FrameSource> open_stream(const std::string& what);

// ---- tracking (no model) ----------------------------------------------------------------------------------------

struct TrackerOptions {
  /// A detection continues a track when its box overlaps the track's predicted box at least this much.
  float iou_threshold = 0.3f;
  /// Frames a track may go unseen (occluded, missed, out of the picture) before it ends; meanwhile its box is
  /// predicted and a new face can re-join it by embedding. 75: three seconds at 25 frames/s (a person
  /// crossing behind another is hidden for one to two seconds in the test clips, docs/video.md).
  int max_lost_frames = 75;
  /// Frames a lost track's box keeps moving with its last velocity (then it stays where it was): a long
  /// extrapolation overshoots.
  int max_predict_frames = 10;
  /// A face that overlaps no track joins a lost one when their embeddings are within this distance; NaN:
  /// the embedder's verification threshold (VideoAnalyzer) or no re-association (FaceTracker alone).
  float reassociate_distance = std::numeric_limits<float>::quiet_NaN();
  /// Weight of the newest measured velocity against the previous estimate (exponential smoothing), 0-1.
  float velocity_smoothing = 0.5f;
  /// A detection that overlaps two tracks' predictions by iou_threshold or more (a crossing) is assigned by
  /// embedding when both tracks have one and the choice by embedding differs by at least this distance.
  float ambiguity_margin = 0.1f;
};

/// One detection given to the tracker.
struct TrackerDetection {
  Box box;
  float quality = 1;  ///< higher is better: which faces a track keeps for its identity
};

/// Where a track is in one frame.
struct TrackedBox {
  int track = -1;
  Box box;
  bool detected = false;  ///< the box is this frame's detection (false: predicted)
  int detection = -1;     ///< index into this frame's detections when detected
};

/// A track's state as the tracker keeps it.
struct TrackerTrack {
  int id = -1;
  int first_frame = 0, last_frame = 0;  ///< last frame with a detection
  double first_time_s = 0, last_time_s = 0;
  std::vector<TrackedBox> boxes;        ///< frame by frame from first_frame (predicted ones included)
  std::vector<int> box_frames;          ///< the frame of each box
  /// The embeddings kept for identity: the `keep_best` best by quality, with their qualities.
  std::vector<Embedding> embeddings;
  std::vector<float> qualities;
  int detections = 0;                   ///< frames in which it was detected
  int reassociations = 0;               ///< times it was re-found by embedding after being lost
};

/// Boxes in, track ids out. Not thread-safe (one video's state).
class FaceTracker {
 public:
  /// Embedding of detection i of the current update() (called only when it decides something).
  using EmbedFn = std::function<Embedding(size_t detection)>;

  /// `keep_best`: embeddings a track keeps (the best by quality). Error(kInvalidArgument) for options out of
  /// range (iou_threshold in (0,1], max_lost_frames >= 0, keep_best >= 1, velocity_smoothing in [0,1]).
  explicit FaceTracker(TrackerOptions options = {}, int keep_best = 5);
  ~FaceTracker();
  FaceTracker(FaceTracker&&) noexcept;

  /// A frame with detections: each detection continues a track (IoU with the predicted box; crossings
  /// resolved by embedding), re-joins a lost track by embedding, or starts a new one. `embed` is called for
  /// detections that start or re-join a track, that are ambiguous, and for a track that keeps fewer than
  /// keep_best embeddings or gets a better-quality face than its worst kept one; it may be empty (then no
  /// embedding is used). Frames must increase.
  std::vector<TrackedBox> update(int frame, double time_s, const std::vector<TrackerDetection>& detections,
                                 const EmbedFn& embed);
  /// A frame without detection: every live track's predicted box (tracks unseen for more than a few frames
  /// are not shown: they are kept for re-association only).
  std::vector<TrackedBox> predict(int frame, double time_s);
  /// Ends every track; returns all tracks ever made, by id.
  std::vector<TrackerTrack> finish();
  /// Tracks merged by the last update(): (the later track, the earlier one it continues). A face that came
  /// back too poorly seen to re-join its lost track at once starts a new one; when that track's embeddings
  /// later match a lost track it never overlapped in time, it is merged into it (boxes, embeddings, counts).
  const std::vector<std::pair<int, int>>& merges() const;
  /// A track not yet ended (nullptr once it ended or for an unknown id); valid until the next call.
  const TrackerTrack* track(int id) const;
  /// The mean of a track's kept embeddings, renormalised to unit length (empty when it keeps none).
  static Embedding mean_embedding(const TrackerTrack& t);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- video analysis ---------------------------------------------------------------------------------------------

struct VideoOptions {
  /// Detect faces every k-th frame (1: every frame); boxes are predicted between. 2 holds 25 frames/s at
  /// 640x480 with 3 faces on 2 cores (docs/video.md); 1 follows fast motion best.
  int detect_every = 2;
  TrackerOptions tracker;
  /// Embeddings per track aggregated into its identity: the best-quality faces (QualityAssessor's score).
  int best_faces = 5;
  /// Score each track's faces with the engine's passive spoof checker (on the frames they are embedded).
  bool liveness = false;
  /// Identify tracks against the engine's gallery; false: every track is unknown (no gallery is opened).
  bool identify = true;
  /// Tracks detected in fewer frames than this are dropped from finish() (a spurious detection).
  int min_detections = 2;
  /// Keep the best-quality face crop of each track (the box grown by this fraction); < 0: no crop.
  float crop_margin = 0.25f;
};

/// What the analyzer shows of one frame.
struct VideoFrameTrack {
  int track = -1;
  Box box;
  bool detected = false;
  std::string name;        ///< the track's identity so far ("" while unknown)
  float similarity = 0;    ///< of that identity's best candidate
};

struct VideoFrame {
  int index = 0;
  double time_s = 0;
  bool detection_frame = false;
  std::vector<VideoFrameTrack> tracks;
  double ms = 0;           ///< analysis time of this frame (detection, quality, embeddings, identification)
};

/// One track's result.
struct Track {
  int id = -1;
  int first_frame = 0, last_frame = 0;
  double first_time_s = 0, last_time_s = 0;
  int detections = 0;               ///< frames it was detected in
  int reassociations = 0;           ///< times it was re-found by embedding
  bool known = false;               ///< identified as an enrolled person
  std::string name;                 ///< that person ("" when unknown)
  std::int64_t person_id = 0;
  float similarity = 0;             ///< cosine similarity of the best candidate (known or not)
  float score = 0;                  ///< the classifier's score, against threshold
  float threshold = 0;
  std::string best_candidate;       ///< the best candidate's name, even when unknown ("" with no gallery)
  int faces_aggregated = 0;         ///< embeddings in the mean
  std::optional<float> liveness;    ///< mean passive live score of its scored faces, when asked
  std::optional<SpoofState> liveness_state;
  Image best_crop;                  ///< RGB; empty when crops are off
  float best_quality = 0;
  std::vector<int> frames;          ///< every frame with a box, and the box
  std::vector<Box> boxes;
  std::vector<bool> detected;
};

/// Time spent per stage over a whole video, milliseconds.
struct VideoTimes {
  double detect_ms = 0;     ///< detection and 68 landmarks
  double quality_ms = 0;
  double embed_ms = 0;
  double identify_ms = 0;
  double liveness_ms = 0;
  double track_ms = 0;
  int frames = 0, detection_frames = 0, embeddings = 0;
};

/// Runs the engine over frames given one at a time. Not thread-safe (one video's state); the engine may be
/// shared with other analyzers and threads.
class VideoAnalyzer {
 public:
  /// Error(kInvalidArgument) for options out of range (detect_every >= 1, best_faces >= 1, tracker options).
  VideoAnalyzer(const Engine& engine, VideoOptions options = {});
  ~VideoAnalyzer();
  VideoAnalyzer(VideoAnalyzer&&) noexcept;

  /// Analyses one RGB frame shown at `time_s`; the returned view is valid until the next call.
  const VideoFrame& push(const Image& rgb, double time_s);
  /// Ends the tracks and identifies each from its best faces; tracks with fewer than min_detections are left
  /// out. Call once.
  std::vector<Track> finish();
  const VideoTimes& times() const;
  const VideoOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Draws boxes, track ids and names onto a frame (RGB, in place): green for a known person, orange for
/// unknown, thin for a predicted box.
void draw_tracks(Image& rgb, const VideoFrame& frame);

}  // namespace facekit
