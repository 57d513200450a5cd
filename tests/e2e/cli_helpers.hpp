#pragma once
// Running the facekit binary from the end-to-end tests: to completion (status, stdout, stderr), or in the
// background (to kill -9 it).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern char** environ;

namespace facekit::test {

struct CliRun {
  int status = -1;
  std::string out, err;
};

/// FACEKIT_CLI with `args` through the shell (quote paths yourself); `env` is prefixed ("VAR=x").
inline CliRun run(const std::string& args, const std::string& env = "") {
  static int n = 0;
  const auto err = std::filesystem::temp_directory_path() /
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

/// Starts FACEKIT_CLI with `args` (no shell), stdout and stderr to /dev/null; returns its pid, or -1.
inline pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> all = {FACEKIT_CLI};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : all) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, FACEKIT_CLI, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

}  // namespace facekit::test
