#pragma once
// Evaluation: the LFW pair-verification protocol and ROC figures.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "facekit/calibration.hpp"
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

/// TAR at one target FAR, with what the figure rests on.
struct FarPoint {
  double far = 0;          ///< the target false-accept rate
  double tar = 0;          ///< true-accept rate at the threshold below
  float threshold = 0;     ///< accept distance < threshold
  int impostors = 0;       ///< different-person pairs (valid or not) behind the FAR
  int allowed_false_accepts = 0;  ///< floor(far * impostors)
  /// At least one false accept is allowed (impostors >= 1 / far): below that the threshold is only "under
  /// the nearest impostor" and the FAR itself is not measured.
  bool supported = false;
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
  std::vector<FarPoint> tar_at_far;  ///< at FAR = 1e-1 ... 1e-5 (tar_at_fars)
};

/// k-fold protocol: each fold's threshold maximises accuracy on the other folds; the fold is then scored with
/// it. Invalid pairs count as errors.
VerificationReport evaluate_verification(const std::vector<ScoredPair>& pairs, int folds);

/// The true-accept rate at the smallest threshold set so that at most `far` of the different pairs pass.
double tar_at_far(const std::vector<ScoredPair>& pairs, double far, float* threshold = nullptr);

/// TAR at each target FAR (default 1e-1 ... 1e-5). Throws Error(kInvalidArgument) without both kinds of pair.
std::vector<FarPoint> tar_at_fars(const std::vector<ScoredPair>& pairs,
                                  const std::vector<double>& fars = {1e-1, 1e-2, 1e-3, 1e-4, 1e-5});

/// One operating point of the ROC (accept distance <= threshold).
struct OperatingPoint {
  float threshold = 0;
  double far = 0, tar = 0;  ///< false-accept rate (FMR) and true-accept rate (1 - FNMR)
};
/// Every distinct operating point, threshold ascending; starts at (0, 0) unless invalid pairs make that
/// impossible (invalid pairs as in roc_auc). Throws as tar_at_fars.
std::vector<OperatingPoint> roc_curve(const std::vector<ScoredPair>& pairs);

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
  std::vector<float> weights;  ///< one per member, on the raw squared distances, summing to 1
  float threshold = 0;         ///< accuracy-maximising threshold of the fused distance
  double accuracy = 0;         ///< on the fitting pairs
  double auc = 0;              ///< on the fitting pairs
};

/// Grid search for the fused distance sqrt(sum w_i d_i^2) that ranks `members`' pairs best (one list per
/// embedder, same pairs in the same order): the grid (steps of `step`, summing to 1) is over weights on each
/// member's squared distance divided by its median different-person squared distance, so that members of
/// different scales are weighed evenly; the best weights maximise the AUC (then the accuracy) and are returned
/// on the raw squared distances, summing to 1. Throws Error(kInvalidArgument) when the lists disagree.
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

/// Reads a pair list: LFW's format (as read_lfw_pairs) or CSV, one pair per line, `a,b,same[,fold]` (paths
/// relative to the images' root or absolute; same: 1/0, true/false, yes/no; fold: any integer, renumbered
/// 0..k-1 in order of value; an optional header line; `#` comments). A CSV without folds gets fold = line
/// index mod `folds_if_absent`. Throws Error(kNotFound) for a missing file and Error(kInvalidArgument), with
/// the line number, for a malformed one.
std::vector<LfwPair> read_pairs(const std::filesystem::path& file, int folds_if_absent = 10);

/// Per-pair scores as CSV (`a,b,same,fold,valid,distance[,probability]`), one row per pair in order;
/// `probability` empty to leave the column out. Throws Error(kInvalidArgument) when the file cannot be written.
void write_pair_scores(const std::filesystem::path& file, const std::vector<LfwPair>& pairs,
                       const std::vector<ScoredPair>& scored, const std::vector<double>& probability = {});
/// Reads such a file back (to overlay earlier runs on a plot). Throws as read_pairs.
std::vector<ScoredPair> read_pair_scores(const std::filesystem::path& file);

/// A labelled curve for write_roc_plot.
struct PlotRun {
  std::string label;
  std::vector<ScoredPair> pairs;
};
/// ROC (TAR against FAR on a log axis) and DET (FNMR against FMR, both log) side by side in one PNG, one
/// curve per run, with AUC and EER in the legend. Throws Error(kInvalidArgument) for no runs, a run without
/// both kinds of pair, or a file that cannot be written.
void write_roc_plot(const std::filesystem::path& png, const std::vector<PlotRun>& runs, const std::string& title = {});

/// A reliability diagram's data: one labelled set of bins (expected_calibration_error).
struct ReliabilityRun {
  std::string label;
  std::vector<ReliabilityBin> bins;
  double ece = 0;
};
/// Reliability diagrams (fraction same against mean predicted probability per bin, bar widths ~ counts), the
/// runs overlaid. Throws as write_roc_plot.
void write_reliability_plot(const std::filesystem::path& png, const std::vector<ReliabilityRun>& runs,
                            const std::string& title = {});

struct LfwOptions {
  std::filesystem::path root;
  std::filesystem::path pairs;  ///< default: root/pairs.txt; LFW's format or CSV (read_pairs)
  /// A CSV pair list without a fold column gets this many folds (round robin); 0 = 10.
  int folds = 0;
  int threads = 2;              ///< images processed in parallel (each network runs single-threaded)
  /// Photos per batch through the networks (detection, landmarks, embedding); each worker takes a batch.
  int batch = 8;
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
  Embedding embedding;         ///< its embedding (empty: no face)
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
  std::vector<LfwPair> pairs;      ///< the pairs scored (after --limit), in pairs-file order
  std::vector<ScoredPair> scored;  ///< every pair's distance, in the same order
  std::vector<LfwImage> image_faces;  ///< which face was picked in each image
  double wall_seconds = 0;
};

/// Detects, aligns and embeds every image the pairs use (the face nearest the image centre), then scores the
/// protocol. `progress(done, total)` is called as images complete.
LfwReport run_lfw(const FacePipeline& pipeline, const LfwOptions& options,
                  const std::function<void(int, int)>& progress = {});

}  // namespace facekit
