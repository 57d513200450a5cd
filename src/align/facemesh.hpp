#pragma once
#include <array>
#include <memory>
#include <vector>

#include "facekit/landmarker.hpp"
#include "facekit/model.hpp"

namespace facekit::detail {

/// FaceMesh's 468 points in image pixels; z (depth) in the same scale, smaller = nearer the camera.
using Mesh468 = std::array<cv::Point3f, 468>;

/// What a mesh landmarker gives besides the 68 points (the FaceMesh landmarker implements it).
class MeshSource {
 public:
  virtual ~MeshSource() = default;
  /// One mesh per box, as landmarks() computes them.
  virtual std::vector<Mesh468> meshes(const Image& rgb, const std::vector<Box>& boxes) const = 0;
  /// The 68 points landmarks() reports for this mesh.
  virtual Landmarks68 to_68(const Mesh468& mesh) const = 0;
};

std::unique_ptr<Landmarker> make_facemesh_landmarker(const ModelManifest& m, const LandmarkerOptions& opt);
}  // namespace facekit::detail
