#pragma once
// Training photos: identity folders scanned, faces detected once (cached) and aligned to the model's chip,
// augmentation on the fly (internal to the trainer; exposed for the tests).
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "facekit/aligner.hpp"
#include "facekit/train.hpp"
#include "facekit/types.hpp"

namespace facekit::detail {

struct IdentityFolder {
  std::string name;
  std::vector<std::filesystem::path> photos;  ///< sorted
};

/// Sub-folders of `data` (sorted), each with its image files (jpg, jpeg, png, bmp, webp, pnm). When `people`
/// is given, only the identities it lists (LFW peopleDev format). Throws Error(kNotFound) for a missing
/// folder or people file, Error(kInvalidArgument) when no identity folder holds a photo.
std::vector<IdentityFolder> scan_identity_folders(const std::filesystem::path& data,
                                                  const std::filesystem::path& people = {});

/// Aligned chips of photos, one per photo, or a reason the photo was skipped.
struct AlignedPhotos {
  std::vector<std::optional<Image>> chips;
  std::vector<std::string> reasons;  ///< empty where a chip was made
};

/// Detects (through `cache`, keyed by absolute path; created or extended), picks the face (exactly one face,
/// or the one nearest the centre with pick_center) and aligns it with `tpl`. Photos that cannot be decoded
/// are skipped with their error, not thrown.
AlignedPhotos detect_and_align(const std::vector<std::filesystem::path>& photos, const std::filesystem::path& cache,
                               const std::string& detector, bool pick_center, const AlignmentTemplate& tpl,
                               const std::function<void(int, int)>& progress);

/// One augmented copy of an aligned chip (same size).
Image augment_chip(const Image& chip, const TrainAugmentOptions& o, std::mt19937_64& rng);

}  // namespace facekit::detail
