// One pass for a separable residual block: act(pointwise(depthwise3x3(x)) + x), NHWC float, act ReLU or PReLU.
//
// BlazeFace spends most of its time in such blocks on 24-channel maps of 128x128 and 64x64. Run as three ops
// (oneDNN's depthwise, oneDNN's 1x1, the add + relu), each streams the whole map through memory: a 128x128x24
// map is 1.5 MB, larger than a core's L2, and each op runs at ~15-20 GMAC/s. Here each output row is made from
// three input rows held in a small ring, so the map is read once and written once and the work is FMA-bound.
#include "graph/separable_block.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <ATen/Parallel.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FACEKIT_SEPARABLE_AVX2 1
#endif

namespace facekit::graph::detail {

#ifdef FACEKIT_SEPARABLE_AVX2
namespace {

struct Weights {
  const float* wd;  // [9][C]: depthwise taps, row-major 3x3
  const float* bd;  // [C] or nullptr
  const float* wp;  // [C][C]: input channel major
  const float* bp;  // [C]
  const float* alpha;  // [C] PReLU slopes, or nullptr for ReLU
};

// Q output pixels starting at column x of one row. rows[k] are the input rows y-1, y, y+1, zero-padded by one
// pixel on each side (so column x of the image is at x + 1). NV = C / 8.
template <int NV, int Q>
__attribute__((target("avx2,fma"))) inline void pixels(const float* const rows[3], const float* resid, float* out,
                                                        int x, const Weights& w, float* dw) {
  constexpr int C = NV * 8;
  // Depthwise: Q * NV independent sums (one serial chain of 9 FMAs each would wait on FMA latency).
  __m256 d[Q][NV];
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) d[q][v] = w.bd ? _mm256_loadu_ps(w.bd + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) {
    const float* in = rows[t / 3] + (x + t % 3) * C;
    for (int v = 0; v < NV; ++v) {
      const __m256 wv = _mm256_loadu_ps(w.wd + t * C + 8 * v);
      for (int q = 0; q < Q; ++q) d[q][v] = _mm256_fmadd_ps(_mm256_loadu_ps(in + q * C + 8 * v), wv, d[q][v]);
    }
  }
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(dw + q * C + 8 * v, d[q][v]);
  // Pointwise, with the bias and the residual as the starting values.
  __m256 acc[Q][NV];
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v)
      acc[q][v] = _mm256_add_ps(_mm256_loadu_ps(w.bp + 8 * v), _mm256_loadu_ps(resid + (x + q) * C + 8 * v));
  for (int c = 0; c < C; ++c) {
    __m256 wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = _mm256_loadu_ps(w.wp + c * C + 8 * v);
    for (int q = 0; q < Q; ++q) {
      const __m256 d = _mm256_broadcast_ss(dw + q * C + c);
      for (int v = 0; v < NV; ++v) acc[q][v] = _mm256_fmadd_ps(d, wv[v], acc[q][v]);
    }
  }
  const __m256 zero = _mm256_setzero_ps();
  if (w.alpha) {
    for (int v = 0; v < NV; ++v) {
      const __m256 a = _mm256_loadu_ps(w.alpha + 8 * v);
      for (int q = 0; q < Q; ++q)
        _mm256_storeu_ps(out + (x + q) * C + 8 * v,
                         _mm256_fmadd_ps(a, _mm256_min_ps(acc[q][v], zero), _mm256_max_ps(acc[q][v], zero)));
    }
    return;
  }
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(out + (x + q) * C + 8 * v, _mm256_max_ps(acc[q][v], zero));
}

// Rows [y0, y1) of one image (H x W x C, contiguous).
template <int NV>
__attribute__((target("avx2,fma"))) void rows_of_image(const float* in, float* out, int H, int W, int y0, int y1,
                                                        const Weights& w) {
  constexpr int C = NV * 8;
  // Enough pixels per step that the 1x1's accumulators (Q * NV of 16 registers) hide the FMA latency.
  constexpr int Q = NV >= 12 ? 1 : NV >= 6 ? 2 : 4;
  const size_t row = static_cast<size_t>(W + 2) * C;
  std::vector<float> ring(3 * row), dw(Q * C);
  const auto load = [&](float* dst, int y) {
    std::memset(dst, 0, row * sizeof(float));
    if (y >= 0 && y < H) std::memcpy(dst + C, in + static_cast<size_t>(y) * W * C, sizeof(float) * W * C);
  };
  float* r[3] = {ring.data(), ring.data() + row, ring.data() + 2 * row};
  load(r[0], y0 - 1), load(r[1], y0), load(r[2], y0 + 1);
  for (int y = y0; y < y1; ++y) {
    if (y > y0) {
      std::rotate(r, r + 1, r + 3);
      load(r[2], y + 1);
    }
    const float* const rows[3] = {r[0], r[1], r[2]};
    const float* resid = in + static_cast<size_t>(y) * W * C;
    float* o = out + static_cast<size_t>(y) * W * C;
    int x = 0;
    for (; x + Q <= W; x += Q) pixels<NV, Q>(rows, resid, o, x, w, dw.data());
    for (; x < W; ++x) pixels<NV, 1>(rows, resid, o, x, w, dw.data());
  }
}

using RowsFn = void (*)(const float*, float*, int, int, int, int, const Weights&);

RowsFn rows_fn(int64_t channels) {
  switch (channels) {
    case 8: return rows_of_image<1>;
    case 16: return rows_of_image<2>;
    case 24: return rows_of_image<3>;
    case 32: return rows_of_image<4>;
    case 48: return rows_of_image<6>;
    case 64: return rows_of_image<8>;
    case 96: return rows_of_image<12>;
    default: return nullptr;
  }
}

}  // namespace

bool separable_block_supported(int64_t channels) {
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cpu && rows_fn(channels) != nullptr;
}

at::Tensor separable_block(const at::Tensor& x_in, const at::Tensor& wd, const at::Tensor& bd, const at::Tensor& wp,
                           const at::Tensor& bp, const at::Tensor& alpha) {
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), h = x.size(1), wdt = x.size(2), c = x.size(3);
  const RowsFn fn = rows_fn(c);
  at::Tensor out = at::empty_like(x);
  const Weights w{wd.data_ptr<float>(), bd.defined() ? bd.data_ptr<float>() : nullptr, wp.data_ptr<float>(),
                  bp.data_ptr<float>(), alpha.defined() ? alpha.data_ptr<float>() : nullptr};
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  // Bands of rows over all images; a band re-reads the row above its first (a few percent of the work).
  const int64_t rows = n * h, grain = 16;
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {
      const int64_t img = r / h, y0 = r % h, y1 = std::min<int64_t>(h, y0 + (end - r));
      const size_t offset = static_cast<size_t>(img) * h * wdt * c;
      fn(in + offset, o + offset, static_cast<int>(h), static_cast<int>(wdt), static_cast<int>(y0),
         static_cast<int>(y1), w);
      r += y1 - y0;
    }
  });
  return out;
}

#else

bool separable_block_supported(int64_t) { return false; }
at::Tensor separable_block(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&) {
  throw std::logic_error("separable_block: not built for this CPU");
}

#endif

}  // namespace facekit::graph::detail
