#pragma once
// What the CPU running us can do, asked once: the hand-written kernels are compiled for AVX-512 whatever the
// build's baseline and run only where this says so.

namespace facekit::nn {

/// AVX-512 with byte/word and vector-length extensions (AVX-512BW + VL): what the depthwise, pooling and
/// element-wise kernels need.
inline bool has_avx512bw_vl() {
  static const bool ok = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return ok;
}

}  // namespace facekit::nn
