#pragma once
// Errors thrown by facekit. Every failure inside the library is a facekit::Error with a code; the CLI turns the
// code into an exit status and the server into an HTTP status.
#include <stdexcept>
#include <string>

namespace facekit {

enum class ErrorCode {
  kInvalidArgument = 1,  // a caller passed something that cannot be right (bad option, wrong shape)
  kBadImage,             // the file is not an image we can decode (corrupt, empty, text, unknown format)
  kImageTooLarge,        // width, height, pixel count or file size over the configured limits
  kNotFound,             // a file or id that does not exist
  kModelMissing,         // a model file is absent: run scripts/setup
  kModelCorrupt,         // a model file fails its checksum or does not parse
  kNoFace,               // a photo that must hold a face holds none
  kInternal,
  kStorage,              // the gallery store failed: not a gallery, corrupt, locked, newer format, disk full
  kPoorQuality,          // a face too poor for what was asked (enrolment), with the reasons
};

/// Stable numeric exit status for a code (used by the CLI): 3 + the code's position, so 0-2 stay free for
/// success, generic failure and usage errors.
int exit_status(ErrorCode code);
const char* to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

}  // namespace facekit
