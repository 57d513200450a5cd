// Reference tier: facekit's TFLite reader + graph runtime against an independent numpy run of the same file
// (tests/data/tflite/reference.py: its own flatbuffer parser, float64 ops). Tolerance: max |ours - numpy| <=
// 1e-4 x max |numpy|. Also: the batch the file fixes is free, and damaged files give facekit errors.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>


#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "graph/graph_model.hpp"
#include "graph/tflite_reader.hpp"
#include "damaged_model.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kGolden = fs::path(FACEKIT_TEST_DATA) / "tflite" / "MobileFaceNet";

fs::path model_file() { return facekit::models_dir() / "expo" / "MobileFaceNet.tflite"; }

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// reference.py's input: a ramp over the NHWC input and -0.5 times it.
at::Tensor ramp_batch(const std::vector<int64_t>& shape) {
  const int64_t n = shape[1] * shape[2] * shape[3];
  at::Tensor i = at::arange(n, at::kLong);
  at::Tensor x0 = (-1.0 + 2.0 * (i * 7919).remainder(1000).to(at::kDouble) / 999).to(at::kFloat).reshape({shape[1], shape[2], shape[3]});
  return at::stack({x0, (-0.5 * x0.to(at::kDouble)).to(at::kFloat)});
}

}  // namespace

TEST(TfliteParity, MobileFaceNetMatchesNumpy) {
  if (!fs::exists(model_file())) GTEST_SKIP() << model_file() << " is missing: run scripts/setup";
  std::ifstream in(kGolden / "meta.json");
  const json meta = json::parse(in);
  const auto in_shape = meta["input_shape"].get<std::vector<int64_t>>();
  const auto out_shape = meta["output_shape"].get<std::vector<int64_t>>();
  at::Tensor golden = at::empty(out_shape, at::kFloat);
  std::ifstream g(kGolden / "output.f32", std::ios::binary);
  g.read(static_cast<char*>(golden.data_ptr()), static_cast<std::streamsize>(golden.numel() * 4));
  ASSERT_EQ(g.gcount(), golden.numel() * 4);

  const facekit::graph::GraphModel net(model_file());
  const at::Tensor x = ramp_batch(in_shape);
  const at::Tensor y = net.run(x).at(0);
  ASSERT_EQ(y.sizes(), golden.sizes());
  const double scale = golden.abs().max().item<double>();
  const double err = (y - golden).abs().max().item<double>();
  EXPECT_LE(err, 1e-4 * scale) << "max |ours - numpy| " << err << ", max |numpy| " << scale;

  // The file fixes the batch at 2; facekit's reader leaves it free: one row alone, and three, give the same.
  const at::Tensor one = net.run(x.slice(0, 1, 2)).at(0);
  EXPECT_LE((one[0] - golden[1]).abs().max().item<double>(), 1e-4 * scale);
  const at::Tensor three = net.run(at::cat({x, x.slice(0, 0, 1)})).at(0);
  ASSERT_EQ(three.size(0), 3);
  EXPECT_LE((three[2] - golden[0]).abs().max().item<double>(), 1e-4 * scale);
}

TEST(TfliteParity, PreluIsFoundAndFolded) {
  if (!fs::exists(model_file())) GTEST_SKIP() << model_file() << " is missing: run scripts/setup";
  // The converter's relu(x) + c * (x - |x|) becomes the convolutions' own PReLU: no Abs, Sub or Relu remain.
  const facekit::graph::GraphModel net(model_file());
  const auto& ops = net.op_counts();
  EXPECT_EQ(ops.count("Abs"), 0u);
  EXPECT_EQ(ops.count("Sub"), 0u);
  EXPECT_EQ(ops.count("Relu"), 0u);
  EXPECT_GT(ops.at("_FusedConv2D"), 0);
}

TEST(TfliteParity, DamagedFilesGiveModelErrors) {
  if (!fs::exists(model_file())) GTEST_SKIP() << model_file() << " is missing: run scripts/setup";
  const std::string good = read_bytes(model_file());
  // Bytes flipped in the tables (the first 16 KB and the last 64 KB, where the converter writes them).
  facekit::test::expect_damage_handled_cleanly(
      good, [](const std::string& b) { facekit::graph::read_tflite(b, "damaged.tflite"); }, ".tflite",
      at::zeros({1, 112, 112, 3}), 7, [&](int trial, std::mt19937& rng) -> size_t {
        return trial % 2 ? good.size() - 65536 + rng() % 65536 : rng() % 16384;
      });
}
