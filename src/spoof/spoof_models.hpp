#pragma once
// The score formulas of the texture and fusion checkers, shared by the checkers and by the calibration in
// `facekit bench spoof` (which fits them on raw scores without running the checkers twice).
#include <vector>

#include "facekit/model.hpp"
#include "facekit/spoof.hpp"

namespace facekit::detail {

/// log(p / (1 - p)) with p clamped to [1e-6, 1 - 1e-6], so that a saturated network output stays finite.
float safe_logit(float p);
float sigmoid(float x);

/// Texture P(live): sigmoid(bias + w . (f - mean) / std). Throws Error(kModelCorrupt) on a length mismatch.
float texture_score(const ModelManifest::Spoof& s, const std::vector<float>& features);

/// Fusion P(live): sigmoid(bias + sum_i w_i logit(p_i)), member scores in the manifest's member order.
float fusion_score(const ModelManifest& m, const std::vector<float>& member_scores);

SpoofThresholds thresholds_of(const ModelManifest& m);

}  // namespace facekit::detail
