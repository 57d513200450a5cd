#include "facekit/landmarker.hpp"

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "align/facemesh.hpp"
#include "align/landmark68_net.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "facekit/registry.hpp"

namespace facekit {
namespace detail {
namespace {

// face-api's crop: the box clipped to the image with integer corners, centred on a zero square.
struct Crop {
  cv::Rect rect;  // in the image
  int side = 0;   // of the padded square
  int pad_x = 0, pad_y = 0;
};

Crop make_crop(const Image& rgb, const Box& b) {
  const int x0 = std::clamp(static_cast<int>(std::floor(b.x)), 0, rgb.cols - 1);
  const int y0 = std::clamp(static_cast<int>(std::floor(b.y)), 0, rgb.rows - 1);
  const int x1 = std::clamp(static_cast<int>(std::floor(b.x + b.width)), x0 + 1, rgb.cols);
  const int y1 = std::clamp(static_cast<int>(std::floor(b.y + b.height)), y0 + 1, rgb.rows);
  Crop c;
  c.rect = {x0, y0, x1 - x0, y1 - y0};
  c.side = std::max(c.rect.width, c.rect.height);
  // face-api appends round(diff/2) and prepends the rest.
  const int dx = c.side - c.rect.width, dy = c.side - c.rect.height;
  c.pad_x = dx - (dx + 1) / 2;
  c.pad_y = dy - (dy + 1) / 2;
  return c;
}

class FaceApiLandmarker final : public Landmarker {
 public:
  FaceApiLandmarker(const ModelManifest& m, const LandmarkerOptions& opt)
      : manifest_(m), net_(load_model_weights(m), nn::parse_device(opt.device)) {}

  std::vector<Landmarks68> landmarks(const Image& rgb, const std::vector<Box>& boxes) const override {
    return std::move(landmarks_batch({rgb}, {boxes}).at(0));
  }

  std::vector<std::vector<Landmarks68>> landmarks_batch(const std::vector<Image>& images,
                                                        const std::vector<std::vector<Box>>& boxes) const override {
    if (images.size() != boxes.size()) throw Error(ErrorCode::kInvalidArgument, "landmarks_batch: one box list per image");
    std::vector<std::vector<Landmarks68>> result(images.size());
    const int in = manifest_.input_size;
    std::vector<cv::Mat> inputs;
    std::vector<Crop> crops;
    for (size_t i = 0; i < images.size(); ++i) {
      const Image& rgb = images[i];
      if (boxes[i].empty()) continue;
      if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(ErrorCode::kInvalidArgument, "landmarks() needs an RGB image");
      for (const auto& b : boxes[i]) {
        Crop c = make_crop(rgb, b);
        cv::Mat square(c.side, c.side, CV_8UC3, cv::Scalar::all(0));
        rgb(c.rect).copyTo(square(cv::Rect(c.pad_x, c.pad_y, c.rect.width, c.rect.height)));
        cv::Mat resized;
        cv::resize(square, resized, {in, in}, 0, 0, cv::INTER_LINEAR);
        inputs.push_back(resized);
        crops.push_back(c);
      }
    }
    if (inputs.empty()) return result;
    // On a CPU, one forward per photo: this net's dense blocks cost more per face in larger batches (1.32 ms
    // per face at batch 1, 1.74 at batch 16, docs/results.md). A GPU takes them all at once.
    std::vector<size_t> cuts = {0};
    if (net_.device().is_cpu()) {
      for (size_t i = 0, k = 0; i < images.size(); ++i)
        if (!boxes[i].empty()) cuts.push_back(k += boxes[i].size());
    } else {
      cuts.push_back(inputs.size());
    }
    c10::InferenceMode guard;
    std::vector<at::Tensor> parts;
    for (size_t c = 1; c < cuts.size(); ++c) {
      const std::vector<cv::Mat> part(inputs.begin() + cuts[c - 1], inputs.begin() + cuts[c]);
      parts.push_back(net_.forward(nn::images_to_batch(part, manifest_.mean, manifest_.scale, net_.device())));
    }
    const auto raw = at::cat(parts).to(at::kCPU).contiguous();
    const float* r = raw.data_ptr<float>();
    size_t k = 0;
    for (size_t i = 0; i < images.size(); ++i)
      for (size_t j = 0; j < boxes[i].size(); ++j, ++k) {
        Landmarks68 pts;
        const auto& c = crops[k];
        for (int p = 0; p < 68; ++p) {
          pts[p].x = r[k * 136 + 2 * p] * c.side - c.pad_x + c.rect.x;
          pts[p].y = r[k * 136 + 2 * p + 1] * c.side - c.pad_y + c.rect.y;
        }
        result[i].push_back(pts);
      }
    return result;
  }
  const std::string& name() const override { return manifest_.name; }

 private:
  ModelManifest manifest_;
  Landmark68Net net_;
};

}  // namespace
}  // namespace detail

std::vector<std::vector<Landmarks68>> Landmarker::landmarks_batch(const std::vector<Image>& images,
                                                                  const std::vector<std::vector<Box>>& boxes) const {
  if (images.size() != boxes.size()) throw Error(ErrorCode::kInvalidArgument, "landmarks_batch: one box list per image");
  std::vector<std::vector<Landmarks68>> out;
  for (size_t i = 0; i < images.size(); ++i) out.push_back(landmarks(images[i], boxes[i]));
  return out;
}

std::unique_ptr<Landmarker> create_landmarker(const std::string& name, const LandmarkerOptions& options) {
  const ModelManifest m = load_manifest(name);
  if (m.kind != "landmarker") throw Error(ErrorCode::kInvalidArgument, "model '" + name + "' is not a landmarker");
  return landmarker_registry().create(m.arch, m, options);
}

Registry<Landmarker, const ModelManifest&, const LandmarkerOptions&>& landmarker_registry() {
  static auto* r = [] {
    auto* r = new Registry<Landmarker, const ModelManifest&, const LandmarkerOptions&>("landmarker");
    r->add("faceapi_landmark68", [](const ModelManifest& m, const LandmarkerOptions& o) -> std::unique_ptr<Landmarker> {
      return std::make_unique<detail::FaceApiLandmarker>(m, o);
    });
    r->add("facemesh", [](const ModelManifest& m, const LandmarkerOptions& o) { return detail::make_facemesh_landmarker(m, o); });
    return r;
  }();
  return *r;
}

}  // namespace facekit
