#pragma once
// TensorFlow semantics on ATen: weight layouts and SAME padding (TF pads the extra pixel at the bottom/right,
// PyTorch can only pad symmetrically), plus turning OpenCV images into NCHW float batches.
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>

namespace facekit::nn {

enum class Padding { kSame, kValid };

/// While alive, the calling thread's float arithmetic flushes denormal results and inputs to zero (x86
/// MXCSR FTZ and DAZ; nothing elsewhere), then the previous mode is restored. A network whose activations
/// decay into the denormal range (faceplugin's MobileFaceNet on some inputs) otherwise runs up to 10x slower
/// (docs/results.md); values under 1.2e-38 change no embedding. FACEKIT_KEEP_DENORMALS=1 turns it off.
class FlushDenormals {
 public:
  FlushDenormals();
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
  bool active_ = false;
};

/// TF conv filter [kh, kw, in, out] -> torch [out, in, kh, kw].
at::Tensor conv_weight_from_tf(const at::Tensor& w);
/// TF depthwise filter [kh, kw, in, 1] -> torch [in, 1, kh, kw].
at::Tensor depthwise_weight_from_tf(const at::Tensor& w);

/// A 2-D convolution (groups = 1 or depthwise) with TF padding semantics. Weights in torch layout.
struct Conv2d {
  at::Tensor weight, bias;  // bias may be undefined
  int stride = 1;
  Padding padding = Padding::kSame;
  int groups = 1;

  at::Tensor operator()(const at::Tensor& x) const;
  /// Moves weights to a device and to the memory layout that runs fastest there.
  void to(const at::Device& device);
};

/// TF's SAME padding for one spatial dimension: (before, after).
std::pair<int64_t, int64_t> same_padding(int64_t in, int64_t kernel, int64_t stride);

/// Stacks RGB uint8 images of one size into an NCHW float tensor (channels-last memory) as
/// (pixel - mean) * scale.
at::Tensor images_to_batch(const std::vector<cv::Mat>& rgb, const std::array<float, 3>& mean, float scale,
                           const at::Device& device);

at::Device parse_device(const std::string& device);

}  // namespace facekit::nn
