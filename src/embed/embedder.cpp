#include "facekit/embedder.hpp"

#include "embed/dlib_resnet.hpp"
#include "facekit/error.hpp"

namespace facekit {
namespace detail {
namespace {

class DlibResNetEmbedder final : public Embedder {
 public:
  DlibResNetEmbedder(const ModelManifest& m, const EmbedderOptions& opt)
      : manifest_(m),
        opt_(opt),
        tpl_(make_template(m.alignment_template, m.chip_size, m.chip_padding)),
        net_(load_model_weights(m), nn::parse_device(opt.device)) {
    if (opt.max_batch < 1) throw Error(ErrorCode::kInvalidArgument, "max_batch must be >= 1");
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
      at::Tensor x = nn::images_to_batch(batch, manifest_.mean, manifest_.scale, net_.device());
      const int64_t n = x.size(0);
      if (opt_.flip) x = at::cat({x, at::flip(x, {3})}, 0);
      at::Tensor e = net_.forward(x);
      if (opt_.flip) e = (e.narrow(0, 0, n) + e.narrow(0, n, n)) / 2;
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
