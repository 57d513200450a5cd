#include "facekit/spoof.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "facekit/error.hpp"
#include "facekit/registry.hpp"
#include "graph/graph_model.hpp"
#include "model/model_files.hpp"
#include "nn/tf_ops.hpp"
#include "spoof/spoof_models.hpp"

namespace facekit {

const char* to_string(SpoofState s) {
  switch (s) {
    case SpoofState::kLive:
      return "live";
    case SpoofState::kSpoof:
      return "spoof";
    case SpoofState::kUncertain:
      return "uncertain";
  }
  return "unknown";
}

SpoofState SpoofThresholds::state(float score) const {
  if (score >= live) return SpoofState::kLive;
  if (score < spoof) return SpoofState::kSpoof;
  return SpoofState::kUncertain;
}

const std::vector<std::string>& spoof_signal_names() {
  static const std::vector<std::string> names = {"antispoof", "liveness", "spoof-texture", "spoof-frequency"};
  return names;
}

Image spoof_crop(const Image& rgb, const Box& box, float scale, int size) {
  if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(ErrorCode::kInvalidArgument, "spoof check needs an RGB 8-bit image");
  if (box.width <= 0 || box.height <= 0 || box.x >= rgb.cols || box.y >= rgb.rows || box.x + box.width <= 0 ||
      box.y + box.height <= 0)
    throw Error(ErrorCode::kInvalidArgument, "face box does not overlap the image");
  const cv::Point2f c = box.center();
  const int w = std::max(1, static_cast<int>(std::lround(box.width * scale)));
  const int h = std::max(1, static_cast<int>(std::lround(box.height * scale)));
  const cv::Rect r(static_cast<int>(std::lround(c.x - w / 2.f)), static_cast<int>(std::lround(c.y - h / 2.f)), w, h);
  const cv::Rect inside = r & cv::Rect(0, 0, rgb.cols, rgb.rows);
  cv::Mat region;
  // Repeat the border rather than pad black: a black band is itself a strong (and false) texture cue.
  cv::copyMakeBorder(rgb(inside), region, inside.y - r.y, r.br().y - inside.br().y, inside.x - r.x,
                     r.br().x - inside.br().x, cv::BORDER_REPLICATE);
  if (size <= 0) return region;
  cv::Mat out;
  // Bilinear, as the networks' training pipelines resized (cv2.resize / tf.image.resizeBilinear).
  cv::resize(region, out, {size, size}, 0, 0, cv::INTER_LINEAR);
  return out;
}

namespace detail {

float safe_logit(float p) {
  const float q = std::clamp(p, 1e-6f, 1.f - 1e-6f);
  return std::log(q / (1.f - q));
}

float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

float texture_score(const ModelManifest::Spoof& s, const std::vector<float>& f) {
  if (s.weights.size() != f.size() || s.feature_mean.size() != f.size() || s.feature_std.size() != f.size())
    throw Error(ErrorCode::kModelCorrupt, "texture model has " + std::to_string(s.weights.size()) +
                                              " weights for " + std::to_string(f.size()) + " features");
  double z = s.bias;
  for (size_t i = 0; i < f.size(); ++i) z += s.weights[i] * (f[i] - s.feature_mean[i]) / s.feature_std[i];
  return sigmoid(static_cast<float>(z));
}

float fusion_score(const ModelManifest& m, const std::vector<float>& p) {
  if (p.size() != m.members.size())
    throw Error(ErrorCode::kInvalidArgument, "fusion " + m.name + " needs " + std::to_string(m.members.size()) + " scores");
  double z = m.spoof.bias;
  for (size_t i = 0; i < p.size(); ++i) z += m.members[i].second * safe_logit(p[i]);
  return sigmoid(static_cast<float>(z));
}

SpoofThresholds thresholds_of(const ModelManifest& m) {
  SpoofThresholds t{m.spoof.threshold, m.spoof.live_threshold, m.spoof.spoof_threshold};
  if (!(t.spoof <= t.decision && t.decision <= t.live))
    throw Error(ErrorCode::kModelCorrupt, "manifest " + m.name + ": thresholds must satisfy spoof <= decision <= live");
  return t;
}

namespace {

Box crop_box(const Box& b, float scale) {
  const cv::Point2f c = b.center();
  return {c.x - b.width * scale / 2, c.y - b.height * scale / 2, b.width * scale, b.height * scale};
}

// Base of the single-signal checkers: result assembly from one score.
class SignalChecker : public SpoofChecker {
 public:
  explicit SignalChecker(ModelManifest m) : manifest_(std::move(m)), thresholds_(thresholds_of(manifest_)) {}
  SpoofResult check(const Image& rgb, const Face& face) const override {
    const float s = score(spoof_crop(rgb, face.box, manifest_.spoof.crop_scale, input_size()));
    SpoofResult r;
    r.score = s;
    r.state = thresholds_.state(s);
    r.signals.push_back({manifest_.name, s, r.state});
    r.crop = crop_box(face.box, manifest_.spoof.crop_scale);
    return r;
  }
  const ModelManifest& manifest() const override { return manifest_; }
  const SpoofThresholds& thresholds() const override { return thresholds_; }

 protected:
  virtual float score(const Image& crop) const = 0;
  virtual int input_size() const = 0;  ///< 0: the crop at its own resolution
  ModelManifest manifest_;
  SpoofThresholds thresholds_;
};

// A TF.js graph classifier of a face crop: input (pixel - mean) * scale, output element live_index = P(live).
class GraphSpoofChecker final : public SignalChecker {
 public:
  GraphSpoofChecker(const ModelManifest& m, const SpoofOptions& opt)
      : SignalChecker(m), graph_(detail::verified_model_file(m, "model_json"), nn::parse_device(opt.device)) {
    if (m.input_size <= 0) throw Error(ErrorCode::kModelCorrupt, "manifest " + m.name + " has no input size");
  }

 private:
  float score(const Image& crop) const override {
    c10::InferenceMode guard;
    at::Tensor x = nn::images_to_batch({crop}, manifest_.mean, manifest_.scale, graph_.device()).permute({0, 2, 3, 1});
    if (manifest_.channels == "bgr") x = at::flip(x, {3});
    const auto out = graph_.run({{manifest_.graph_input, x.contiguous()}}, {manifest_.graph_output});
    const at::Tensor y = out.at(0).reshape({-1}).to(at::kCPU).to(at::kFloat);
    if (manifest_.spoof.live_index < 0 || manifest_.spoof.live_index >= y.size(0))
      throw Error(ErrorCode::kModelCorrupt, "manifest " + manifest_.name + ": live_index out of range");
    return y[manifest_.spoof.live_index].item<float>();
  }
  int input_size() const override { return manifest_.input_size; }
  graph::GraphModel graph_;
};

class TextureSpoofChecker final : public SignalChecker {
 public:
  explicit TextureSpoofChecker(const ModelManifest& m) : SignalChecker(m) {
    const int n = texture_feature_size(m.spoof.feature_groups);
    if (static_cast<int>(m.spoof.weights.size()) != n)
      throw Error(ErrorCode::kModelCorrupt, "manifest " + m.name + " has " + std::to_string(m.spoof.weights.size()) +
                                                " weights, its texture features number " + std::to_string(n));
  }

 private:
  float score(const Image& crop) const override { 
    return texture_score(manifest_.spoof, texture_features(crop, manifest_.spoof.feature_groups));
  }
  int input_size() const override { return 0; }
};

class FusionSpoofChecker final : public SpoofChecker {
 public:
  FusionSpoofChecker(const ModelManifest& m, const SpoofOptions& opt)
      : manifest_(m), thresholds_(thresholds_of(m)) {
    if (m.members.empty()) throw Error(ErrorCode::kModelCorrupt, "fusion " + m.name + " has no members");
    for (const auto& [name, w] : m.members) members_.push_back(create_spoof_checker(name, opt));
  }
  SpoofResult check(const Image& rgb, const Face& face) const override {
    SpoofResult r;
    std::vector<float> p;
    for (const auto& c : members_) {
      const SpoofResult m = c->check(rgb, face);
      p.push_back(m.score);
      r.signals.insert(r.signals.end(), m.signals.begin(), m.signals.end());
    }
    r.score = fusion_score(manifest_, p);
    r.state = thresholds_.state(r.score);
    r.crop = crop_box(face.box, manifest_.spoof.crop_scale);
    return r;
  }
  const ModelManifest& manifest() const override { return manifest_; }
  const SpoofThresholds& thresholds() const override { return thresholds_; }

 private:
  ModelManifest manifest_;
  SpoofThresholds thresholds_;
  std::vector<std::unique_ptr<SpoofChecker>> members_;
};

}  // namespace
}  // namespace detail

std::unique_ptr<SpoofChecker> create_spoof_checker(const std::string& name, const SpoofOptions& options) {
  const std::string full =
      name == "texture" || name == "frequency" || name == "combined" ? "spoof-" + name : name;
  const ModelManifest m = options.manifests.empty() ? load_manifest(full) : load_manifest(full, options.manifests);
  if (m.kind != "spoof") throw Error(ErrorCode::kInvalidArgument, "model '" + full + "' is not a spoof checker");
  return spoof_checker_registry().create(m.arch, m, options);
}

Registry<SpoofChecker, const ModelManifest&, const SpoofOptions&>& spoof_checker_registry() {
  using R = Registry<SpoofChecker, const ModelManifest&, const SpoofOptions&>;
  static auto* r = [] {
    auto* r = new R("spoof checker");
    r->add("graph", [](const ModelManifest& m, const SpoofOptions& o) -> std::unique_ptr<SpoofChecker> {
      return std::make_unique<detail::GraphSpoofChecker>(m, o);
    });
    r->add("texture", [](const ModelManifest& m, const SpoofOptions&) -> std::unique_ptr<SpoofChecker> {
      return std::make_unique<detail::TextureSpoofChecker>(m);
    });
    r->add("fusion", [](const ModelManifest& m, const SpoofOptions& o) -> std::unique_ptr<SpoofChecker> {
      return std::make_unique<detail::FusionSpoofChecker>(m, o);
    });
    return r;
  }();
  return *r;
}

}  // namespace facekit
