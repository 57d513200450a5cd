#pragma once
#include <memory>

#include "facekit/landmarker.hpp"
#include "facekit/model.hpp"

namespace facekit::detail {
std::unique_ptr<Landmarker> make_facemesh_landmarker(const ModelManifest& m, const LandmarkerOptions& opt);
}  // namespace facekit::detail
