#pragma once
// The one way a loader gets a model's file: verified first (clear kModelMissing / kModelCorrupt errors naming
// the file and the fix), then its path.
#include <filesystem>
#include <string>

#include "facekit/model.hpp"

namespace facekit::detail {
/// verify_model_files(m), then m.file_path(role): the path that was verified.
std::filesystem::path verified_model_file(const ModelManifest& m, const std::string& role);
}  // namespace facekit::detail
