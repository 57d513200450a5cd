#pragma once
// Evaluation: the LFW pair-verification protocol and ROC figures.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "facekit/pipeline.hpp"

namespace facekit {

/// One scored pair. `valid` is false when a face was missing in either photo: such a pair always counts as
/// wrong.
struct ScoredPair {
  float distance = 0;
  bool same = false;
  bool valid = true;
  int fold = 0;
};

struct FoldResult {
  float threshold = 0;
  double accuracy = 0;
};

struct VerificationReport {
  std::vector<FoldResult> folds;
  double accuracy_mean = 0, accuracy_std = 0;
  double tar_at_far_1e3 = 0;      ///< true-accept rate where the false-accept rate is <= 1e-3
  float threshold_at_far_1e3 = 0;
  float best_threshold = 0;       ///< the accuracy-maximising threshold over all pairs (for calibration only)
  double auc = 0;                 ///< area under the ROC curve (roc_auc)
  double eer = 0;                 ///< equal error rate (equal_error_rate)
  float eer_threshold = 0;
  int pairs = 0, invalid_pairs = 0;
};

/// k-fold protocol: each fold's threshold maximises accuracy on the other folds; the fold is then scored with
/// it. Invalid pairs count as errors.
VerificationReport evaluate_verification(const std::vector<ScoredPair>& pairs, int folds);

/// The true-accept rate at the smallest threshold set so that at most `far` of the different pairs pass.
double tar_at_far(const std::vector<ScoredPair>& pairs, double far, float* threshold = nullptr);

/// Area under the ROC curve: the chance that a same-person pair is closer than a different-person pair (ties
/// count half). Invalid pairs count as errors at every threshold (a same pair infinitely far, a different pair
/// infinitely close). Throws Error(kInvalidArgument) without both kinds of pair.
double roc_auc(const std::vector<ScoredPair>& pairs);
/// Equal error rate: where the false-reject rate of same pairs (distance > t) meets the false-accept rate of
/// different pairs (distance <= t); the mean of the two at the threshold where they are closest. Invalid pairs
/// as in roc_auc.
double equal_error_rate(const std::vector<ScoredPair>& pairs, float* threshold = nullptr);

/// Weights for a fusion of several embedders, fitted on one set of pairs.
struct FusionFit {
  std::vector<float> weights;  ///< one per member, summing to 1
  float threshold = 0;         ///< accuracy-maximising threshold of the fused distance
  double accuracy = 0;         ///< on the fitting pairs
};

/// Grid search over weight vectors (steps of `step`, summing to 1) of the fused distance
/// sqrt(sum w_i d_i^2), for the weights that classify `members` (one list per embedder, same pairs in the same
/// order) best. Throws Error(kInvalidArgument) when the lists disagree.
FusionFit fit_fusion(const std::vector<std::vector<ScoredPair>>& members, double step = 0.05);

/// The fused pairs for given weights.
std::vector<ScoredPair> fuse_pairs(const std::vector<std::vector<ScoredPair>>& members, const std::vector<float>& weights);

struct LfwPair {
  std::string a, b;  ///< paths relative to the LFW root: Name/Name_NNNN.jpg
  bool same = false;
  int fold = 0;
};

/// Reads pairs.txt (10 folds) or pairsDev*.txt (one fold). Throws Error(kNotFound / kInvalidArgument).
std::vector<LfwPair> read_lfw_pairs(const std::filesystem::path& file);

struct LfwOptions {
  std::filesystem::path root;
  std::filesystem::path pairs;  ///< default: root/pairs.txt
  int threads = 2;              ///< images processed in parallel (each network runs single-threaded)
  int limit_pairs = 0;          ///< 0 = all
  /// Detections and landmarks are kept in this file (created if absent) and reused by later runs with the
  /// same detector settings, so comparing embedders costs only embedding. Empty: no cache.
  std::filesystem::path face_cache;
  FacePick pick = FacePick::kMain;  ///< which face of each photo is compared
};

/// The face used for one image of the protocol.
struct LfwImage {
  std::string path;  ///< relative to the root
  int faces = 0;     ///< faces the detector found
  std::optional<Face> picked;  ///< the face compared (none: no face found)
};

/// A pair the protocol got wrong, with the threshold of its fold.
struct LfwError {
  LfwPair pair;
  float distance = 0;  ///< meaningless when !valid
  float threshold = 0;
  bool valid = true;   ///< false: a face was missing
};

struct LfwReport {
  VerificationReport verification;
  std::vector<LfwError> errors;
  int images = 0, no_face = 0;
  std::vector<std::string> no_face_images;
  double median_detect_ms = 0, median_landmarks_ms = 0, median_embed_ms = 0;  ///< embed includes alignment
  std::vector<ScoredPair> scored;  ///< every pair's distance, in pairs-file order
  std::vector<LfwImage> image_faces;  ///< which face was picked in each image
  double wall_seconds = 0;
};

/// Detects, aligns and embeds every image the pairs use (the face nearest the image centre), then scores the
/// protocol. `progress(done, total)` is called as images complete.
LfwReport run_lfw(const FacePipeline& pipeline, const LfwOptions& options,
                  const std::function<void(int, int)>& progress = {});

}  // namespace facekit
