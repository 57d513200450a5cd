// Geometry and distance helpers for the shared value types.
#include "facekit/types.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "facekit/error.hpp"

namespace facekit {

namespace {
float intersection_area(const Box& a, const Box& b) {
  const float overlap_w = std::min(a.x + a.width, b.x + b.width) - std::max(a.x, b.x);
  const float overlap_h = std::min(a.y + a.height, b.y + b.height) - std::max(a.y, b.y);
  return overlap_w > 0 && overlap_h > 0 ? overlap_w * overlap_h : 0.f;
}
}  // namespace

float iou(const Box& a, const Box& b) {
  const float inter = intersection_area(a, b);
  const float uni = a.area() + b.area() - inter;
  return uni > 0 ? inter / uni : 0.f;
}

float containment(const Box& a, const Box& b) {
  const float inter = intersection_area(a, b);
  const float smaller = std::min(a.area(), b.area());
  return smaller > 0 ? inter / smaller : 0.f;
}

namespace {

cv::Point2f mean_of(const Landmarks68& pts, int first, int last) {
  cv::Point2f sum(0, 0);
  for (int i = first; i <= last; ++i) sum += pts[i];
  return sum / static_cast<float>(last - first + 1);
}

}  // namespace

Landmarks5 reduce_to_5(const Landmarks68& pts) {
  // In the iBUG order 36-41 is the eye on the image left, 42-47 the one on the image right.
  return {mean_of(pts, 36, 41), mean_of(pts, 42, 47), pts[30], pts[48], pts[54]};
}

float l2_distance(const Embedding& a, const Embedding& b) {
  if (a.size() != b.size()) {
    throw Error(ErrorCode::kInvalidArgument, "l2_distance: embeddings differ in size (" +
                                                 std::to_string(a.size()) + " vs " +
                                                 std::to_string(b.size()) + ")");
  }
  double sum = 0;  // double so long embeddings do not lose precision
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = double{a[i]} - b[i];
    sum += d * d;
  }
  return static_cast<float>(std::sqrt(sum));
}

}  // namespace facekit
