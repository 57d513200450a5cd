#pragma once
// Synthetic videos from real photos for the active-liveness tests: a still photo held for N frames, a head
// turn (the face's middle pushed sideways by a smooth warp, as the nose and eyes move towards the side a head
// turns to), and photos of one person placed onto one another's face (a real closed-eye or turned photo
// between open, frontal ones). These are edits of photos, not recordings of a live person: they exercise
// the tracking, signals and challenge logic on what the real detector and landmarker make of them.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/types.hpp"

namespace fk_test {

/// Moves photo `from` so that its face (landmarks `from_pts`) lies where `to_pts` are, on a canvas of
/// `size`: a least-squares similarity over the 68 points, so that photos of one person taken apart can
/// follow one another as frames.
inline facekit::Image place_like(const facekit::Image& from, const facekit::Landmarks68& from_pts,
                                 const facekit::Landmarks68& to_pts, cv::Size size) {
  const std::vector<cv::Point2f> a(from_pts.begin(), from_pts.end()), b(to_pts.begin(), to_pts.end());
  facekit::Image out;
  cv::warpAffine(from, out, facekit::similarity_transform(a, b), size, cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return out;
}

/// Pushes the middle of the face sideways by `shift` pixels (positive: towards the image's right), falling
/// off to nothing at the sides of the head and above and below it: the nose, eyes and mouth move across
/// while the outline stays, as they do when a head turns (positive: the subject turns to their left).
inline facekit::Image turn_head(const facekit::Image& rgb, const facekit::Landmarks68& pts, float shift) {
  float x0 = pts[0].x, x1 = pts[0].x, y0 = pts[0].y, y1 = pts[0].y;
  for (const auto& p : pts) x0 = std::min(x0, p.x), x1 = std::max(x1, p.x), y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
  const float cx = 0.5f * (pts[27].x + pts[30].x), r = 0.6f * (x1 - x0), fh = y1 - y0;
  const float top = y0 - 0.5f * fh, bottom = y1 + 0.2f * fh, ramp = 0.25f * fh;
  cv::Mat mx(rgb.size(), CV_32F), my(rgb.size(), CV_32F);
  for (int y = 0; y < rgb.rows; ++y) {
    float vy = 1.f;
    if (y < top) vy = std::max(0.f, 1.f - (top - y) / ramp);
    if (y > bottom) vy = std::max(0.f, 1.f - (y - bottom) / ramp);
    for (int x = 0; x < rgb.cols; ++x) {
      const float u = (x - cx) / r;
      const float wx = std::abs(u) < 1 ? (1 - u * u) : 0.f;
      mx.at<float>(y, x) = x - shift * wx * vy;
      my.at<float>(y, x) = static_cast<float>(y);
    }
  }
  facekit::Image out;
  cv::remap(rgb, out, mx, my, cv::INTER_LINEAR, cv::BORDER_REFLECT);
  return out;
}

/// Writes frames (RGB) as a video, MJPG by default (in .avi); throws when OpenCV cannot write one.
inline void write_video(const std::filesystem::path& path, const std::vector<facekit::Image>& frames, double fps,
                        int fourcc = cv::VideoWriter::fourcc('M', 'J', 'P', 'G')) {
  cv::VideoWriter w(path.string(), fourcc, fps, frames.at(0).size());
  if (!w.isOpened()) throw facekit::Error(facekit::ErrorCode::kInternal, "cannot write " + path.string());
  for (const auto& f : frames) {
    cv::Mat bgr;
    cv::cvtColor(f, bgr, cv::COLOR_RGB2BGR);
    w.write(bgr);
  }
}

}  // namespace fk_test
