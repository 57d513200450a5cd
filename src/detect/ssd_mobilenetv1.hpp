#pragma once
// face-api's SSD MobileNetV1 face detector on ATen (internal; exposed for the parity tests).
#include <ATen/ATen.h>

#include "facekit/model.hpp"
#include "model/weights.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {

class SsdMobilenetV1Net {
 public:
  SsdMobilenetV1Net(const WeightMap& w, const at::Device& device);
  struct Output {
    at::Tensor boxes;   ///< [N, A, 4] (ymin, xmin, ymax, xmax), as fractions of the input's height and width
    at::Tensor scores;  ///< [N, A] face probability
  };
  /// x: [N, 3, H, W] normalised to -1..1. Trained at 512x512 (A = 5118); other sizes work because the
  /// network is convolutional and the anchors are regenerated for the grid each size gives (anchors()).
  Output forward(const at::Tensor& x) const;
  const at::Device& device() const { return device_; }

  /// Anchors (ymin, xmin, ymax, xmax; fractions of the input) for an input of h x w: the stored 512x512
  /// anchors' per-layer shapes, kept at the same size in pixels, centred on each cell of the layer's grid.
  at::Tensor anchors(int64_t h, int64_t w, const std::vector<std::pair<int64_t, int64_t>>& grids) const;
  /// The anchors the weights ship (Output/extra_dim), [5118, 4].
  const at::Tensor& stored_anchors() const { return stored_anchors_; }

 private:
  struct DwPw {
    nn::Conv2d dw, pw;
  };
  nn::Conv2d conv0_;
  std::vector<DwPw> blocks_;           // MobileNet conv_1..conv_13
  std::vector<nn::Conv2d> extra_;      // prediction conv_0..conv_7
  std::vector<nn::Conv2d> box_pred_;   // 6 box encoders
  std::vector<nn::Conv2d> class_pred_; // 6 class predictors
  at::Tensor stored_anchors_;          // [5118, 4] (ymin, xmin, ymax, xmax) for 512x512
  std::vector<at::Tensor> anchor_px_;  // per layer: [k, 2] anchor (height, width) in input pixels
  at::Device device_;
};

}  // namespace facekit::detail
