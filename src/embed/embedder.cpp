#include "facekit/embedder.hpp"

#include <opencv2/imgproc.hpp>

#include "embed/dlib_resnet.hpp"
#include "facekit/error.hpp"

namespace facekit {
namespace detail {
namespace {

// Fixed small perturbations (degrees, scale, shift as a fraction of the chip) in the range dlib's
// jitter_image draws from at random; fixed so that embeddings are reproducible.
struct Jitter {
  double angle, scale, dx, dy;
};
constexpr Jitter kJitters[] = {{2.5, 0.98, 0.01, 0.0},   {-2.5, 0.98, -0.01, 0.0}, {0.0, 0.97, 0.0, 0.015},
                               {0.0, 1.0, 0.0, -0.015},  {1.5, 0.99, -0.015, 0.01}, {-1.5, 0.99, 0.015, -0.01},
                               {-3.0, 0.975, 0.0, 0.0}, {3.0, 0.975, 0.0, 0.0}};

cv::Mat jittered(const cv::Mat& chip, const Jitter& j) {
  const cv::Point2f c(chip.cols / 2.f, chip.rows / 2.f);
  cv::Mat m = cv::getRotationMatrix2D(c, j.angle, 1.0 / j.scale);
  m.at<double>(0, 2) += j.dx * chip.cols;
  m.at<double>(1, 2) += j.dy * chip.rows;
  cv::Mat out;
  cv::warpAffine(chip, out, m, chip.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT_101);
  return out;
}

class DlibResNetEmbedder final : public Embedder {
 public:
  DlibResNetEmbedder(const ModelManifest& m, const EmbedderOptions& opt)
      : manifest_(m),
        opt_(opt),
        tpl_(make_template(m.alignment_template, m.chip_size, m.chip_padding)),
        net_(load_model_weights(m), nn::parse_device(opt.device)) {
    if (opt.max_batch < 1) throw Error(ErrorCode::kInvalidArgument, "max_batch must be >= 1");
    if (opt.jitter < 0 || opt.jitter > static_cast<int>(std::size(kJitters)))
      throw Error(ErrorCode::kInvalidArgument, "jitter must be in [0, 8]");
  }

  std::vector<Embedding> embed(const std::vector<Image>& chips) const override {
    std::vector<Embedding> result;
    c10::InferenceMode guard;
    for (size_t start = 0; start < chips.size(); start += opt_.max_batch) {
      const size_t end = std::min(chips.size(), start + opt_.max_batch);
      std::vector<cv::Mat> batch(chips.begin() + start, chips.begin() + end);
      for (const auto& c : batch)
        if (c.rows != tpl_.size || c.cols != tpl_.size)
          throw Error(ErrorCode::kInvalidArgument, "chip is " + std::to_string(c.cols) + "x" +
                                                       std::to_string(c.rows) + ", the embedder needs " +
                                                       std::to_string(tpl_.size) + " square");
      const int64_t n = static_cast<int64_t>(batch.size());
      for (int k = 0; k < opt_.jitter; ++k)
        for (int64_t i = 0; i < n; ++i) batch.push_back(jittered(batch[i], kJitters[k]));
      at::Tensor x = nn::images_to_batch(batch, manifest_.mean, manifest_.scale, net_.device());
      if (opt_.flip) x = at::cat({x, at::flip(x, {3})}, 0);
      // Views are stacked view-major: [view][face]; average over views.
      at::Tensor e = net_.forward(x);
      e = e.view({-1, n, e.size(1)}).mean(0);
      e = e / e.norm(2, {1}, true).clamp_min(1e-12);
      e = e.to(at::kCPU).contiguous();
      const float* p = e.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) result.emplace_back(p + i * e.size(1), p + (i + 1) * e.size(1));
    }
    return result;
  }
  const ModelManifest& manifest() const override { return manifest_; }
  const AlignmentTemplate& alignment() const override { return tpl_; }

 private:
  ModelManifest manifest_;
  EmbedderOptions opt_;
  AlignmentTemplate tpl_;
  DlibResNet net_;
};

}  // namespace
}  // namespace detail

std::unique_ptr<Embedder> create_embedder(const std::string& name, const EmbedderOptions& options) {
  const ModelManifest m = load_manifest(name);
  if (m.kind != "embedder") throw Error(ErrorCode::kInvalidArgument, "model '" + name + "' is not an embedder");
  if (m.arch == "dlib_resnet29") return std::make_unique<detail::DlibResNetEmbedder>(m, options);
  throw Error(ErrorCode::kInvalidArgument, "no embedder implementation for architecture '" + m.arch + "'");
}

}  // namespace facekit
