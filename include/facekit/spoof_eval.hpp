#pragma once
// Evaluation of presentation attack detection in ISO/IEC 30107-3 terms, and the calibration of spoof checkers.
//
// Scores are live scores (higher = more likely bona fide); a sample is accepted as bona fide when
// score >= threshold. APCER: the share of attack presentations accepted as bona fide. BPCER: the share of bona
// fide presentations rejected as attacks. ACER = (APCER + BPCER) / 2. (30107-3 computes APCER per attack
// instrument species and takes the worst; the data here has one species, replay, so the two agree.)
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "facekit/spoof.hpp"
#include "facekit/registry.hpp"

namespace facekit {

struct PadMetrics {
  float threshold = 0;
  double apcer = 0, bpcer = 0, acer = 0;
};

/// APCER, BPCER and ACER at one threshold. Throws Error(kInvalidArgument) when either list is empty.
PadMetrics pad_metrics(const std::vector<float>& bona_fide, const std::vector<float>& attacks, float threshold);

/// The operating point with APCER <= max_apcer and the lowest BPCER: the smallest threshold above all but
/// floor(max_apcer * attacks) attack scores.
PadMetrics pad_at_apcer(const std::vector<float>& bona_fide, const std::vector<float>& attacks, double max_apcer);

/// The threshold (midway between adjacent scores) minimising |APCER - BPCER|, ties broken by the lower ACER:
/// the equal-error operating point.
float pad_eer_threshold(const std::vector<float>& bona_fide, const std::vector<float>& attacks);

/// Area under the ROC: P(bona fide score > attack score), ties counting one half.
double pad_auc(const std::vector<float>& bona_fide, const std::vector<float>& attacks);

/// Calibrated thresholds: decision at the equal-error point; live = max(decision, the threshold with APCER <=
/// band_rate), spoof = min(decision, the highest threshold with BPCER <= band_rate); scores between are
/// "uncertain". Throws Error(kInvalidArgument) for empty lists or band_rate outside [0, 1).
SpoofThresholds calibrate_spoof_thresholds(const std::vector<float>& bona_fide, const std::vector<float>& attacks,
                                           double band_rate = 0.05);

struct RocPoint {
  float threshold = 0;
  double apcer = 0, bpcer = 0;
};

/// Every distinct operating point, threshold descending (APCER rising from 0 to 1, BPCER falling to 0).
std::vector<RocPoint> pad_roc(const std::vector<float>& bona_fide, const std::vector<float>& attacks);

/// Draws ROC curves (x: APCER, y: 1 - BPCER), one colour per named curve with a legend, as an image file.
void draw_pad_roc(const std::filesystem::path& png, const std::vector<std::pair<std::string, std::vector<RocPoint>>>& curves,
                  const std::string& title);

/// L2-regularised logistic regression (liblinear), classes weighted to equal total weight. Returns one weight
/// per column and the bias last, oriented so that > 0 means label true.
std::vector<float> fit_logistic(const std::vector<std::vector<float>>& x, const std::vector<bool>& y, double c);

/// The same with every weight >= 0 (a fusion of live scores in which a higher member score never lowers the
/// fused one): columns whose weight comes out negative are dropped one at a time, most negative first, and
/// the rest refitted; dropped columns get weight 0.
std::vector<float> fit_monotone_logistic(const std::vector<std::vector<float>>& x, const std::vector<bool>& y, double c);

// ---- `facekit bench spoof` ----

struct SpoofBenchOptions {
  std::filesystem::path live_dir, spoof_dir;  ///< the measured set: bona fide and attack images
  /// When set, every signal is calibrated on these first (texture model, fusion weights, thresholds) and the
  /// measured set is scored with that calibration; otherwise with the manifests' own. Several sets: give the
  /// bona fide and attack folders of each set in the same order; the texture model's out-of-fold scores (on
  /// which the fusion and the texture thresholds are fitted) then leave one set out at a time, else they come
  /// from 5 contiguous folds.
  std::vector<std::filesystem::path> fit_live_dirs, fit_spoof_dirs;
  /// false: each image is a face crop (the whole image is the face box). true: the detector finds the face
  /// (the largest); images without one are counted and left out.
  bool detect = false;
  std::string detector = defaults::kDetector;
  int workers = 2;       ///< images processed in parallel
  SpoofOptions spoof;    ///< device and where the manifests are read from
  double texture_c = 0.1;  ///< inverse L2 strength of the texture models (standardised features)
  double fusion_c = 1.0;   ///< inverse L2 strength of the fusion
  double band_rate = 0.05; ///< see calibrate_spoof_thresholds
  /// With fitting: write the calibrated spoof manifests (all four) into this folder.
  std::filesystem::path save_manifests;
};

struct SpoofSignalReport {
  std::string name;  ///< a name of spoof_signal_names(), or "spoof-combined"
  SpoofThresholds thresholds;
  PadMetrics at_threshold;         ///< at thresholds.decision
  PadMetrics at_apcer5, at_apcer1; ///< BPCER at APCER <= 5% and <= 1% (thresholds from the measured set)
  double auc = 0;
  double uncertain_bona_fide = 0, uncertain_attacks = 0;  ///< shares in the uncertain band
  std::vector<RocPoint> roc;
};

struct SpoofBenchReport {
  std::vector<SpoofSignalReport> signals;  ///< every signal of spoof_signal_names(), then the fusion
  int bona_fide = 0, attacks = 0;          ///< scored samples
  int no_face = 0;                         ///< detect mode: images left out
  bool fitted = false;
  int fit_bona_fide = 0, fit_attacks = 0;
  double wall_seconds = 0;
};

/// Scores every image of the measured (and fitting) set with every signal, calibrates if asked, and reports.
/// `progress(done, total)` is called as images complete.
SpoofBenchReport run_spoof_bench(const SpoofBenchOptions& options, const std::function<void(int, int)>& progress = {});

}  // namespace facekit
