// The manifest's one writer (manifest_to_json / save_manifest) against its one reader (parse_manifest): every
// committed manifest survives a round trip with every field the reader knows, numbers within float precision.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../test_dir.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Every value of `want` is in `got` (objects recursively, arrays element-wise, numbers to float precision).
void expect_contains(const json& got, const json& want, const std::string& where) {
  if (want.is_object()) {
    ASSERT_TRUE(got.is_object()) << where;
    for (const auto& [k, v] : want.items()) {
      ASSERT_TRUE(got.contains(k)) << where << "." << k << " was dropped";
      expect_contains(got[k], v, where + "." + k);
    }
  } else if (want.is_array()) {
    ASSERT_TRUE(got.is_array()) << where;
    ASSERT_EQ(got.size(), want.size()) << where;
    for (size_t i = 0; i < want.size(); ++i) expect_contains(got[i], want[i], where + "[" + std::to_string(i) + "]");
  } else if (want.is_number()) {
    ASSERT_TRUE(got.is_number()) << where;
    const double a = got.get<double>(), b = want.get<double>();
    EXPECT_LE(std::abs(a - b), 1e-6 * std::max(1.0, std::abs(b))) << where;
  } else {
    EXPECT_EQ(got, want) << where;
  }
}

// parse_manifest refuses `text` as corrupt, with `words` in its message.
void expect_refused(const std::string& text, const std::string& words) {
  try {
    fk::parse_manifest(text, "m.json", ".");
    ADD_FAILURE() << text << " was accepted";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kModelCorrupt) << text;
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(ManifestParser, ANumberOutOfIntRangeIsRefused) {
  // scripts/fuzz: "size": 5.9e59 read into an int was undefined behaviour.
  const std::string base = R"({"name": "x", "kind": "detector", "arch": "ssd_mobilenetv1", "files": [], )";
  for (const char* bad : {R"("input": {"size": 5.9e59}})", R"("input": {"size": 4294967297}})",
                          R"("input": {"size": -3e9}})", R"("landmark_box": [1, 1, 1e300, 0]})"})
    expect_refused(base + bad, "out of range");
  EXPECT_EQ(fk::parse_manifest(base + R"("input": {"size": 416, "scale": 0.0078}})", "m.json", ".").input_size, 416);
}

TEST(ManifestParser, AMeshLandmarkerOutOfItsRangesIsRefused) {
  const std::string base = R"({"name": "x", "kind": "landmarker", "arch": "facemesh", "files": [], )";
  for (const char* bad :
       {R"("mesh": {"passes": 0}})", R"("mesh": {"passes": 9}})", R"("mesh": {"refine_scale": 0.1}})",
        R"("mesh": {"point_offsets": [[0, 0], [0.1, 0.2]]}})", R"("mesh": {"mirror": "sometimes"}})"})
    expect_refused(base + bad, "mesh.");
  EXPECT_EQ(fk::parse_manifest(base + "\"mesh\": {}}", "m.json", ".").mesh.mirror, "never");
  const auto m = fk::load_manifest("facemesh");
  EXPECT_EQ(m.mesh.passes, 2);
  EXPECT_EQ(m.mesh.mirror, "never");  // measured no gain on colour or grey (docs/results.md)
  EXPECT_EQ(m.mesh.point_offsets.size(), 68u);
  EXPECT_FALSE(m.mesh.point_offsets_source.empty());
}

TEST(ManifestParser, AnOnnxRuntimeIsAutoGraphOrOpencv) {
  const std::string base = R"({"name": "x", "kind": "embedder", "arch": "onnx", "files": [], )";
  expect_refused(base + R"("onnx": {"input": "in", "output": "out", "runtime": "tensorrt"}})", "runtime");
  for (const char* r : {"auto", "graph", "opencv"}) {
    const auto m = fk::parse_manifest(base + R"("onnx": {"input": "in", "output": "out", "runtime": ")" + r + "\"}}", "m.json", ".");
    EXPECT_EQ(m.onnx_runtime, r);
    EXPECT_EQ(fk::parse_manifest(fk::manifest_to_json(m), "m.json", ".").onnx_runtime, r) << "round trip";
  }
  EXPECT_EQ(fk::parse_manifest(base + R"("onnx": {"input": "in"}})", "m.json", ".").onnx_runtime, "auto");
}

// A graph embedder runs bf16 only where its manifest records how bf16 was checked against fp32.
TEST(ManifestParser, AGraphEmbeddersBf16CheckRoundTrips) {
  const std::string base = R"({"name": "x", "kind": "embedder", "arch": "graph", "files": [], )";
  const auto m = fk::parse_manifest(base + R"("graph": {"input": "in", "output": "out", "bf16": "cosine 0.9999"}})", "m.json", ".");
  EXPECT_EQ(m.bf16_source, "cosine 0.9999");
  EXPECT_EQ(fk::parse_manifest(fk::manifest_to_json(m), "m.json", ".").bf16_source, "cosine 0.9999") << "round trip";
  EXPECT_TRUE(fk::parse_manifest(base + R"("graph": {"input": "in"}})", "m.json", ".").bf16_source.empty());
  EXPECT_FALSE(fk::load_manifest("mobilefacenet_tflite").bf16_source.empty());
  EXPECT_TRUE(fk::load_manifest("faceres").bf16_source.empty());
}

TEST(ManifestParser, ACascadeOutOfItsRangeIsRefused) {
  const std::string base = R"({"name": "x", "kind": "detector", "arch": "cascade", "files": [], )";
  for (const char* bad : {R"("cascade": {"unsure_below": 1.5}})", R"("cascade": {"unsure_below": -0.1}})"})
    expect_refused(base + bad, "cascade.unsure_below");
  const auto m = fk::load_manifest("blazeface-ssd");
  ASSERT_EQ(m.members.size(), 2u);
  EXPECT_EQ(m.members[0].first, "blazeface-back");
  EXPECT_EQ(m.members[1].first, "ssd_mobilenetv1");
  EXPECT_FALSE(m.cascade.unsure_below_source.empty());
}

TEST(ManifestWriter, EveryCommittedManifestSurvivesARoundTrip) {
  int checked = 0;
  for (const auto& name : fk::list_manifests()) {
    const fs::path file = fk::manifests_dir() / (name + ".json");
    std::ifstream in(file);
    const json original = json::parse(in);
    const fk::ModelManifest m = fk::load_manifest(name);
    const std::string text = fk::manifest_to_json(m);
    expect_contains(json::parse(text), original, name);
    // Written, read, written again: the same text.
    EXPECT_EQ(fk::manifest_to_json(fk::parse_manifest(text, name)), text) << name;
    ++checked;
  }
  EXPECT_GE(checked, 10);
  // The clustering threshold is read (and written back: above); manifests without one give 0.
  EXPECT_FLOAT_EQ(fk::load_manifest("dlib_resnet").cluster_threshold, 0.34f);
  EXPECT_EQ(fk::load_manifest("mobileface").cluster_threshold, 0.f);
}

TEST(ManifestWriter, SaveWritesAFileThatLoadsAndKeepsExtraFields) {
  const fs::path dir = fk_test::fresh_test_dir("fk_manifest");
  fk::ModelManifest m = fk::load_manifest("dlib_resnet");
  m.name = "copy";
  m.threshold = 0.5f;
  fk::save_manifest(dir / "sub" / "copy.json", m, R"({"training": {"epochs": 3}})");
  const fk::ModelManifest back = fk::load_manifest("copy", dir / "sub");
  EXPECT_EQ(back.name, "copy");
  EXPECT_FLOAT_EQ(back.threshold, 0.5f);
  EXPECT_EQ(back.files.size(), m.files.size());
  std::ifstream in(dir / "sub" / "copy.json");
  EXPECT_EQ(json::parse(in)["training"]["epochs"], 3);
  EXPECT_THROW(fk::save_manifest(dir / "bad.json", m, "[1]"), fk::Error);
  EXPECT_FALSE(fs::exists(dir / "bad.json"));
  fs::remove_all(dir);
}

}  // namespace
