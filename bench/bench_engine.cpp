// The Engine's identify snapshots (docs/engine.md): what an identify costs with the gallery at rest, and right
// after a write, when the engine builds a new snapshot (a new Identifier from the index cache plus the rows
// since, and the names) instead of refreshing one Identifier in place as the CLI's single-threaded identify
// did. The baseline (BM_IdentifierWriteThenRefresh) is measured in the same run. Synthetic unit embeddings
// stored as dlib_resnet templates: no network runs.
//   build/bench/facekit_bench_engine --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>

#include <benchmark/benchmark.h>

#include "facekit/engine.hpp"
#include "facekit/model.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

fk::Embedding unit(std::mt19937& rng) {
  std::normal_distribution<float> n;
  fk::Embedding e(128);
  float s = 0;
  for (auto& v : e) v = n(rng), s += v * v;
  for (auto& v : e) v /= std::sqrt(s);
  return e;
}

fk::EmbedderId dlib() {
  const auto m = fk::load_manifest(fk::defaults::kEmbedder);
  return {m.name, m.version};
}

// One gallery per size, 2 templates a person, made once.
fs::path gallery(int people) {
  static std::map<int, fs::path> made;
  if (auto it = made.find(people); it != made.end()) return it->second;
  const fs::path dir = fs::temp_directory_path() / ("fk_bench_engine_" + std::to_string(::getpid()) + "_" +
                                                     std::to_string(people));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fk::GalleryOptions o;
  o.durable = false;
  auto g = fk::open_gallery(dir / "g.db", o);
  std::mt19937 rng(7);
  std::vector<fk::NewPerson> batch;
  for (int p = 0; p < people; ++p) {
    fk::NewPerson np;
    np.name = "person " + std::to_string(p);
    for (int t = 0; t < 2; ++t) np.templates.push_back({dlib(), unit(rng), 0.9f, "", "synthetic"});
    batch.push_back(std::move(np));
    if (batch.size() == 1000) g->add_people(batch), batch.clear();
  }
  if (!batch.empty()) g->add_people(batch);
  return made[people] = dir / "g.db";
}

fk::EngineOptions options(int people) {
  fk::EngineOptions o;
  o.gallery = gallery(people);
  o.gallery_options.create = false;
  o.gallery_options.durable = false;
  return o;
}

// One engine per gallery size, shared by the benchmark's threads.
fk::Engine* shared_engine(int people) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<fk::Engine>> all;
  std::lock_guard lock(mu);
  auto& e = all[people];
  if (!e) e = std::make_unique<fk::Engine>(options(people));
  return e.get();
}

void BM_EngineIdentifyAtRest(benchmark::State& state) {
  fk::Engine* e = shared_engine(static_cast<int>(state.range(0)));
  std::mt19937 rng(1 + state.thread_index());
  const fk::Embedding q = unit(rng);
  e->identify(q);  // the first snapshot
  for (auto _ : state) benchmark::DoNotOptimize(e->identify(q));
  state.SetItemsProcessed(state.iterations());
}

// A rename (one write, revision + 1) then an identify, which builds the next snapshot.
void BM_EngineWriteThenIdentify(benchmark::State& state) {
  fk::Engine e(options(static_cast<int>(state.range(0))));
  std::mt19937 rng(1);
  const fk::Embedding q = unit(rng);
  e.identify(q);
  const std::string id = std::to_string(e.people().at(0).id);
  int n = 0;
  for (auto _ : state) {
    e.rename(id, "renamed " + std::to_string(n++));
    benchmark::DoNotOptimize(e.identify(q));
  }
}

// Baseline: the same write, then one Identifier refreshed in place (no snapshot, no other reader possible).
void BM_IdentifierWriteThenRefresh(benchmark::State& state) {
  fk::GalleryOptions go;
  go.create = false;
  go.durable = false;
  auto g = fk::open_gallery(gallery(static_cast<int>(state.range(0))), go);
  fk::Identifier ident(*g, dlib());
  std::mt19937 rng(1);
  const fk::Embedding q = unit(rng);
  const auto pid = g->people().at(0).id;
  int n = 0;
  for (auto _ : state) {
    g->rename_person(pid, "renamed " + std::to_string(n++));
    ident.refresh();
    benchmark::DoNotOptimize(ident.identify(q));
  }
}

}  // namespace

BENCHMARK(BM_EngineIdentifyAtRest)->Arg(1000)->Arg(10000)->Threads(1)->Threads(2)->UseRealTime();
BENCHMARK(BM_EngineWriteThenIdentify)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IdentifierWriteThenRefresh)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
