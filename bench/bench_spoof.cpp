// Microbenchmarks of the passive anti-spoofing checkers: one face of a real photo (Debian libdlib19.1's Tom
// Cruise portrait, face box as the detector gives it), from the RGB image to the result. Single-threaded by
// default (FACEKIT_BENCH_THREADS=N to change). Needs the models (scripts/setup).
#include <cstdlib>

#include <benchmark/benchmark.h>

#include "facekit/image.hpp"
#include "facekit/runtime.hpp"
#include "facekit/spoof.hpp"

namespace fk = facekit;

namespace {

void BM_SpoofCheck(benchmark::State& state, const char* name) {
  static const fk::Image img = fk::load_image("/usr/share/doc/libdlib19.1/examples/faces/Tom_Cruise_avp_2014_4.jpg");
  fk::Face face;
  face.box = {70, 143, 444, 542};  // `facekit detect` on this photo
  const auto checker = fk::create_spoof_checker(name);
  for (auto _ : state) benchmark::DoNotOptimize(checker->check(img, face));
  state.counters["faces_per_s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(BM_SpoofCheck, antispoof, "antispoof")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SpoofCheck, liveness, "liveness")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SpoofCheck, texture, "spoof-texture")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SpoofCheck, frequency, "spoof-frequency")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_SpoofCheck, combined, "spoof-combined")->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  const char* t = std::getenv("FACEKIT_BENCH_THREADS");
  fk::set_num_threads(t ? std::atoi(t) : 1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
