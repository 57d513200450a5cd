#pragma once
// The main() of facekit's benchmark programs: one thread per network call unless FACEKIT_BENCH_THREADS says.
#include <cstdlib>

#include <benchmark/benchmark.h>

#include "facekit/runtime.hpp"

inline int facekit_bench_main(int argc, char** argv) {
  const char* t = std::getenv("FACEKIT_BENCH_THREADS");
  facekit::set_num_threads(t ? std::atoi(t) : 1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
