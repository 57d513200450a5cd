// facekit's own CPU kernels against the ATen / oneDNN ops they replace, on the shapes of the bundled models
// (issue 18): the 3x3 depthwise convolution (nn/depthwise.hpp), max pooling (nn/elementwise.hpp) and the
// fused separable block (graph/separable_block.hpp). One thread.
//
//   build/bench/facekit_bench_kernels --benchmark_repetitions=5 --benchmark_report_aggregates_only
//   FACEKIT_SEPARABLE_AVX2=1 build/bench/facekit_bench_kernels --benchmark_filter=Separable  # AVX2 only
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>

#include "facekit/runtime.hpp"
#include "graph/separable_block.hpp"
#include "nn/depthwise.hpp"
#include "nn/elementwise.hpp"
#include "nn/tf_ops.hpp"

namespace {

// batch, map side, channels, stride: MobileFaceNet's (batch 16, as the embedder runs) and BlazeFace's.
constexpr int kDw[][4] = {{16, 56, 64, 1},  {16, 56, 128, 2}, {16, 28, 128, 1},
                          {16, 14, 256, 1}, {1, 128, 24, 2},  {1, 96, 16, 1}};

enum Impl { kAten, kFacekit };

// What the graph ran before: oneDNN's convolution (after a padded copy where TensorFlow's SAME padding is
// one-sided) and then PReLU in its own pass; against the kernel that does both.
void BM_Depthwise3x3(benchmark::State& state) {
  facekit::set_num_threads(1);
  const bool bf16 = state.range(0) == 1;
  const auto impl = static_cast<Impl>(state.range(1));
  const auto [n, hw, c, stride] = kDw[state.range(2)];
  if (impl == kFacekit && !facekit::nn::depthwise3x3_supported()) {
    state.SkipWithError("this CPU has no AVX-512BW");
    return;
  }
  c10::InferenceMode guard;
  const auto dt = bf16 ? at::kBFloat16 : at::kFloat;
  const at::Tensor x = at::randn({n, hw, hw, c}).to(dt);  // NHWC
  const at::Tensor w = (at::randn({c, 1, 3, 3}) * 0.3).to(dt).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor b = at::randn({c}).to(dt), alpha = at::rand({c}).to(dt);
  const at::Tensor taps = w.to(at::kFloat).reshape({c, 9}).t().contiguous();
  const at::Tensor bf = b.to(at::kFloat), af = alpha.to(at::kFloat);
  const auto [t, bo] = facekit::nn::same_padding(hw, 3, stride);
  const int64_t out = (hw + t + bo - 3) / stride + 1;
  for (auto _ : state) {
    if (impl == kAten) {
      at::Tensor xx = x.permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast);
      std::vector<int64_t> pad = {t, t};
      if (t != bo)
        xx = at::constant_pad_nd(xx, {t, bo, t, bo}).contiguous(at::MemoryFormat::ChannelsLast), pad = {0, 0};
      at::Tensor y = at::mkldnn_convolution(xx, w, b, pad, {stride, stride}, {1, 1}, c);
      if (!facekit::nn::prelu_bf16_(y, alpha)) y = at::prelu(y, alpha);
      benchmark::DoNotOptimize(y);
    } else {
      benchmark::DoNotOptimize(
          facekit::nn::depthwise3x3(x, taps, bf, facekit::nn::DwAct::kPrelu, af, stride, t, t, out, out));
    }
  }
  state.counters["maps_per_s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}
void DwArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bf16", "facekit", "shape"});
  for (int shape = 0; shape < static_cast<int>(std::size(kDw)); ++shape)
    for (int bf16 : {0, 1})
      for (int impl : {kAten, kFacekit}) b->Args({bf16, impl, shape});
}
BENCHMARK(BM_Depthwise3x3)->Apply(DwArgs)->Unit(benchmark::kMicrosecond);

// The dlib ResNet's stem pool (bf16, 3x3 stride 2, batch 16) and BlazeFace's first (float, 2x2).
void BM_MaxPool(benchmark::State& state) {
  facekit::set_num_threads(1);
  const auto impl = static_cast<Impl>(state.range(0));
  const bool resnet = state.range(1) == 0;
  c10::InferenceMode guard;
  const at::Tensor x =
      resnet ? at::randn({16, 32, 72, 72}).to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast)
             : at::randn({1, 24, 128, 128}).contiguous(at::MemoryFormat::ChannelsLast);
  const int64_t k = resnet ? 3 : 2;
  if (impl == kFacekit && !facekit::nn::max_pool_channels_last(x, k, k, 2, 2).defined()) {
    state.SkipWithError("not handled on this CPU");
    return;
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(impl == kAten ? at::max_pool2d(x, {k, k}, {2, 2})
                                           : facekit::nn::max_pool_channels_last(x, k, k, 2, 2));
}
BENCHMARK(BM_MaxPool)
    ->ArgNames({"facekit", "blazeface"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->Unit(benchmark::kMicrosecond);

// relu(pointwise(depthwise(x)) + x) in one pass, at BlazeFace's (24, 48, 96 channels) and FaceMesh's (16, 32,
// 64) sizes.
constexpr int kSep[][2] = {{128, 24}, {32, 48}, {16, 96}, {96, 16}, {48, 32}, {24, 64}};
void BM_SeparableBlock(benchmark::State& state) {
  facekit::set_num_threads(1);
  const auto [hw, c] = kSep[state.range(0)];
  if (!facekit::graph::detail::separable_block_supported(c)) {
    state.SkipWithError("this CPU has no AVX2/FMA");
    return;
  }
  c10::InferenceMode guard;
  const at::Tensor x = at::randn({1, hw, hw, c});
  const at::Tensor wd = at::randn({9, c}), bd = at::randn({c}), wp = at::randn({c, c}) * 0.2,
                   bp = at::randn({c});
  for (auto _ : state) benchmark::DoNotOptimize(facekit::graph::detail::separable_block(x, wd, bd, wp, bp));
  state.counters["GMAC_per_s"] =
      benchmark::Counter(double(hw) * hw * c * (9 + c) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SeparableBlock)
    ->ArgName("shape")
    ->DenseRange(0, static_cast<int>(std::size(kSep)) - 1)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
