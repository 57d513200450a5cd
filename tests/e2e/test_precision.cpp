// bf16 against fp32 (EmbedderOptions::precision): the dlib ResNet's embeddings of real faces stay within cosine
// 0.999 of the fp32 ones. On LFW (when present) 1,000 faces, else the photos the packages ship.
#include <algorithm>
#include <filesystem>

#include <gtest/gtest.h>

#include "cli_run.hpp"
#include "facekit/embedder.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/runtime.hpp"

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> photos(size_t want) {
  std::vector<fs::path> out;
  if (fs::exists(fk_test::kLfwDir / "pairs.txt")) {
    std::vector<fs::path> dirs;
    for (const auto& d : fs::directory_iterator(fk_test::kLfwDir))
      if (d.is_directory()) dirs.push_back(d.path());
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) {
      for (const auto& f : fs::directory_iterator(d)) {
        out.push_back(f.path());
        break;  // one photo per person: many people
      }
      if (out.size() >= want) break;
    }
    return out;
  }
  for (const auto& dir : {fk_test::kDlibFaces, fk_test::kDemoPhotos})
    if (fs::exists(dir))
      for (const auto& f : fs::directory_iterator(dir))
        if (f.path().extension() == ".jpg") out.push_back(f.path());
  return out;
}

TEST(Precision, Bf16EmbeddingsStayWithinCosine0999OfFp32) {
  // Emulated bf16 (a CPU without AVX512-BF16 or AMX) is slow: fewer faces there.
  const size_t want = facekit::cpu_has_native_bf16() ? 1000 : 100;
  facekit::EmbedderOptions o32, o16;
  o16.precision = "bf16";
  const auto e32 = facekit::create_embedder("dlib_resnet", o32);
  const auto e16 = facekit::create_embedder("dlib_resnet", o16);
  const auto& pipe = fk_test::shared_pipeline();
  size_t faces = 0;
  double worst = 1, sum = 0;
  for (const auto& p : photos(want)) {
    const facekit::Image img = facekit::load_image(p);
    std::vector<facekit::Landmarks68> lms;
    for (const auto& f : pipe.detect(img)) lms.push_back(*f.landmarks);
    if (lms.empty()) continue;
    const auto a = e32->embed_faces(img, lms), b = e16->embed_faces(img, lms);
    for (size_t i = 0; i < a.size() && faces < want; ++i, ++faces) {
      double c = 0;
      for (size_t k = 0; k < a[i].size(); ++k) c += double(a[i][k]) * b[i][k];
      worst = std::min(worst, c);
      sum += c;
    }
    if (faces >= want) break;
  }
  ASSERT_GE(faces, std::min<size_t>(want, 30));
  RecordProperty("faces", static_cast<int>(faces));
  std::cout << faces << " faces: cosine bf16 vs fp32 worst " << worst << ", mean " << sum / faces << "\n";
  EXPECT_GE(worst, 0.999);
}

TEST(Precision, BadOrUnsupportedPrecisionIsRefused) {
  facekit::EmbedderOptions o;
  o.precision = "fp8";
  EXPECT_THROW(facekit::create_embedder("dlib_resnet", o), facekit::Error);
  o.precision = "bf16";
  EXPECT_THROW(facekit::create_embedder("mobilefacenet", o), facekit::Error);  // no bf16 version yet
  o.precision = "auto";
  EXPECT_NO_THROW(facekit::create_embedder("mobilefacenet", o));  // auto falls back to fp32
  EXPECT_STREQ(facekit::resolve_precision("auto"), facekit::cpu_has_native_bf16() ? "bf16" : "fp32");
}

}  // namespace
