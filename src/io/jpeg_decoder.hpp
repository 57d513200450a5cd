#pragma once
// JPEG decoding with libjpeg's warnings kept (see jpeg_decoder.cpp).
#include <string>

#include "facekit/types.hpp"

namespace facekit::detail {

struct JpegResult {
  Image image;         ///< RGB, EXIF orientation applied; empty when `error` is set or damage stopped decoding
  std::string error;   ///< libjpeg's fatal error ("" when it decoded)
  std::string damage;  ///< the first sign of damage ("" for a whole file)
};

/// Decodes a JPEG. With accept_damaged false, decoding stops at the first sign of damage (no image returned);
/// with true, the image is decoded as far as it goes and the damage is still reported.
JpegResult decode_jpeg(const std::string& bytes, bool accept_damaged);

}  // namespace facekit::detail
