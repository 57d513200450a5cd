#pragma once
// Training: triplet-loss embedding training (FaceNet) on folders of photos, one folder per identity, and
// fine-tuning of a registered embedder. The result is a model directory (weights + manifest with a threshold
// calibrated on the validation identities) that every command accepts through --model DIR.
//
// Plain types only: the tensor library stays out of this header.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>
#include "facekit/registry.hpp"

namespace facekit {

/// Which triplets of a P x K batch the loss uses (all distances are squared L2 between L2-normalised
/// embeddings; a triplet's loss is max(0, d(a,p) - d(a,n) + margin)).
enum class Mining {
  kRandom,     ///< every anchor-positive pair with one negative drawn at random
  kSemiHard,   ///< every anchor-positive pair with the closest negative farther than the positive (FaceNet);
               ///< when none is farther, the farthest negative
  kBatchHard,  ///< per anchor: its farthest positive and closest negative (Hermans et al. 2017)
  kBatchAll,   ///< every valid triplet; the loss is averaged over the triplets with non-zero loss
};
/// "random", "semi-hard", "batch-hard", "batch-all"; throws Error(kInvalidArgument) otherwise.
Mining parse_mining(const std::string& name);
const char* to_string(Mining m);

/// Split of identities into training and validation (never photos of one person on both sides).
struct IdentitySplit {
  std::vector<int> train, validation;  ///< identity indices, each sorted
};
/// Deterministic for a seed. At least one identity goes to each side when there are two or more and
/// validation_fraction > 0.
IdentitySplit split_by_identity(int identities, double validation_fraction, uint64_t seed);

/// Identity-balanced batches: P identities, K photos each (drawn without replacement while an identity has
/// enough photos, with replacement otherwise). Only identities with at least two photos are drawn.
/// Not thread-safe.
class PKSampler {
 public:
  /// labels[i] = identity of photo i. Throws Error(kInvalidArgument) when fewer than two identities have two
  /// photos, or when p < 2 or k < 2.
  PKSampler(std::vector<int> labels, int p, int k, uint64_t seed);
  /// P*K photo indices, identity by identity (K consecutive indices share a label).
  std::vector<int> next();
  int p() const { return p_; }
  int k() const { return k_; }
  int identities() const { return static_cast<int>(by_id_.size()); }

 private:
  std::vector<int> labels_;
  std::vector<std::vector<int>> by_id_;
  int p_, k_;
  std::mt19937_64 rng_;
};

/// Augmentation of each training photo (the aligned chip), applied on the fly. Named apart from enrolment's
/// AugmentOptions (identify.hpp): two classes of one name broke the one-definition rule, and the CLI built
/// TrainOptions with the other class's constructor (found by the ASan run, scripts/sanitize).
struct TrainAugmentOptions {
  bool enabled = true;
  bool flip = true;          ///< mirror half of the chips
  float crop_jitter = 0.06f; ///< random shift up to this fraction of the chip, and scale by 1 +- this
  float rotate_deg = 5.f;    ///< random rotation up to this many degrees
  float colour = 0.2f;       ///< brightness, contrast and saturation each scaled by 1 +- this
  float blur = 0.1f;         ///< probability of a Gaussian blur (sigma 0.5 to 1.2 pixels)
};

struct TrainOptions {
  std::filesystem::path data;  ///< one folder of photos per identity
  std::filesystem::path out;   ///< the model directory written (created; also holds checkpoints, logs)
  /// Only these identities (LFW's peopleDev*.txt format: a count, then "Name N" lines). Empty: all folders.
  std::filesystem::path people;
  /// Detections are cached here (default OUT/faces.cache), so a second run on the same photos costs none.
  std::filesystem::path face_cache;
  /// Photos with several faces: false skips them (the rule: exactly one face); true keeps the face
  /// nearest the centre, as the LFW protocol does.
  bool pick_center = false;
  std::string detector = defaults::kDetector;

  /// "small_cnn" trains facekit's small CNN from scratch; a registered embedder name ("dlib_resnet")
  /// fine-tunes it.
  std::string base = "small_cnn";
  /// Fine-tuning: 0 trains all layers; N > 0 trains only the last N residual blocks plus a new projection
  /// head (initialised to the identity).
  int train_blocks = 0;
  int chip_size = 64;     ///< small CNN: aligned chip side (dlib68 template, padding chip_padding)
  float chip_padding = 0.25f;
  int width = 16;         ///< small CNN: channels of the first stage (then 2x, 4x, 8x)
  int dim = 128;          ///< small CNN: embedding size

  Mining mining = Mining::kSemiHard;
  float margin = 0.2f;
  int p = 16, k = 4;      ///< P identities x K photos per batch
  int epochs = 10;
  int steps_per_epoch = 0;  ///< 0: training photos / (P*K)
  /// Stop after this many minutes of training (checked after each step; the last epoch is cut short and
  /// still validated and checkpointed). 0: no limit.
  double max_minutes = 0;

  std::string optimizer = "adam";  ///< "adam" or "sgd" (momentum 0.9, Nesterov)
  double lr = 1e-3;
  std::string schedule = "cosine"; ///< "cosine" (to 1% of lr), "step" (x0.1 at 60% and 85%), "constant"
  int warmup_steps = 0;            ///< linear warm-up from 0
  double weight_decay = 5e-4;
  double clip_norm = 5.0;          ///< gradient-norm clipping; 0 disables
  uint64_t seed = 1;
  double validation_fraction = 0.1;
  TrainAugmentOptions augment;
  std::string device = defaults::kDevice;  ///< "cpu" or "cuda[:N]"
  bool resume = false;             ///< continue from OUT/checkpoint (after a crash or kill -9)
  /// Export the epoch with the highest validation accuracy, the model before training (epoch 0) included, so
  /// that a fine-tune never exports a model worse on the held-out identities than the one it started from;
  /// ties go to the earlier epoch. false: export the last epoch.
  bool keep_best = true;

  /// Optional: also score these LFW pairs (pairsDevTest.txt) after each epoch, for reporting only; the
  /// model and its threshold never depend on them.
  std::filesystem::path eval_root, eval_pairs;
};

/// One line of OUT/metrics.jsonl.
struct EpochMetrics {
  int epoch = 0;          ///< 1-based
  int64_t step = 0;       ///< optimizer steps so far
  double loss = 0;        ///< mean over the epoch's steps
  double active = 0;      ///< mean fraction of triplets with non-zero loss
  double validation_accuracy = 0;  ///< 10-fold accuracy on pairs of validation identities
  float validation_threshold = 0;  ///< the accuracy-maximising distance threshold there
  /// On eval_pairs, as `facekit bench lfw --pairs` scores them (one fold: the threshold that is best on
  /// those pairs; -1 when not asked), and at this epoch's validation threshold (the honest figure).
  double eval_accuracy = -1, eval_accuracy_calibrated = -1;
  double train_seconds = 0;        ///< training time so far (excludes validation)
  double triplets_per_second = 0;  ///< this epoch: triplets scored by the loss per second of training
  double images_per_second = 0;    ///< this epoch: photos through forward and backward per second
  /// Mean distance between the validation pairs of different people (unit vectors: 0 to 2; -1 when unknown).
  double impostor_distance = -1;
  /// The embedding has collapsed onto (nearly) one point: different people closer than 0.1 on average while
  /// the loss sits at the margin (every triplet active, nothing learnt). Batch-hard mining from scratch does
  /// this at lr 1e-3 and at 3e-4 (docs/training.md). The trainer reports it; it does not stop.
  bool collapsed = false;
};

struct TrainProgress {
  int epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;      ///< global step and total steps planned
  double loss = 0, active = 0;      ///< running means over the current epoch
  double eta_seconds = 0;
};

struct TrainReport {
  /// The model before training (the pretrained one when fine-tuning), epoch 0; also OUT/baseline.json.
  /// Not measured again by a resumed run (then epoch = -1).
  EpochMetrics baseline{-1};
  std::vector<EpochMetrics> epochs;
  std::vector<std::string> skipped;  ///< "path: reason" for photos without exactly one usable face
  int train_identities = 0, validation_identities = 0;
  int train_photos = 0, validation_photos = 0;
  float threshold = 0;               ///< written to the manifest
  int exported_epoch = 0;            ///< the epoch whose weights were exported (0: the model before training)
  int resumed_from_epoch = 0;        ///< 0 when not resumed
  std::filesystem::path model_dir;
};

struct TrainCallbacks {
  std::function<void(int done, int total)> caching;  ///< detection/alignment progress
  std::function<void(const TrainProgress&)> step;    ///< after each optimizer step
  std::function<void(const EpochMetrics&)> epoch;    ///< after each epoch's validation
  std::function<void(const EpochMetrics&)> baseline; ///< the model before the first step
};

/// Runs the whole training. Throws Error(kInvalidArgument) for bad options, for too few usable photos, and
/// when training diverges (NaN or infinite loss, gradients or weights: nothing is written from that step;
/// the last checkpoint stays); Error(kNotFound) for a missing data folder.
TrainReport train_embedder(const TrainOptions& options, const TrainCallbacks& callbacks = {});

}  // namespace facekit
