// Image loading and saving: JPEG through libjpeg (io/jpeg_decoder.cpp), the other formats through OpenCV, with
// facekit's limits, damage checks and error codes on top.
#include "facekit/image.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "facekit/error.hpp"
#include "io/jpeg_decoder.hpp"

namespace facekit {
namespace {

namespace fs = std::filesystem;

std::string display_format(const std::string& format) {
  if (format == "jpeg") return "JPEG";
  if (format == "png") return "PNG";
  if (format == "bmp") return "BMP";
  if (format == "webp") return "WebP";
  return "PNM";
}

void check_limits(const ImageInfo& info, const ImageLimits& limits, const std::string& name) {
  const std::string dims = std::to_string(info.width) + "x" + std::to_string(info.height);
  if (info.width > limits.max_width) {
    throw Error(ErrorCode::kImageTooLarge, name + " is " + dims + ", wider than the limit of " +
                                               std::to_string(limits.max_width) + " pixels");
  }
  if (info.height > limits.max_height) {
    throw Error(ErrorCode::kImageTooLarge, name + " is " + dims + ", taller than the limit of " +
                                               std::to_string(limits.max_height) + " pixels");
  }
  const std::int64_t pixels = std::int64_t{info.width} * info.height;
  if (pixels > limits.max_pixels) {
    throw Error(ErrorCode::kImageTooLarge, name + " is " + dims + " = " + std::to_string(pixels) +
                                               " pixels, over the limit of " +
                                               std::to_string(limits.max_pixels));
  }
}

void check_file_size(std::uintmax_t size, const ImageLimits& limits, const std::string& name) {
  // cv::imdecode takes an int-sized buffer, so that is a hard ceiling whatever the limit says.
  const std::int64_t limit = std::min<std::int64_t>(limits.max_file_bytes, INT_MAX);
  if (std::cmp_greater(size, limit)) {
    throw Error(ErrorCode::kImageTooLarge, name + " is " + std::to_string(size) +
                                               " bytes, over the limit of " + std::to_string(limit) +
                                               " bytes");
  }
}

}  // namespace

Image load_image(const fs::path& path, const ImageLimits& limits) {
  const std::string name = path.string();
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) throw Error(ErrorCode::kNotFound, "no such file: " + name);
  if (ec) throw Error(ErrorCode::kBadImage, "cannot access " + name + ": " + ec.message());
  if (fs::is_directory(status)) {
    throw Error(ErrorCode::kBadImage, name + " is a directory, not an image file");
  }
  if (!fs::is_regular_file(status)) throw Error(ErrorCode::kBadImage, name + " is not a regular file");

  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorCode::kBadImage, "cannot access " + name + ": " + ec.message());
  if (size == 0) throw Error(ErrorCode::kBadImage, "empty file: " + name);
  check_file_size(size, limits, name);

  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  // A short read means the file shrank or could not be read; either way there is no image to decode.
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw Error(ErrorCode::kBadImage, "could not read " + name);
  }
  return decode_image(bytes, limits, name);
}

Image decode_image(const std::string& bytes, const ImageLimits& limits, const std::string& name) {
  check_file_size(bytes.size(), limits, name);
  ImageInfo info;
  try {
    info = probe_image(bytes);
  } catch (const Error& e) {
    throw Error(e.code(), name + ": " + e.what());
  }
  check_limits(info, limits, name);
  // Damage found is either refused or, when the caller accepts damaged images, reported and used.
  const auto damaged = [&](const std::string& why) {
    const std::string what = "corrupt or truncated " + display_format(info.format) + ": " + why;
    if (!limits.accept_damaged)
      throw Error(ErrorCode::kBadImage, "could not decode " + name + " (" + what +
                                            "); a damaged image is refused (--accept-damaged uses what decodes)");
    if (limits.on_damage) limits.on_damage(name + " is damaged (" + what + "); used as decoded");
  };
  // Checked before the decoder allocates width x height pixels for a file that cannot fill them.
  if (std::cmp_less(bytes.size(), info.min_bytes)) {
    damaged("truncated: a " + std::to_string(info.width) + "x" + std::to_string(info.height) + " " +
            display_format(info.format) + " needs at least " + std::to_string(info.min_bytes) + " bytes, the file has " +
            std::to_string(bytes.size()));
  }
  if (info.format == "jpeg") {
    detail::JpegResult r = detail::decode_jpeg(bytes, limits.accept_damaged);
    if (!r.damage.empty()) damaged("libjpeg: " + r.damage);
    if (r.image.empty())
      throw Error(ErrorCode::kBadImage, "could not decode " + name + " (corrupt or truncated JPEG" +
                                            (r.error.empty() ? "" : ": " + r.error) + ")");
    return std::move(r.image);
  }

  // A Mat header over the caller's bytes, not a copy; imdecode only reads it.
  const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1, const_cast<char*>(bytes.data()));
  cv::Mat bgr;
  try {
    // IMREAD_COLOR always yields 8-bit BGR (grey expanded, alpha dropped, 16-bit scaled down), and OpenCV 4.6
    // applies the EXIF orientation of JPEGs itself in imdecode (tests/unit/test_image.cpp checks all eight).
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR);
  } catch (const cv::Exception&) {
    // Some decoders throw on malformed data instead of returning an empty Mat; both mean the same here.
  }
  if (bgr.empty()) {
    throw Error(ErrorCode::kBadImage,
                "could not decode " + name + " (corrupt or truncated " + display_format(info.format) + ")");
  }
  Image rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

bool is_greyscale(const Image& rgb) {
  if (rgb.empty() || rgb.type() != CV_8UC3) return false;
  const int step = std::max(1, static_cast<int>(std::sqrt(double(rgb.total()) / 65536.0)));
  long grey = 0, all = 0;
  for (int y = 0; y < rgb.rows; y += step) {
    const auto* row = rgb.ptr<cv::Vec3b>(y);
    for (int x = 0; x < rgb.cols; x += step, ++all) {
      const cv::Vec3b& p = row[x];
      grey += std::abs(int(p[0]) - int(p[1])) + std::abs(int(p[1]) - int(p[2])) <= 4;
    }
  }
  return grey >= 0.98 * all;
}

Image face_region(const Image& rgb, const Box& b, float margin) {
  const float m = margin * std::max(b.width, b.height);
  const cv::Rect r = cv::Rect(cv::Point(static_cast<int>(b.x - m), static_cast<int>(b.y - m)),
                              cv::Point(static_cast<int>(b.x + b.width + m), static_cast<int>(b.y + b.height + m))) &
                     cv::Rect(0, 0, rgb.cols, rgb.rows);
  return r.area() > 0 ? rgb(r) : Image();
}

void save_image(const fs::path& path, const Image& rgb) {
  const std::string name = path.string();
  if (rgb.empty() || rgb.type() != CV_8UC3) {
    throw Error(ErrorCode::kInvalidArgument, "cannot write " + name + ": not an 8-bit, 3-channel RGB image");
  }
  // Only formats load_image reads back; OpenCV could also write TIFF, EXR and others facekit never accepts.
  static constexpr std::array<std::string_view, 7> kExtensions = {".jpg",  ".jpeg", ".png", ".bmp",
                                                                  ".webp", ".ppm",  ".pnm"};
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (std::find(kExtensions.begin(), kExtensions.end(), ext) == kExtensions.end()) {
    throw Error(ErrorCode::kInvalidArgument, "cannot write " + name + ": unsupported extension '" + ext +
                                                 "' (use .jpg, .png, .bmp, .webp or .ppm)");
  }
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  bool written = false;
  try {
    written = cv::imwrite(name, bgr);
  } catch (const cv::Exception&) {
    // Reported below like a false return.
  }
  if (!written) throw Error(ErrorCode::kInvalidArgument, "could not write " + name);
}

}  // namespace facekit
