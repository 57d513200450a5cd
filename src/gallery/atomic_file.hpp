#pragma once
// Files written whole or not at all: a temporary file beside the target, flushed to disk, then renamed over
// it (rename is atomic within a file system), then the directory flushed so the rename itself is durable.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <ostream>

namespace facekit {

/// Throws Error(kStorage) when the file cannot be written; the target is then untouched.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write);
/// The same for writers that need a C stream (faiss's write_index).
void write_file_atomically_c(const std::filesystem::path& path, const std::function<void(std::FILE*)>& write);

}  // namespace facekit
