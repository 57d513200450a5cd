// Head pose and eye aspect ratio from the 68 landmarks, and GeometryMeter, which measures them with the
// landmarker the rules were set on: shared by the quality assessor and active liveness.
#include <algorithm>
#include <cmath>
#include <mutex>

#include <opencv2/calib3d.hpp>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/quality.hpp"

namespace facekit {
namespace {

constexpr double kDeg = 180.0 / CV_PI;

// A generic head in the camera's axes (x right, y down, z away from the camera), in units of about 0.2 mm,
// nose tip at the origin: the six-point model widely used with solvePnP (eye outer corners, nose tip, chin,
// mouth corners), with the y and z axes flipped to the camera's so that a frontal face has R = identity.
const int kModelIndex[6] = {30, 8, 36, 45, 48, 54};
const cv::Point3d kModel[6] = {{0, 0, 0},          {0, 330, 65},      {-225, -170, 135},
                               {225, -170, 135},   {-150, 150, 125},  {150, 150, 125}};

}  // namespace

HeadPose estimate_head_pose(const Landmarks68& pts, cv::Size image_size) {
  if (image_size.width <= 0 || image_size.height <= 0)
    throw Error(ErrorCode::kInvalidArgument, "head pose needs the image size");
  std::vector<cv::Point3d> model(std::begin(kModel), std::end(kModel));
  std::vector<cv::Point2d> image;
  for (int i : kModelIndex) image.emplace_back(pts[static_cast<size_t>(i)].x, pts[static_cast<size_t>(i)].y);
  const double f = std::max(image_size.width, image_size.height);
  const cv::Matx33d k(f, 0, image_size.width / 2.0, 0, f, image_size.height / 2.0, 0, 0, 1);
  // EPnP gives a closed-form start, the iterative (Levenberg-Marquardt) refinement the least-squares pose;
  // with only six points the iterative solver alone sometimes starts from a flipped DLT solution.
  cv::Mat rvec, tvec;
  cv::solvePnP(model, image, k, cv::noArray(), rvec, tvec, false, cv::SOLVEPNP_EPNP);
  cv::solvePnP(model, image, k, cv::noArray(), rvec, tvec, true, cv::SOLVEPNP_ITERATIVE);
  cv::Matx33d r;
  cv::Rodrigues(rvec, r);
  // Where the face points: the model's "towards the camera" axis (0,0,-1) in camera coordinates.
  const cv::Vec3d d = r * cv::Vec3d(0, 0, -1);
  HeadPose pose;
  pose.yaw = static_cast<float>(std::atan2(d[0], -d[2]) * kDeg);
  pose.pitch = static_cast<float>(std::atan2(-d[1], std::hypot(d[0], d[2])) * kDeg);
  // The image->template similarity turns the face upright: its angle is minus the roll.
  static const AlignmentTemplate tpl = dlib68_template(150, 0.25f);
  const cv::Mat m = alignment_matrix(pts, tpl);
  pose.roll = static_cast<float>(-std::atan2(m.at<double>(1, 0), m.at<double>(0, 0)) * kDeg);
  return pose;
}

float eye_aspect_ratio(const Landmarks68& pts, bool image_left) {
  const size_t b = image_left ? 36 : 42;
  auto d = [&](size_t i, size_t j) { return static_cast<float>(cv::norm(pts[b + i] - pts[b + j])); };
  const float width = d(0, 3);
  return width > 0 ? (d(1, 5) + d(2, 4)) / (2.f * width) : 0.f;
}

float eye_aspect_ratio(const Landmarks68& pts) {
  return 0.5f * (eye_aspect_ratio(pts, true) + eye_aspect_ratio(pts, false));
}

struct GeometryMeter::Impl {
  std::string name, device;
  mutable std::once_flag once;
  mutable std::unique_ptr<Landmarker> net;
};

GeometryMeter::GeometryMeter(std::string landmarker, std::string device) : impl_(std::make_unique<Impl>()) {
  impl_->name = std::move(landmarker);
  impl_->device = std::move(device);
}
GeometryMeter::~GeometryMeter() = default;

const std::string& GeometryMeter::landmarker() const { return impl_->name; }

Landmarks68 GeometryMeter::points(const Image& rgb, const Face& face) const {
  if (impl_->name.empty()) {
    if (!face.landmarks) throw Error(ErrorCode::kInvalidArgument, "face geometry: the face has no landmarks");
    return *face.landmarks;
  }
  // An unknown name throws here, at first use, and again at the next call (call_once retries).
  std::call_once(impl_->once, [&] { impl_->net = create_landmarker(impl_->name, {impl_->device}); });
  return impl_->net->landmarks(rgb, {face.box}).at(0);
}

FaceGeometry GeometryMeter::measure(const Image& rgb, const Face& face) const {
  const Landmarks68 pts = points(rgb, face);
  return {estimate_head_pose(pts, rgb.size()), eye_aspect_ratio(pts)};
}

}  // namespace facekit
