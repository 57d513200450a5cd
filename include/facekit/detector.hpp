#pragma once
// Face detection: every face in an image, as boxes with scores (and keypoints where the model gives them).
#include <memory>
#include <string>
#include <vector>

#include "facekit/types.hpp"
#include "facekit/registry.hpp"

namespace facekit {

struct DetectorOptions {
  float min_score = 0.5f;     ///< faces scoring below this are dropped
  float nms_iou = 0.5f;       ///< boxes overlapping a better one by more than this IoU are dropped
  /// Boxes lying this much (fraction of the smaller box) inside a better one are dropped too (NmsOptions).
  float nms_containment = 0.6f;
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
  /// BlazeFace: when a face's box reaches this fraction of the photo's longer side (or no face is found), the
  /// photo is searched again on a canvas twice its size, where frame-filling faces fit the anchors; 0 disables.
  float large_face_fraction = 0.4f;
  /// BlazeFace: the input size of that second look (longer side of the 2x canvas, a multiple of 32 from 64;
  /// 0 = the model's own, 256). It only has to find faces of at least large_face_fraction of the photo, which
  /// stay large on the canvas: at 160, (160/256)^2 = 0.39 of the first pass's work. Against 256 (docs/results.md):
  /// LFW View 2 unchanged (99.17%), cfp-dev FP 84.80% vs 82.71%, the same faces in every tight-crop variant,
  /// rank-1 on outline crops 1.1 points lower; 192 framed an ID-style crop too loosely, 128 lost LFW accuracy.
  int large_face_input = 160;
  /// BlazeFace: a weaker box overlapping such a large face by more than this fraction of its own area is a
  /// fragment of it, and is dropped.
  float large_face_containment = 0.3f;
  std::string device = defaults::kDevice; ///< "cpu" or "cuda[:N]"
};

/// Thread safety: detect() is const and safe to call from several threads at once.
class Detector {
 public:
  virtual ~Detector() = default;
  /// Faces in `rgb`, best score first, boxes in image pixels (clipped to the image).
  std::vector<Face> detect(const Image& rgb) const { return detect(rgb, options()); }
  /// The same with other options for this call (the device option is ignored).
  virtual std::vector<Face> detect(const Image& rgb, const DetectorOptions& options) const = 0;
  /// detect() for each of several photos, in fewer network calls where the model can batch them (BlazeFace:
  /// photos whose inputs share a shape, such as all photos of one size or aspect). The default calls detect()
  /// for each.
  std::vector<std::vector<Face>> detect_batch(const std::vector<Image>& images) const { return detect_batch(images, options()); }
  virtual std::vector<std::vector<Face>> detect_batch(const std::vector<Image>& images, const DetectorOptions& options) const;
  virtual const DetectorOptions& options() const = 0;
  virtual const std::string& name() const = 0;
};

/// Builds a detector by model name ("ssd_mobilenetv1"). Throws Error(kNotFound) for unknown names and
/// Error(kModelMissing / kModelCorrupt) when its files are not set up.
std::unique_ptr<Detector> create_detector(const std::string& name = defaults::kDetector,
                                          const DetectorOptions& options = {});

struct NmsOptions {
  float iou = 0.5f;  ///< a box overlapping a kept one by more than this IoU is the same face
  /// Also the same face when this fraction of the smaller box lies inside the other (a box on one eye or on
  /// the lower half of a face, inside the whole face's box); 0 disables. IoU alone misses these: a small box
  /// inside a large one has a small IoU.
  float containment = 0.f;
  /// Merge each kept face with the boxes it suppresses (score-weighted mean of boxes and keypoints, as
  /// MediaPipe does), which steadies the box; false keeps the best box as it is.
  bool weighted = false;
  int max_keep = 100;
};

/// Whether two boxes count as the same face under `o`.
bool boxes_clash(const Box& a, const Box& b, const NmsOptions& o);

/// Greedy non-maximum suppression, best score first: each kept face (merged with the boxes overlapping it when
/// `weighted`) suppresses every remaining box that clashes with it, and is itself dropped when, after merging,
/// it clashes with a face kept earlier. Keeps at most max_keep.
std::vector<Face> non_max_suppression(std::vector<Face> faces, const NmsOptions& o);
/// Plain greedy NMS by IoU.
std::vector<Face> non_max_suppression(std::vector<Face> faces, float iou_threshold, int max_keep);

}  // namespace facekit
