#include "facekit/detector.hpp"

namespace facekit {

std::vector<Face> non_max_suppression(std::vector<Face> faces, float iou_threshold, int max_keep) {
  std::vector<Face> kept;
  for (auto& f : faces) {
    if (static_cast<int>(kept.size()) >= max_keep) break;
    bool suppressed = false;
    for (const auto& k : kept)
      if (iou(k.box, f.box) > iou_threshold) {
        suppressed = true;
        break;
      }
    if (!suppressed) kept.push_back(std::move(f));
  }
  return kept;
}

}  // namespace facekit
