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
/// y = max(y + other, 0) in place; both bf16 CPU tensors of the same sizes and strides, dense.
bool add_relu_bf16_(at::Tensor& y, const at::Tensor& other);
/// y = y > 0 ? y : alpha[c] * y in place, y [N, C, H, W] bf16 in channels-last memory, alpha [C] (any float type).
bool prelu_bf16_(at::Tensor& y, const at::Tensor& alpha);

/// y = PReLU(y + res) with alpha [C], in place; y and res [N, C, H, W] float or bf16 (the same), channels-last
/// memory with the same strides.
bool add_prelu_(at::Tensor& y, const at::Tensor& res, const at::Tensor& alpha);

}  // namespace facekit::nn
