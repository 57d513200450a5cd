// Reference tier: facekit's ONNX runtime (OpenCV DNN, src/onnx) against Microsoft's onnxruntime on the same
// models and input (tests/data/onnx, made by its dump.mjs). Tolerance: max |ours - onnxruntime| <= 1e-4 x
// max |onnxruntime| per output; the embedder's unit-length descriptor within 1e-4 absolute.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "facekit/model.hpp"
#include "onnx/onnx_net.hpp"

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

}  // namespace

class OnnxParity : public ::testing::TestWithParam<std::string> {};

TEST_P(OnnxParity, MatchesOnnxruntime) {
  const std::string name = GetParam();
  const fs::path model = facekit::models_dir() / "faceplugin" / (name + ".onnx");
  if (!fs::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup";
  std::ifstream in(kGolden / name / "meta.json");
  const json meta = json::parse(in);
  const auto range = meta["range"].get<std::vector<double>>();
  std::vector<std::string> names;
  for (const auto& o : meta["outputs"]) names.push_back(o["name"]);

  const facekit::detail::OnnxNet net(model);
  const auto outs = net.forward(ramp(meta["shape"].get<std::vector<int>>(), range[0], range[1]), names);
  ASSERT_EQ(outs.size(), names.size());
  for (size_t k = 0; k < names.size(); ++k) {
    size_t n = 1;
    for (const auto d : meta["outputs"][k]["shape"]) n *= d.get<size_t>();
    ASSERT_EQ(outs[k].total(), n) << name << " output " << names[k];
    const auto ref = read_f32(kGolden / name / ("output" + std::to_string(k) + ".f32"), n);
    const float* got = outs[k].ptr<float>();
    double scale = 1e-6, err = 0, norm_ref = 0, norm_got = 0;
    for (size_t i = 0; i < n; ++i) {
      scale = std::max(scale, std::abs(double(ref[i])));
      err = std::max(err, std::abs(double(got[i]) - ref[i]));
      norm_ref += double(ref[i]) * ref[i];
      norm_got += double(got[i]) * got[i];
    }
    EXPECT_LE(err, 1e-4 * scale) << name << " output " << names[k] << ": max abs error " << err << ", scale " << scale;
    if (name == "fr_feature") {
      // What the embedder hands on: the unit-length descriptor.
      double d = 0;
      for (size_t i = 0; i < n; ++i)
        d = std::max(d, std::abs(got[i] / std::sqrt(norm_got) - ref[i] / std::sqrt(norm_ref)));
      EXPECT_LE(d, 1e-4) << "unit descriptor differs by " << d;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Faceplugin, OnnxParity, ::testing::ValuesIn(golden_models()),
                         [](const auto& info) { return info.param; });
