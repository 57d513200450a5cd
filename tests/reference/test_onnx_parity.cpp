// Reference tier: facekit's two ONNX runtimes (OpenCV DNN, src/onnx; and the ONNX reader into the graph
// runtime, src/graph/onnx_reader.cpp) against Microsoft's onnxruntime on the same models and input
// (tests/data/onnx, made by its dump.mjs). Tolerance: max |ours - onnxruntime| <= 1e-4 x max |onnxruntime| per
// output; the embedder's unit-length descriptor within 1e-4 absolute. Also: the reader refuses, with a model
// error, the ops it does not translate and damaged files.
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>


#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "graph/graph_model.hpp"
#include "graph/onnx_reader.hpp"
#include "onnx/onnx_net.hpp"
#include "damaged_model.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kGolden = fs::path(FACEKIT_TEST_DATA) / "onnx";

std::vector<std::string> golden_models() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(kGolden))
    if (e.is_directory()) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<float> read_f32(const fs::path& p, size_t n) {
  std::vector<float> v(n);
  std::ifstream in(p, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * 4));
  if (static_cast<size_t>(in.gcount()) != n * 4) throw std::runtime_error("short golden file " + p.string());
  return v;
}

// dump.mjs's ramp, in the same arithmetic.
cv::Mat ramp(const std::vector<int>& shape, double lo, double hi) {
  cv::Mat t(static_cast<int>(shape.size()), shape.data(), CV_32F);
  float* p = t.ptr<float>();
  for (int64_t i = 0; i < static_cast<int64_t>(t.total()); ++i)
    p[i] = static_cast<float>(lo + ((hi - lo) * ((i * 7919) % 1000)) / 999);
  return t;
}

struct Deviation {
  double max_abs = 0, scale = 1e-6, unit = 0;  // max |got - ref|, max |ref|, max unit-vector difference
};
Deviation compare(const float* got, const std::vector<float>& ref) {
  Deviation d;
  double norm_ref = 0, norm_got = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    d.scale = std::max(d.scale, std::abs(double(ref[i])));
    d.max_abs = std::max(d.max_abs, std::abs(double(got[i]) - ref[i]));
    norm_ref += double(ref[i]) * ref[i];
    norm_got += double(got[i]) * got[i];
  }
  for (size_t i = 0; i < ref.size(); ++i)
    d.unit = std::max(d.unit, std::abs(got[i] / std::sqrt(norm_got) - ref[i] / std::sqrt(norm_ref)));
  return d;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// Each model's file, golden metadata and input (dump.mjs's ramp), and the check of one output against onnxruntime.
class OnnxParity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    name = GetParam();
    model = facekit::models_dir() / "faceplugin" / (name + ".onnx");
    if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
    std::ifstream in(kGolden / name / "meta.json");
    meta = json::parse(in);
    const auto range = meta["range"].get<std::vector<double>>();
    input = ramp(meta["shape"].get<std::vector<int>>(), range[0], range[1]);
  }
  // Output k (n floats at `got`) within 1e-4 of onnxruntime's scale; the embedder's unit descriptor within 1e-4.
  void expect_output_matches(size_t k, const float* got, size_t n) const {
    const auto ref = read_f32(kGolden / name / ("output" + std::to_string(k) + ".f32"), n);
    const Deviation d = compare(got, ref);
    EXPECT_LE(d.max_abs, 1e-4 * d.scale) << name << " output " << k << ": max abs error " << d.max_abs << ", scale " << d.scale;
    // What the embedder hands on: the unit-length descriptor.
    if (name == "fr_feature") EXPECT_LE(d.unit, 1e-4) << "unit descriptor differs by " << d.unit;
  }
  std::string name;
  fs::path model;
  json meta;
  cv::Mat input;
};

TEST_P(OnnxParity, MatchesOnnxruntime) {
  std::vector<std::string> names;
  for (const auto& o : meta["outputs"]) names.push_back(o["name"]);
  const facekit::detail::OnnxNet net(model);
  const auto outs = net.forward(input, names);
  ASSERT_EQ(outs.size(), names.size());
  for (size_t k = 0; k < names.size(); ++k) {
    size_t n = 1;
    for (const auto d : meta["outputs"][k]["shape"]) n *= d.get<size_t>();
    ASSERT_EQ(outs[k].total(), n) << name << " output " << names[k];
    expect_output_matches(k, outs[k].ptr<float>(), n);
  }
}

// The same models through the ONNX reader and the graph runtime (NHWC in, ONNX's layout out). The reader
// translates the embedder and the landmark net; the detector and the liveness net compute shapes at run time
// (Shape, Gather, Slice), which it refuses by name: those stay on OpenCV DNN.
TEST_P(OnnxParity, GraphRuntimeMatchesOnnxruntimeOrRefusesByName) {
  const bool translated = name == "fr_feature" || name == "fr_landmark";
  if (!translated) {
    try {
      const facekit::graph::GraphModel net(model);
      FAIL() << name << " was expected to be refused";
    } catch (const facekit::Error& e) {
      EXPECT_EQ(e.code(), facekit::ErrorCode::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find("does not translate"), std::string::npos) << e.what();
    }
    return;
  }
  const facekit::graph::GraphModel net(model);
  std::vector<int64_t> shape(input.size.p, input.size.p + input.dims);
  const at::Tensor nchw = at::from_blob(const_cast<float*>(input.ptr<float>()), shape, at::kFloat);
  const auto outs = net.run(nchw.permute({0, 2, 3, 1}).contiguous());
  ASSERT_EQ(outs.size(), meta["outputs"].size());
  for (size_t k = 0; k < outs.size(); ++k) {
    const auto ref_shape = meta["outputs"][k]["shape"].get<std::vector<int64_t>>();
    ASSERT_EQ(outs[k].sizes().vec(), ref_shape) << name << " output " << k;
    const at::Tensor got = outs[k].contiguous();
    expect_output_matches(k, got.data_ptr<float>(), static_cast<size_t>(got.numel()));
  }
}

// Convolutions with their batch normalisation and activation fused: the embedder's 50 Conv + 33 PRelu become
// 50 convolutions, no standalone PRelu.
TEST(OnnxReader, FoldsActivationsIntoConvolutions) {
  const fs::path model = facekit::models_dir() / "faceplugin" / "fr_feature.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  const auto g = facekit::graph::read_onnx(read_bytes(model), "fr_feature.onnx");
  std::map<std::string, int> ops;
  for (const auto& n : g.nodes) ops[n.at("op").get<std::string>()]++;
  EXPECT_EQ(ops["_FusedConv2D"] + ops["FusedDepthwiseConv2dNative"], 50);
  EXPECT_EQ(ops.count("Prelu"), 0u);
  EXPECT_EQ(ops["AddV2"], 12);
}

TEST(OnnxReader, DamagedFilesGiveModelErrors) {
  const fs::path model = facekit::models_dir() / "faceplugin" / "fr_feature.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  const std::string good = read_bytes(model);
  // Bytes flipped half in the first 16 KB (the node list: PyTorch's exporter writes it before the weights) and
  // half anywhere.
  facekit::test::expect_damage_handled_cleanly(
      good, [](const std::string& b) { facekit::graph::read_onnx(b, "damaged.onnx"); }, ".onnx",
      at::zeros({1, 112, 112, 3}), 11,
      [&](int trial, std::mt19937& rng) -> size_t { return trial % 2 ? rng() % good.size() : rng() % 16384; });
}

INSTANTIATE_TEST_SUITE_P(Faceplugin, OnnxParity, ::testing::ValuesIn(golden_models()),
                         [](const auto& info) { return info.param; });
