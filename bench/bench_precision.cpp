// One 3x3 convolution of the dlib ResNet's shapes (+ ReLU) at each arithmetic the CPU offers: fp32, bf16
// (oneDNN; AVX512-BF16 / AMX), int8 (PyTorch's quantized engines FBGEMM and oneDNN; VNNI / AMX-INT8).
// The question it answers (issue 18): would an int8 ResNet be worth its accuracy risk over bf16?
//
//   build/bench/facekit_bench_precision --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/QEngine.h>
#include <torch/csrc/jit/runtime/operator.h>

#include "facekit/runtime.hpp"

namespace {

// The ResNet's residual stages: channels and map size at a 150x150 input.
constexpr int kShapes[][2] = {{32, 36}, {64, 18}, {128, 9}, {256, 5}};

enum Arith { kFp32, kBf16, kInt8Fbgemm, kInt8OneDnn };

void BM_Conv3x3(benchmark::State& state) {
  facekit::set_num_threads(1);
  const auto arith = static_cast<Arith>(state.range(0));
  const int c = kShapes[state.range(1)][0], hw = kShapes[state.range(1)][1];
  const int64_t batch = state.range(2);
  c10::InferenceMode guard;
  const auto x = at::randn({batch, c, hw, hw}).contiguous(at::MemoryFormat::ChannelsLast);
  const auto w = (at::randn({c, c, 3, 3}) * 0.05).contiguous(at::MemoryFormat::ChannelsLast);
  const auto b = at::zeros({c});
  if (arith == kFp32 || arith == kBf16) {
    const auto dt = arith == kFp32 ? at::kFloat : at::kBFloat16;
    const auto xd = x.to(dt).contiguous(at::MemoryFormat::ChannelsLast);
    const auto wd = w.to(dt).contiguous(at::MemoryFormat::ChannelsLast);
    const auto bd = b.to(dt);
    for (auto _ : state) {
      auto y = at::conv2d(xd, wd, bd, 1, 1);
      benchmark::DoNotOptimize(at::relu_(y));
    }
  } else {
    const auto engine = arith == kInt8Fbgemm ? c10::QEngine::FBGEMM : c10::QEngine::ONEDNN;
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), engine) == engines.end()) {
      state.SkipWithError("this libtorch lacks the quantized engine");
      return;
    }
    at::globalContext().setQEngine(engine);
    // Activations quint8 (after a ReLU), weights qint8 per tensor, as static post-training quantisation makes them.
    const auto qx = at::quantize_per_tensor(at::relu(x), 0.05, 0, at::kQUInt8).contiguous(at::MemoryFormat::ChannelsLast);
    const auto qw = at::quantize_per_tensor(w, 0.002, 0, at::kQInt8);
    auto& dispatcher = c10::Dispatcher::singleton();
    const auto prepack = dispatcher.findSchemaOrThrow("quantized::conv2d_prepack", "");
    torch::jit::Stack s{qw, b, c10::List<int64_t>{1, 1}, c10::List<int64_t>{1, 1}, c10::List<int64_t>{1, 1}, int64_t{1}};
    prepack.callBoxed(&s);
    const c10::IValue packed = s.at(0);
    const auto conv = dispatcher.findSchemaOrThrow("quantized::conv2d_relu", "new");
    for (auto _ : state) {
      torch::jit::Stack in{qx, packed, 0.05, int64_t{0}};
      conv.callBoxed(&in);
      benchmark::DoNotOptimize(in);
    }
  }
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void Args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"arith", "stage", "batch"});
  for (int batch : {1, 16})
    for (int stage = 0; stage < 4; ++stage)
      for (int a : {kFp32, kBf16, kInt8Fbgemm, kInt8OneDnn}) b->Args({a, stage, batch});
}
BENCHMARK(BM_Conv3x3)->Apply(Args)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
