// Reference tier: each ported network against the TF.js reference's tensors on the same input
// (tests/data/golden, made by ../shared/ref-js). Tolerance: 1e-4 max abs difference.
#include <algorithm>
#include <fstream>
#include <functional>
#include <iostream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "align/landmark68_net.hpp"
#include "detect/ssd_mobilenetv1.hpp"
#include "embed/dlib_resnet.hpp"
#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/model.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using facekit::detail::WeightMap;

namespace {

const fs::path kGolden = fs::path(FACEKIT_TEST_DATA) / "golden";
constexpr double kTol = 1e-4;

at::Tensor read_f32(const std::string& name, at::IntArrayRef shape) {
  std::ifstream in(kGolden / name, std::ios::binary);
  if (!in) throw std::runtime_error("missing golden file " + name);
  at::Tensor t = at::empty(shape, at::kFloat);
  in.read(reinterpret_cast<char*>(t.data_ptr<float>()), t.numel() * 4);
  if (in.gcount() != t.numel() * 4) throw std::runtime_error("short golden file " + name);
  return t;
}

// NHWC pixels (before normalisation) -> normalised NCHW.
at::Tensor prepare(const at::Tensor& nhwc, const std::array<float, 3>& mean, float scale) {
  auto m = at::tensor(std::vector<float>(mean.begin(), mean.end()));
  return ((nhwc - m) * scale).permute({0, 3, 1, 2});
}

WeightMap weights(const std::string& model) {
  return fk::detail::load_model_weights(fk::load_manifest(model));
}

double max_abs(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

const std::array<float, 3> kFaceApiMean = {122.782f, 117.001f, 104.298f};

}  // namespace

TEST(Parity, SsdMobilenetV1MatchesTfjs) {
  c10::InferenceMode guard;
  fk::detail::SsdMobilenetV1Net net(weights("ssd_mobilenetv1"), at::kCPU);
  const fk::Image img = fk::load_image(kGolden / "ssd512.ppm");
  ASSERT_EQ(img.cols, 512);
  // The 512 square input: the image, zero-padded right and bottom (exactly what ref.mjs fed its net).
  at::Tensor x = at::zeros({1, 512, 512, 3});
  for (int y = 0; y < img.rows; ++y)
    for (int c = 0; c < img.cols; ++c)
      for (int k = 0; k < 3; ++k) x[0][y][c][k] = static_cast<float>(img.at<cv::Vec3b>(y, c)[k]);
  auto out = net.forward(prepare(x, {127.5f, 127.5f, 127.5f}, 1 / 127.5f));
  const auto boxes = read_f32("ssd_boxes_decoded.f32", {5118, 4});
  const auto scores = read_f32("ssd_scores.f32", {5118});
  EXPECT_LT(max_abs(out.scores[0], scores), kTol);
  EXPECT_LT(max_abs(out.boxes[0], boxes), kTol);
  // Not a vacuous comparison: the reference finds faces here.
  EXPECT_GT(scores.max().item<float>(), 0.9f);
}

TEST(Parity, RegeneratedAnchorsEqualTheStoredOnes) {
  fk::detail::SsdMobilenetV1Net net(weights("ssd_mobilenetv1"), at::kCPU);
  // anchors() returns the stored table itself for 512x512, so generate 511x512 with the formula and compare
  // with the stored table rescaled in y by 512/511.
  const auto gen = net.anchors(511, 512, {{32, 32}, {16, 16}, {8, 8}, {4, 4}, {2, 2}, {1, 1}});
  auto stored = net.stored_anchors().clone();
  // Height 511 instead of 512 only rescales the y extents by 512/511.
  auto cy = (stored.select(1, 0) + stored.select(1, 2)) / 2, hh = (stored.select(1, 2) - stored.select(1, 0)) * 512 / 511;
  stored.select(1, 0).copy_(cy - hh / 2);
  stored.select(1, 2).copy_(cy + hh / 2);
  ASSERT_EQ(gen.sizes(), stored.sizes());
  EXPECT_LT(max_abs(gen, stored), 1e-5);
}

TEST(Parity, SsdDetectorBoxesMatchTfjs) {
  fk::DetectorOptions opt;
  opt.square_input = true;  // face-api's layout, at its input size
  opt.input_size = 512;
  auto det = fk::create_detector("ssd_mobilenetv1", opt);
  const auto faces = det->detect(fk::load_image(kGolden / "ssd512.ppm"));
  std::ifstream in(kGolden / "ssd512_meta.json");
  const auto meta = nlohmann::json::parse(in);
  std::vector<nlohmann::json> ref;
  for (int i = 0; meta.contains("face" + std::to_string(i) + "_rects"); ++i)
    ref.push_back(meta["face" + std::to_string(i) + "_rects"]["detection"]);
  ASSERT_EQ(faces.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(faces[i].box.x, ref[i]["x"].get<double>(), 1e-2) << "face " << i;
    EXPECT_NEAR(faces[i].box.y, ref[i]["y"].get<double>(), 1e-2) << "face " << i;
    EXPECT_NEAR(faces[i].box.width, ref[i]["width"].get<double>(), 1e-2) << "face " << i;
    EXPECT_NEAR(faces[i].box.height, ref[i]["height"].get<double>(), 1e-2) << "face " << i;
  }
}

class FaceParity : public ::testing::TestWithParam<std::string> {};

TEST_P(FaceParity, Landmark68MatchesTfjs) {
  c10::InferenceMode guard;
  fk::detail::Landmark68Net net(weights("face_landmark_68"), at::kCPU);
  const auto in = read_f32(GetParam() + "_landmark_input_112.f32", {1, 112, 112, 3});
  const auto ref = read_f32(GetParam() + "_landmark_raw136.f32", {1, 136});
  const auto out = net.forward(prepare(in, kFaceApiMean, 1 / 255.f));
  EXPECT_LT(max_abs(out, ref), kTol);
}

TEST_P(FaceParity, DlibResNetMatchesTfjs) {
  c10::InferenceMode guard;
  fk::detail::DlibResNet net(weights("dlib_resnet"), at::kCPU);
  const auto in = read_f32(GetParam() + "_recog_input_150.f32", {1, 150, 150, 3});
  const auto ref = read_f32(GetParam() + "_descriptor128.f32", {1, 128});
  // face-api divides by 255 (dlib by 256): the parity test feeds what the reference fed.
  const auto out = net.forward(prepare(in, kFaceApiMean, 1 / 255.f));
  EXPECT_LT(max_abs(out, ref), kTol);
  EXPECT_GT(ref.norm().item<float>(), 1.0f);
}

TEST_P(FaceParity, BatchedEqualsSingle) {
  // A batch of two different faces gives each face's single-image result.
  c10::InferenceMode guard;
  fk::detail::DlibResNet net(weights("dlib_resnet"), at::kCPU);
  const auto a = prepare(read_f32(GetParam() + "_recog_input_150.f32", {1, 150, 150, 3}), kFaceApiMean, 1 / 255.f);
  const auto b = at::flip(a, {3});
  const auto both = net.forward(at::cat({a, b}, 0));
  EXPECT_LT(max_abs(both[0], net.forward(a)[0]), 1e-5);
  EXPECT_LT(max_abs(both[1], net.forward(b)[0]), 1e-5);
}

TEST_P(FaceParity, ObserverSeesTheInt8ActivationsAndForwardIsUnchanged) {
  // The observer sees the 44 activations DlibResNetInt8 quantises, in its order, without changing the result;
  // the int8 network stays within cosine 0.995 of fp32 on the golden face, and with made-up ranges in the
  // wrong order it does not (so the ranges file is what makes int8 right).
  c10::InferenceMode guard;
  fk::detail::DlibResNet net(weights("dlib_resnet"), at::kCPU);
  const auto x = prepare(read_f32(GetParam() + "_recog_input_150.f32", {1, 150, 150, 3}), kFaceApiMean, 1 / 255.f);
  std::vector<std::pair<float, float>> seen;
  const fk::detail::DlibResNet::Observer see = [&](const at::Tensor& t) {
    seen.emplace_back(t.min().item<float>(), t.max().item<float>());
  };
  const at::Tensor observed = net.head(net.blocks(net.stem(x, &see), 0, net.num_blocks(), &see));
  ASSERT_EQ(seen.size(), static_cast<size_t>(fk::detail::DlibResNetInt8::kActivations));
  EXPECT_LT(max_abs(observed, net.forward(x)), 1e-6);
  EXPECT_FLOAT_EQ(seen[0].first, x.min().item<float>());  // the input comes first
  for (size_t i = 1; i < seen.size(); i += 3) EXPECT_GE(seen[i].first, 0.f) << i;  // ReLU outputs: stem, conv1s
  if (!fk::detail::DlibResNetInt8::available()) GTEST_SKIP() << "libtorch has no oneDNN quantised engine";
  auto cosine = [&](const at::Tensor& a, const at::Tensor& b) {
    return (a * b).sum().item<double>() / (a.norm().item<double>() * b.norm().item<double>());
  };
  const auto ranges = fk::detail::read_int8_ranges(fk::detail::int8_ranges_path("dlib_resnet"));
  const fk::detail::DlibResNetInt8 q8(net, ranges);
  const double c = cosine(q8.forward(x), net.forward(x));
  std::cout << GetParam() << ": int8 vs fp32 cosine " << c << "\n";
  EXPECT_GT(c, 0.995);
  auto reversed = ranges;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_LT(cosine(fk::detail::DlibResNetInt8(net, reversed).forward(x), net.forward(x)), 0.99);
}

TEST(Int8, BadRangesAreRefused) {
  c10::InferenceMode guard;
  fk::detail::DlibResNet net(weights("dlib_resnet"), at::kCPU);
  auto code = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const fk::Error& e) {
      return e.code();
    }
    return fk::ErrorCode::kInternal;  // nothing thrown
  };
  EXPECT_EQ(code([&] { fk::detail::DlibResNetInt8(net, {{0.f, 1.f}}); }), fk::ErrorCode::kInvalidArgument);
  std::vector<std::pair<float, float>> r(fk::detail::DlibResNetInt8::kActivations, {0.f, 1.f});
  r[5] = {2.f, 1.f};
  EXPECT_EQ(code([&] { fk::detail::DlibResNetInt8(net, r); }), fk::ErrorCode::kInvalidArgument);
  const fs::path dir = fs::temp_directory_path() / "fk_int8_ranges";
  fs::create_directories(dir);
  EXPECT_EQ(code([&] { fk::detail::read_int8_ranges((dir / "absent.json").string()); }), fk::ErrorCode::kModelMissing);
  std::ofstream(dir / "bad.json") << "{\"ranges\": [[0, \"x\"]]}";
  EXPECT_EQ(code([&] { fk::detail::read_int8_ranges((dir / "bad.json").string()); }), fk::ErrorCode::kModelCorrupt);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Golden, FaceParity, ::testing::Values("sample1_face0", "lfw_face0"));
