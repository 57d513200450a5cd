// Microbenchmarks of face quality and of one frame of active liveness, single-threaded by default
// (FACEKIT_BENCH_THREADS=N to change). Needs the models (scripts/setup). Report medians:
// --benchmark_repetitions=5 --benchmark_report_aggregates_only.
#include <benchmark/benchmark.h>
#include <opencv2/imgproc.hpp>

#include "bench_main.hpp"
#include "facekit/image.hpp"
#include "facekit/liveness.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/quality.hpp"
#include "facekit/spoof.hpp"

namespace fk = facekit;

namespace {

// Debian libdlib19.1's Tom Cruise at half size, cut to 280x400 (the liveness tests' frame; face ~220 px).
const fk::Image& frame() {
  static const fk::Image f = [] {
    fk::Image full = fk::load_image("/usr/share/doc/libdlib19.1/examples/faces/Tom_Cruise_avp_2014_4.jpg"), half;
    cv::resize(full, half, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
    return half(cv::Rect(0, 0, 280, 400)).clone();
  }();
  return f;
}

const fk::FacePipeline& pipeline() {
  static const fk::FacePipeline p;
  return p;
}

// assess() alone on a face found once (landmarks given): chip, exposure, Laplacian, solvePnP, alignment roll.
void BM_QualityAssess(benchmark::State& state) {
  const auto assessor = fk::create_quality_assessor();
  const fk::Face face = pipeline().detect_one(frame(), fk::FacePick::kLargest);
  for (auto _ : state) benchmark::DoNotOptimize(assessor->assess(frame(), face));
}
BENCHMARK(BM_QualityAssess)->Unit(benchmark::kMillisecond);

// One video frame of active liveness: detection, landmarks, EAR, pose; with the passive spoof-combined
// checker on the tracked face (passive=1) or without (passive=0).
void BM_LivenessFrame(benchmark::State& state) {
  fk::ActiveLivenessOptions o;
  std::shared_ptr<const fk::SpoofChecker> checker;
  if (state.range(0)) {
    checker = fk::create_spoof_checker("spoof-combined");
    o.passive = [checker](const fk::Image& rgb, const fk::Face& f) { return checker->check(rgb, f).score; };
  }
  fk::ActiveLivenessSession session(pipeline(), o);
  double t = 0;
  for (auto _ : state) benchmark::DoNotOptimize(session.push(frame(), t += 1.0 / 30));
  state.counters["frames_per_s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_LivenessFrame)->ArgName("passive")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) { return facekit_bench_main(argc, argv); }
