#include "gallery/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "facekit/error.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

fs::path temp_beside(const fs::path& path) {
  std::random_device rd;
  return path.string() + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
}

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void finish(const fs::path& tmp, const fs::path& path) {
  fsync_path(tmp, false);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(ErrorCode::kStorage, "cannot write " + path.string() + ": " + ec.message());
  }
  fsync_path(path.has_parent_path() ? path.parent_path() : fs::path("."), true);
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  const fs::path tmp = temp_beside(path);
  try {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(ErrorCode::kStorage, "cannot create " + tmp.string());
    write(f);
    f.flush();
    if (!f) throw Error(ErrorCode::kStorage, "cannot write " + tmp.string() + " (disk full?)");
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  finish(tmp, path);
}

void write_file_atomically_c(const fs::path& path, const std::function<void(std::FILE*)>& write) {
  const fs::path tmp = temp_beside(path);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(ErrorCode::kStorage, "cannot create " + tmp.string());
  try {
    write(f);
    if (std::fflush(f) != 0 || std::ferror(f)) throw Error(ErrorCode::kStorage, "cannot write " + tmp.string());
  } catch (...) {
    std::fclose(f);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  if (std::fclose(f) != 0) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw Error(ErrorCode::kStorage, "cannot write " + tmp.string());
  }
  finish(tmp, path);
}

}  // namespace facekit
