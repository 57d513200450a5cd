// Two detectors in a cascade: the first (fast) on every photo, the second where the first is unsure.
//
// Why: BlazeFace-back misses many profile faces in tightly framed photos and then returns whatever
// face-like part it finds (an ear, a nose) with a low score (~0.5), which the pipeline takes as "the" face;
// the SSD finds those faces with high scores (cfp-dev profiles, docs/results.md). The SSD costs several times
// BlazeFace, so it runs only on photos where BlazeFace's best face scores below the manifest's unsure_below.
#include <algorithm>

#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace facekit::detail {
namespace {

class CascadeDetector final : public Detector {
 public:
  CascadeDetector(const ModelManifest& m, const DetectorOptions& opt) : manifest_(m), opt_(opt) {
    if (m.members.size() != 2)
      throw Error(ErrorCode::kModelCorrupt, m.name + ": a cascade detector needs exactly two members");
    for (const auto& [name, weight] : m.members) {
      if (name == m.name) throw Error(ErrorCode::kModelCorrupt, m.name + ": a cascade cannot contain itself");
      members_.push_back(create_detector(name, opt));
    }
  }

  std::vector<Face> detect(const Image& rgb, const DetectorOptions& opt) const override {
    return std::move(detect_batch({rgb}, opt).at(0));
  }

  std::vector<std::vector<Face>> detect_batch(const std::vector<Image>& images, const DetectorOptions& opt) const override {
    auto result = members_[0]->detect_batch(images, opt);
    NmsOptions nms;
    nms.iou = opt.nms_iou;
    nms.containment = opt.nms_containment;
    nms.max_keep = opt.max_faces;
    for (size_t i = 0; i < images.size(); ++i) {
      auto& faces = result[i];
      const bool sure = std::any_of(faces.begin(), faces.end(),
                                    [&](const Face& f) { return f.score >= manifest_.cascade.unsure_below; });
      if (sure) continue;
      auto more = members_[1]->detect(images[i], opt);
      if (more.empty()) continue;
      faces.insert(faces.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      faces = non_max_suppression(std::move(faces), nms);
    }
    return result;
  }

  const DetectorOptions& options() const override { return opt_; }
  const std::string& name() const override { return manifest_.name; }

 private:
  ModelManifest manifest_;
  DetectorOptions opt_;
  std::vector<std::unique_ptr<Detector>> members_;
};

}  // namespace

std::unique_ptr<Detector> make_cascade_detector(const ModelManifest& m, const DetectorOptions& opt) {
  return std::make_unique<CascadeDetector>(m, opt);
}

}  // namespace facekit::detail
