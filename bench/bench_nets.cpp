// Microbenchmarks of each network and stage, single-threaded by default (FACEKIT_BENCH_THREADS=N to change).
// Needs the models (scripts/setup). Report medians: --benchmark_repetitions=5 --benchmark_report_aggregates_only.
#include <cstdlib>
#include <filesystem>

#include <benchmark/benchmark.h>
#include <opencv2/imgproc.hpp>

#include "align/landmark68_net.hpp"
#include "detect/ssd_mobilenetv1.hpp"
#include "embed/dlib_resnet.hpp"
#include "facekit/detector.hpp"
#include "facekit/embedder.hpp"
#include "facekit/image.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/liveness.hpp"
#include "facekit/model.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/quality.hpp"
#include "facekit/runtime.hpp"
#include "facekit/spoof.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

fk::detail::WeightMap weights(const std::string& name) {
  return fk::detail::load_model_weights(fk::load_manifest(name));
}

template <typename Net>
void run_net(benchmark::State& state, const Net& net, int size) {
  c10::InferenceMode guard;
  const int64_t batch = state.range(0);
  const auto x = at::randn({batch, 3, size, size}).contiguous(at::MemoryFormat::ChannelsLast);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(x));
  state.counters["faces_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_DlibResNet(benchmark::State& state) {
  static const fk::detail::DlibResNet net(weights("dlib_resnet"), at::kCPU);
  run_net(state, net, 150);
}
BENCHMARK(BM_DlibResNet)->ArgName("batch")->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond);

// The same network with bf16 weights and activations (oneDNN's AVX512-BF16 / AMX kernels where the CPU has them).
void BM_DlibResNetBf16(benchmark::State& state) {
  static const fk::detail::DlibResNet net = [] {
    fk::detail::DlibResNet n(weights("dlib_resnet"), at::kCPU);
    n.set_dtype(at::kBFloat16);
    return n;
  }();
  c10::InferenceMode guard;
  const int64_t batch = state.range(0);
  const auto x = at::randn({batch, 3, 150, 150}).to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(x));
  state.counters["faces_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DlibResNetBf16)->ArgName("batch")->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond);

// int8: oneDNN's quantised kernels (VNNI where the CPU has it), the shipped activation ranges; float input.
void BM_DlibResNetInt8(benchmark::State& state) {
  static const fk::detail::DlibResNet net(weights("dlib_resnet"), at::kCPU);
  static const fk::detail::DlibResNetInt8 q8(
      net, fk::detail::read_int8_ranges(fk::detail::int8_ranges_path("dlib_resnet")));
  run_net(state, q8, 150);
}
BENCHMARK(BM_DlibResNetInt8)->ArgName("batch")->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond);

void BM_Landmark68(benchmark::State& state) {
  static const fk::detail::Landmark68Net net(weights("face_landmark_68"), at::kCPU);
  run_net(state, net, 112);
}
BENCHMARK(BM_Landmark68)->ArgName("batch")->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond);

void BM_SsdNet512(benchmark::State& state) {
  static const fk::detail::SsdMobilenetV1Net net(weights("ssd_mobilenetv1"), at::kCPU);
  c10::InferenceMode guard;
  const auto x = at::randn({state.range(0), 3, 512, 512}).contiguous(at::MemoryFormat::ChannelsLast);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(x).scores);
}
BENCHMARK(BM_SsdNet512)->ArgName("batch")->Arg(1)->Unit(benchmark::kMillisecond);

// A real 640x480 photo: face-api's sample1.jpg (three faces), cropped to 4:3 and resized.
fk::Image photo_640x480() {
  const fk::Image src = fk::load_image(fk::models_dir() / "face-api" / "demo" / "sample1.jpg");
  const int w = src.rows * 4 / 3;
  fk::Image out;
  cv::resize(src(cv::Rect((src.cols - w) / 2, 0, w, src.rows)), out, {640, 480}, 0, 0, cv::INTER_AREA);
  return out;
}

// Args: network input size (longest side), and 1 for face-api's square padding.
void BM_SsdDetect640x480(benchmark::State& state) {
  fk::DetectorOptions opt;
  opt.input_size = static_cast<int>(state.range(0));
  opt.square_input = state.range(1) != 0;
  const auto det = fk::create_detector("ssd_mobilenetv1", opt);
  static const fk::Image img = photo_640x480();
  size_t faces = 0;
  for (auto _ : state) faces = det->detect(img).size();
  state.counters["faces"] = static_cast<double>(faces);
}
BENCHMARK(BM_SsdDetect640x480)
    ->ArgNames({"input", "square"})
    ->Args({512, 1})
    ->Args({512, 0})
    ->Args({416, 0})
    ->Args({384, 0})
    ->Unit(benchmark::kMillisecond);

void BM_BlazeFaceDetect640x480(benchmark::State& state) {
  const auto det = fk::create_detector(state.range(0) ? "blazeface-back" : "blazeface-front");
  static const fk::Image img = photo_640x480();
  size_t faces = 0;
  for (auto _ : state) faces = det->detect(img).size();
  state.counters["faces"] = static_cast<double>(faces);
}
BENCHMARK(BM_BlazeFaceDetect640x480)->ArgName("back")->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

// Graph embedders, one aligned chip per iteration (flip off), after the dlib ResNet's numbers above.
void BM_GraphEmbedder(benchmark::State& state, const char* name) {
  fk::EmbedderOptions o;
  o.flip = false;
  const auto e = fk::create_embedder(name, o);
  const fk::Image chip(e->alignment().size, e->alignment().size, CV_8UC3, cv::Scalar(120, 100, 90));
  for (auto _ : state) benchmark::DoNotOptimize(e->embed({chip}));
}
BENCHMARK_CAPTURE(BM_GraphEmbedder, mobilefacenet, "mobilefacenet")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_GraphEmbedder, mobileface, "mobileface")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_GraphEmbedder, faceres, "faceres")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_GraphEmbedder, mobilefacenet_tflite, "mobilefacenet_tflite")->Unit(benchmark::kMillisecond);
// The same loop for the ONNX embedder (OpenCV DNN) and, as its baseline in the same run, the dlib ResNet.
BENCHMARK_CAPTURE(BM_GraphEmbedder, faceplugin_onnx, "faceplugin")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_GraphEmbedder, dlib_resnet, "dlib_resnet")->Unit(benchmark::kMillisecond);

// A face filling the frame (the 640x480 photo's largest face, cropped to its box): BlazeFace's second pass on
// a 2x canvas runs here, so this against the group photo above is its cost.
void BM_BlazeFaceDetectTightCrop(benchmark::State& state) {
  const auto det = fk::create_detector("blazeface-back");
  static const fk::Image img = photo_640x480();
  const auto faces = det->detect(img);
  if (faces.empty()) {
    state.SkipWithError("no face in the photo");
    return;
  }
  const auto& b = faces[0].box;
  const cv::Rect box = cv::Rect(cv::Rect2f(b.x, b.y, b.width, b.height)) & cv::Rect(0, 0, img.cols, img.rows);
  const fk::Image crop = img(box).clone();
  size_t n = 0;
  for (auto _ : state) n = det->detect(crop).size();
  state.counters["faces"] = static_cast<double>(n);
}
BENCHMARK(BM_BlazeFaceDetectTightCrop)->Unit(benchmark::kMillisecond);

// Per face, from photo to embedding: landmarks + alignment + embedding (detection excluded), flip on/off.
void BM_FaceAfterDetection(benchmark::State& state) {
  fk::PipelineOptions o;
  o.embedding.flip = state.range(0) != 0;
  static const fk::Image img = photo_640x480();
  const fk::FacePipeline p(o);
  const auto faces = p.detector().detect(img);
  std::vector<fk::Box> boxes;
  for (const auto& f : faces) boxes.push_back(f.box);
  for (auto _ : state) {
    const auto lms = p.landmarker().landmarks(img, boxes);
    benchmark::DoNotOptimize(p.embedder().embed_faces(img, lms));  // aligns (each member's chip, for a fusion)
  }
  state.counters["faces_per_s"] = benchmark::Counter(static_cast<double>(boxes.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_FaceAfterDetection)->ArgName("flip")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// Passive anti-spoofing, per face, from the RGB photo to the result: one face of a real photo (Debian
// libdlib19.1's Tom Cruise portrait, its box as the detector gives it).
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

// Face quality and one frame of active liveness.
const fk::FacePipeline& live_pipeline() {
  static const fk::FacePipeline p;
  return p;
}

// Debian libdlib19.1's Tom Cruise at half size, cut to 280x400 (the liveness tests' frame; face ~220 px).
const fk::Image& tom_frame() {
  static const fk::Image f = [] {
    fk::Image full = fk::load_image("/usr/share/doc/libdlib19.1/examples/faces/Tom_Cruise_avp_2014_4.jpg"), half;
    cv::resize(full, half, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
    return half(cv::Rect(0, 0, 280, 400)).clone();
  }();
  return f;
}

// assess() alone on a face found once (landmarks given): chip, exposure, Laplacian, solvePnP, alignment roll.
void BM_QualityAssess(benchmark::State& state) {
  const auto assessor = fk::create_quality_assessor();
  const fk::Face face = live_pipeline().detect_one(tom_frame(), fk::FacePick::kLargest);
  for (auto _ : state) benchmark::DoNotOptimize(assessor->assess(tom_frame(), face));
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
  fk::ActiveLivenessSession session(live_pipeline(), o);
  double t = 0;
  for (auto _ : state) benchmark::DoNotOptimize(session.push(tom_frame(), t += 1.0 / 30));
  state.counters["frames_per_s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_LivenessFrame)->ArgName("passive")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

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
