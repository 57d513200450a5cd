#pragma once
// Face detection: every face in an image, as boxes with scores (and keypoints where the model gives them).
#include <memory>
#include <string>
#include <vector>

#include "facekit/types.hpp"

namespace facekit {

struct DetectorOptions {
  float min_score = 0.5f;     ///< faces scoring below this are dropped
  float nms_iou = 0.5f;       ///< boxes overlapping a better one by more than this IoU are dropped
  int max_faces = 100;        ///< at most this many faces, best first
  /// Longest side of the network input in pixels (a multiple of 32). The SSD was trained at 512 (face-api's
  /// size); 416 takes about half the time on a 640x480 photo and found the same faces on the test photos
  /// (bench/, docs/results.md). Smaller is faster (cost ~ area) and misses more small faces.
  int input_size = 416;
  /// Pad the photo to a square before resizing, exactly as face-api does (same boxes as face-api, up to
  /// 1.8x the work on a 16:9 photo). Off: each side is only rounded up to a multiple of 32.
  bool square_input = false;
  /// SSD misses faces that fill most of the frame (they are larger than any of its anchors). When a pass finds
  /// no face, the image is centred on a canvas this many times larger and searched again, for each factor in
  /// turn until a face is found; empty disables it.
  std::vector<float> zoom_out_retries = {2.0f, 3.0f};
  std::string device = "cpu"; ///< "cpu" or "cuda[:N]"
};

/// Thread safety: detect() is const and safe to call from several threads at once.
class Detector {
 public:
  virtual ~Detector() = default;
  /// Faces in `rgb`, best score first, boxes in image pixels (clipped to the image).
  std::vector<Face> detect(const Image& rgb) const { return detect(rgb, options()); }
  /// The same with other options for this call (the device option is ignored).
  virtual std::vector<Face> detect(const Image& rgb, const DetectorOptions& options) const = 0;
  virtual const DetectorOptions& options() const = 0;
  virtual const std::string& name() const = 0;
};

/// Builds a detector by model name ("ssd_mobilenetv1"). Throws Error(kNotFound) for unknown names and
/// Error(kModelMissing / kModelCorrupt) when its files are not set up.
std::unique_ptr<Detector> create_detector(const std::string& name = "ssd_mobilenetv1",
                                          const DetectorOptions& options = {});

/// Greedy non-maximum suppression over faces sorted by descending score; keeps at most max_keep.
std::vector<Face> non_max_suppression(std::vector<Face> faces, float iou_threshold, int max_keep);

}  // namespace facekit
