#include "nn/elementwise.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace facekit::nn {
namespace {

__attribute__((always_inline)) inline float to_float(uint16_t v) {
  const uint32_t u = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even, as ATen's conversion does (finite values and infinities; a NaN may change payload).
__attribute__((always_inline)) inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Plain loops that GCC vectorises with AVX-512BW (masked 16-bit loads and stores); written without branches
// (max / min rather than a choice per element), which short rows (16 channels) and scalar remainders would pay
// for in mispredictions on random signs. The bf16 ones run only where the CPU has AVX-512BW (every CPU with
// native bf16 does) and otherwise report false.
#define FACEKIT_AVX512 __attribute__((target("avx512f,avx512bw")))

FACEKIT_AVX512 void relu_run(int16_t* p, int64_t n) {
  // ReLU on the bits: a bf16 with its sign bit set is a negative int16, so max with 0 is ReLU (-0 becomes +0).
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0 ? int16_t(0) : p[i];
}

FACEKIT_AVX512 void add_relu_run(uint16_t* p, const uint16_t* q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    p[i] = to_bf16(std::max(to_float(p[i]) + to_float(q[i]), 0.f));
  }
}

// PReLU of each row of c channels, after adding q's row where kAdd (the residual).
template <bool kAdd>
FACEKIT_AVX512 void prelu_run(uint16_t* p, const uint16_t* q, const float* a, int64_t rows, int64_t c) {
  for (int64_t r = 0; r < rows; ++r, p += c, q += kAdd ? c : 0)
    for (int64_t k = 0; k < c; ++k) {
      const float v = kAdd ? to_float(p[k]) + to_float(q[k]) : to_float(p[k]);
      p[k] = to_bf16(std::max(v, 0.f) + a[k] * std::min(v, 0.f));  // exact for v >= 0: the same bits back
    }
}

__attribute__((always_inline)) inline void add_prelu_f32(float* p, const float* q, const float* a, int64_t rows,
                                                          int64_t c) {
  for (int64_t r = 0; r < rows; ++r, p += c, q += c)
    for (int64_t k = 0; k < c; ++k) {
      const float v = p[k] + q[k];
      p[k] = std::max(v, 0.f) + a[k] * std::min(v, 0.f);
    }
}
// float vectorises with any x86-64 instruction set: a plain build for CPUs without AVX-512.
FACEKIT_AVX512 void add_prelu_run_f32_avx512(float* p, const float* q, const float* a, int64_t rows, int64_t c) {
  add_prelu_f32(p, q, a, rows, c);
}
void add_prelu_run_f32(float* p, const float* q, const float* a, int64_t rows, int64_t c) { add_prelu_f32(p, q, a, rows, c); }

bool has_avx512() {
  static const bool avx512 = __builtin_cpu_supports("avx512bw");
  return avx512;
}

bool dense_bf16(const at::Tensor& t) {
  return has_avx512() && t.defined() && t.is_cpu() && t.scalar_type() == at::kBFloat16 && t.is_non_overlapping_and_dense();
}

}  // namespace

bool relu_bf16_(at::Tensor& y) {
  if (!dense_bf16(y)) return false;
  relu_run(reinterpret_cast<int16_t*>(y.data_ptr()), y.numel());
  return true;
}

bool add_relu_bf16_(at::Tensor& y, const at::Tensor& other) {
  if (!dense_bf16(y) || !dense_bf16(other) || y.sizes() != other.sizes() || y.strides() != other.strides()) return false;
  add_relu_run(reinterpret_cast<uint16_t*>(y.data_ptr()), reinterpret_cast<const uint16_t*>(other.data_ptr()), y.numel());
  return true;
}

bool prelu_bf16_(at::Tensor& y, const at::Tensor& alpha) {
  if (!dense_bf16(y) || y.dim() != 4 || !y.is_contiguous(at::MemoryFormat::ChannelsLast) || alpha.numel() != y.size(1))
    return false;
  const at::Tensor a = alpha.to(at::kFloat).contiguous();
  prelu_run<false>(reinterpret_cast<uint16_t*>(y.data_ptr()), nullptr, a.data_ptr<float>(), y.numel() / y.size(1),
                   y.size(1));
  return true;
}

bool add_prelu_(at::Tensor& y, const at::Tensor& res, const at::Tensor& alpha) {
  const auto dt = y.scalar_type();
  if (!y.is_cpu() || !res.is_cpu() || (dt != at::kFloat && (dt != at::kBFloat16 || !has_avx512())) ||
      res.scalar_type() != dt || y.dim() != 4 || !y.is_contiguous(at::MemoryFormat::ChannelsLast) ||
      y.sizes() != res.sizes() || y.strides() != res.strides() || alpha.numel() != y.size(1))
    return false;
  const at::Tensor a = alpha.to(at::kFloat).contiguous();
  const int64_t c = y.size(1), rows = y.numel() / c;
  if (dt == at::kFloat)
    (has_avx512() ? add_prelu_run_f32_avx512 : add_prelu_run_f32)(y.data_ptr<float>(), res.data_ptr<float>(), a.data_ptr<float>(), rows, c);
  else
    prelu_run<true>(reinterpret_cast<uint16_t*>(y.data_ptr()), reinterpret_cast<const uint16_t*>(res.data_ptr()),
                    a.data_ptr<float>(), rows, c);
  return true;
}

}  // namespace facekit::nn
