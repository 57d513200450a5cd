#pragma once
// A terminal progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise (logs, CI).
#include <chrono>
#include <string>

namespace facekit::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, int total);
  void update(int done);
  void finish();

 private:
  std::string label_;
  int total_;
  int last_decile_ = -1;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace facekit::cli
