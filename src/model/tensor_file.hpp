#pragma once
// Named float tensors on disk: the weights of models that facekit trains, and its training checkpoints.
// Format "FKTENS" + version (u32), count (u32), then per tensor: name (u32 length + bytes), rank (u32),
// dims (i64 each), float32 data, little-endian. Later versions must keep reading version 1.
#include <filesystem>
#include <map>
#include <string>

#include <ATen/ATen.h>

namespace facekit::detail {

using TensorMap = std::map<std::string, at::Tensor>;

/// Written whole or not at all (temporary file, then rename). Tensors are converted to float32 on the CPU.
void save_tensors(const std::filesystem::path& path, const TensorMap& tensors);
/// Throws Error(kNotFound) when the file is absent, Error(kModelCorrupt) when it is not a tensor file or is
/// truncated.
TensorMap load_tensors(const std::filesystem::path& path);

}  // namespace facekit::detail
