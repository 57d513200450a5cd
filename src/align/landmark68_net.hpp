#pragma once
// face-api's 68-point landmark net on ATen (internal; exposed for the parity tests).
#include <ATen/ATen.h>

#include "model/weights.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {

class Landmark68Net {
 public:
  Landmark68Net(const WeightMap& w, const at::Device& device);
  /// x: [N, 3, 112, 112] normalised ((pixel - mean) / 255). Returns [N, 136]: (x, y) pairs in units of the
  /// input square.
  at::Tensor forward(const at::Tensor& x) const;
  const at::Device& device() const { return device_; }

 private:
  struct SepConv {  // depthwise 3x3 (no bias) -> pointwise 1x1 + bias
    nn::Conv2d dw, pw;
    at::Tensor operator()(const at::Tensor& x) const { return pw(dw(x)); }
  };
  struct DenseBlock {
    nn::Conv2d first;  // dense0 only: a plain 3x3 conv
    SepConv conv0, conv1, conv2, conv3;
    bool is_first = false;
  };
  std::vector<DenseBlock> blocks_;
  at::Tensor fc_w_, fc_b_;
  at::Device device_;
};

}  // namespace facekit::detail
