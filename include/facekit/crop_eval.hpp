#pragma once
// The tight-crop benchmark: photos of a face set re-framed as a user's own photos often are (cropped close to
// the face at several margins, greyscale, other sizes), then detection counted and one-shot identification
// measured on each variant.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "facekit/identify.hpp"
#include "facekit/pipeline.hpp"

namespace facekit {

struct CropBenchOptions {
  std::filesystem::path root;  ///< LFW layout: Person/Person_NNNN.jpg
  /// Which photos of each person are used (cfp-dev's frontal photos are 1-10; its profiles 11-14).
  int first_index = 1, last_index = 10;
  /// Each crop is the box of the face's 68 reference landmarks grown by this fraction of its width and height
  /// on every side (0: cut at the outermost landmarks, brow to chin). A crop reaching past the photo is cut
  /// at the photo's edge.
  std::vector<float> margins = {0.0f, 0.1f, 0.25f, 0.5f};
  bool grey = true;  ///< also a greyscale copy of every crop (and of the original)
  /// Longer side of every crop after resizing (pixels); empty keeps each crop's own size. Several values give
  /// one variant each.
  std::vector<int> sizes;
  bool include_original = true;  ///< also the whole photo, as a baseline
  int limit_people = 0;          ///< 0 = all
  int workers = 2;
  bool identify = true;  ///< false: count faces only (no landmarks or embeddings)
  /// How each person's first photo is enrolled: as `enroll` does by default (the mean of augmented copies),
  /// or plain when augment.enabled is false. A person whose first photo has no face is enrolled plain from
  /// the next one.
  AugmentOptions augment;
  /// When set, every variant photo is also written here as <variant>/<Person>/<file>.png (for inspection).
  std::filesystem::path write_dir;
  /// When set, every embedding is written here for offline analysis: `index.tsv` (variant, person, photo,
  /// role, row of the plain embedding, row of the enrolment template or -1) and `embeddings.f32` (rows of
  /// float32, the embedder's dimension each).
  std::filesystem::path embeddings_dir;
  /// Diagnostic: embed each crop with the reference face's landmarks (found on the whole photo, moved into
  /// the crop) instead of the pipeline's own, which separates what alignment loses from what the embedder
  /// does.
  bool reference_landmarks = false;
};

/// One way of framing the photos.
struct CropVariantReport {
  std::string name;  ///< e.g. "margin0.10", "margin0.10-grey", "margin0.25-s64", "original"
  int photos = 0;
  int zero = 0;      ///< no face found
  int one = 0;       ///< exactly one face, on the reference face
  int one_elsewhere = 0;  ///< exactly one face, but not on the reference face
  int several = 0;   ///< more than one face
  /// One-shot identification: each person's first photo (of this variant) enrolled (CropBenchOptions::augment),
  /// the others probed against all people's; a probe without a face counts as wrong.
  int probes = 0, rank1 = 0;
  int enrolment_failures = 0;  ///< people whose first photo gave no face (their probes still count)
  int augmented_enrolments = 0;  ///< people enrolled with the mean of augmented copies (CropBenchOptions::augment)
  double one_box_rate() const { return photos ? double(one) / photos : 0; }
  double rank1_rate() const { return probes ? double(rank1) / probes : 0; }
  std::vector<std::string> failures;  ///< photos (Person/file) with no, several or a misplaced face
};

struct CropBenchReport {
  int people = 0, photos = 0;
  int reference_missing = 0;  ///< photos skipped: the reference pipeline found no face on the original
  std::vector<CropVariantReport> variants;
  double wall_seconds = 0;
};

/// Runs the benchmark. `reference` finds the face that each crop is made around (on the original photo, the
/// face it picks); `pipeline` is the one under test: its detect() counts faces, its analyze_one() (FacePick::
/// kMain) gives the face identified.
CropBenchReport run_crop_bench(const FacePipeline& pipeline, const FacePipeline& reference,
                               const CropBenchOptions& options,
                               const std::function<void(int, int)>& progress = {});

}  // namespace facekit
