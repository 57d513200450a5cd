#pragma once
// Alignment: a least-squares similarity transform (rotation, uniform scale, translation) from a face's
// landmarks to an embedder's canonical template, and the warped chip.
#include <string>
#include <vector>

#include "facekit/types.hpp"

namespace facekit {

/// Where the template points sit in the output chip.
struct AlignmentTemplate {
  std::string name;                   ///< "dlib68", "arcface5"
  int size = 150;                     ///< chip side, pixels
  std::vector<int> landmark_indices;  ///< which of the 68 points are matched (empty: the 5-point reduction)
  std::vector<cv::Point2f> points;    ///< their positions in the chip, pixels
};

/// dlib's get_face_chip_details(shape, size, padding) for 68-point shapes: 33 of the 68 points (brows and
/// lower lip left out) against dlib's mean face.
AlignmentTemplate dlib68_template(int size = 150, float padding = 0.25f);
/// The ArcFace/InsightFace 112x112 five-point template, scaled to `size`, with `padding` (a fraction of the
/// 112 box) added on each side.
AlignmentTemplate arcface5_template(int size = 112, float padding = 0.f);
/// By name: "dlib68" or "arcface5".
AlignmentTemplate make_template(const std::string& name, int size, float padding);

/// Least-squares similarity (Umeyama, no reflection) taking `from` onto `to`; a 2x3 CV_64F matrix.
cv::Mat similarity_transform(const std::vector<cv::Point2f>& from, const std::vector<cv::Point2f>& to);

/// The image->chip transform for these landmarks (2x3, CV_64F).
cv::Mat alignment_matrix(const Landmarks68& landmarks, const AlignmentTemplate& tpl);

/// The aligned chip (RGB, tpl.size square). Large faces are first shrunk with area averaging so the bilinear
/// warp does not alias.
Image align_face(const Image& rgb, const Landmarks68& landmarks, const AlignmentTemplate& tpl);

}  // namespace facekit
