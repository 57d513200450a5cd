#pragma once
// Score calibration: an embedding distance -> the probability that two faces are the same person, fitted on
// labelled pairs (Platt's logistic map or isotonic regression) and stored in the embedder's manifest.
#include <filesystem>
#include <string>
#include <vector>

namespace facekit {

/// A map from distance to P(same person). The probability is calibrated for the mix of same and different
/// pairs it was fitted on (pair lists are usually half and half); for another prior pi of same pairs, scale
/// the odds: p' = p r / (p r + 1 - p) with r = pi / (1 - pi) * (1 - fit_prior) / fit_prior.
struct ScoreCalibration {
  std::string method;  ///< "platt" or "isotonic"; empty: no calibration
  /// Platt: P(same) = 1 / (1 + exp(a * distance + b)) (a > 0: farther is less likely the same person).
  double a = 0, b = 0;
  /// Isotonic: knots, distance ascending, probability non-increasing; linear between knots, flat beyond.
  std::vector<float> distance, probability;
  std::string fitted_on;   ///< what the map was fitted on (a pairs file, a dataset name)
  int pairs = 0;           ///< pairs it was fitted on
  double fit_prior = 0.5;  ///< share of same-person pairs in them

  bool empty() const { return method.empty(); }
  /// P(same) for a distance. Throws Error(kInvalidArgument) when empty().
  double probability_at(float distance) const;
};

/// One labelled distance for fitting or scoring a calibration.
struct LabelledScore {
  float distance = 0;
  bool same = false;
};

/// Platt's logistic map fitted by Newton's method with Platt's smoothed targets (Lin, Lin and Weng's
/// formulation). Throws Error(kInvalidArgument) without both kinds of pair.
ScoreCalibration fit_platt(const std::vector<LabelledScore>& scores);
/// Isotonic regression (pool-adjacent-violators, non-increasing in distance); each block's probability is
/// (same + 0.5) / (n + 1), so no distance gets exactly 0 or 1. Throws as fit_platt.
ScoreCalibration fit_isotonic(const std::vector<LabelledScore>& scores);

/// One bin of a reliability diagram.
struct ReliabilityBin {
  double lo = 0, hi = 0;        ///< predicted-probability range of the bin
  int count = 0;
  double mean_predicted = 0;    ///< mean P(same) the map gave the pairs in it
  double fraction_same = 0;     ///< share of them that are the same person
};

/// Expected calibration error: sum over `bins` equal-width bins of predicted probability of
/// (pairs in bin / pairs) * |fraction same - mean predicted|. `predicted` and `scores` are parallel.
/// Fills `out` with the bins when given. Throws Error(kInvalidArgument) for mismatched or empty lists.
double expected_calibration_error(const std::vector<double>& predicted, const std::vector<LabelledScore>& scores,
                                  int bins = 10, std::vector<ReliabilityBin>* out = nullptr);

/// Reads a calibration file as `facekit calibrate` writes it (`{"calibration": {...}, ...}`). Throws
/// Error(kNotFound) for a missing file and Error(kInvalidArgument) for a malformed one.
ScoreCalibration load_calibration(const std::filesystem::path& file);
/// Writes one (with `extra` fields beside it: what it was fitted for), replacing the file atomically.
void save_calibration(const std::filesystem::path& file, const ScoreCalibration& c, const std::string& embedder);

}  // namespace facekit
