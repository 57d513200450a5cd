// The model manifest parser: malformed JSON or fields are Error(kModelCorrupt), deep nesting kInvalidArgument.
#include <cstdint>
#include <string>

#include "facekit/error.hpp"
#include "facekit/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    facekit::parse_manifest(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const facekit::Error& e) {
    const auto c = e.code();
    if (c != facekit::ErrorCode::kModelCorrupt && c != facekit::ErrorCode::kInvalidArgument) __builtin_trap();
  }
  return 0;
}
