// decode_image: our JPEG path (libjpeg with warnings as damage) and OpenCV's decoders for the other formats.
// Small limits keep a decompression bomb from eating the fuzzer's memory; both damage policies are driven.
#include <cstdint>
#include <string>

#include "facekit/error.hpp"
#include "facekit/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  facekit::ImageLimits limits;
  limits.max_width = limits.max_height = 2048;
  limits.max_pixels = 1 << 20;
  limits.accept_damaged = data[0] & 1;
  limits.on_damage = [](const std::string&) {};
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    const auto rgb = facekit::decode_image(bytes, limits, "fuzz");
    if (rgb.empty() || rgb.type() != CV_8UC3) __builtin_trap();
  } catch (const facekit::Error& e) {
    const auto c = e.code();
    if (c != facekit::ErrorCode::kBadImage && c != facekit::ErrorCode::kImageTooLarge) __builtin_trap();
  }
  return 0;
}
