// probe_image reads only headers, with bounds-checked reads: it returns a size or throws Error(kBadImage).
#include <cstdint>
#include <string>

#include "facekit/error.hpp"
#include "facekit/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto info = facekit::probe_image(std::string(reinterpret_cast<const char*>(data), size));
    if (info.width <= 0 || info.height <= 0 || info.min_bytes < 0) __builtin_trap();
  } catch (const facekit::Error& e) {
    if (e.code() != facekit::ErrorCode::kBadImage) __builtin_trap();
  }
  return 0;
}
