// Reference tier: each ported network against the TF.js reference's tensors on the same input
// (tests/data/golden, made by ../shared/ref-js). Tolerance: 1e-4 max abs difference.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "align/landmark68_net.hpp"
#include "detect/ssd_mobilenetv1.hpp"
#include "embed/dlib_resnet.hpp"
#include "facekit/detector.hpp"
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

INSTANTIATE_TEST_SUITE_P(Golden, FaceParity, ::testing::Values("sample1_face0", "lfw_face0"));
