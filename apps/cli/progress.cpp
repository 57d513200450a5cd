#include "progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace facekit::cli {

ProgressBar::ProgressBar(std::string label, int total)
    : label_(std::move(label)), total_(total), tty_(isatty(fileno(stderr))), start_(std::chrono::steady_clock::now()) {}

void ProgressBar::update(int done) {
  const auto now = std::chrono::steady_clock::now();
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
  const double eta = done > 0 ? secs / done * (total_ - done) : 0;
  if (tty_) {
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r%s [%.*s%*s] %d/%d %3.0f%% %.0fs elapsed, ETA %.0fs ", label_.c_str(), filled,
                 "##############################", width - filled, "", done, total_, frac * 100, secs, eta);
  } else {
    const int decile = static_cast<int>(frac * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s %d/%d (%.0f%%) %.0fs elapsed, ETA %.0fs\n", label_.c_str(), done, total_, frac * 100,
                 secs, eta);
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace facekit::cli
