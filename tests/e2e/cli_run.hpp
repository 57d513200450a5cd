#pragma once
// Shared by the end-to-end tests: where the real photos are, one pipeline per test program, running the
// facekit binary (FACEKIT_CLI); fresh_test_dir comes from ../test_dir.hpp.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "facekit/pipeline.hpp"
#include "../test_dir.hpp"

extern char** environ;

namespace fk_test {

/// Debian libdlib19.1's example photos.
inline const std::filesystem::path kDlibFaces = "/usr/share/doc/libdlib19.1/examples/faces";
#ifdef FACEKIT_TEST_DATA
/// face-api's demo photos (npm), unpacked by scripts/setup.
inline const std::filesystem::path kDemoPhotos =
    std::filesystem::path(FACEKIT_TEST_DATA) / ".." / ".." / "models" / "face-api" / "demo";
#endif
/// A path quoted for the shell.
inline std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }
#ifdef FACEKIT_LFW_DIR
inline const std::filesystem::path kLfwDir = FACEKIT_LFW_DIR;  ///< ../shared/data/lfw (may be absent)
#endif

/// The default pipeline, built once.
inline const facekit::FacePipeline& shared_pipeline() {
  static const facekit::FacePipeline p;
  return p;
}

struct CliRun {
  int status = -1;
  std::string out, err;
};

/// Runs `facekit ARGS` (with `env` assignments before it, if any) through the shell; stdout and stderr are
/// captured apart.
inline CliRun run_cli(const std::string& args, const std::string& env = "") {
  static int n = 0;
  const std::filesystem::path err = std::filesystem::temp_directory_path() /
                                    ("fk_cli_err_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  const std::string cmd = env + " " + FACEKIT_CLI + " " + args + " 2>" + err.string();
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  for (size_t k; (k = std::fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), k);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  std::filesystem::remove(err);
  return r;
}

/// Average-linkage clustering: merges the two closest clusters (mean pairwise distance) while that is within
/// `threshold`. Returns the clusters as indices into `embs`, largest first.
inline std::vector<std::vector<size_t>> cluster_faces(const std::vector<facekit::Embedding>& embs, float threshold) {
  std::vector<std::vector<size_t>> cl;
  for (size_t i = 0; i < embs.size(); ++i) cl.push_back({i});
  auto link = [&](const std::vector<size_t>& a, const std::vector<size_t>& b) {
    double s = 0;
    for (size_t i : a)
      for (size_t j : b) s += facekit::l2_distance(embs[i], embs[j]);
    return s / (a.size() * b.size());
  };
  while (cl.size() > 1) {
    double best = 1e9;
    size_t ba = 0, bb = 0;
    for (size_t a = 0; a < cl.size(); ++a)
      for (size_t b = a + 1; b < cl.size(); ++b)
        if (const double d = link(cl[a], cl[b]); d < best) best = d, ba = a, bb = b;
    if (best > threshold) break;
    cl[ba].insert(cl[ba].end(), cl[bb].begin(), cl[bb].end());
    cl.erase(cl.begin() + static_cast<long>(bb));
  }
  std::sort(cl.begin(), cl.end(), [](const auto& x, const auto& y) { return x.size() > y.size(); });
  return cl;
}

/// A whole file's bytes ("" when it cannot be read).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Starts `facekit ARGS` in the background (no shell), stdout to /dev/null and stderr to `err` (default
/// /dev/null); its pid, or -1.
inline pid_t spawn_cli(const std::vector<std::string>& args, const std::filesystem::path& err = "/dev/null") {
  std::vector<std::string> all = {FACEKIT_CLI};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : all) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, FACEKIT_CLI, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}


}  // namespace fk_test
