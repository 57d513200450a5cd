#include "nn/elementwise.hpp"

#include "nn/cpu_features.hpp"

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

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
#define FACEKIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

FACEKIT_AVX512 void relu_run(int16_t* p, int64_t n) {
  // ReLU on the bits: a bf16 with its sign bit set is a negative int16, so max with 0 is ReLU (-0 becomes +0).
  for (int64_t i = 0; i < n; ++i) p[i] = p[i] < 0 ? int16_t(0) : p[i];
}

// p += q, then ReLU where kRelu.
template <bool kRelu>
FACEKIT_AVX512 void add_run(uint16_t* p, const uint16_t* q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = to_float(p[i]) + to_float(q[i]);
    p[i] = to_bf16(kRelu ? std::max(v, 0.f) : v);
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

// Max pooling of float NHWC rows of c channels: the first tap copied, the others folded in with max.
__attribute__((always_inline)) inline void max_pool_nhwc(const float* x, float* y, int64_t n, int64_t h, int64_t w,
                                                         int64_t c, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                                         int64_t oh, int64_t ow, bool relu) {
  const auto max = [](float a, float b) { return a < b ? b : a; };
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        float* o = y + ((b * oh + i) * ow + j) * c;
        const float* first = x + ((b * h + i * sh) * w + j * sw) * c;
        std::memcpy(o, first, sizeof(float) * c);
        for (int64_t u = 0; u < kh; ++u)
          for (int64_t v = (u == 0); v < kw; ++v) {
            const float* r = first + (u * w + v) * c;
            for (int64_t k = 0; k < c; ++k) o[k] = max(o[k], r[k]);
          }
        if (relu)
          for (int64_t k = 0; k < c; ++k) o[k] = max(o[k], 0.f);
      }
}
#define FACEKIT_POOL_ARGS \
  int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t oh, int64_t ow, bool relu
#define FACEKIT_POOL_PASS n, h, w, c, kh, kw, sh, sw, oh, ow, relu
FACEKIT_AVX512 inline __m512 load_bf16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
// bf16: 16 channels at a time in float registers over all taps, written back by truncation (exact: the maximum
// is one of the inputs). A plain loop like the float one's ran 0.72 ms on the ResNet's 16x32x72x72 map; this 0.1.
FACEKIT_AVX512 void max_pool_bf16(const uint16_t* x, uint16_t* y, FACEKIT_POOL_ARGS) {
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        uint16_t* o = y + ((b * oh + i) * ow + j) * c;
        const uint16_t* first = x + ((b * h + i * sh) * w + j * sw) * c;
        for (int64_t k = 0; k < c; k += 16) {
          const __mmask16 m = c - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (c - k)) - 1);
          __m512 v = load_bf16(first + k, m);
          for (int64_t u = 0; u < kh; ++u)
            for (int64_t t = 0; t < kw; ++t) v = _mm512_max_ps(v, load_bf16(first + (u * w + t) * c + k, m));
          if (relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
          _mm256_mask_storeu_epi16(o + k, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16)));
        }
      }
}
FACEKIT_AVX512 void max_pool_f32_avx512(const float* x, float* y, FACEKIT_POOL_ARGS) {
  max_pool_nhwc(x, y, FACEKIT_POOL_PASS);
}
void max_pool_f32(const float* x, float* y, FACEKIT_POOL_ARGS) { max_pool_nhwc(x, y, FACEKIT_POOL_PASS); }
#undef FACEKIT_POOL_ARGS
#undef FACEKIT_POOL_PASS

bool dense_bf16(const at::Tensor& t) {
  return has_avx512bw_vl() && t.defined() && t.is_cpu() && t.scalar_type() == at::kBFloat16 &&
         t.is_non_overlapping_and_dense();
}

template <bool kRelu>
bool add_bf16(at::Tensor& y, const at::Tensor& other) {
  if (!dense_bf16(y) || !dense_bf16(other) || y.sizes() != other.sizes() || y.strides() != other.strides()) return false;
  add_run<kRelu>(reinterpret_cast<uint16_t*>(y.data_ptr()), reinterpret_cast<const uint16_t*>(other.data_ptr()),
                 y.numel());
  return true;
}

}  // namespace

bool relu_bf16_(at::Tensor& y) {
  if (!dense_bf16(y)) return false;
  relu_run(reinterpret_cast<int16_t*>(y.data_ptr()), y.numel());
  return true;
}

bool add_bf16_(at::Tensor& y, const at::Tensor& other) { return add_bf16<false>(y, other); }
bool add_relu_bf16_(at::Tensor& y, const at::Tensor& other) { return add_bf16<true>(y, other); }

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
  if (!y.is_cpu() || !res.is_cpu() || (dt != at::kFloat && (dt != at::kBFloat16 || !has_avx512bw_vl())) ||
      res.scalar_type() != dt || y.dim() != 4 || !y.is_contiguous(at::MemoryFormat::ChannelsLast) ||
      y.sizes() != res.sizes() || y.strides() != res.strides() || alpha.numel() != y.size(1))
    return false;
  const at::Tensor a = alpha.to(at::kFloat).contiguous();
  const int64_t c = y.size(1), rows = y.numel() / c;
  if (dt == at::kFloat)
    (has_avx512bw_vl() ? add_prelu_run_f32_avx512 : add_prelu_run_f32)(
        y.data_ptr<float>(), res.data_ptr<float>(), a.data_ptr<float>(), rows, c);
  else
    prelu_run<true>(reinterpret_cast<uint16_t*>(y.data_ptr()), reinterpret_cast<const uint16_t*>(res.data_ptr()),
                    a.data_ptr<float>(), rows, c);
  return true;
}

at::Tensor max_pool_channels_last(const at::Tensor& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw, bool relu) {
  const auto dt = x.scalar_type();
  if (!x.defined() || !x.is_cpu() || x.dim() != 4 ||
      (dt != at::kFloat && (dt != at::kBFloat16 || !has_avx512bw_vl())) ||
      !x.is_contiguous(at::MemoryFormat::ChannelsLast) || kh < 1 || kw < 1 || sh < 1 || sw < 1 ||
      x.size(2) < kh || x.size(3) < kw)
    return {};
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  const int64_t oh = (h - kh) / sh + 1, ow = (w - kw) / sw + 1;
  at::Tensor y = at::empty({n, c, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (dt == at::kFloat)
    (has_avx512bw_vl() ? max_pool_f32_avx512 : max_pool_f32)(x.data_ptr<float>(), y.data_ptr<float>(), n, h,
                                                             w, c, kh, kw, sh, sw, oh, ow, relu);
  else
    max_pool_bf16(static_cast<const uint16_t*>(x.data_ptr()), static_cast<uint16_t*>(y.data_ptr()), n, h, w, c, kh,
                  kw, sh, sw, oh, ow, relu);
  return y;
}

}  // namespace facekit::nn
