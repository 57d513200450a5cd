#pragma once
// Value types shared by every stage. Images are cv::Mat, 8-bit, 3 channels, **RGB** order (not OpenCV's BGR),
// because every model facekit ships was trained on RGB.
#include <array>
#include <optional>
#include <vector>

#include <opencv2/core.hpp>

namespace facekit {

using Image = cv::Mat;  // CV_8UC3, RGB

/// A box in image pixels: top-left corner plus size.
struct Box {
  float x = 0, y = 0, width = 0, height = 0;
  float area() const { return width > 0 && height > 0 ? width * height : 0.f; }
  cv::Point2f center() const { return {x + width / 2, y + height / 2}; }
};

float iou(const Box& a, const Box& b);
/// Intersection over the smaller box's area: 1 when one box lies inside the other, whatever their sizes.
float containment(const Box& a, const Box& b);

/// 68 points in the iBUG 300-W order (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67).
using Landmarks68 = std::array<cv::Point2f, 68>;

/// Five points: left eye centre, right eye centre, nose tip, left mouth corner, right mouth corner
/// ("left" = the subject's right, i.e. image left), the order ArcFace-style templates use.
using Landmarks5 = std::array<cv::Point2f, 5>;
Landmarks5 reduce_to_5(const Landmarks68& pts);

/// One detected face. `keypoints` holds whatever points the detector itself gives (none for SSD).
struct Face {
  Box box;
  float score = 0;
  std::vector<cv::Point2f> keypoints;
  std::optional<Landmarks68> landmarks;
};

/// An L2-normalised embedding.
using Embedding = std::vector<float>;

float l2_distance(const Embedding& a, const Embedding& b);

}  // namespace facekit
