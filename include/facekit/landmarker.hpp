#pragma once
// Facial landmarks: 68 points for a detected face.
#include <memory>
#include <string>
#include <vector>

#include "facekit/types.hpp"
#include "facekit/registry.hpp"

namespace facekit {

struct LandmarkerOptions {
  std::string device = defaults::kDevice;
};

/// Thread safety: const methods are safe to call concurrently.
class Landmarker {
 public:
  virtual ~Landmarker() = default;
  /// 68 points (image pixels) for each box, computed in one batch.
  virtual std::vector<Landmarks68> landmarks(const Image& rgb, const std::vector<Box>& boxes) const = 0;
  /// landmarks() for several photos: boxes[i] are the boxes in images[i]; the faces of all of them go through
  /// the network together where the model allows (the default calls landmarks() for each photo).
  virtual std::vector<std::vector<Landmarks68>> landmarks_batch(const std::vector<Image>& images,
                                                                const std::vector<std::vector<Box>>& boxes) const;
  virtual const std::string& name() const = 0;
};

/// "face_landmark_68" (face-api's 68-point net) or "facemesh" (MediaPipe FaceMesh's 468 points, reduced to 68).
std::unique_ptr<Landmarker> create_landmarker(const std::string& name = defaults::kLandmarker,
                                              const LandmarkerOptions& options = {});

}  // namespace facekit
