// Frame sources for active liveness: a video file (OpenCV videoio) or a folder of images.
#include <algorithm>
#include <cctype>
#include <cmath>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/liveness.hpp"

namespace facekit {
namespace {

namespace fs = std::filesystem;

class VideoSource final : public FrameSource {
 public:
  explicit VideoSource(const fs::path& path) : desc_(path.string()) {
    std::error_code ec;
    if (fs::is_directory(path, ec))
      throw Error(ErrorCode::kInvalidArgument, desc_ + " is a folder, not a video file (--frames DIR reads a folder of frames)");
    if (!fs::exists(path, ec)) throw Error(ErrorCode::kNotFound, desc_ + ": no such video file");
    if (!fs::is_regular_file(path, ec)) throw Error(ErrorCode::kInvalidArgument, desc_ + " is not a regular file");
    if (!cap_.open(path.string(), cv::CAP_ANY) || !cap_.isOpened())
      throw Error(ErrorCode::kBadImage, desc_ + ": not a video that OpenCV's video I/O can read");
    // Read one frame now so that a file that opens but decodes nothing is reported here, not as "0 frames".
    if (!cap_.read(pending_) || pending_.empty())
      throw Error(ErrorCode::kBadImage, desc_ + ": the video holds no frame that decodes");
    fps_ = cap_.get(cv::CAP_PROP_FPS);
    if (!(fps_ > 0 && fps_ < 1000)) fps_ = 30;  // containers without a rate: assume a camera's
  }

  bool next(Image& rgb, double& time_s) override {
    cv::Mat bgr;
    if (!pending_.empty()) {
      bgr = pending_;
      pending_.release();
    } else if (!cap_.read(bgr) || bgr.empty()) {
      return false;
    }
    // Frame times from the index: container timestamps are missing or coarse in MJPG/AVI files.
    time_s = index_++ / fps_;
    if (bgr.channels() == 1)
      cv::cvtColor(bgr, rgb, cv::COLOR_GRAY2RGB);
    else
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return true;
  }
  double fps() const override { return fps_; }
  const std::string& description() const override { return desc_; }

 private:
  std::string desc_;
  cv::VideoCapture cap_;
  cv::Mat pending_;
  double fps_ = 30;
  long index_ = 0;
};

class FolderSource final : public FrameSource {
 public:
  FolderSource(const fs::path& dir, double fps, ImageLimits limits)
      : desc_(dir.string()), fps_(fps), limits_(std::move(limits)) {
    if (!(fps > 0)) throw Error(ErrorCode::kInvalidArgument, "frame rate must be positive");
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw Error(ErrorCode::kNotFound, desc_ + ": no such folder of frames");
    for (const auto& e : fs::directory_iterator(dir)) {
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
      if (e.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" ||
                                  ext == ".webp" || ext == ".ppm" || ext == ".pgm" || ext == ".pnm"))
        files_.push_back(e.path());
    }
    if (files_.empty()) throw Error(ErrorCode::kBadImage, desc_ + ": the folder holds no image frames");
    std::sort(files_.begin(), files_.end());
  }

  bool next(Image& rgb, double& time_s) override {
    if (index_ >= files_.size()) return false;
    time_s = static_cast<double>(index_) / fps_;
    rgb = load_image(files_[index_++], limits_);  // names the file when it does not decode or is damaged
    return true;
  }
  double fps() const override { return fps_; }
  const std::string& description() const override { return desc_; }

 private:
  std::string desc_;
  double fps_;
  ImageLimits limits_;
  std::vector<fs::path> files_;
  size_t index_ = 0;
};

}  // namespace

std::unique_ptr<FrameSource> open_video(const std::filesystem::path& path) {
  return std::make_unique<VideoSource>(path);
}

std::unique_ptr<FrameSource> open_frames(const std::filesystem::path& dir, double fps, const ImageLimits& limits) {
  return std::make_unique<FolderSource>(dir, fps, limits);
}

}  // namespace facekit
