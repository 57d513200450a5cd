#pragma once
// The dlib face-recognition ResNet (29 conv layers, 128-D) from face-api's weights, on ATen (internal;
// exposed for the parity tests and for fine-tuning).
#include <ATen/ATen.h>

#include "model/tensor_file.hpp"
#include "model/weights.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {

class DlibResNet {
 public:
  /// From face-api's weights (TF layout, conv and affine "scale" layers separate).
  DlibResNet(const WeightMap& w, const at::Device& device);
  /// From folded tensors as tensors() returns them (a fine-tuned model), optionally with a projection "proj".
  static DlibResNet from_folded(const TensorMap& folded, const at::Device& device);

  /// x: [N, 3, 150, 150] normalised. Returns [N, 128], not normalised.
  at::Tensor forward(const at::Tensor& x) const { return head(blocks(stem(x), 0, num_blocks())); }

  // The same forward in pieces, so a fine-tune can run the frozen part without gradients.
  at::Tensor stem(const at::Tensor& x) const;
  at::Tensor blocks(at::Tensor x, int begin, int end) const;
  at::Tensor head(const at::Tensor& x) const;  ///< mean over H, W; fc; projection when there is one
  int num_blocks() const { return static_cast<int>(blocks_.size()); }

  /// The live weight tensors by name ("stem.w", "b3.conv1.b", "fc", "proj", ...): the same tensors the
  /// network runs with, so a trainer may set requires_grad on them and update them in place.
  TensorMap tensors() const;
  /// Converts every weight to `dtype` in place (bf16 or fp16 inference: forward() then wants input of that type);
  /// 4-D filters stay channels-last.
  void set_dtype(at::ScalarType dtype);
  /// Adds a 128x128 projection after fc, initialised to the identity (the embedding is unchanged until trained).
  void add_projection();
  const at::Device& device() const { return device_; }

 private:
  explicit DlibResNet(const at::Device& device) : device_(device) {}
  struct Residual {
    nn::Conv2d conv1, conv2;  // conv + bias with dlib's affine "scale" layer folded in
    bool down = false;
  };
  nn::Conv2d stem_;
  std::vector<Residual> blocks_;
  at::Tensor fc_, proj_;
  at::Device device_;
};

}  // namespace facekit::detail
