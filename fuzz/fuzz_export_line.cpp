// One person line of a gallery export: JSON (depth-limited), names, base64, sealed embeddings, norms.
#include <cstdint>
#include <string>

#include "facekit/error.hpp"
#include "facekit/gallery.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto key = facekit::GalleryKey::from_hex(std::string(64, '7'));
  const std::string line(reinterpret_cast<const char*>(data), size);
  for (const bool with_key : {false, true}) {
    try {
      const auto p = facekit::parse_export_person(line, with_key ? std::optional(key) : std::nullopt);
      if (p.templates.empty() || p.name.empty()) __builtin_trap();
    } catch (const facekit::Error& e) {
      if (e.code() != facekit::ErrorCode::kInvalidArgument) __builtin_trap();
    }
  }
  return 0;
}
