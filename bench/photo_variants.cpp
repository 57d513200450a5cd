// Variants of a photo folder for checking a default beyond the sets it was chosen on (greyscale copies, copies at
// half size), written with the same relative paths:
//   facekit_photo_variants SRC DST grey|half
#include <cstdio>
#include <filesystem>
#include <string>

#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 4 || (std::string(argv[3]) != "grey" && std::string(argv[3]) != "half")) {
    std::fprintf(stderr, "usage: %s SRC DST grey|half\n", argv[0]);
    return 2;
  }
  const fs::path src = argv[1], dst = argv[2];
  const bool grey = std::string(argv[3]) == "grey";
  int n = 0, failed = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    const auto ext = e.path().extension().string();
    if (!e.is_regular_file() || (ext != ".jpg" && ext != ".png")) continue;
    try {
      facekit::Image m = facekit::load_image(e.path());
      if (grey) {
        cv::cvtColor(m, m, cv::COLOR_RGB2GRAY);
        cv::cvtColor(m, m, cv::COLOR_GRAY2RGB);
      } else {
        cv::resize(m, m, {}, 0.5, 0.5, cv::INTER_AREA);
      }
      const fs::path out = dst / fs::relative(e.path(), src);
      fs::create_directories(out.parent_path());
      facekit::save_image(out, m);
      ++n;
    } catch (const facekit::Error& err) {
      std::fprintf(stderr, "skipped %s: %s\n", e.path().c_str(), err.what());
      ++failed;
    }
  }
  std::printf("%d photos written, %d skipped\n", n, failed);
  return failed > 0 && n == 0 ? 1 : 0;
}
