#pragma once
// Active liveness: one face followed through a video (a file or a folder of frames); blinks from the eye
// aspect ratio, head turns from the yaw (both from face-api's 68 landmarks: GeometryMeter, quality.hpp),
// optional challenges to do in order, a per-frame passive score from any single-image anti-spoofing model,
// and a verdict with evidence.
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/quality.hpp"
#include "facekit/spoof.hpp"

namespace facekit {

// ---- frames ------------------------------------------------------------------------------------------------

/// Frames in order, as RGB. Not thread-safe (it is a read position).
class FrameSource {
 public:
  virtual ~FrameSource() = default;
  /// The next frame and its time in seconds from the first; false at the end.
  virtual bool next(Image& rgb, double& time_s) = 0;
  virtual double fps() const = 0;
  virtual const std::string& description() const = 0;
};

/// A video file through OpenCV's videoio (what its FFmpeg/GStreamer back ends read: AVI, MP4, MKV, WebM, ...).
/// Error(kNotFound) for a missing file, Error(kInvalidArgument) for a folder or other non-file; Error(kBadImage)
/// for a file that does not open as a video or holds no decodable frame.
std::unique_ptr<FrameSource> open_video(const std::filesystem::path& path);

/// The images of a folder (jpg, jpeg, png, bmp, webp, pnm, in file-name order), timed at `fps`.
/// Error(kNotFound) for a missing folder, Error(kBadImage) for a folder with no image; a frame that does not
/// decode, or is damaged, throws as load_image(file, limits) does, naming it.
std::unique_ptr<FrameSource> open_frames(const std::filesystem::path& dir, double fps = 30,
                                         const ImageLimits& limits = {});

// ---- options and results -----------------------------------------------------------------------------------

/// What a user can be asked to do. "left" and "right" are the subject's own (a turn to the subject's left
/// moves the face towards the right of an unmirrored camera image: yaw increases, see HeadPose).
enum class Challenge { kBlink, kTurnLeft, kTurnRight };
const char* to_string(Challenge c);
/// "blink,left,right" (any order, repeats allowed); Error(kInvalidArgument) for an unknown word or an empty list.
std::vector<Challenge> parse_challenges(const std::string& list);

/// A single-image (passive) anti-spoofing score of one face of a frame: the probability that it is live,
/// 0-1. Any SpoofChecker fits behind it.
using PassiveScorer = std::function<float(const Image& rgb, const Face& face)>;

struct ActiveLivenessOptions {
  // Tracking: each frame's faces are matched to the followed face by IoU with its last box.
  float track_iou = 0.3f;   ///< a face overlapping the last box at least this much is the same face
  int max_lost_frames = 5;  ///< frames the face may go missing before the track ends (a new one starts)

  // Blinks. The eye aspect ratio (EAR) of the open eyes differs from person to person and with the pose, so
  // it is measured per video: the baseline is this percentile of the followed face's EAR over the video
  // (eyes are open most of the time).
  float ear_baseline_percentile = 0.75f;
  float blink_close_ratio = 0.7f;   ///< eyes closed while EAR < ratio x baseline
  float blink_open_ratio = 0.85f;   ///< open again once EAR > ratio x baseline
  int blink_min_closed_frames = 1;  ///< a blink needs at least this many closed frames...
  double blink_max_closed_s = 1.0;  ///< ...lasting at most this long (longer is eyes held shut)
  /// Blinks are looked for, and the EAR baseline taken, only in frames within this many degrees of the
  /// baseline yaw: face-api's landmarks widen the eyes of a turned face (EAR 0.25 -> 0.36 at 20 degrees on
  /// the test clip), which would make the frontal frames between two turns look closed.
  float blink_max_yaw_deg = 10.f;
  /// The landmarker whose points give each frame's EAR and yaw (GeometryMeter, quality.hpp); empty: the
  /// pipeline's own landmarks. The ratios and angles here were set on face-api's net.
  std::string geometry_landmarker = defaults::kGeometryLandmarker;

  // Head turns: yaw relative to the baseline (the median yaw of the track's first `baseline_frames`).
  float turn_yaw_deg = 15.f;  ///< a turn reaches at least this many degrees from the baseline...
  int turn_min_frames = 2;    ///< ...held for at least this many frames in a row
  int baseline_frames = 5;    ///< also the fewest frames with the face for any verdict but "uncertain"

  /// Challenge mode: do these in this order, each within `challenge_window_s` of the previous one (the first
  /// within that of the face's first frame). Empty: any blink or turn counts.
  std::vector<Challenge> challenges;
  double challenge_window_s = 5.0;
  /// Without challenges a video this long with neither blink nor turn is a spoof (people blink every few
  /// seconds); shorter, it is uncertain.
  double min_duration_s = 5.0;

  /// Per-frame passive score (empty: none). Its mean over the followed face's frames below the threshold
  /// makes the verdict "spoof" whatever the challenges say.
  PassiveScorer passive;
  float passive_threshold = 0.5f;
};

constexpr float kNoValue = std::numeric_limits<float>::quiet_NaN();

/// What one frame showed.
struct FrameObservation {
  int index = 0;
  double time_s = 0;
  int faces = 0;       ///< faces detected in the frame
  int track = -1;      ///< which track the followed face belongs to; -1: not seen in this frame
  Box box;
  float ear = kNoValue;
  HeadPose pose;
  float passive = kNoValue;  ///< PassiveScorer's score, when one is set
};

/// A blink or a head turn, with the frames that show it.
struct LivenessEvent {
  std::string kind;            ///< "blink", "turn_left", "turn_right"
  int first_frame = 0, last_frame = 0;  ///< blink: the closed frames; turn: the frames past the yaw threshold
  double start_s = 0, end_s = 0;
  float magnitude = 0;         ///< blink: lowest EAR / baseline; turn: largest |yaw - baseline|, degrees
};

struct ChallengeResult {
  Challenge challenge = Challenge::kBlink;
  bool passed = false;
  int first_frame = -1, last_frame = -1;  ///< the event that passed it
  double deadline_s = 0;                  ///< by when it had to be done
};

/// The same three states as a passive check (to_string gives "live", "spoof", "uncertain").
using LivenessState = SpoofState;

struct ActiveLivenessResult {
  LivenessState state = LivenessState::kUncertain;
  std::vector<std::string> reasons;           ///< why, in words
  std::vector<FrameObservation> frames;       ///< every frame read
  int tracks = 0;                             ///< faces followed in turn (more than one: the face changed)
  int main_track = -1;                        ///< the longest track: the one judged
  int frames_with_face = 0;                   ///< frames of the main track
  double duration_s = 0;                      ///< of the main track
  float ear_baseline = kNoValue, yaw_baseline = kNoValue;
  float passive_mean = kNoValue;
  std::vector<LivenessEvent> events;          ///< blinks and turns of the main track, in time order
  std::vector<ChallengeResult> challenges;    ///< one per requested challenge, in order
};

/// Judges per-frame observations (what ActiveLivenessSession collected): finds the main track, the blinks and
/// turns, checks the challenges, gives the verdict. Needs no model, so it can be tested on made-up signals.
ActiveLivenessResult judge_liveness(std::vector<FrameObservation> frames, const ActiveLivenessOptions& options);

/// Follows one face through frames given one at a time, then judges. Not thread-safe (it is one video's
/// state); the pipeline may be shared with other sessions.
class ActiveLivenessSession {
 public:
  ActiveLivenessSession(const FacePipeline& pipeline, ActiveLivenessOptions options = {});
  ~ActiveLivenessSession();
  ActiveLivenessSession(ActiveLivenessSession&&) noexcept;

  /// Detects and follows the face in one frame (RGB) shown at `time_s`.
  const FrameObservation& push(const Image& rgb, double time_s);
  /// The verdict over every frame pushed so far.
  ActiveLivenessResult finish() const;
  const ActiveLivenessOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Every frame of `source` through a session. `max_frames` > 0 stops after that many.
ActiveLivenessResult check_active_liveness(FrameSource& source, const FacePipeline& pipeline,
                                           const ActiveLivenessOptions& options = {}, int max_frames = 0);

}  // namespace facekit
