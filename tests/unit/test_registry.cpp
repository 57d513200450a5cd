// Stage registries (facekit/registry.hpp): built-ins present, errors name the known keys, an application's own
// implementation is made through the same create_* entry point as the built-ins.
#include <gtest/gtest.h>

#include "facekit/classifier.hpp"
#include "facekit/detector.hpp"
#include "facekit/embedder.hpp"
#include "facekit/error.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/quality.hpp"
#include "facekit/registry.hpp"
#include "facekit/spoof.hpp"

namespace fk = facekit;

namespace {

TEST(Registry, BuiltInsAreRegistered) {
  EXPECT_TRUE(fk::detector_registry().contains("blazeface"));
  EXPECT_TRUE(fk::detector_registry().contains("ssd_mobilenetv1"));
  EXPECT_TRUE(fk::landmarker_registry().contains("faceapi_landmark68"));
  for (const char* arch : {"dlib_resnet29", "dlib_resnet29_tuned", "facekit_small_cnn", "graph", "onnx", "fusion"})
    EXPECT_TRUE(fk::embedder_registry().contains(arch)) << arch;
  for (const char* arch : {"graph", "texture", "fusion"}) EXPECT_TRUE(fk::spoof_checker_registry().contains(arch)) << arch;
  EXPECT_EQ(fk::classifier_registry().keys(), (std::vector<std::string>{"knn", "svm"}));
  EXPECT_TRUE(fk::quality_assessor_registry().contains("classic"));
}

TEST(Registry, UnknownKeyIsAnErrorThatListsTheKnownOnes) {
  try {
    fk::create_classifier("no_such_classifier");
    FAIL() << "an unknown classifier was made";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kInvalidArgument);
    const std::string m = e.what();
    EXPECT_NE(m.find("no_such_classifier"), std::string::npos) << m;
    EXPECT_NE(m.find("knn, svm"), std::string::npos) << m;
  }
  EXPECT_THROW(fk::create_quality_assessor("no_such_assessor"), fk::Error);
}

TEST(Registry, AnApplicationsOwnImplementationIsMadeLikeABuiltIn) {
  int made = 0;
  fk::classifier_registry().add("knn_counted", [&made](const fk::ClassifierOptions& o) {
    ++made;
    return fk::create_classifier("knn", o);
  });
  const auto c = fk::create_classifier("knn_counted");
  ASSERT_TRUE(c);
  EXPECT_EQ(made, 1);
  EXPECT_FALSE(c->trainable());
}

TEST(Registry, TheTemplateAddsReplacesAndSorts) {
  fk::Registry<int, int> r("number");
  r.add("b", [](int v) { return std::make_unique<int>(v * 2); });
  r.add("a", [](int v) { return std::make_unique<int>(v); });
  EXPECT_EQ(r.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*r.create("b", 21), 42);
  r.add("b", [](int v) { return std::make_unique<int>(v + 1); });
  EXPECT_EQ(*r.create("b", 41), 42);
  EXPECT_THROW(r.create("c", 1), fk::Error);
}

TEST(Registry, DefaultsAreDefinedOnce) {
  const fk::PipelineOptions p;
  EXPECT_EQ(p.detector, fk::defaults::kDetector);
  EXPECT_EQ(p.embedder, fk::defaults::kEmbedder);
  EXPECT_EQ(p.landmarker, fk::defaults::kLandmarker);
  EXPECT_EQ(p.device, fk::defaults::kDevice);
  EXPECT_EQ(fk::DetectorOptions{}.device, fk::defaults::kDevice);
  EXPECT_EQ(fk::SpoofOptions{}.device, fk::defaults::kDevice);
}

TEST(Registry, APipelineNeedsEveryStage) {
  EXPECT_THROW(fk::FacePipeline(nullptr, nullptr, nullptr), fk::Error);
}

}  // namespace
