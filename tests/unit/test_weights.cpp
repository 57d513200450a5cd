// Unit tier: the face-api weights loader and the model-file checks, on small files made here.
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "model/weights.hpp"
#include "../error_code.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {
class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("fk_w_" + std::to_string(::getpid()) + "_" + std::to_string(n_++))) {
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path_ / name, std::ios::binary) << bytes;
  }

 private:
  static inline int n_ = 0;
  fs::path path_;
};

const char* kManifest = R"([{"paths": ["w.bin"], "weights": [
  {"name": "q", "shape": [2, 2], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
  {"name": "f", "shape": [2], "dtype": "float32"},
  {"name": "i", "shape": [], "dtype": "int32", "quantization": {"dtype": "uint8", "scale": 0.3, "min": 0.0}}]}])";

std::string bin() {
  std::string b = {char(0), char(1), char(4), char(255)};  // q
  const float f[2] = {1.5f, -2.25f};
  b.append(reinterpret_cast<const char*>(f), 8);
  b.push_back(char(7));  // i: 7 * 0.3 = 2.1 -> rounds to 2
  return b;
}

using fk_test::error_code_of;
}  // namespace

TEST(FaceApiWeights, DequantisesUint8AndReadsFloat32) {
  TempDir d;
  d.write("m.json", kManifest);
  d.write("w.bin", bin());
  const auto w = fk::detail::load_faceapi_weights(d.path() / "m.json");
  const auto q = fk::detail::take(w, "q", {2, 2});
  EXPECT_FLOAT_EQ(q[0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(q[0][1].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(q[1][0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(q[1][1].item<float>(), 126.5f);
  EXPECT_FLOAT_EQ(fk::detail::take(w, "f", {2})[1].item<float>(), -2.25f);
  EXPECT_FLOAT_EQ(w.at("i").item<float>(), 2.0f);
  EXPECT_EQ(error_code_of([&] { fk::detail::take(w, "q", {4}); }), fk::ErrorCode::kModelCorrupt);
  EXPECT_EQ(error_code_of([&] { fk::detail::take(w, "nope", {1}); }), fk::ErrorCode::kModelCorrupt);
}

TEST(FaceApiWeights, TruncatedOrMissingFilesAreClearErrors) {
  TempDir d;
  d.write("m.json", kManifest);
  EXPECT_EQ(error_code_of([&] { fk::detail::load_faceapi_weights(d.path() / "m.json"); }),
            fk::ErrorCode::kModelMissing);
  d.write("w.bin", bin().substr(0, 6));
  EXPECT_EQ(error_code_of([&] { fk::detail::load_faceapi_weights(d.path() / "m.json"); }),
            fk::ErrorCode::kModelCorrupt);
  d.write("w.bin", bin() + "xx");
  EXPECT_EQ(error_code_of([&] { fk::detail::load_faceapi_weights(d.path() / "m.json"); }),
            fk::ErrorCode::kModelCorrupt);
  d.write("m.json", "{not json");
  EXPECT_EQ(error_code_of([&] { fk::detail::load_faceapi_weights(d.path() / "m.json"); }),
            fk::ErrorCode::kModelCorrupt);
}

TEST(ModelFiles, ChecksumMismatchAndMissingFileNameTheSetupCommand) {
  TempDir d;
  fs::create_directories(d.path() / "sub");
  d.write("sub/a.bin", "hello");
  fk::ModelManifest m;
  m.name = "toy";
  // sha256("hello")
  m.files = {{"weights", "sub/a.bin", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}};
  ::setenv("FACEKIT_MODELS", d.path().c_str(), 1);
  EXPECT_NO_THROW(fk::verify_model_files(m));
  d.write("sub/a.bin", "hellO");
  try {
    fk::verify_model_files(m);
    ADD_FAILURE() << "corrupt file accepted";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kModelCorrupt);
    EXPECT_NE(std::string(e.what()).find("scripts/setup"), std::string::npos);
  }
  fs::remove(d.path() / "sub/a.bin");
  try {
    fk::verify_model_files(m);
    ADD_FAILURE() << "missing file accepted";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kModelMissing);
    EXPECT_NE(std::string(e.what()).find("scripts/setup"), std::string::npos);
  }
  ::unsetenv("FACEKIT_MODELS");
}

TEST(Manifests, CommittedManifestsParseAndUnknownNamesAreNotFound) {
  const auto names = fk::list_manifests();
  EXPECT_GE(names.size(), 3u);
  for (const auto& n : names) {
    const auto m = fk::load_manifest(n);
    EXPECT_EQ(m.name, n);
    if (m.arch == "fusion") {
      EXPECT_FALSE(m.members.empty()) << n;
    } else if (m.arch == "cascade") {  // two detectors by name, no files of its own
      EXPECT_EQ(m.members.size(), 2u) << n;
    } else if (m.arch == "combined") {  // attributes taken from other models: no files of its own
      EXPECT_FALSE(m.attributes.sources.empty()) << n;
    } else if (m.arch == "texture") {  // computed features, no weight files: the weights are in the manifest
      EXPECT_FALSE(m.spoof.weights.empty()) << n;
    } else {
      EXPECT_FALSE(m.files.empty()) << n;
    }
    for (const auto& f : m.files) EXPECT_EQ(f.sha256.size(), 64u);
  }
  const auto e = fk::load_manifest("dlib_resnet");
  EXPECT_EQ(e.embedding_dim, 128);
  EXPECT_EQ(e.alignment_template, "dlib68");
  EXPECT_GT(e.threshold, 0.f);
  EXPECT_EQ(error_code_of([] { fk::load_manifest("no_such_model"); }), fk::ErrorCode::kNotFound);
}
