#pragma once
// Face attributes: estimated age, gender and a coarse demographic group per face, from a face crop.
//
// These are *estimates* by a network trained on someone else's labels, not facts about a person. facekit uses
// them for one job: splitting an evaluation set into groups when no labels exist (`facekit bench bias
// --estimate-groups`), so that error rates can be compared across groups; `detect --attributes` shows them.
// Every output carries the network's probability, and docs/bias.md states what was measured about their
// reliability (no labelled set for them exists here).
//
// Estimators by name (share/models/NAME.json, kind "attributes"):
//   "attributes" (the default) gender from "gender", age and group from "gear" (arch "combined")
//   "gear"    human-models' GEAR predictor (Udolf15/GEAR-Predictor, UTKFace-style labels): 7 age buckets,
//             gender (2), race (white, black, asian, indian, other), on a 198x198 crop of the face box
//   "gender"  human-models' gender model (oarriaga/face_classification mini-Xception), 64x64 grey
// A model may give only some attributes: the vectors of the others stay empty (age 0).
//
// Thread safety: estimate() is const and may be called from several threads at once.
#include <memory>
#include <string>
#include <vector>

#include "facekit/image.hpp"
#include "facekit/model.hpp"
#include "facekit/registry.hpp"
#include "facekit/types.hpp"

namespace facekit {

/// One label of a categorical attribute and the network's probability for it.
struct LabelScore {
  std::string label;
  float probability = 0;
};

struct FaceAttributes {
  /// Years: the bucket centres (manifest "age_centres") weighted by the bucket probabilities.
  float age = 0;
  /// Every categorical output, each sorted by probability, most likely first; the first one is the answer.
  std::vector<LabelScore> age_group, gender, group;
};

struct AttributeOptions {
  std::string device = defaults::kDevice;
};

class AttributeEstimator {
 public:
  virtual ~AttributeEstimator() = default;
  /// Attributes of one face of `rgb` (CV_8UC3, RGB); only face.box is used. Throws Error(kInvalidArgument) for
  /// an empty image or a box that does not overlap it.
  virtual FaceAttributes estimate(const Image& rgb, const Face& face) const = 0;
  /// The same for several faces (of one or several images) in one forward pass; `images[i]` holds `faces[i]`.
  virtual std::vector<FaceAttributes> estimate_batch(const std::vector<const Image*>& images,
                                                     const std::vector<Face>& faces) const = 0;
  virtual const ModelManifest& manifest() const = 0;
  const std::string& name() const { return manifest().name; }
};

/// By manifest name (kind "attributes"). Throws Error(kNotFound) for an unknown name, Error(kInvalidArgument)
/// for a model of another kind, Error(kModelMissing) when its files are not set up.
std::unique_ptr<AttributeEstimator> create_attribute_estimator(const std::string& name = defaults::kAttributeEstimator,
                                                               const AttributeOptions& options = {});

/// Keyed by the manifest's "arch".
Registry<AttributeEstimator, const ModelManifest&, const AttributeOptions&>& attribute_estimator_registry();

}  // namespace facekit
