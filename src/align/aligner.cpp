#include "facekit/aligner.hpp"

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"

namespace facekit {

AlignmentTemplate dlib68_template(int size, float padding) {
  // dlib's mean face (interpolation.h, get_face_chip_details), points 17-67 in [0,1] face units.
  static const double mx[] = {
      0.000213256, 0.0752622, 0.18113,  0.29077,  0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004,
      0.490127,    0.490127,  0.490127, 0.490127, 0.36688,  0.426036, 0.490127, 0.554217, 0.613373, 0.121737,
      0.187122,    0.265825,  0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751,
      0.719335,    0.254149,  0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
      0.490127,    0.423532,  0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127,
      0.42689};
  static const double my[] = {
      0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915, 0.106454,
      0.203352, 0.307009, 0.409805,  0.515625,  0.587326,  0.609345,  0.628106,  0.609345,  0.587326, 0.216423,
      0.178758, 0.179852, 0.231733,  0.245099,  0.244077,  0.231733,  0.179852,  0.178758,  0.216423, 0.244077,
      0.245099, 0.780233, 0.745405,  0.727388,  0.742578,  0.727388,  0.745405,  0.780233,  0.864805, 0.902192,
      0.909281, 0.902192, 0.864805,  0.784792,  0.778746,  0.785343,  0.778746,  0.784792,  0.824182, 0.831803,
      0.824182};
  AlignmentTemplate t;
  t.name = "dlib68";
  t.size = size;
  for (int i = 17; i < 68; ++i) {
    if ((55 <= i && i <= 59) || (65 <= i && i <= 67)) continue;  // lower lip: moves with expression
    if (i <= 26) continue;                                       // eyebrows: likewise
    t.landmark_indices.push_back(i);
    t.points.emplace_back(static_cast<float>((padding + mx[i - 17]) / (2 * padding + 1) * size),
                          static_cast<float>((padding + my[i - 17]) / (2 * padding + 1) * size));
  }
  return t;
}

AlignmentTemplate arcface5_template(int size, float padding) {
  static const float p[5][2] = {
      {38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f}, {41.5493f, 92.3655f}, {70.7299f, 92.2041f}};
  AlignmentTemplate t;
  t.name = "arcface5";
  t.size = size;
  // The 112 box is the face unit; padding adds that fraction of it on every side, as dlib's chips do.
  for (const auto& q : p)
    t.points.emplace_back((q[0] / 112.f + padding) / (1 + 2 * padding) * size,
                          (q[1] / 112.f + padding) / (1 + 2 * padding) * size);
  return t;
}

AlignmentTemplate make_template(const std::string& name, int size, float padding) {
  if (name == "dlib68") return dlib68_template(size, padding);
  if (name == "arcface5") return arcface5_template(size, padding);
  throw Error(ErrorCode::kInvalidArgument, "unknown alignment template '" + name + "'");
}

cv::Mat similarity_transform(const std::vector<cv::Point2f>& from, const std::vector<cv::Point2f>& to) {
  if (from.size() != to.size() || from.size() < 2)
    throw Error(ErrorCode::kInvalidArgument, "similarity_transform needs two equal lists of >= 2 points");
  const double n = static_cast<double>(from.size());
  double fx = 0, fy = 0, tx = 0, ty = 0;
  for (size_t i = 0; i < from.size(); ++i) fx += from[i].x, fy += from[i].y, tx += to[i].x, ty += to[i].y;
  fx /= n, fy /= n, tx /= n, ty /= n;
  // Closed-form least squares for [a -b; b a] x + t: no reflection can arise.
  double num_a = 0, num_b = 0, den = 0;
  for (size_t i = 0; i < from.size(); ++i) {
    const double u = from[i].x - fx, v = from[i].y - fy, p = to[i].x - tx, q = to[i].y - ty;
    num_a += u * p + v * q;
    num_b += u * q - v * p;
    den += u * u + v * v;
  }
  if (den <= 1e-12) throw Error(ErrorCode::kInvalidArgument, "similarity_transform: source points coincide");
  const double a = num_a / den, b = num_b / den;
  cv::Mat m = (cv::Mat_<double>(2, 3) << a, -b, tx - (a * fx - b * fy), b, a, ty - (b * fx + a * fy));
  return m;
}

namespace {
std::vector<cv::Point2f> pick_points(const Landmarks68& lm, const AlignmentTemplate& tpl) {
  std::vector<cv::Point2f> pts;
  if (tpl.landmark_indices.empty()) {
    const auto five = reduce_to_5(lm);
    pts.assign(five.begin(), five.end());
  } else {
    for (int i : tpl.landmark_indices) pts.push_back(lm.at(i));
  }
  return pts;
}
}  // namespace

cv::Mat alignment_matrix(const Landmarks68& landmarks, const AlignmentTemplate& tpl) {
  // Like dlib, fit chip -> image, then invert for the image -> chip direction.
  cv::Mat chip_to_img = similarity_transform(tpl.points, pick_points(landmarks, tpl));
  cv::Mat img_to_chip;
  cv::invertAffineTransform(chip_to_img, img_to_chip);
  return img_to_chip;
}

Image align_face(const Image& rgb, const Landmarks68& landmarks, const AlignmentTemplate& tpl) {
  if (rgb.empty()) throw Error(ErrorCode::kInvalidArgument, "align_face: empty image");
  cv::Mat m = alignment_matrix(landmarks, tpl);  // image -> chip
  const double scale = std::hypot(m.at<double>(0, 0), m.at<double>(1, 0));  // chip px per image px
  cv::Mat src = rgb;
  if (scale < 0.5) {
    // Shrink the face's neighbourhood with area averaging first, so the warp samples at about 1:1.
    cv::Mat inv;
    cv::invertAffineTransform(m, inv);
    std::vector<cv::Point2f> corners = {{0, 0}, {float(tpl.size), 0}, {0, float(tpl.size)}, {float(tpl.size), float(tpl.size)}};
    std::vector<cv::Point2f> img_corners;
    cv::transform(corners, img_corners, inv);
    cv::Rect roi = cv::boundingRect(img_corners) & cv::Rect(0, 0, rgb.cols, rgb.rows);
    if (roi.area() > 0) {
      const double f = scale;  // shrink factor
      cv::Mat small;
      cv::resize(rgb(roi), small, {}, f, f, cv::INTER_AREA);
      const double fx = static_cast<double>(small.cols) / roi.width, fy = static_cast<double>(small.rows) / roi.height;
      // chip = m * (roi.tl + small_pt / f)
      cv::Mat pre = (cv::Mat_<double>(3, 3) << 1 / fx, 0, roi.x, 0, 1 / fy, roi.y, 0, 0, 1);
      cv::Mat m3 = cv::Mat::eye(3, 3, CV_64F);
      m.copyTo(m3.rowRange(0, 2));
      cv::Mat full = m3 * pre;
      m = full.rowRange(0, 2).clone();
      src = small;
    }
  }
  Image chip;
  cv::warpAffine(src, chip, m, {tpl.size, tpl.size}, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  return chip;
}

}  // namespace facekit
