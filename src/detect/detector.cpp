#include "facekit/detector.hpp"

#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "facekit/registry.hpp"

namespace facekit {
namespace detail {
std::unique_ptr<Detector> make_ssd_detector(const ModelManifest& m, const DetectorOptions& opt);
std::unique_ptr<Detector> make_blazeface_detector(const ModelManifest& m, const DetectorOptions& opt);
std::unique_ptr<Detector> make_cascade_detector(const ModelManifest& m, const DetectorOptions& opt);
}

Registry<Detector, const ModelManifest&, const DetectorOptions&>& detector_registry() {
  static auto* r = [] {
    auto* r = new Registry<Detector, const ModelManifest&, const DetectorOptions&>("detector");
    r->add("ssd_mobilenetv1", &detail::make_ssd_detector);
    r->add("blazeface", &detail::make_blazeface_detector);
    r->add("cascade", &detail::make_cascade_detector);
    return r;
  }();
  return *r;
}

std::vector<std::vector<Face>> Detector::detect_batch(const std::vector<Image>& images, const DetectorOptions& options) const {
  std::vector<std::vector<Face>> out;
  for (const auto& img : images) out.push_back(detect(img, options));
  return out;
}

std::unique_ptr<Detector> create_detector(const std::string& name, const DetectorOptions& options) {
  const ModelManifest m = load_manifest(name);
  if (m.kind != "detector") throw Error(ErrorCode::kInvalidArgument, "model '" + name + "' is not a detector");
  return detector_registry().create(m.arch, m, options);
}

}  // namespace facekit
