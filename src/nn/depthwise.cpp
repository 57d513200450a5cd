#include "nn/depthwise.hpp"

#include "nn/cpu_features.hpp"

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace facekit::nn {
namespace {

// The kernels are built for AVX-512 whatever the build's baseline (lambdas included, hence a pragma rather
// than attributes) and run only where the CPU has it.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
#define FACEKIT_AVX512

FACEKIT_AVX512 inline __m512 load16(const uint16_t* p, __mmask16 m) {
  const __m256i v = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}
FACEKIT_AVX512 inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }

// Round to nearest even, as ATen's and oneDNN's conversions do (finite values).
FACEKIT_AVX512 inline void store16(uint16_t* p, __m512 v, __mmask16 m) {
  __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  u = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
}
FACEKIT_AVX512 inline void store16(float* p, __m512 v, __mmask16 m) { _mm512_mask_storeu_ps(p, m, v); }

struct Shape {
  int64_t n, h, w, c, oh, ow, stride, pad_t, pad_l;
};

// One output row, one block of 16 channels, every output column. Columns whose three taps all lie inside the
// row (nearly all of them) take the branch-free loop; the one or two at each edge skip the taps outside.
template <DwAct kAct, typename T>
FACEKIT_AVX512 void row_block(const T* const rows[3], T* out, const float* taps, const float* bias,
                              const float* alpha, const Shape& s, int64_t cb, __mmask16 m) {
  const int64_t c = s.c, st = s.stride;
  __m512 w[9];
  for (int k = 0; k < 9; ++k) w[k] = _mm512_maskz_loadu_ps(m, taps + k * c + cb);
  const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + cb) : _mm512_setzero_ps();
  const __m512 a = kAct == DwAct::kPrelu ? _mm512_maskz_loadu_ps(m, alpha + cb) : _mm512_setzero_ps();
  const __m512 zero = _mm512_setzero_ps();
  auto finish = [&](__m512 v, int64_t ox) {
    if (kAct == DwAct::kRelu) v = _mm512_max_ps(v, zero);
    if (kAct == DwAct::kPrelu)
      v = _mm512_add_ps(_mm512_max_ps(v, zero), _mm512_mul_ps(a, _mm512_min_ps(v, zero)));
    store16(out + ox * c + cb, v, m);
  };
  // Interior columns: ix = ox * st - pad_l .. + 2 all inside [0, w).
  const int64_t first = std::min(s.ow, (s.pad_l + st - 1) / st);
  int64_t last = s.w - 3 + s.pad_l;  // ox * st <= last
  last = last < 0 ? first : std::max(first, std::min(s.ow, last / st + 1));
  auto edge = [&](int64_t ox) {
    __m512 acc = b;
    for (int ky = 0; ky < 3; ++ky) {
      if (!rows[ky]) continue;
      for (int kx = 0; kx < 3; ++kx) {
        const int64_t ix = ox * st - s.pad_l + kx;
        if (ix < 0 || ix >= s.w) continue;
        acc = _mm512_fmadd_ps(w[ky * 3 + kx], load16(rows[ky] + ix * c + cb, m), acc);
      }
    }
    finish(acc, ox);
  };
  for (int64_t ox = 0; ox < first; ++ox) edge(ox);
  // Four output columns at a time: their taps share input columns (6 loads per row at stride 1 instead of
  // 12), and four sums in flight hide the multiply-add latency.
  constexpr int kB = 4;
  const T* r[3] = {rows[0] ? rows[0] + cb : nullptr, rows[1] ? rows[1] + cb : nullptr,
                   rows[2] ? rows[2] + cb : nullptr};
  int64_t ox = first;
  if (st == 1) {
    for (; ox + kB <= last; ox += kB) {
      const int64_t o = (ox - s.pad_l) * c;
      __m512 acc[kB];
      for (int j = 0; j < kB; ++j) acc[j] = b;
      for (int ky = 0; ky < 3; ++ky) {
        if (!r[ky]) continue;
        __m512 in[kB + 2];
        for (int j = 0; j < kB + 2; ++j) in[j] = load16(r[ky] + o + j * c, m);
        for (int j = 0; j < kB; ++j)
          for (int kx = 0; kx < 3; ++kx) acc[j] = _mm512_fmadd_ps(w[ky * 3 + kx], in[j + kx], acc[j]);
      }
      for (int j = 0; j < kB; ++j) finish(acc[j], ox + j);
    }
  } else if (st == 2) {
    for (; ox + kB <= last; ox += kB) {
      const int64_t o = (ox * 2 - s.pad_l) * c;
      __m512 acc[kB];
      for (int j = 0; j < kB; ++j) acc[j] = b;
      for (int ky = 0; ky < 3; ++ky) {
        if (!r[ky]) continue;
        __m512 in[2 * kB + 1];
        for (int j = 0; j < 2 * kB + 1; ++j) in[j] = load16(r[ky] + o + j * c, m);
        for (int j = 0; j < kB; ++j)
          for (int kx = 0; kx < 3; ++kx) acc[j] = _mm512_fmadd_ps(w[ky * 3 + kx], in[2 * j + kx], acc[j]);
      }
      for (int j = 0; j < kB; ++j) finish(acc[j], ox + j);
    }
  }
  for (; ox < last; ++ox) {
    const int64_t o = (ox * st - s.pad_l) * c;
    __m512 a0 = b, a1 = zero, a2 = zero;
    for (int ky = 0; ky < 3; ++ky) {
      if (!r[ky]) continue;
      a0 = _mm512_fmadd_ps(w[ky * 3], load16(r[ky] + o, m), a0);
      a1 = _mm512_fmadd_ps(w[ky * 3 + 1], load16(r[ky] + o + c, m), a1);
      a2 = _mm512_fmadd_ps(w[ky * 3 + 2], load16(r[ky] + o + 2 * c, m), a2);
    }
    finish(_mm512_add_ps(_mm512_add_ps(a0, a1), a2), ox);
  }
  for (int64_t ox = last; ox < s.ow; ++ox) edge(ox);
}

template <DwAct kAct, typename T>
FACEKIT_AVX512 void run(const T* x, T* y, const float* taps, const float* bias, const float* alpha,
                        const Shape& s) {
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      const T* rows[3];
      for (int ky = 0; ky < 3; ++ky) {
        const int64_t iy = oy * s.stride - s.pad_t + ky;
        rows[ky] = iy >= 0 && iy < s.h ? x + ((n * s.h + iy) * s.w) * s.c : nullptr;
      }
      T* out = y + ((n * s.oh + oy) * s.ow) * s.c;
      for (int64_t cb = 0; cb < s.c; cb += 16) {
        const __mmask16 m = s.c - cb >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (s.c - cb)) - 1);
        row_block<kAct, T>(rows, out, taps, bias, alpha, s, cb, m);
      }
    }
}

#pragma GCC pop_options

bool float_vector(const at::Tensor& t, int64_t c) {
  return t.defined() && t.is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == c;
}

}  // namespace

bool depthwise3x3_supported() { return has_avx512bw_vl(); }

at::Tensor depthwise3x3(const at::Tensor& x, const at::Tensor& taps, const at::Tensor& bias, DwAct act,
                        const at::Tensor& alpha, int64_t stride, int64_t pad_t, int64_t pad_l, int64_t out_h,
                        int64_t out_w) {
  const auto dt = x.scalar_type();
  if (!depthwise3x3_supported() || !x.is_cpu() || (dt != at::kBFloat16 && dt != at::kFloat) || x.dim() != 4 ||
      !x.is_contiguous())
    return {};
  const int64_t c = x.size(3);
  if (!float_vector(taps, 9 * c) || (bias.defined() && !float_vector(bias, c)) ||
      (act == DwAct::kPrelu && !float_vector(alpha, c)) || stride < 1 || pad_t < 0 || pad_l < 0 ||
      out_h < 1 || out_w < 1)
    return {};
  const Shape s{x.size(0), x.size(1), x.size(2), c, out_h, out_w, stride, pad_t, pad_l};
  at::Tensor y = at::empty({s.n, out_h, out_w, c}, x.options());
  const float* b = bias.defined() ? bias.data_ptr<float>() : nullptr;
  const float* a = act == DwAct::kPrelu ? alpha.data_ptr<float>() : nullptr;
  const float* tp = taps.data_ptr<float>();
  auto go = [&](auto* in, auto* out) {
    switch (act) {
      case DwAct::kNone:
        run<DwAct::kNone>(in, out, tp, b, a, s);
        break;
      case DwAct::kRelu:
        run<DwAct::kRelu>(in, out, tp, b, a, s);
        break;
      case DwAct::kPrelu:
        run<DwAct::kPrelu>(in, out, tp, b, a, s);
        break;
    }
  };
  if (dt == at::kFloat)
    go(static_cast<const float*>(x.data_ptr()), static_cast<float*>(y.data_ptr()));
  else
    go(static_cast<const uint16_t*>(x.data_ptr()), static_cast<uint16_t*>(y.data_ptr()));
  return y;
}

}  // namespace facekit::nn
