#include "facekit/embedder.hpp"
#include "facekit/runtime.hpp"

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "embed/dlib_resnet.hpp"
#include "embed/small_cnn.hpp"
#include "facekit/model.hpp"
#include "graph/graph_model.hpp"
#include "onnx/onnx_net.hpp"
#include "model/model_files.hpp"
#include "facekit/error.hpp"
#include "facekit/registry.hpp"

namespace facekit {
namespace detail {

std::unique_ptr<Embedder> create_embedder_from(const ModelManifest& m, const std::string& name,
                                               const EmbedderOptions& options);

std::string int8_ranges_path(const std::string& model) { return (share_dir() / "int8" / (model + ".json")).string(); }

namespace {

// The graph runtime runs any TF.js, TFLite or ONNX graph it reads in bf16 (GraphModel's dtype); a graph
// embedder takes it where its manifest records the check against fp32. OpenCV DNN has no bf16.
bool has_bf16_version(const ModelManifest& m) {
  if (m.arch == "dlib_resnet29" || m.arch == "dlib_resnet29_tuned") return true;
  return !m.bf16_source.empty() && (m.arch == "graph" || (m.arch == "onnx" && m.onnx_runtime != "opencv"));
}
// int8 needs calibrated activation ranges: the stock dlib ResNet's (share/int8/dlib_resnet.json).
bool has_int8_version(const ModelManifest& m) { return m.arch == "dlib_resnet29"; }

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

// What every network embedder shares: batching, jitter and flip views, averaging, L2 normalisation.
// Subclasses only run their network on a normalised NCHW batch (channels-last memory, channels in the order
// the manifest asks for).
class NetEmbedder : public Embedder {
 public:
  NetEmbedder(const ModelManifest& m, const EmbedderOptions& opt)
      : manifest_(m), opt_(opt), tpl_(make_template(m.alignment_template, m.chip_size, m.chip_padding)) {
    if (opt.max_batch < 1) throw Error(ErrorCode::kInvalidArgument, "max_batch must be >= 1");
    if (opt.jitter < 0 || opt.jitter > static_cast<int>(std::size(kJitters)))
      throw Error(ErrorCode::kInvalidArgument, "jitter must be in [0, 8]");
  }

  std::vector<Embedding> embed(const std::vector<Image>& chips) const override {
    std::vector<Embedding> result;
    c10::InferenceMode guard;
    const nn::FlushDenormals ftz;
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
      at::Tensor x = nn::images_to_batch(batch, manifest_.mean, manifest_.scale, device());
      // A network trained on BGR (manifest "channels": "bgr") gets the normalised channels reversed, once here
      // for every kind of network.
      if (manifest_.channels == "bgr") x = at::flip(x, {1}).contiguous(at::MemoryFormat::ChannelsLast);
      if (opt_.flip) x = at::cat({x, at::flip(x, {3})}, 0);
      // Views are stacked view-major: [view][face]; average over views.
      at::Tensor e = forward(x).to(at::kFloat);
      e = e.reshape({-1, n, e.size(-1)}).mean(0);
      e = e / e.norm(2, {1}, true).clamp_min(1e-12);
      e = e.to(at::kCPU).contiguous();
      const float* p = e.data_ptr<float>();
      for (int64_t i = 0; i < n; ++i) result.emplace_back(p + i * e.size(1), p + (i + 1) * e.size(1));
    }
    return result;
  }
  const ModelManifest& manifest() const override { return manifest_; }
  const AlignmentTemplate& alignment() const override { return tpl_; }

 protected:
  virtual at::Tensor forward(const at::Tensor& x) const = 0;
  virtual const at::Device& device() const = 0;

  ModelManifest manifest_;
  EmbedderOptions opt_;
  AlignmentTemplate tpl_;
};

// The weights of a model written by `facekit train`, checked against their manifest's sha256 first.
TensorMap load_trained_weights(const ModelManifest& m) {
  verify_model_files(m);
  return load_tensors(m.file_path("weights"));
}

class DlibResNetEmbedder final : public NetEmbedder {
 public:
  DlibResNetEmbedder(const ModelManifest& m, const EmbedderOptions& opt)
      : NetEmbedder(m, opt),
        net_(m.arch == "dlib_resnet29_tuned" ? DlibResNet::from_folded(load_trained_weights(m), nn::parse_device(opt.device))
                                             : DlibResNet(load_model_weights(m), nn::parse_device(opt.device))),
        bf16_(std::string(resolve_precision(opt.precision)) == "bf16") {
    if (bf16_) net_.set_dtype(at::kBFloat16);
    if (opt.precision == "int8")
      int8_ = std::make_unique<DlibResNetInt8>(net_, read_int8_ranges(int8_ranges_path(m.name)));
  }

 private:
  at::Tensor forward(const at::Tensor& x) const override {
    if (int8_) return int8_->forward(x);
    return bf16_ ? net_.forward(x.to(at::kBFloat16)) : net_.forward(x);
  }
  const at::Device& device() const override { return net_.device(); }
  DlibResNet net_;
  bool bf16_;
  std::unique_ptr<DlibResNetInt8> int8_;
};

// facekit's small CNN trained from scratch (src/embed/small_cnn.hpp).
class SmallCnnEmbedder final : public NetEmbedder {
 public:
  SmallCnnEmbedder(const ModelManifest& m, const EmbedderOptions& opt)
      : NetEmbedder(m, opt), device_(nn::parse_device(opt.device)) {
    w_ = load_trained_weights(m);
    small_cnn_check(w_);
    for (auto& [name, t] : w_) t = t.to(device_);
  }

 private:
  at::Tensor forward(const at::Tensor& x) const override { return small_cnn_forward(w_, x, false); }
  const at::Device& device() const override { return device_; }
  at::Device device_;
  TensorMap w_;
};

// Any TF.js graph model that maps an NHWC face crop to a vector.
class GraphEmbedder final : public NetEmbedder {
 public:
  /// `role`: the manifest file holding the network ("model_json": TF.js or TFLite; "onnx").
  GraphEmbedder(const ModelManifest& m, const EmbedderOptions& opt, const std::string& role = "model_json")
      : NetEmbedder(m, opt),
        graph_(detail::verified_model_file(m, role), nn::parse_device(opt.device),
               has_bf16_version(m) && std::string(resolve_precision(opt.precision)) == "bf16" ? at::kBFloat16 : at::kFloat) {}

 private:
  at::Tensor forward(const at::Tensor& x) const override {
    const at::Tensor nhwc = x.permute({0, 2, 3, 1});  // contiguous: x is channels-last
    const auto out = graph_.run({{manifest_.graph_input, nhwc}}, {manifest_.graph_output});
    return out.at(0).reshape({x.size(0), -1});
  }
  const at::Device& device() const override { return graph_.device(); }
  graph::GraphModel graph_;
};

// Any ONNX model that maps an NCHW face chip to a vector, run by OpenCV DNN (src/onnx/onnx_net.hpp). The
// manifest gives the normalisation, channel order, output name and alignment like any other embedder's.
class OnnxEmbedder final : public NetEmbedder {
 public:
  OnnxEmbedder(const ModelManifest& m, const EmbedderOptions& opt)
      : NetEmbedder(m, opt), net_(detail::verified_model_file(m, "onnx")), device_(at::kCPU) {
    if (nn::parse_device(opt.device) != device_)
      throw Error(ErrorCode::kInvalidArgument, m.name + " is an ONNX model: it runs on the CPU only");
  }

 private:
  at::Tensor forward(const at::Tensor& x) const override {
    at::Tensor nchw = x.contiguous();
    const int sizes[] = {int(nchw.size(0)), int(nchw.size(1)), int(nchw.size(2)), int(nchw.size(3))};
    const cv::Mat blob(4, sizes, CV_32F, nchw.data_ptr<float>());
    const auto out = net_.forward(blob, manifest_.graph_output.empty() ? std::vector<std::string>{}
                                                                        : std::vector<std::string>{manifest_.graph_output});
    const cv::Mat& y = out.at(0);
    if (y.total() % static_cast<size_t>(nchw.size(0)) != 0)
      throw Error(ErrorCode::kModelCorrupt, manifest_.name + ": output does not split into one vector per face");
    return at::from_blob(const_cast<float*>(y.ptr<float>()), {nchw.size(0), static_cast<int64_t>(y.total()) / nchw.size(0)},
                         at::kFloat)
        .clone();
  }
  const at::Device& device() const override { return device_; }
  OnnxNet net_;
  at::Device device_;
};


// Weighted concatenation of L2-normalised member embeddings, normalised again: the squared distance of two
// fused embeddings is the weighted mean of the members' squared distances (score-level fusion).
class FusionEmbedder final : public Embedder {
 public:
  FusionEmbedder(const ModelManifest& m, const EmbedderOptions& opt) : manifest_(m) {
    if (m.members.empty()) throw Error(ErrorCode::kModelCorrupt, "fusion " + m.name + " has no members");
    float total = 0;
    for (const auto& [name, w] : m.members) {
      if (w < 0) throw Error(ErrorCode::kModelCorrupt, "fusion " + m.name + ": negative weight for " + name);
      total += w;
    }
    int dim = 0;
    for (const auto& [name, w] : m.members) {
      if (w == 0) continue;
      // bf16 or int8 asked of the fusion: the members that have that version run it, the others fp32.
      EmbedderOptions member = opt;
      const ModelManifest mm = load_manifest(name);
      if ((opt.precision == "bf16" && !has_bf16_version(mm)) || (opt.precision == "int8" && !has_int8_version(mm)))
        member.precision = "fp32";
      members_.push_back(create_embedder_from(mm, name, member));  // the manifest read once
      weights_.push_back(std::sqrt(w / total));
      dim += members_.back()->dim();
    }
    manifest_.embedding_dim = dim;
    tpl_ = members_.front()->alignment();
  }

  std::vector<Embedding> embed_faces(const Image& rgb, const std::vector<Landmarks68>& faces) const override {
    return embed_faces_batch({rgb}, {faces}).at(0);
  }
  // Each member batches the faces of all the photos (its network calls carry the whole batch).
  std::vector<std::vector<Embedding>> embed_faces_batch(const std::vector<Image>& images,
                                                        const std::vector<std::vector<Landmarks68>>& faces) const override {
    if (images.size() != faces.size()) throw Error(ErrorCode::kInvalidArgument, "embed_faces_batch: one face list per image");
    std::vector<std::vector<Embedding>> out(images.size());
    for (size_t i = 0; i < images.size(); ++i) out[i].resize(faces[i].size());
    for (size_t k = 0; k < members_.size(); ++k) {
      const auto e = members_[k]->embed_faces_batch(images, faces);
      for (size_t i = 0; i < images.size(); ++i)
        for (size_t j = 0; j < faces[i].size(); ++j)
          for (float v : e.at(i).at(j)) out[i][j].push_back(v * weights_[k]);
    }
    for (auto& per_image : out)
      for (auto& e : per_image) {
        double n = 0;
        for (float v : e) n += double(v) * v;
        const float inv = static_cast<float>(1.0 / std::max(std::sqrt(n), 1e-12));
        for (float& v : e) v *= inv;
      }
    return out;
  }
  std::vector<Embedding> embed(const std::vector<Image>&) const override {
    throw Error(ErrorCode::kInvalidArgument,
                "fusion embedder " + manifest_.name + " aligns each member itself: call embed_faces()");
  }
  const ModelManifest& manifest() const override { return manifest_; }
  const AlignmentTemplate& alignment() const override { return tpl_; }
  const Embedder& first_member() const { return *members_.front(); }

 private:
  ModelManifest manifest_;
  AlignmentTemplate tpl_;
  std::vector<std::unique_ptr<Embedder>> members_;
  std::vector<float> weights_;
};

}  // namespace

const Embedder* fusion_first_member(const Embedder& e) {
  const auto* f = dynamic_cast<const FusionEmbedder*>(&e);
  return f ? &f->first_member() : nullptr;
}
}  // namespace detail

std::vector<Embedding> Embedder::embed_faces(const Image& rgb, const std::vector<Landmarks68>& faces) const {
  std::vector<Image> chips;
  for (const auto& lm : faces) chips.push_back(align_face(rgb, lm, alignment()));
  return embed(chips);
}

std::vector<std::vector<Embedding>> Embedder::embed_faces_batch(const std::vector<Image>& images,
                                                                const std::vector<std::vector<Landmarks68>>& faces) const {
  if (images.size() != faces.size()) throw Error(ErrorCode::kInvalidArgument, "embed_faces_batch: one face list per image");
  std::vector<Image> chips;
  for (size_t i = 0; i < images.size(); ++i)
    for (const auto& lm : faces[i]) chips.push_back(align_face(images[i], lm, alignment()));
  std::vector<Embedding> all = chips.empty() ? std::vector<Embedding>{} : embed(chips);
  std::vector<std::vector<Embedding>> out(images.size());
  size_t k = 0;
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t j = 0; j < faces[i].size(); ++j) out[i].push_back(std::move(all.at(k++)));
  return out;
}

namespace detail {
std::unique_ptr<Embedder> make_batching_embedder(std::unique_ptr<Embedder> inner, const EmbedderOptions& options);
}

namespace detail {
std::unique_ptr<Embedder> create_embedder_from(const ModelManifest& m, const std::string& name,
                                               const EmbedderOptions& options) {
  if (m.kind != "embedder") throw Error(ErrorCode::kInvalidArgument, "model '" + name + "' is not an embedder");
  resolve_precision(options.precision);  // a bad value is refused whatever the model
  if (options.precision == "bf16" && !has_bf16_version(m) && m.arch != "fusion")
    throw Error(
        ErrorCode::kInvalidArgument,
        "embedder " + name +
            " has no bf16 version (dlib_resnet, mobilefacenet_tflite and faceplugin have); use --precision "
            "fp32 or auto");
  if (options.precision == "int8" && !has_int8_version(m) && m.arch != "fusion")
    throw Error(ErrorCode::kInvalidArgument, "embedder " + name + " has no int8 version (only the stock dlib_resnet, "
                                             "whose activation ranges are calibrated); use --precision fp32 or auto");
  auto e = embedder_registry().create(m.arch, m, options);
  // A fusion aligns each member itself and has no chip to batch: its members, made with these options, batch.
  if (options.batch_across_calls && m.arch != "fusion") return make_batching_embedder(std::move(e), options);
  return e;
}
}  // namespace detail

std::unique_ptr<Embedder> create_embedder(const std::string& name, const EmbedderOptions& options) {
  return detail::create_embedder_from(load_manifest(name), name, options);
}

namespace {
template <class T>
std::unique_ptr<Embedder> make(const ModelManifest& m, const EmbedderOptions& o) {
  return std::make_unique<T>(m, o);
}

// An ONNX embedder on the graph runtime where facekit's reader translates it (faceplugin's MobileFaceNet: align
// + embed 34.9 -> 14.9 ms a photo with flip, docs/results.md), on OpenCV DNN otherwise or when the manifest
// asks for it.
std::unique_ptr<Embedder> make_onnx(const ModelManifest& m, const EmbedderOptions& o) {
  if (m.onnx_runtime == "opencv") return std::make_unique<detail::OnnxEmbedder>(m, o);
  if (m.onnx_runtime == "graph") return std::make_unique<detail::GraphEmbedder>(m, o, "onnx");
  try {
    return std::make_unique<detail::GraphEmbedder>(m, o, "onnx");
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInvalidArgument) throw;  // a damaged file is not retried
    if (o.precision == "bf16")  // asked for by name: OpenCV DNN would quietly run fp32
      throw Error(ErrorCode::kInvalidArgument,
                  "embedder " + m.name + ": bf16 needs the graph runtime, which cannot " +
                      "read this ONNX file (" + e.what() + "); use --precision fp32 or auto");
    return std::make_unique<detail::OnnxEmbedder>(m, o);
  }
}
}  // namespace

Registry<Embedder, const ModelManifest&, const EmbedderOptions&>& embedder_registry() {
  static auto* r = [] {
    auto* r = new Registry<Embedder, const ModelManifest&, const EmbedderOptions&>("embedder");
    r->add("dlib_resnet29", &make<detail::DlibResNetEmbedder>);
    r->add("dlib_resnet29_tuned", &make<detail::DlibResNetEmbedder>);
    r->add("facekit_small_cnn", &make<detail::SmallCnnEmbedder>);
    r->add("graph", &make<detail::GraphEmbedder>);
    r->add("onnx", &make_onnx);
    r->add("fusion", &make<detail::FusionEmbedder>);
    return r;
  }();
  return *r;
}

}  // namespace facekit
