#pragma once
// A 3x3 depthwise convolution for channels-last maps, float or bf16. oneDNN's bf16 depthwise in libtorch 1.13
// runs slower than its float one (2.7 against 2.2 ms on a 16x128x56x56 map), a stride-2 layer with
// TensorFlow's asymmetric SAME padding first needs a padded copy of its input (BlazeFace's, MobileFaceNet's),
// and PReLU after it is one more pass: here the padding is read, not copied, the sums are float, and bias and
// activation are applied before the one rounding to bf16.
#include <ATen/ATen.h>

#include <cstdint>

namespace facekit::nn {

enum class DwAct { kNone, kRelu, kPrelu };

/// Whether this CPU can run depthwise3x3 (AVX-512BW and VL, asked at run time).
bool depthwise3x3_supported();

/// x: [N, H, W, C] float or bf16, contiguous (NHWC). taps: [9, C] float (row-major 3x3, tap-major); bias: [C]
/// float or undefined; alpha: [C] float for kPrelu. Zero padding pad_t / pad_l before the first row / column,
/// as much after as the output size needs. Returns [N, out_h, out_w, C] of x's type, contiguous, or an
/// undefined tensor where the kernel does not apply (another dtype or layout, a GPU, a CPU without
/// AVX-512BW).
at::Tensor depthwise3x3(const at::Tensor& x, const at::Tensor& taps, const at::Tensor& bias, DwAct act,
                        const at::Tensor& alpha, int64_t stride, int64_t pad_t, int64_t pad_l, int64_t out_h,
                        int64_t out_w);

}  // namespace facekit::nn
