#pragma once
// Face quality: is this face good enough to enrol, or to trust a match on? Per face: sharpness, exposure,
// head pose, size, eyes open, cut by the image border; an overall score and a level with the reasons.
// The geometric helpers (head pose, eye aspect ratio) are shared with active liveness (liveness.hpp).
#include <memory>
#include <string>
#include <vector>

#include "facekit/types.hpp"
#include "facekit/registry.hpp"

namespace facekit {

/// Head pose in degrees, in the camera's frame (an unmirrored photo).
///  - yaw > 0: the face points towards the image's right (the subject turned to *their* left);
///  - pitch > 0: the face points up;
///  - roll > 0: the face is turned clockwise as the image is shown (the image-right eye lower).
struct HeadPose {
  float yaw = 0, pitch = 0, roll = 0;
};

/// Yaw and pitch from cv::solvePnP of six of the 68 landmarks (eye outer corners, nose tip, chin, mouth
/// corners) on a generic 3D face, with a pinhole camera of focal length max(width, height) centred in the
/// image. Roll is the in-plane angle of the least-squares similarity from 33 of the points to dlib's
/// upright mean face (the alignment's rotation): steadier than the eye line alone, and free of the 3D model.
HeadPose estimate_head_pose(const Landmarks68& pts, cv::Size image_size);

/// Eye aspect ratio (Soukupova and Cech 2016): (|p2-p6| + |p3-p5|) / (2 |p1-p4|) over the six points of one
/// eye. About 0.25-0.35 for an open eye, towards 0 when closed. `image_left` picks points 36-41 (the eye on the
/// image's left), otherwise 42-47.
float eye_aspect_ratio(const Landmarks68& pts, bool image_left);
/// The mean of both eyes' ratios.
float eye_aspect_ratio(const Landmarks68& pts);

/// Head pose and eye state of one face.
struct FaceGeometry {
  HeadPose pose;
  float eye_aspect_ratio = 0;  ///< the mean of both eyes'
};

/// Measures head pose and eye state with the points of the landmarker that the eye and liveness rules were set
/// on (face-api's 68-point net), run on the face's box, whatever landmarker the pipeline aligns with.
/// FaceMesh's eyelid vertices do not follow the lids: the shut-eyed LFW photo of the tests
/// (Atal_Bihari_Vajpayee_0007) reads an EAR of 0.19 with them (face-api's net: 0.15), and 41 of LFW View 1's
/// 3,443 training faces read below 0.17, mostly open-eyed (face-api's net: one). Its yaw reads about 1.09x
/// face-api's (correlation 0.97 on those faces), but frontal photos turned by a few degrees more: Vajpayee_0005
/// -14.6 against -7.9 degrees, which halves a liveness turn measured from it. The network is loaded on first
/// use. Thread safety: measure() is safe to call from several threads at once.
class GeometryMeter {
 public:
  /// `landmarker`: a registered landmarker name; empty: measure on the face's own landmarks.
  explicit GeometryMeter(std::string landmarker = defaults::kGeometryLandmarker,
                         std::string device = defaults::kDevice);
  ~GeometryMeter();
  GeometryMeter(const GeometryMeter&) = delete;
  GeometryMeter& operator=(const GeometryMeter&) = delete;
  /// The meter's landmarker for faces whose points come from `pipeline_landmarker`: empty (their own points)
  /// when it is the same net, which on the same box gives the same points: not run twice.
  static std::string landmarker_for(const std::string& wanted, const std::string& pipeline_landmarker) {
    return wanted == pipeline_landmarker ? std::string() : wanted;
  }
  /// The face must carry landmarks when the meter has no landmarker.
  FaceGeometry measure(const Image& rgb, const Face& face) const;
  /// The 68 points the measures are taken on (the meter's landmarker's, on the face's box).
  Landmarks68 points(const Image& rgb, const Face& face) const;
  const std::string& landmarker() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class QualityLevel { kGood, kFair, kPoor };
const char* to_string(QualityLevel level);

/// Thresholds: a measure past its `fair` bound makes the face at best fair, past its `poor` bound poor.
/// Defaults were set on the Debian libdlib19.1 example faces and face-api's demo photos (docs/quality.md):
/// every face of those photos that a person would accept for enrolment is good or fair.
struct QualityOptions {
  /// Side of the aligned grey chip on which sharpness and exposure are measured (size-normalised).
  int chip_size = 112;
  /// Sharpness: standard deviation of the Laplacian of the chip after its contrast is normalised (see
  /// docs/quality.md). Studio photos read 15-50; LFW's soft 250x250 JPEGs have a median of 8.7 (5% below
  /// 5.4); a Gaussian blur of sigma 2 takes face-api's sample1 (eyes 77 px apart) from 15 to 5.6.
  float sharpness_fair = 8.f, sharpness_poor = 4.5f;
  /// Exposure on the inner face (mean grey level of the chip's centre, 0-255). LFW: 2% below 70, none
  /// below 55; scaling a photo's pixels by 0.3 puts every test face below 50.
  float dark_fair = 70.f, dark_poor = 50.f;
  float bright_fair = 190.f, bright_poor = 215.f;
  /// Contrast: standard deviation of the grey levels of the inner face (LFW: 2% below 19).
  float contrast_fair = 20.f, contrast_poor = 12.f;
  /// Pose, absolute degrees (LFW: 10% of faces beyond 30 degrees of yaw, 2% beyond 43).
  float yaw_fair = 25.f, yaw_poor = 45.f;
  float pitch_fair = 20.f, pitch_poor = 35.f;
  float roll_fair = 15.f, roll_poor = 30.f;
  /// Face size: distance between the eye centres in image pixels (ISO/IEC 19794-5 asks for 60 for a
  /// token photo; LFW's faces have about 41; the embedders lose accuracy below about 25).
  float eye_distance_fair = 30.f, eye_distance_poor = 18.f;
  /// Eyes: the mean eye aspect ratio below this is "eyes closed" (poor for enrolment). Of 2,000 LFW faces
  /// (median 0.30) only two read below 0.19, both with the eyes shut or nearly (face-api's points).
  float eyes_closed_ear = 0.17f;
  /// The landmarker whose eye points measure that ratio, run on the face's box (GeometryMeter); empty: the
  /// face's own landmarks. The threshold belongs to face-api's net. (Pose is the face's own landmarks':
  /// with FaceMesh's, cfp-dev open-set FPIR 1.03% against 1.60% with face-api's; docs/results.md.)
  std::string eye_landmarker = defaults::kGeometryLandmarker;
  /// Border: the face counts as cut when the box of its 68 points, grown by this fraction of its size on
  /// each side, leaves the image by more than `border_cut_fraction` of its area. 0: an ID-style crop whose
  /// jaw and brows touch the frame is whole (a margin of 0.1 called every tightly cropped face "cut"); a face
  /// that really is cut has its hidden points extrapolated outside the image.
  float border_margin = 0.0f;
  float border_cut_fraction = 0.05f;
};

/// What one face's quality is.
struct FaceQuality {
  Box box;                 ///< the face's detection box
  float sharpness = 0;     ///< see QualityOptions::sharpness_fair
  float brightness = 0;    ///< mean grey level of the inner face, 0-255
  float contrast = 0;      ///< standard deviation of those grey levels
  bool too_dark = false, too_bright = false, low_contrast = false;
  HeadPose pose;
  float face_size = 0;     ///< the larger side of the box of the 68 points, pixels
  float eye_distance = 0;  ///< between the eye centres, pixels
  float eye_aspect_ratio = 0;
  bool eyes_open = true;
  float inside_fraction = 1;  ///< share of the (grown) landmark box inside the image
  bool cut_by_border = false;
  /// 0-1: the product of one factor per measure, each 1 inside its fair bound, falling linearly to 0.5 at its
  /// poor bound and to 0 beyond (a factor-based score, so it orders faces; the level is the decision).
  float score = 0;
  QualityLevel level = QualityLevel::kGood;
  std::vector<std::string> reasons;  ///< why the level is not good, e.g. "blurred (sharpness 6.1 < 8)"
};

/// Thread safety: assess() is const and safe to call from several threads at once.
class QualityAssessor {
 public:
  virtual ~QualityAssessor() = default;
  /// Quality of one face of `rgb` (the face must carry its 68 landmarks; Error(kInvalidArgument) if not).
  virtual FaceQuality assess(const Image& rgb, const Face& face) const = 0;
  virtual const QualityOptions& options() const = 0;
  virtual const std::string& name() const = 0;
};

/// "classic": the measures above, computed with OpenCV from the photo and the 68 landmarks; the eyes from the
/// eye landmarker's points (QualityOptions::eye_landmarker).
/// Throws Error(kNotFound) for an unknown name, Error(kInvalidArgument) for inconsistent options.
std::unique_ptr<QualityAssessor> create_quality_assessor(const std::string& name = defaults::kQualityAssessor,
                                                         const QualityOptions& options = {});

}  // namespace facekit
