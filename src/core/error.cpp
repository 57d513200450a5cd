#include "facekit/error.hpp"

namespace facekit {

int exit_status(ErrorCode code) { return 3 + (static_cast<int>(code) - 1); }

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kBadImage:
      return "bad_image";
    case ErrorCode::kImageTooLarge:
      return "image_too_large";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kModelMissing:
      return "model_missing";
    case ErrorCode::kModelCorrupt:
      return "model_corrupt";
    case ErrorCode::kNoFace:
      return "no_face";
    case ErrorCode::kInternal:
      return "internal";
    case ErrorCode::kStorage:
      return "storage";
    case ErrorCode::kPoorQuality:
      return "poor_quality";
  }
  return "unknown";  // only reachable through a cast of an out-of-range integer
}

}  // namespace facekit
