#pragma once
// A fused kernel for act(pointwise1x1(depthwise3x3(x)) + x) on NHWC float maps, act ReLU (BlazeFace's blocks)
// or PReLU (FaceMesh's).
#include <cstdint>

#include <ATen/ATen.h>

namespace facekit::graph::detail {

/// Whether this CPU (AVX2 + FMA, asked at run time) and this channel count (8-96, a multiple of 8 the kernel
/// is built for) can run the fused kernel.
bool separable_block_supported(int64_t channels);

/// x: [N, H, W, C] float; wd: [9, C] depthwise taps (3x3, stride 1, zero padding 1); bd: [C] or undefined;
/// wp: [C, C] pointwise weights, input channel major; bp: [C]; alpha: [C] for PReLU, undefined for ReLU.
/// Returns act(pw(dw(x) + bd) + bp + x).
at::Tensor separable_block(const at::Tensor& x, const at::Tensor& wd, const at::Tensor& bd, const at::Tensor& wp,
                           const at::Tensor& bp, const at::Tensor& alpha = at::Tensor());

}  // namespace facekit::graph::detail
