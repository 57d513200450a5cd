#pragma once
// Stage factories as registries: each stage (detector, landmarker, embedder, spoof checker, quality assessor,
// classifier) keeps a table from a key (a manifest's "arch", or a name) to the function that makes it. The
// built-in implementations are in the tables from the start; an application adds its own with add() and then
// names a manifest with that arch like any other model:
//
//   facekit::detector_registry().add("my_arch", [](const facekit::ModelManifest& m, const facekit::DetectorOptions& o) {
//     return std::make_unique<MyDetector>(m, o);
//   });
//
// And the defaults every entry point shares (the Engine, FacePipeline, the create_* functions, the CLI).
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "facekit/error.hpp"

namespace facekit {

/// The default models and device, defined once.
namespace defaults {
/// BlazeFace-back, and face-api's SSD too where BlazeFace's best face scores under 0.75 (profiles, where BlazeFace
/// finds an ear): cfp-dev frontal-profile 91.2% -> 92.1%, LFW unchanged (the SSD runs on 1% of its photos);
/// docs/results.md. "blazeface-back" alone is as good on LFW and faster on profile-heavy sets.
inline constexpr const char* kDetector = "blazeface-ssd";
/// FaceMesh: its points hold on profiles (cfp-dev frontal-profile 84.9% -> 91.1% against face_landmark_68)
/// for about +14% of `bench lfw`'s time; docs/results.md.
inline constexpr const char* kLandmarker = "facemesh";
/// Whose points measure quality's eye state and liveness' blinks and turns, which were set on them: face-api's
/// net follows the eyelids, FaceMesh's eyelid vertices do not (GeometryMeter, quality.hpp).
inline constexpr const char* kGeometryLandmarker = "face_landmark_68";
/// The dlib ResNet fused with faceplugin's MobileFaceNet (weights fitted on LFW View 1 train), faceplugin in
/// bf16 where the CPU has it. Against "dlib_mobilefacenet", the default until 2026-12-06: LFW View 2 99.43%
/// -> 99.52%, cfp-dev frontal-profile 92.57% -> 93.09%, frontal-frontal 99.57% -> 99.43%, tight crops'
/// rank-1 98.75% -> 99.02%, 1.05x the photos per second (docs/results.md). "dlib_resnet" alone is the faster
/// choice.
inline constexpr const char* kEmbedder = "dlib_faceplugin";
inline constexpr const char* kSpoofChecker = "spoof-combined";
inline constexpr const char* kQualityAssessor = "classic";
inline constexpr const char* kClassifier = "knn";
inline constexpr const char* kAttributeEstimator = "attributes";  ///< gender from "gender", age and group from "gear"
inline constexpr const char* kDevice = "cpu";
}  // namespace defaults

/// A thread-safe table from key to creator. `What` names the stage in error messages.
template <class Product, class... Args>
class Registry {
 public:
  using Creator = std::function<std::unique_ptr<Product>(Args...)>;

  explicit Registry(std::string what) : what_(std::move(what)) {}

  /// Adds or replaces the creator of `key`.
  void add(const std::string& key, Creator creator) {
    std::lock_guard lock(mu_);
    creators_[key] = std::move(creator);
  }
  bool contains(const std::string& key) const {
    std::lock_guard lock(mu_);
    return creators_.count(key) > 0;
  }
  /// The keys, sorted.
  std::vector<std::string> keys() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& [k, _] : creators_) out.push_back(k);
    return out;
  }
  /// Throws Error(kInvalidArgument) naming the known keys when `key` has no creator.
  std::unique_ptr<Product> create(const std::string& key, Args... args) const {
    Creator c;
    {
      std::lock_guard lock(mu_);
      const auto it = creators_.find(key);
      if (it == creators_.end()) {
        std::string known;
        for (const auto& [k, _] : creators_) known += (known.empty() ? "" : ", ") + k;
        throw Error(ErrorCode::kInvalidArgument, "no " + what_ + " implementation '" + key + "' (known: " + known + ")");
      }
      c = it->second;
    }
    return c(std::forward<Args>(args)...);
  }

 private:
  std::string what_;
  mutable std::mutex mu_;
  std::map<std::string, Creator> creators_;
};

struct ModelManifest;
class Detector;
struct DetectorOptions;
class Landmarker;
struct LandmarkerOptions;
class Embedder;
struct EmbedderOptions;
class SpoofChecker;
struct SpoofOptions;
class QualityAssessor;
struct QualityOptions;
class Classifier;
struct ClassifierOptions;

/// Keyed by the manifest's "arch".
Registry<Detector, const ModelManifest&, const DetectorOptions&>& detector_registry();
Registry<Landmarker, const ModelManifest&, const LandmarkerOptions&>& landmarker_registry();
Registry<Embedder, const ModelManifest&, const EmbedderOptions&>& embedder_registry();
Registry<SpoofChecker, const ModelManifest&, const SpoofOptions&>& spoof_checker_registry();
/// Keyed by name ("classic"; "knn", "svm").
Registry<QualityAssessor, const QualityOptions&>& quality_assessor_registry();
Registry<Classifier, const ClassifierOptions&>& classifier_registry();

}  // namespace facekit
