#pragma once
// The dlib face-recognition ResNet (29 conv layers, 128-D) from face-api's weights, on ATen (internal;
// exposed for the parity tests).
#include <ATen/ATen.h>

#include "model/weights.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {

class DlibResNet {
 public:
  DlibResNet(const WeightMap& w, const at::Device& device);
  /// x: [N, 3, 150, 150] normalised. Returns [N, 128], not normalised.
  at::Tensor forward(const at::Tensor& x) const;
  const at::Device& device() const { return device_; }

 private:
  struct Residual {
    nn::Conv2d conv1, conv2;  // conv + bias with dlib's affine "scale" layer folded in
    bool down = false;
  };
  nn::Conv2d stem_;
  std::vector<Residual> blocks_;
  at::Tensor fc_;
  at::Device device_;
};

}  // namespace facekit::detail
