#include "facekit/detector.hpp"

#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace facekit {
namespace detail {
std::unique_ptr<Detector> make_ssd_detector(const ModelManifest& m, const DetectorOptions& opt);
std::unique_ptr<Detector> make_blazeface_detector(const ModelManifest& m, const DetectorOptions& opt);
}

std::unique_ptr<Detector> create_detector(const std::string& name, const DetectorOptions& options) {
  const ModelManifest m = load_manifest(name);
  if (m.kind != "detector") throw Error(ErrorCode::kInvalidArgument, "model '" + name + "' is not a detector");
  if (m.arch == "ssd_mobilenetv1") return detail::make_ssd_detector(m, options);
  if (m.arch == "blazeface") return detail::make_blazeface_detector(m, options);
  throw Error(ErrorCode::kInvalidArgument, "no detector implementation for architecture '" + m.arch + "'");
}

}  // namespace facekit
