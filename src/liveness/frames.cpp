// Frame sources for active liveness and video analysis: a video file, a camera or a stream (OpenCV videoio), or
// a folder of images.
#include <algorithm>
#include <cctype>
#include <cmath>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <opencv2/videoio/registry.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/liveness.hpp"
#include "facekit/video.hpp"

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
    if (fs::file_size(path, ec) == 0) throw Error(ErrorCode::kBadImage, desc_ + ": the file is empty, not a video");
    // FFmpeg reads every container here; CAP_ANY would also try GStreamer, which prints an OpenCV error of
    // its own for each file FFmpeg refuses.
    const int api = cv::videoio_registry::hasBackend(cv::CAP_FFMPEG) ? cv::CAP_FFMPEG : cv::CAP_ANY;
    if (!cap_.open(path.string(), api) || !cap_.isOpened())
      throw Error(ErrorCode::kBadImage, desc_ + ": not a video that OpenCV's video I/O can read");
    start("the video holds no frame that decodes");
    // Containers that state their length (AVI, MP4, MKV with an index): fewer frames than that is damage.
    declared_frames_ = cap_.get(cv::CAP_PROP_FRAME_COUNT);
  }
  /// A camera (its index) or a stream URL.
  VideoSource(int camera, std::string desc) : desc_(std::move(desc)) {
    if (!cap_.open(camera, cv::CAP_ANY) || !cap_.isOpened())
      throw Error(ErrorCode::kNotFound, desc_ + ": the camera does not open (no such device, or it is busy)");
    start("the camera gives no frame");
  }
  VideoSource(const std::string& url, std::string desc) : desc_(std::move(desc)) {
    if (!cap_.open(url, cv::CAP_FFMPEG) || !cap_.isOpened())
      throw Error(ErrorCode::kNotFound, desc_ + ": the stream does not open (unreachable, or not a video stream)");
    start("the stream gives no frame");
  }

  bool next(Image& rgb, double& time_s) override {
    cv::Mat bgr;
    if (!pending_.empty()) {
      bgr = pending_;
      pending_.release();
    } else if (!cap_.read(bgr) || bgr.empty()) {
      // Where the container states no frame count FFmpeg estimates one from the duration (MKV, WebM,
      // variable-rate phone videos): a few frames or 2% short is that rounding; more is a truncated or
      // corrupt file.
      if (declared_frames_ > 0 && static_cast<double>(index_) + std::max(2.0, 0.02 * declared_frames_) < declared_frames_)
        throw Error(ErrorCode::kBadImage, desc_ + ": truncated or corrupt: no frame decodes after frame " +
                                              std::to_string(index_) + " of the " +
                                              std::to_string(static_cast<long>(declared_frames_)) + " it declares");
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
  // Reads one frame now so that a source that opens but decodes nothing is reported here, not as "0 frames".
  void start(const char* none) {
    if (!cap_.read(pending_) || pending_.empty()) throw Error(ErrorCode::kBadImage, desc_ + ": " + none);
    fps_ = cap_.get(cv::CAP_PROP_FPS);
    if (!(fps_ > 0 && fps_ < 1000)) fps_ = 30;  // containers without a rate: assume a camera's
  }

  std::string desc_;
  cv::VideoCapture cap_;
  cv::Mat pending_;
  double fps_ = 30;
  long index_ = 0;
  double declared_frames_ = 0;  ///< frames the container states (0: unknown, e.g. a camera)
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

std::unique_ptr<FrameSource> open_stream(const std::string& what) {
  if (!what.empty() && std::all_of(what.begin(), what.end(), [](unsigned char c) { return std::isdigit(c); }) &&
      what.size() < 4)
    return std::make_unique<VideoSource>(std::stoi(what), "camera " + what);
  if (const auto colon = what.find("://"); colon != std::string::npos && colon > 0 &&
                                           std::all_of(what.begin(), what.begin() + static_cast<long>(colon),
                                                       [](unsigned char c) { return std::isalpha(c); }))
    return std::make_unique<VideoSource>(what, what);
  return std::make_unique<VideoSource>(fs::path(what));
}

std::unique_ptr<FrameSource> open_frames(const std::filesystem::path& dir, double fps, const ImageLimits& limits) {
  return std::make_unique<FolderSource>(dir, fps, limits);
}

}  // namespace facekit
