// Where a graph model spends its time: per op type, summed over the graph, median over runs.
//   build/bench/facekit_profile_graph blazeface-back [runs]
// Single-threaded unless FACEKIT_BENCH_THREADS says otherwise; input is random, at the manifest's size.
// FACEKIT_GRAPH_NO_FUSION=1 profiles the graph without load-time fusion, for A/B comparisons;
// FACEKIT_PROFILE_NODES=1 times each node (name and shapes) instead of each op type; FACEKIT_GRAPH_NO_SEPARABLE=1
// runs separable blocks as three ops; FACEKIT_DEFAULT_MALLOC=1 leaves glibc's allocator as it is (facekit::reuse_freed_buffers).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "facekit/model.hpp"
#include "facekit/runtime.hpp"
#include "graph/graph_model.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_NAME [runs] [batch] [fp32|bf16]\n", argv[0]);
    return 2;
  }
  const char* threads = std::getenv("FACEKIT_BENCH_THREADS");
  facekit::set_num_threads(threads ? std::atoi(threads) : 1);
  facekit::reuse_freed_buffers();  // as the CLI does
  const auto m = facekit::load_manifest(argv[1]);
  const int runs = argc > 2 ? std::atoi(argv[2]) : 50, batch = argc > 3 ? std::max(1, std::atoi(argv[3])) : 1;
  // A TF.js or TFLite file ("model_json"), or an ONNX one that the graph runtime reads.
  const bool onnx = m.arch == "onnx";
  const bool bf16 = argc > 4 && std::string(argv[4]) == "bf16";
  facekit::graph::GraphModel g(facekit::models_dir() / m.file(onnx ? "onnx" : "model_json").path, at::kCPU,
                               bf16 ? at::kBFloat16 : at::kFloat);
  const int s = m.input_size;
  const auto x = at::rand({batch, s, s, 3});
  std::map<std::string, std::vector<double>> per_op;
  std::vector<double> total;
  for (int r = 0; r < runs + 3; ++r) {
    const auto p = g.profile({{g.input_names().at(0), x}});
    if (r < 3) continue;  // warm-up: oneDNN primitive creation
    double t = 0;
    for (const auto& [op, ms] : p) per_op[op].push_back(ms), t += ms;
    total.push_back(t);
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  const double tm = median(total);
  std::printf("%s (%s): %.3f ms per run of %d (median of %d)\n", argv[1], bf16 ? "bf16" : "fp32", tm, batch, runs);
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [op, v] : per_op) rows.emplace_back(median(v), op);
  std::sort(rows.rbegin(), rows.rend());
  for (const auto& [ms, op] : rows) std::printf("  %-28s %8.3f ms  %5.1f%%\n", op.c_str(), ms, 100 * ms / tm);
}
