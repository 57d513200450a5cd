#pragma once
// Image input: JPEG through libjpeg (every warning it gives is damage), PNG, BMP, WebP and PNM through OpenCV;
// EXIF orientation applied, RGB out. The header is read and checked against the limits *before* any pixel is
// decoded, so a decompression bomb costs nothing; a header that claims more pixels than the file's bytes can
// hold is damage. A damaged image (truncated, corrupt data, an unfinished progressive scan) is refused unless
// the caller accepts it, and then it is reported, never used silently. Thread-safe (no shared state).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "facekit/types.hpp"

namespace facekit {

struct ImageLimits {
  int max_width = 16384;                 ///< widest image accepted, pixels
  int max_height = 16384;                ///< tallest image accepted, pixels
  std::int64_t max_pixels = 64'000'000;  ///< width x height
  std::int64_t max_file_bytes = 256ll << 20;
  /// false: a damaged image is Error(kBadImage) naming the damage. true: what decodes is used, and the damage
  /// is passed to on_damage (the CLI's --accept-damaged prints it as a warning).
  bool accept_damaged = false;
  std::function<void(const std::string& message)> on_damage;
};

/// What the header says, without decoding pixels.
struct ImageInfo {
  std::string format;  ///< "jpeg", "png", "bmp", "webp", "pnm"
  int width = 0;
  int height = 0;
  /// The fewest bytes a whole file of this size and coding can have (0 when the format has no useful bound):
  /// a JPEG with Huffman coding spends at least one bit per 8x8 block, deflate (PNG) compresses at most 1032:1.
  std::int64_t min_bytes = 0;
};

/// Reads only the header of an encoded image. Throws Error(kBadImage) for unknown or truncated headers.
ImageInfo probe_image(const std::string& bytes);

/// Loads an image file as RGB. Throws Error(kNotFound / kBadImage / kImageTooLarge).
Image load_image(const std::filesystem::path& path, const ImageLimits& limits = {});

/// Decodes an in-memory encoded image as RGB (EXIF orientation applied). Same errors as load_image.
Image decode_image(const std::string& bytes, const ImageLimits& limits = {}, const std::string& name = "<memory>");

/// Writes an RGB image (format from the extension).
void save_image(const std::filesystem::path& path, const Image& rgb);

/// The part of `rgb` around a face's `box`, grown on every side by `margin` x the box's longer side and clipped
/// to the image: a view into `rgb`, not a copy (clone it to keep it). Empty when nothing of it lies inside.
/// Thumbnails and crops of a face (the server, the contact sheet, a video track's best face) are cut with it.
Image face_region(const Image& rgb, const Box& box, float margin);

/// Whether an RGB photo is greyscale: at least 98% of its pixels (sampled on a grid of at most ~65,000) have
/// |R - G| + |G - B| <= 4, which JPEG's rounding of a grey photo stays within. An empty image is not.
bool is_greyscale(const Image& rgb);

}  // namespace facekit
