// k-nearest-neighbour identification with a distance-weighted vote.
#include <algorithm>
#include <cmath>
#include <istream>
#include <ostream>
#include <unordered_map>

#include "classify/classifiers.hpp"
#include "facekit/error.hpp"
#include "facekit/registry.hpp"

namespace facekit {
namespace {

class KnnClassifier final : public Classifier {
 public:
  explicit KnnClassifier(const ClassifierOptions& o) : o_(o) {
    if (o.knn_k < 1) throw Error(ErrorCode::kInvalidArgument, "knn_k must be at least 1");
    if (!(o.knn_sigma > 0)) throw Error(ErrorCode::kInvalidArgument, "knn_sigma must be positive");
  }
  std::string name() const override { return "knn"; }
  void train(const LabelledIndex&) override {}
  bool trainable() const override { return false; }
  void save(std::ostream&) const override {}
  void load(std::istream&) override {}
  std::string describe() const override {
    return "knn: k=" + std::to_string(o_.knn_k) + ", weight exp(-d^2/(2*" + std::to_string(o_.knn_sigma) + "^2))";
  }

  std::vector<ClassScore> classify(const LabelledIndex& data, const float* x, int top_k) const override {
    if (top_k < 1) return {};
    // Search deeper than k so that top_k distinct people can be listed even when the nearest templates all
    // belong to a few people; only the first k vote.
    const int depth = std::max(o_.knn_k, 4 * top_k);
    const auto hits = data.search(x, depth);
    struct Acc {
      float vote = 0, distance = 1e9f;
    };
    std::unordered_map<std::int64_t, Acc> acc;
    std::vector<std::int64_t> order;  // first-seen order = nearest first
    const float inv2s2 = 1.f / (2 * o_.knn_sigma * o_.knn_sigma);
    float total = 0;
    for (size_t i = 0; i < hits.size(); ++i) {
      const std::int64_t label = data.label(hits[i].row);
      auto [it, fresh] = acc.try_emplace(label);
      if (fresh) order.push_back(label);
      it->second.distance = std::min(it->second.distance, hits[i].distance);
      if (static_cast<int>(i) < o_.knn_k) {
        const float w = std::exp(-hits[i].distance * hits[i].distance * inv2s2);
        it->second.vote += w;
        total += w;
      }
    }
    std::vector<ClassScore> out;
    for (std::int64_t label : order) {
      const Acc& a = acc[label];
      out.push_back({label, a.distance, 1.f - a.distance * a.distance / 2, total > 0 ? a.vote / total : 0.f});
    }
    // Most votes first; people outside the k voters (no vote) follow by distance.
    std::stable_sort(out.begin(), out.end(), [](const ClassScore& a, const ClassScore& b) {
      if (a.probability != b.probability) return a.probability > b.probability;
      return a.distance < b.distance;
    });
    if (static_cast<int>(out.size()) > top_k) out.resize(top_k);
    return out;
  }

 private:
  ClassifierOptions o_;
};

}  // namespace

std::unique_ptr<Classifier> make_knn_classifier(const ClassifierOptions& o) {
  return std::make_unique<KnnClassifier>(o);
}

Registry<Classifier, const ClassifierOptions&>& classifier_registry() {
  static auto* r = [] {
    auto* r = new Registry<Classifier, const ClassifierOptions&>("classifier");
    r->add("knn", &make_knn_classifier);
    r->add("svm", &make_svm_classifier);
    return r;
  }();
  return *r;
}

std::unique_ptr<Classifier> create_classifier(const std::string& name, const ClassifierOptions& options) {
  return classifier_registry().create(name, options);
}

std::vector<std::string> classifier_names() { return classifier_registry().keys(); }

}  // namespace facekit
