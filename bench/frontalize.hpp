#pragma once
// Frontalisation from FaceMesh's 3D points: the face's own mesh turned to face the camera, its texture carried
// triangle by triangle into the embedder's chip, and triangles the head hides filled from their mirror image.
// An experiment (bench/frontalize_exp.cpp): on cfp-dev it lowered frontal-profile accuracy (docs/results.md),
// so the library does not use it.
#include <array>
#include <string>
#include <vector>

#include "align/facemesh.hpp"
#include "facekit/aligner.hpp"
#include "facekit/types.hpp"

namespace facekit::detail {

/// A frontal reference face: FaceMesh's mean mesh on frontal photos, symmetric about x = 0, in face units
/// (RMS distance from the centroid 1); each vertex's mirror; a triangulation of the frontal view.
struct FrontalModel {
  Mesh468 mean{};
  std::array<int, 468> mirror{};
  std::vector<std::array<int, 3>> triangles;
};

/// Reads a model written by write_frontal_model. Throws Error(kModelCorrupt / kNotFound).
FrontalModel read_frontal_model(const std::string& path);
void write_frontal_model(const std::string& path, const FrontalModel& m);

/// Builds the reference from meshes of (mostly frontal) faces: generalised Procrustes, the symmetry plane
/// through FaceMesh's midline vertices, each vertex's mirror, symmetrised, then a Delaunay triangulation.
FrontalModel build_frontal_model(const std::vector<Mesh468>& meshes);

/// Head pose: rotation taking the reference onto the mesh (3x3 CV_64F, camera axes) and its angles, degrees.
struct MeshPose {
  cv::Matx33d rotation = cv::Matx33d::eye();
  cv::Point3d centroid;
  double scale = 1;             ///< mesh units per reference unit
  double yaw = 0, pitch = 0, roll = 0;
};
MeshPose mesh_pose(const Mesh468& mesh, const FrontalModel& model);

struct FrontalizeOptions {
  /// Below this visibility (cosine between a triangle's normal and the view direction) a triangle's own
  /// texture gives way to its mirror's, fully at `hidden_below`.
  float visible_above = 0.45f, hidden_below = 0.15f;
};

/// The chip `tpl` asks for, of the face turned frontal. `to_68` gives the 68 points of a mesh (the
/// landmarker's own reduction) so that the chip is framed as the embedder's alignment frames a frontal face.
Image frontal_chip(const Image& rgb, const Mesh468& mesh, const FrontalModel& model, const MeshSource& source,
                   const AlignmentTemplate& tpl, const FrontalizeOptions& options = {}, MeshPose* pose = nullptr);

}  // namespace facekit::detail
