#include "facekit/attributes.hpp"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "facekit/error.hpp"
#include "graph/graph_model.hpp"
#include "model/model_files.hpp"
#include "nn/tf_ops.hpp"

namespace facekit {

namespace {

// The manifest's crop of one face: the box made square about its centre and scaled, then the manifest's
// sub-rectangle of that square (GEAR was trained on crops Human cut this way), resized to the input.
// Outside the image the border repeats: a black band would be a cue the network never saw.
Image attribute_crop(const Image& rgb, const Box& box, const ModelManifest& m) {
  if (rgb.empty() || rgb.type() != CV_8UC3)
    throw Error(ErrorCode::kInvalidArgument, "attribute estimation needs an RGB 8-bit image");
  if (!(box.width > 0) || !(box.height > 0) || box.x >= rgb.cols || box.y >= rgb.rows || box.x + box.width <= 0 ||
      box.y + box.height <= 0)
    throw Error(ErrorCode::kInvalidArgument, "face box does not overlap the image");
  const auto& a = m.attributes;
  const float side = std::max(box.width, box.height) * a.crop_scale;
  const cv::Point2f c = box.center();
  const float x0 = c.x - side / 2, y0 = c.y - side / 2;
  const cv::Rect r(static_cast<int>(std::lround(x0 + a.crop[1] * side)), static_cast<int>(std::lround(y0 + a.crop[0] * side)),
                   std::max(1, static_cast<int>(std::lround((a.crop[3] - a.crop[1]) * side))),
                   std::max(1, static_cast<int>(std::lround((a.crop[2] - a.crop[0]) * side))));
  const cv::Rect inside = r & cv::Rect(0, 0, rgb.cols, rgb.rows);
  if (inside.empty()) throw Error(ErrorCode::kInvalidArgument, "face box does not overlap the image");
  cv::Mat region;
  cv::copyMakeBorder(rgb(inside), region, inside.y - r.y, r.br().y - inside.br().y, inside.x - r.x,
                     r.br().x - inside.br().x, cv::BORDER_REPLICATE);
  cv::Mat out;
  // Bilinear, as tf.image.cropAndResize does.
  cv::resize(region, out, {m.input_size, m.input_size}, 0, 0, cv::INTER_LINEAR);
  return out;
}

std::vector<LabelScore> ranked(const at::Tensor& p, const std::vector<std::string>& labels, const std::string& what) {
  if (p.numel() != static_cast<int64_t>(labels.size()))
    throw Error(ErrorCode::kModelCorrupt, "attribute output '" + what + "' has " + std::to_string(p.numel()) +
                                              " values for " + std::to_string(labels.size()) + " labels");
  const auto acc = p.accessor<float, 1>();
  std::vector<LabelScore> out;
  for (size_t i = 0; i < labels.size(); ++i) out.push_back({labels[i], acc[static_cast<int64_t>(i)]});
  std::stable_sort(out.begin(), out.end(), [](const LabelScore& x, const LabelScore& y) { return x.probability > y.probability; });
  return out;
}

class GraphAttributeEstimator final : public AttributeEstimator {
 public:
  GraphAttributeEstimator(ModelManifest m, const AttributeOptions& o)
      : manifest_(std::move(m)), graph_(detail::verified_model_file(manifest_, "model_json"), nn::parse_device(o.device)) {
    if (manifest_.input_size <= 0) throw Error(ErrorCode::kModelCorrupt, "manifest " + manifest_.name + " has no input size");
  }
  FaceAttributes estimate(const Image& rgb, const Face& face) const override {
    return estimate_batch({&rgb}, {face}).at(0);
  }
  std::vector<FaceAttributes> estimate_batch(const std::vector<const Image*>& images,
                                             const std::vector<Face>& faces) const override {
    if (images.size() != faces.size())
      throw Error(ErrorCode::kInvalidArgument, "estimate_batch: one image per face is needed");
    if (faces.empty()) return {};
    std::vector<cv::Mat> crops;
    for (size_t i = 0; i < faces.size(); ++i) {
      if (!images[i]) throw Error(ErrorCode::kInvalidArgument, "estimate_batch: null image");
      crops.push_back(attribute_crop(*images[i], faces[i].box, manifest_));
    }
    c10::InferenceMode guard;
    at::Tensor x = nn::images_to_batch(crops, manifest_.mean, manifest_.scale, graph_.device()).permute({0, 2, 3, 1});
    if (manifest_.channels == "bgr") x = at::flip(x, {3});
    // Luma weights as the grey models' training code used; they sum to 1, so (pixel - mean) * scale commutes.
    if (manifest_.channels == "grey")
      x = (x * at::tensor({0.2989f, 0.587f, 0.114f}, x.options()).view({1, 1, 1, 3})).sum(3, true);
    const auto& a = manifest_.attributes;
    std::vector<std::string> names;
    for (const auto* o : {&a.age_output, &a.gender_output, &a.group_output})
      if (!o->empty()) names.push_back(*o);
    const auto out = graph_.run({{manifest_.graph_input, x.contiguous()}}, names);
    const auto n = static_cast<int64_t>(faces.size());
    size_t next = 0;
    const auto take = [&](const std::string& node) {
      return node.empty() ? at::Tensor() : out.at(next++).to(at::kCPU).to(at::kFloat).reshape({n, -1}).contiguous();
    };
    const at::Tensor age = take(a.age_output), gender = take(a.gender_output), group = take(a.group_output);
    std::vector<FaceAttributes> res(faces.size());
    for (int64_t i = 0; i < n; ++i) {
      auto& r = res[static_cast<size_t>(i)];
      if (gender.defined()) r.gender = ranked(gender[i].contiguous(), a.gender_labels, "gender");
      if (group.defined()) r.group = ranked(group[i].contiguous(), a.group_labels, "group");
      if (!age.defined()) continue;
      const at::Tensor pa = age[i].contiguous();
      r.age_group = ranked(pa, a.age_labels, "age");
      double sum = 0, years = 0;
      const auto acc = pa.accessor<float, 1>();
      for (size_t k = 0; k < a.age_centres.size(); ++k) {
        sum += acc[static_cast<int64_t>(k)];
        years += acc[static_cast<int64_t>(k)] * a.age_centres[k];
      }
      r.age = sum > 0 ? static_cast<float>(years / sum) : 0.f;
    }
    return res;
  }
  const ModelManifest& manifest() const override { return manifest_; }

 private:
  ModelManifest manifest_;
  graph::GraphModel graph_;
};

// Each attribute from the member model the manifest names for it (e.g. gender from a model that does only
// gender well, age and group from another); a member named for several attributes runs once per face.
class CombinedAttributeEstimator final : public AttributeEstimator {
 public:
  CombinedAttributeEstimator(ModelManifest m, const AttributeOptions& o) : manifest_(std::move(m)) {
    static const char* known[] = {"age", "gender", "group"};
    for (const auto& [attr, model] : manifest_.attributes.sources) {
      if (std::find(std::begin(known), std::end(known), attr) == std::end(known))
        throw Error(ErrorCode::kModelCorrupt, "manifest " + manifest_.name + ": no attribute '" + attr + "'");
      if (model == manifest_.name) throw Error(ErrorCode::kModelCorrupt, "manifest " + manifest_.name + " names itself");
      if (!members_.count(model)) members_[model] = create_attribute_estimator(model, o);
    }
    if (members_.empty()) throw Error(ErrorCode::kModelCorrupt, "manifest " + manifest_.name + " has no sources");
  }
  FaceAttributes estimate(const Image& rgb, const Face& face) const override {
    return estimate_batch({&rgb}, {face}).at(0);
  }
  std::vector<FaceAttributes> estimate_batch(const std::vector<const Image*>& images,
                                             const std::vector<Face>& faces) const override {
    std::map<std::string, std::vector<FaceAttributes>> by_model;
    for (const auto& [name, model] : members_) by_model[name] = model->estimate_batch(images, faces);
    std::vector<FaceAttributes> out(faces.size());
    const auto& src = manifest_.attributes.sources;
    for (size_t i = 0; i < faces.size(); ++i) {
      if (const auto it = src.find("age"); it != src.end()) {
        out[i].age = by_model[it->second][i].age;
        out[i].age_group = by_model[it->second][i].age_group;
      }
      if (const auto it = src.find("gender"); it != src.end()) out[i].gender = by_model[it->second][i].gender;
      if (const auto it = src.find("group"); it != src.end()) out[i].group = by_model[it->second][i].group;
    }
    return out;
  }
  const ModelManifest& manifest() const override { return manifest_; }

 private:
  ModelManifest manifest_;
  std::map<std::string, std::unique_ptr<AttributeEstimator>> members_;
};

}  // namespace

std::unique_ptr<AttributeEstimator> create_attribute_estimator(const std::string& name, const AttributeOptions& options) {
  const ModelManifest m = load_manifest(name);
  if (m.kind != "attributes") throw Error(ErrorCode::kInvalidArgument, "model '" + name + "' is not an attribute estimator");
  return attribute_estimator_registry().create(m.arch, m, options);
}

Registry<AttributeEstimator, const ModelManifest&, const AttributeOptions&>& attribute_estimator_registry() {
  using R = Registry<AttributeEstimator, const ModelManifest&, const AttributeOptions&>;
  static auto* r = [] {
    auto* r = new R("attribute estimator");
    r->add("graph", [](const ModelManifest& m, const AttributeOptions& o) -> std::unique_ptr<AttributeEstimator> {
      return std::make_unique<GraphAttributeEstimator>(m, o);
    });
    r->add("combined", [](const ModelManifest& m, const AttributeOptions& o) -> std::unique_ptr<AttributeEstimator> {
      return std::make_unique<CombinedAttributeEstimator>(m, o);
    });
    return r;
  }();
  return *r;
}

}  // namespace facekit
