// One pass for a separable residual block: act(pointwise(depthwise3x3(x)) + x), NHWC float, act ReLU or PReLU.
//
// BlazeFace spends most of its time in such blocks on 24-channel maps of 128x128 and 64x64. Run as three ops
// (oneDNN's depthwise, oneDNN's 1x1, the add + relu), each streams the whole map through memory: a 128x128x24
// map is 1.5 MB, larger than a core's L2, and each op runs at ~15-20 GMAC/s. Here each output row is made from
// three input rows held in a small ring, so the map is read once and written once and the work is FMA-bound.
#include "graph/separable_block.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <ATen/Parallel.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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

// Q output pixels starting at column x of one row. rows[k] are the input rows y-1, y, y+1; the taps of output
// column x + q are their columns ix + q .. ix + q + 2. NV = C / 8.
template <int NV, int Q>
__attribute__((target("avx2,fma"))) inline void pixels(const float* const rows[3], int ix, const float* resid,
                                                        float* out, int x, const Weights& w, float* dw) {
  constexpr int C = NV * 8;
  // Depthwise: Q * NV independent sums (one serial chain of 9 FMAs each would wait on FMA latency).
  __m256 d[Q][NV];
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) d[q][v] = w.bd ? _mm256_loadu_ps(w.bd + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) {
    const float* in = rows[t / 3] + (ix + t % 3) * C;
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

// Output column x from the 3x3 neighbourhood of column x copied into `patch` (zero outside the row's W
// pixels): for the pixels at the ends of a row.
template <int NV>
__attribute__((target("avx2,fma"))) void edge_pixel(const float* const rows[3], const float* resid, float* out, int x,
                                                     int W, const Weights& w, float* patch, float* dw) {
  constexpr int C = NV * 8;
  for (int k = 0; k < 3; ++k)
    for (int j = 0; j < 3; ++j) {
      float* dst = patch + (k * 3 + j) * C;
      const int xx = x - 1 + j;
      if (xx >= 0 && xx < W)
        std::memcpy(dst, rows[k] + static_cast<size_t>(xx) * C, sizeof(float) * C);
      else
        std::memset(dst, 0, sizeof(float) * C);
    }
  const float* const p[3] = {patch, patch + 3 * C, patch + 6 * C};
  pixels<NV, 1>(p, 0, resid, out, x, w, dw);
}

// Rows [y0, y1) of one image (H x W x C, contiguous). Interior pixels read the input rows in place; the rows
// above and below the image are a zero row, and the first and last pixel of a row read a 3x3 patch with the
// zero column. (Copying every row into a zero-padded ring instead cost 5% of `bench lfw`'s time in memmove.)
template <int NV>
__attribute__((target("avx2,fma"))) void rows_of_image(const float* in, float* out, int H, int W, int y0, int y1,
                                                        const Weights& w) {
  constexpr int C = NV * 8;
  // Enough pixels per step that the 1x1's accumulators (Q * NV of 16 registers) hide the FMA latency.
  constexpr int Q = NV >= 12 ? 1 : NV >= 6 ? 2 : 4;
  std::vector<float> zero(static_cast<size_t>(W) * C, 0.f), patch(9 * C), dw(Q * C);
  const auto row = [&](int y) { return y >= 0 && y < H ? in + static_cast<size_t>(y) * W * C : zero.data(); };
  for (int y = y0; y < y1; ++y) {
    const float* const rows[3] = {row(y - 1), row(y), row(y + 1)};
    const float* resid = in + static_cast<size_t>(y) * W * C;
    float* o = out + static_cast<size_t>(y) * W * C;
    edge_pixel<NV>(rows, resid, o, 0, W, w, patch.data(), dw.data());
    if (W == 1) continue;
    int x = 1;
    for (; x + Q <= W - 1; x += Q) pixels<NV, Q>(rows, x - 1, resid, o, x, w, dw.data());
    for (; x < W - 1; ++x) pixels<NV, 1>(rows, x - 1, resid, o, x, w, dw.data());
    edge_pixel<NV>(rows, resid, o, W - 1, W, w, patch.data(), dw.data());
  }
}

// AVX-512: 16 channels a vector, for the channel counts where it measured faster than the AVX2 kernel in the
// graph (FACEKIT_PROFILE_NODES=1 bench/profile_graph.cpp, one thread): 32, 48, 64 and 96 channels 1.3-1.8x
// (BlazeFace's 32x32x48 blocks 0.55 -> 0.42 ms, 16x16x96 0.70 -> 0.39; FaceMesh's 48x48x32 0.21 -> 0.12).
// 16 channels ran slower (0.26 against 0.23 ms), and 24 (BlazeFace's 128x128 blocks) no faster even with two
// pixels packed into three vectors (1.25x in a standalone loop, none in the graph): those stay on AVX2.

// Q pixels starting at output column x; their taps start at input column ix of rows[]. NV = C / 16.
template <int NV, int Q>
__attribute__((target("avx512f"))) inline void pixels512(const float* const rows[3], int ix, const float* resid,
                                                         float* out, int x, const Weights& w, float* dw) {
  constexpr int C = NV * 16;
  __m512 d[Q][NV];
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) d[q][v] = w.bd ? _mm512_loadu_ps(w.bd + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) {
    const float* in = rows[t / 3] + (ix + t % 3) * C;
    for (int v = 0; v < NV; ++v) {
      const __m512 wv = _mm512_loadu_ps(w.wd + t * C + 16 * v);
      for (int q = 0; q < Q; ++q) d[q][v] = _mm512_fmadd_ps(_mm512_loadu_ps(in + q * C + 16 * v), wv, d[q][v]);
    }
  }
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(dw + q * C + 16 * v, d[q][v]);
  __m512 acc[Q][NV];
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v)
      acc[q][v] = _mm512_add_ps(_mm512_loadu_ps(w.bp + 16 * v), _mm512_loadu_ps(resid + (x + q) * C + 16 * v));
  for (int c = 0; c < C; ++c) {
    __m512 wv[NV];
    for (int v = 0; v < NV; ++v) wv[v] = _mm512_loadu_ps(w.wp + c * C + 16 * v);
    for (int q = 0; q < Q; ++q) {
      const __m512 b = _mm512_set1_ps(dw[q * C + c]);
      for (int v = 0; v < NV; ++v) acc[q][v] = _mm512_fmadd_ps(b, wv[v], acc[q][v]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int q = 0; q < Q; ++q)
    for (int v = 0; v < NV; ++v) {
      __m512 a = acc[q][v];
      a = w.alpha ? _mm512_fmadd_ps(_mm512_loadu_ps(w.alpha + 16 * v), _mm512_min_ps(a, zero), _mm512_max_ps(a, zero))
                  : _mm512_max_ps(a, zero);
      _mm512_storeu_ps(out + (x + q) * C + 16 * v, a);
    }
}

// Columns [x, end) in blocks of Q pixels, then of Q / 2, ... 1 (a lone pixel has its multiply-adds in one
// chain, so leftovers in blocks of one cost several times as much per pixel); returns end.
template <int NV, int Q>
__attribute__((target("avx512f"))) int interior512(const float* const rows[3], const float* resid, float* o, int x,
                                                   int end, const Weights& w, float* dw) {
  for (; x + Q <= end; x += Q) pixels512<NV, Q>(rows, x - 1, resid, o, x, w, dw);
  if constexpr (Q > 1) x = interior512<NV, Q / 2>(rows, resid, o, x, end, w, dw);
  return x;
}

// As rows_of_image, the interior on AVX-512.
template <int NV, int Q>
__attribute__((target("avx512f,avx2,fma"))) void rows_of_image512(const float* in, float* out, int H, int W, int y0,
                                                                  int y1, const Weights& w) {
  constexpr int C = NV * 16;
  std::vector<float> zero(static_cast<size_t>(W) * C, 0.f), patch(9 * C), dw(Q * C);
  const auto row = [&](int y) { return y >= 0 && y < H ? in + static_cast<size_t>(y) * W * C : zero.data(); };
  for (int y = y0; y < y1; ++y) {
    const float* const rows[3] = {row(y - 1), row(y), row(y + 1)};
    const float* resid = in + static_cast<size_t>(y) * W * C;
    float* o = out + static_cast<size_t>(y) * W * C;
    edge_pixel<C / 8>(rows, resid, o, 0, W, w, patch.data(), dw.data());
    if (W == 1) continue;
    interior512<NV, Q>(rows, resid, o, 1, W - 1, w, dw.data());
    edge_pixel<C / 8>(rows, resid, o, W - 1, W, w, patch.data(), dw.data());
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

// The AVX-512 kernel for a channel count, or null; Q by measurement.
RowsFn rows512_fn(int64_t channels) {
  switch (channels) {
    case 32: return rows_of_image512<2, 4>;
    case 48: return rows_of_image512<3, 2>;
    case 64: return rows_of_image512<4, 2>;
    case 96: return rows_of_image512<6, 1>;
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
  // FACEKIT_SEPARABLE_AVX2=1: the AVX2 kernel for every channel count (A/B benchmarks).
  static const bool avx512 = __builtin_cpu_supports("avx512f") && !std::getenv("FACEKIT_SEPARABLE_AVX2");
  const at::Tensor x = x_in.contiguous();
  const int64_t n = x.size(0), h = x.size(1), wdt = x.size(2), c = x.size(3);
  const RowsFn fn = avx512 && rows512_fn(c) ? rows512_fn(c) : rows_fn(c);
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
