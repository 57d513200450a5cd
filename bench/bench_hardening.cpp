// What the hardening of issue 15 costs, each against its baseline in the same run:
//  - JPEG decoding: facekit's libjpeg path (warnings kept, RGB written directly) vs the old path, OpenCV's
//    imdecode + BGR-to-RGB, on real photos shipped by Debian (libdlib19.1) and npm (face-api's demo).
//  - identify on an encrypted gallery vs a plain one: (a) one query on a loaded Identifier, (b) what one
//    `facekit identify` pays around its queries: open the gallery (key check) and load the index from its
//    (sealed) cache, (c) a rebuild from the store (every template read, checksummed and, when encrypted,
//    opened). Synthetic unit-length 128-D templates; the gallery is built once per size in a temporary folder.
// Run: build/bench/facekit_bench_hardening --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include <benchmark/benchmark.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/gallery.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

const char* kPhotos[] = {"/usr/share/doc/libdlib19.1/examples/faces/2008_002470.jpg",
                         FACEKIT_SOURCE_ROOT "/models/face-api/demo/sample1.jpg"};

std::string read_all(const char* p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void BM_DecodeJpegOpenCv(benchmark::State& state) {
  const std::string bytes = read_all(kPhotos[state.range(0)]);
  if (bytes.empty()) return state.SkipWithError("photo absent");
  for (auto _ : state) {
    const cv::Mat bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data())),
                                     cv::IMREAD_COLOR);
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    benchmark::DoNotOptimize(rgb.data);
  }
}
void BM_DecodeJpegFacekit(benchmark::State& state) {
  const std::string bytes = read_all(kPhotos[state.range(0)]);
  if (bytes.empty()) return state.SkipWithError("photo absent");
  for (auto _ : state) benchmark::DoNotOptimize(fk::decode_image(bytes).data);
}
BENCHMARK(BM_DecodeJpegOpenCv)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeJpegFacekit)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

const fk::EmbedderId kEmb{"bench_embedder", "1"};

// A given open-set threshold: the synthetic embedder has no manifest to take one from.
fk::IdentifyOptions identify_options(bool cache = true) {
  fk::IdentifyOptions o;
  o.threshold = 0.5f;
  o.use_cache = cache;
  return o;
}

fk::Embedding unit(std::mt19937& rng) {
  std::normal_distribution<float> n;
  fk::Embedding e(128);
  float s = 0;
  for (auto& v : e) v = n(rng), s += v * v;
  for (auto& v : e) v /= std::sqrt(s);
  return e;
}

struct Fixture {
  fs::path dir;
  std::optional<fk::GalleryKey> key;
  fs::path path() const { return dir / "g.db"; }
  fk::GalleryOptions options() const {
    fk::GalleryOptions o;
    o.key = key;
    return o;
  }
};

// One gallery per (people, encrypted), 2 templates each, built once; its index cache written once.
const Fixture& fixture(int people, bool encrypted) {
  static std::map<std::pair<int, bool>, Fixture> all;
  auto& f = all[{people, encrypted}];
  if (!f.dir.empty()) return f;
  f.dir = fs::temp_directory_path() / ("fk_bench_" + std::to_string(::getpid()) + "_" + std::to_string(people) +
                                       (encrypted ? "_enc" : "_plain"));
  fs::remove_all(f.dir);
  fs::create_directories(f.dir);
  if (encrypted) f.key = fk::GalleryKey::generate();
  fk::GalleryOptions o = f.options();
  o.durable = false;
  auto g = fk::open_gallery(f.path(), o);
  std::mt19937 rng(7);
  std::vector<fk::NewPerson> batch;
  for (int p = 0; p < people; ++p) {
    fk::NewPerson np;
    np.name = "person " + std::to_string(p);
    for (int t = 0; t < 2; ++t) np.templates.push_back({kEmb, unit(rng), 0.9f, "", "synthetic"});
    batch.push_back(std::move(np));
    if (batch.size() == 1000) g->add_people(batch), batch.clear();
  }
  if (!batch.empty()) g->add_people(batch);
  fk::Identifier warm(*g, kEmb, identify_options());  // writes the cache
  return f;
}

// (a) one query against a loaded index.
void BM_IdentifyQuery(benchmark::State& state) {
  const Fixture& f = fixture(static_cast<int>(state.range(0)), state.range(1) != 0);
  auto g = fk::open_gallery(f.path(), f.options());
  fk::Identifier id(*g, kEmb, identify_options());
  std::mt19937 rng(1);
  const fk::Embedding q = unit(rng);
  for (auto _ : state) benchmark::DoNotOptimize(id.identify(q));
}
// (b) open + index from cache + one query: what a `facekit identify` pays besides the networks.
void BM_IdentifyOpenFromCache(benchmark::State& state) {
  const Fixture& f = fixture(static_cast<int>(state.range(0)), state.range(1) != 0);
  std::mt19937 rng(1);
  const fk::Embedding q = unit(rng);
  for (auto _ : state) {
    auto g = fk::open_gallery(f.path(), f.options());
    fk::Identifier id(*g, kEmb, identify_options());
    if (!id.last_refresh().index_from_cache) return state.SkipWithError("the cache was not used");
    benchmark::DoNotOptimize(id.identify(q));
  }
}
// (c) a rebuild from the store: every template read, checksummed and (encrypted) opened.
void BM_IdentifyRebuild(benchmark::State& state) {
  const Fixture& f = fixture(static_cast<int>(state.range(0)), state.range(1) != 0);
  auto g = fk::open_gallery(f.path(), f.options());
  for (auto _ : state) benchmark::DoNotOptimize(fk::Identifier(*g, kEmb, identify_options(false)).revision());
}
// Args: people, encrypted (0/1).
BENCHMARK(BM_IdentifyQuery)->Args({1000, 0})->Args({1000, 1})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_IdentifyOpenFromCache)->Args({1000, 0})->Args({1000, 1})->Args({10000, 0})->Args({10000, 1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IdentifyRebuild)->Args({1000, 0})->Args({1000, 1})->Args({10000, 0})->Args({10000, 1})
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec))
    if (e.path().filename().string().rfind("fk_bench_" + std::to_string(::getpid()) + "_", 0) == 0) fs::remove_all(e.path(), ec);
  return 0;
}
