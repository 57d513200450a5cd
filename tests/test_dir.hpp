#pragma once
// A fresh folder per test, and a small tmpfs for the tests of read-only and full file systems; shared by the
// unit and end-to-end tests.
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace fk_test {

/// An empty folder named after the running test: <tmp>/<prefix>_<pid>_<test name>.
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  const auto dir = std::filesystem::temp_directory_path() /
                   (prefix + "_" + std::to_string(::getpid()) + "_" +
                    ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// A small tmpfs mounted for one test (root only: mount() is false elsewhere, and the test skips). Unmount it
/// in TearDown before removing the folder it is in; the destructor does it too.
class TmpfsMount {
 public:
  TmpfsMount() = default;
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  ~TmpfsMount() { unmount(); }

  /// Mounts a tmpfs with `options` (e.g. "size=1m") at `at`, creating the folder.
  bool mount(const std::filesystem::path& at, const char* options) {
    std::filesystem::create_directories(at);
    if (::mount("tmpfs", at.c_str(), "tmpfs", 0, options) != 0) return false;
    at_ = at;
    return true;
  }
  void unmount() {
    if (!at_.empty()) ::umount2(at_.c_str(), MNT_DETACH);
    at_.clear();
  }

 private:
  std::filesystem::path at_;
};

}  // namespace fk_test
