#pragma once
// A fresh folder per test, shared by the unit and end-to-end tests.
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

}  // namespace fk_test
