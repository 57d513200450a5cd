#pragma once
// Detections and landmarks kept on disk, keyed by image path, so that a second run over the same photos
// (another embedder on LFW, another training run on the same folders) costs no detection.
// Format "FKFC1", then per image: path (u32 length + bytes), a byte with the number of faces found (capped at
// 255; 0 = none), and for the chosen face its box, score and 68 points. Version-1 files wrote 1 for "found".
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>

#include "facekit/types.hpp"

namespace facekit::detail {

struct CachedFace {
  std::optional<Face> face;  ///< the chosen face (with landmarks); none when no face was found
  int faces = 0;             ///< how many faces the detector found in the photo
};
using FaceCache = std::unordered_map<std::string, CachedFace>;

/// Throws Error(kInvalidArgument) for a file that is not a face cache or is truncated.
FaceCache read_face_cache(const std::filesystem::path& p);
/// Written to a temporary file and renamed, so a reader never sees half a cache.
void write_face_cache(const std::filesystem::path& p, const FaceCache& faces);

}  // namespace facekit::detail
