#include <algorithm>

#include "facekit/detector.hpp"

namespace facekit {

bool boxes_clash(const Box& a, const Box& b, const NmsOptions& o) {
  return iou(a, b) > o.iou || (o.containment > 0 && containment(a, b) > o.containment);
}

std::vector<Face> non_max_suppression(std::vector<Face> faces, const NmsOptions& o) {
  std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
  std::vector<Face> kept;
  std::vector<char> used(faces.size(), 0);
  for (size_t i = 0; i < faces.size() && static_cast<int>(kept.size()) < o.max_keep; ++i) {
    if (used[i]) continue;
    used[i] = 1;
    Face acc = faces[i];
    if (o.weighted) {
      // Merge: the score-weighted mean of the boxes (and keypoints) that overlap the best one.
      double wsum = 0, bx = 0, by = 0, bw = 0, bh = 0;
      std::vector<cv::Point2d> kp(faces[i].keypoints.size());
      for (size_t j = i; j < faces.size(); ++j) {
        if (j != i && (used[j] || iou(faces[i].box, faces[j].box) <= o.iou)) continue;
        used[j] = 1;
        const double w = faces[j].score;
        wsum += w;
        bx += w * faces[j].box.x, by += w * faces[j].box.y, bw += w * faces[j].box.width, bh += w * faces[j].box.height;
        for (size_t k = 0; k < kp.size(); ++k) kp[k] += w * cv::Point2d(faces[j].keypoints[k]);
      }
      acc.box = {float(bx / wsum), float(by / wsum), float(bw / wsum), float(bh / wsum)};
      for (size_t k = 0; k < kp.size(); ++k) acc.keypoints[k] = cv::Point2f(kp[k] / wsum);
    }
    // Suppress: the merged box can still clash with a face kept earlier (it moved), and boxes that clash
    // with it but not with the seed would otherwise survive as duplicates of the same face.
    bool clash = false;
    for (const auto& k : kept)
      if (boxes_clash(k.box, acc.box, o)) {
        clash = true;
        break;
      }
    for (size_t j = i + 1; j < faces.size(); ++j)
      if (!used[j] && boxes_clash(acc.box, faces[j].box, o)) used[j] = 1;
    if (!clash) kept.push_back(std::move(acc));
  }
  return kept;
}

std::vector<Face> non_max_suppression(std::vector<Face> faces, float iou_threshold, int max_keep) {
  NmsOptions o;
  o.iou = iou_threshold;
  o.max_keep = max_keep;
  return non_max_suppression(std::move(faces), o);
}

}  // namespace facekit
