// Training throughput without data or models: one optimisation step of the small CNN on a 16 x 4 batch
// (forward, triplet loss, backward; the optimizer's update is not included), and the mining plus loss alone
// for each mining mode. Single-threaded by default (FACEKIT_BENCH_THREADS=N to change).
// Counters: photos_per_s and triplets_per_s (triplets the loss is computed over).
#include <cstdlib>
#include <random>

#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "embed/small_cnn.hpp"
#include "train/triplet.hpp"

namespace fk = facekit;

namespace {
constexpr int kP = 16, kK = 4;

std::vector<int> pk_labels() {
  std::vector<int> l;
  for (int p = 0; p < kP; ++p)
    for (int k = 0; k < kK; ++k) l.push_back(p);
  return l;
}

void set_threads() {
  const char* t = std::getenv("FACEKIT_BENCH_THREADS");
  at::set_num_threads(t ? std::atoi(t) : 1);
}

// Args: chip size, width. Mining: semi-hard.
void BM_SmallCnnTrainStep(benchmark::State& state) {
  set_threads();
  const int size = static_cast<int>(state.range(0)), width = static_cast<int>(state.range(1));
  auto w = fk::detail::small_cnn_init(width, 128, 1);
  std::vector<at::Tensor> params;
  for (auto& [name, t] : w)
    if (fk::detail::small_cnn_trainable(name)) params.push_back(t.requires_grad_(true));
  const auto labels = pk_labels();
  const at::Tensor x = at::randn({kP * kK, 3, size, size});
  std::mt19937_64 rng(1);
  int64_t triplets = 0;
  for (auto _ : state) {
    at::Tensor e = fk::detail::small_cnn_forward(w, x, true);
    e = e / e.norm(2, {1}, true);
    auto r = fk::detail::triplet_loss(e, labels, fk::Mining::kSemiHard, 0.2f, rng);
    r.loss.backward();
    for (auto& p : params) p.mutable_grad().reset();
    triplets += r.triplets;
  }
  state.counters["photos_per_s"] = benchmark::Counter(kP * kK, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["triplets_per_s"] = benchmark::Counter(static_cast<double>(triplets), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SmallCnnTrainStep)->Args({64, 16})->Args({64, 32})->Args({96, 16})->Unit(benchmark::kMillisecond);

// Mining and loss (forward and backward) on a 64 x 128 batch of embeddings: the cost the network does not see.
void BM_TripletLoss(benchmark::State& state) {
  set_threads();
  const auto mining = static_cast<fk::Mining>(state.range(0));
  const auto labels = pk_labels();
  at::Tensor e = at::randn({kP * kK, 128});
  e = (e / e.norm(2, {1}, true)).requires_grad_(true);
  std::mt19937_64 rng(1);
  int64_t triplets = 0;
  for (auto _ : state) {
    auto r = fk::detail::triplet_loss(e, labels, mining, 0.2f, rng);
    r.loss.backward();
    e.mutable_grad().reset();
    triplets += r.triplets;
  }
  state.SetLabel(fk::to_string(mining));
  state.counters["triplets_per_s"] = benchmark::Counter(static_cast<double>(triplets), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TripletLoss)
    ->Arg(static_cast<int>(fk::Mining::kRandom))
    ->Arg(static_cast<int>(fk::Mining::kSemiHard))
    ->Arg(static_cast<int>(fk::Mining::kBatchHard))
    ->Arg(static_cast<int>(fk::Mining::kBatchAll))
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
