#pragma once
// Element-wise kernels for the activations between convolutions. libtorch 1.13 runs ReLU and PReLU on bf16 CPU
// tensors without vectorising them: on a 16x128x56x56 map, 3.0 ms each against 0.9 ms for a copy, as long as
// the oneDNN convolution before them (MobileFaceNet, docs/results.md); and a residual add followed by PReLU is
// two passes over the map in any precision. Each returns false, having done nothing, where it does not apply
// (another dtype or layout, a GPU, a CPU without AVX-512BW): the caller then uses ATen's ops.
#include <ATen/ATen.h>

namespace facekit::nn {

/// y = max(y, 0) in place; any dense bf16 CPU tensor.
bool relu_bf16_(at::Tensor& y);
/// y += other in place; both bf16 CPU tensors of the same sizes and strides, dense (ATen's bf16 add is a third of
/// the speed: 0.28 ms on MobileFaceNet's 16x128x14x14 map).
bool add_bf16_(at::Tensor& y, const at::Tensor& other);
/// y = max(y + other, 0) in place; both bf16 CPU tensors of the same sizes and strides, dense.
bool add_relu_bf16_(at::Tensor& y, const at::Tensor& other);
/// y = y > 0 ? y : alpha[c] * y in place, y [N, C, H, W] bf16 in channels-last memory, alpha [C] (any float type).
bool prelu_bf16_(at::Tensor& y, const at::Tensor& alpha);

/// y = PReLU(y + res) with alpha [C], in place; y and res [N, C, H, W] float or bf16 (the same), channels-last
/// memory with the same strides.
bool add_prelu_(at::Tensor& y, const at::Tensor& res, const at::Tensor& alpha);

/// Max pooling without padding of x [N, C, H, W] (float, or bf16 where the CPU has AVX-512BW) in channels-last
/// memory: [N, C, (H - kh) / sh + 1, (W - kw) / sw + 1], channels-last; undefined where it does not apply.
/// `relu`: ReLU of the result too (the same as pooling ReLU's output).
/// ATen's CPU max_pool2d also writes the index of each maximum, and in bf16 does not vectorise: on the dlib
/// ResNet's 16x32x72x72 bf16 map (3x3, stride 2) 1.9 ms against 0.37 here, on BlazeFace's 128x128x24 float
/// one (2x2) 0.19 against 0.034.
at::Tensor max_pool_channels_last(const at::Tensor& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                  bool relu = false);

}  // namespace facekit::nn
