#pragma once
// The dlib face-recognition ResNet (29 conv layers, 128-D) from face-api's weights, on ATen (internal;
// exposed for the parity tests and for fine-tuning).
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <utility>
#include <vector>

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

  /// Sees the activations an int8 version quantises, in order: the input, the stem's conv+ReLU, then per block
  /// conv1+ReLU, conv2, and the block's output (2 + 3 x 14 = DlibResNetInt8::kActivations).
  using Observer = std::function<void(const at::Tensor&)>;
  // The same forward in pieces, so a fine-tune can run the frozen part without gradients.
  at::Tensor stem(const at::Tensor& x, const Observer* observe = nullptr) const;
  at::Tensor blocks(at::Tensor x, int begin, int end, const Observer* observe = nullptr) const;
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
  bool has_projection() const { return proj_.defined(); }

 private:
  friend class DlibResNetInt8;
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

/// The dlib ResNet in int8 on the CPU (oneDNN's quantised kernels: VNNI where the CPU has it): filters int8 per
/// output channel, activations uint8 per tensor with ranges measured once on calibration chips (the fp32
/// network's min/max over LFW View 1 training chips, share/int8/dlib_resnet.json), the residual add quantised,
/// the pooling and fc in fp32. On an Ice Lake core 2.8x fp32's speed at batch 1, 2.3x at 16; embeddings within
/// cosine 0.9987 of fp32's (docs/results.md). Thread safety: forward() may run on several threads at once
/// (`bench lfw --workers 2` does).
class DlibResNetInt8 {
 public:
  static constexpr int kActivations = 44;
  /// `ranges`: (min, max) of each activation DlibResNet::Observer sees, in its order. Throws
  /// Error(kInvalidArgument) for a wrong count, a network with a projection or off the CPU, and
  /// when libtorch lacks oneDNN's quantised engine (available()).
  DlibResNetInt8(const DlibResNet& net, const std::vector<std::pair<float, float>>& ranges);
  ~DlibResNetInt8();
  /// x: [N, 3, 150, 150] normalised float. Returns [N, 128] float, not normalised.
  at::Tensor forward(const at::Tensor& x) const;
  static bool available();

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

/// Reads the int8 ranges file (share/int8/dlib_resnet.json: {"ranges": [[min, max] x 44], ...}).
std::vector<std::pair<float, float>> read_int8_ranges(const std::string& path);
/// Where the shipped ranges of embedder `model` are: share_dir()/int8/<model>.json (defined in embedder.cpp,
/// outside what bench/gpu/build.sh compiles).
std::string int8_ranges_path(const std::string& model);

}  // namespace facekit::detail
