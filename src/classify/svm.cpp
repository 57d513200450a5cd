// One-vs-rest linear SVMs (liblinear, L2-regularised L2-loss, dual coordinate descent) with Platt-calibrated
// probabilities.
//
// Why one binary problem per person with bounded negatives instead of liblinear's own multi-class training:
// liblinear's one-vs-rest trains every person's model on every template, so training grows with
// people x templates (10,000 people, 50,000 templates: ~5 * 10^8 feature visits per pass). Each person's
// model here sees their templates, all templates of their nearest other people (the ones it must tell them
// apart from) and a random sample of everyone else, which keeps each model's cost constant; the models train
// in parallel. Platt's sigmoid is fitted on decision values of templates held out from training, as libsvm's
// probability option does with cross-validation.
#include <linear.h>

#include <faiss/IndexFlat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <istream>
#include <mutex>
#include <numeric>
#include <ostream>
#include <random>
#include <thread>
#include <unordered_set>

#include "classify/classifiers.hpp"
#include "classify/fast_flat.hpp"
#include "core/parallel.hpp"
#include "facekit/error.hpp"

namespace facekit {
using fidx = faiss::Index::idx_t;  // faiss 1.7.3 declares idx_t inside Index

void fit_platt(const std::vector<double>& f, const std::vector<bool>& positive, double& A, double& B) {
  const size_t n = f.size();
  double prior1 = 0, prior0 = 0;
  for (bool p : positive) (p ? prior1 : prior0) += 1;
  if (prior1 == 0 || prior0 == 0) throw Error(ErrorCode::kInvalidArgument, "Platt fit needs both classes");
  const double hi = (prior1 + 1) / (prior1 + 2), lo = 1 / (prior0 + 2);
  std::vector<double> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = positive[i] ? hi : lo;
  auto objective = [&](double a, double b) {
    double v = 0;
    for (size_t i = 0; i < n; ++i) {
      const double z = f[i] * a + b;
      v += z >= 0 ? t[i] * z + std::log1p(std::exp(-z)) : (t[i] - 1) * z + std::log1p(std::exp(z));
    }
    return v;
  };
  A = 0;
  B = std::log((prior0 + 1) / (prior1 + 1));
  double fval = objective(A, B);
  for (int iter = 0; iter < 100; ++iter) {
    double h11 = 1e-12, h22 = 1e-12, h21 = 0, g1 = 0, g2 = 0;
    for (size_t i = 0; i < n; ++i) {
      const double z = f[i] * A + B;
      double p, q;
      if (z >= 0) {
        p = std::exp(-z) / (1 + std::exp(-z));
        q = 1 / (1 + std::exp(-z));
      } else {
        p = 1 / (1 + std::exp(z));
        q = std::exp(z) / (1 + std::exp(z));
      }
      const double d2 = p * q;
      h11 += f[i] * f[i] * d2;
      h22 += d2;
      h21 += f[i] * d2;
      const double d1 = t[i] - p;
      g1 += f[i] * d1;
      g2 += d1;
    }
    if (std::abs(g1) < 1e-5 && std::abs(g2) < 1e-5) break;
    const double det = h11 * h22 - h21 * h21;
    const double dA = -(h22 * g1 - h21 * g2) / det, dB = -(-h21 * g1 + h11 * g2) / det;
    const double gd = g1 * dA + g2 * dB;
    double step = 1;
    while (step >= 1e-10) {
      const double na = A + step * dA, nb = B + step * dB, nf = objective(na, nb);
      if (nf < fval + 1e-4 * step * gd) {
        A = na, B = nb, fval = nf;
        break;
      }
      step /= 2;
    }
    if (step < 1e-10) break;
  }
}

namespace {

constexpr const char* kSvmMagic = "facekit-svm";
constexpr int kSvmVersion = 1;

void quiet(const char*) {}

class SvmClassifier final : public Classifier {
 public:
  explicit SvmClassifier(const ClassifierOptions& o) : o_(o) {
    if (!(o.svm_c > 0)) throw Error(ErrorCode::kInvalidArgument, "svm_c must be positive");
    static std::once_flag once;
    std::call_once(once, [] { set_print_string_function(&quiet); });  // liblinear prints progress otherwise
  }
  std::string name() const override { return "svm"; }
  bool trainable() const override { return true; }
  void train(const LabelledIndex& data) override;
  std::vector<ClassScore> classify(const LabelledIndex& data, const float* x, int top_k) const override;
  void save(std::ostream& out) const override;
  void load(std::istream& in) override;
  std::string describe() const override {
    char buf[200];
    std::snprintf(buf, sizeof buf, "svm: %zu models, C=%g, Platt A=%.3f B=%.3f (%s)%s", labels_.size(), o_.svm_c, a_,
                  b_, platt_fitted_ ? "fitted on held-out templates" : "defaults",
                  labels_.size() == 1 ? "; one person, no negatives: every face scores 0 (use knn)" : "");
    return buf;
  }

 private:
  // Trains one binary model; returns dim+1 weights (bias last), oriented so that > 0 means the person.
  std::vector<float> train_one(const LabelledIndex& data, const std::vector<std::int64_t>& pos,
                               const std::vector<std::int64_t>& neg) const;
  std::vector<std::int64_t> negatives(const LabelledIndex& data, size_t c, const std::vector<std::int64_t>& live_rows,
                                      const std::vector<std::vector<std::int64_t>>& near, std::mt19937_64& rng) const;
  float l2(const float* a, const float* b) const { return l2_squared(a, b, static_cast<size_t>(dim_)); }
  float decision(size_t c, const float* x) const {
    const float* w = &w_[c * (dim_ + 1)];
    float s = w[dim_];
    for (int j = 0; j < dim_; ++j) s += w[j] * x[j];
    return s;
  }

  ClassifierOptions o_;
  int dim_ = 0;
  std::vector<std::int64_t> labels_;
  std::vector<float> w_;  // labels_.size() x (dim_ + 1)
  double a_ = 0, b_ = 0;
  bool platt_fitted_ = false;
};

std::vector<float> SvmClassifier::train_one(const LabelledIndex& data, const std::vector<std::int64_t>& pos,
                                            const std::vector<std::int64_t>& neg) const {
  const int d = data.dim();
  const size_t l = pos.size() + neg.size();
  std::vector<feature_node> nodes(l * (d + 2));
  std::vector<feature_node*> x(l);
  std::vector<double> y(l);
  for (size_t i = 0; i < l; ++i) {
    const std::int64_t row = i < pos.size() ? pos[i] : neg[i - pos.size()];
    const float* v = data.index().vector(row);
    feature_node* n = &nodes[i * (d + 2)];
    for (int j = 0; j < d; ++j) n[j] = {j + 1, v[j]};
    n[d] = {d + 1, 1.0};  // liblinear's bias feature (problem.bias = 1)
    n[d + 1] = {-1, 0};
    x[i] = n;
    y[i] = i < pos.size() ? 1 : -1;
  }
  problem prob{static_cast<int>(l), d + 1, y.data(), x.data(), 1.0};
  parameter param{};
  param.solver_type = L2R_L2LOSS_SVC_DUAL;
  param.eps = 0.1;
  param.C = o_.svm_c;
  if (const char* err = check_parameter(&prob, &param)) throw Error(ErrorCode::kInternal, std::string("liblinear: ") + err);
  model* m = ::train(&prob, &param);
  std::vector<float> w(d + 1, 0.f);
  if (m->nr_class == 2) {
    const float sign = m->label[0] == 1 ? 1.f : -1.f;  // w separates label[0] (> 0) from label[1]
    for (int j = 0; j <= d; ++j) w[j] = sign * static_cast<float>(m->w[j]);
  }
  free_and_destroy_model(&m);
  return w;
}

std::vector<std::int64_t> SvmClassifier::negatives(const LabelledIndex& data, size_t c,
                                                   const std::vector<std::int64_t>& live_rows,
                                                   const std::vector<std::vector<std::int64_t>>& near,
                                                   std::mt19937_64& rng) const {
  const std::int64_t self = labels_[c];
  std::vector<std::int64_t> neg;
  const bool all = o_.svm_hard_negative_people <= 0 && o_.svm_random_negatives <= 0;
  if (all) {
    for (std::int64_t r : live_rows)
      if (data.label(r) != self) neg.push_back(r);
    return neg;
  }
  std::unordered_set<std::int64_t> taken;
  for (size_t k : near[c])
    for (std::int64_t r : data.rows_of(labels_[k])) neg.push_back(r), taken.insert(r);
  // Random others; a bounded number of tries so a gallery made mostly of this person cannot loop forever.
  std::uniform_int_distribution<size_t> pick(0, live_rows.size() - 1);
  for (int tries = 0, got = 0; got < o_.svm_random_negatives && tries < 4 * o_.svm_random_negatives; ++tries) {
    const std::int64_t r = live_rows[pick(rng)];
    if (data.label(r) == self || !taken.insert(r).second) continue;
    neg.push_back(r);
    ++got;
  }
  return neg;
}

void SvmClassifier::train(const LabelledIndex& data) {
  dim_ = data.dim();
  labels_ = data.labels();
  const size_t nl = labels_.size();
  w_.assign(nl * (dim_ + 1), 0.f);
  a_ = o_.svm_platt_a;
  b_ = o_.svm_platt_b;
  platt_fitted_ = false;
  if (nl < 2) return;  // one person: no negatives; classify() then falls back to the default sigmoid of 0

  std::vector<std::int64_t> live_rows;
  live_rows.reserve(data.size());
  for (std::int64_t l : labels_)
    for (std::int64_t r : data.rows_of(l)) live_rows.push_back(r);

  // Each person's nearest other people, by their mean template (exact search over the means).
  std::vector<std::vector<std::int64_t>> near(nl);
  const int hard = std::min<int>(o_.svm_hard_negative_people, static_cast<int>(nl) - 1);
  if (hard > 0) {
    std::vector<float> means(nl * dim_, 0.f);
    for (size_t c = 0; c < nl; ++c) {
      const auto& rows = data.rows_of(labels_[c]);
      float* m = &means[c * dim_];
      for (std::int64_t r : rows) {
        const float* v = data.index().vector(r);
        for (int j = 0; j < dim_; ++j) m[j] += v[j];
      }
      float norm = 0;
      for (int j = 0; j < dim_; ++j) norm += m[j] * m[j];
      norm = std::sqrt(std::max(norm, 1e-12f));
      for (int j = 0; j < dim_; ++j) m[j] /= norm;
    }
    faiss::IndexFlatL2 flat(dim_);
    flat.add(static_cast<fidx>(nl), means.data());
    std::vector<float> dist(nl * (hard + 1));
    std::vector<fidx> ids(nl * (hard + 1));
    flat.search(static_cast<fidx>(nl), means.data(), hard + 1, dist.data(), ids.data());
    for (size_t c = 0; c < nl; ++c)
      for (int k = 0; k <= hard; ++k) {
        const auto id = ids[c * (hard + 1) + k];
        if (id >= 0 && static_cast<size_t>(id) != c && static_cast<int>(near[c].size()) < hard) near[c].push_back(id);
      }
  }

  const int threads = o_.threads > 0 ? o_.threads : std::max(1u, std::thread::hardware_concurrency());
  detail::parallel_for(nl, threads, [&](size_t c) {
    std::mt19937_64 rng(o_.seed * 7919 + c);  // per person, so the result does not depend on the threads
    const auto neg = negatives(data, c, live_rows, near, rng);
    const auto w = train_one(data, data.rows_of(labels_[c]), neg);
    std::copy(w.begin(), w.end(), w_.begin() + c * (dim_ + 1));
  });

  if (!o_.svm_fit_platt) return;
  // Platt: for up to 200 people with two or more templates, retrain without one template; its decision value
  // is a positive example, and the model's values on 10 random templates of other people are negatives.
  std::vector<size_t> multi;
  for (size_t c = 0; c < nl; ++c)
    if (data.rows_of(labels_[c]).size() >= 2) multi.push_back(c);
  if (multi.size() < 20) return;
  std::mt19937_64 rng(o_.seed);
  std::shuffle(multi.begin(), multi.end(), rng);
  if (multi.size() > 200) multi.resize(200);
  std::vector<double> f;
  std::vector<bool> pos;
  std::uniform_int_distribution<size_t> pick(0, live_rows.size() - 1);
  for (size_t c : multi) {
    auto rows = data.rows_of(labels_[c]);
    const std::int64_t held = rows.back();
    rows.pop_back();
    const auto neg = negatives(data, c, live_rows, near, rng);
    const auto w = train_one(data, rows, neg);
    auto value = [&](std::int64_t r) {
      const float* v = data.index().vector(r);
      double s = w[dim_];
      for (int j = 0; j < dim_; ++j) s += w[j] * v[j];
      return s;
    };
    f.push_back(value(held));
    pos.push_back(true);
    for (int k = 0, tries = 0; k < 10 && tries < 100; ++tries) {
      const std::int64_t r = live_rows[pick(rng)];
      if (data.label(r) == labels_[c]) continue;
      f.push_back(value(r));
      pos.push_back(false);
      ++k;
    }
  }
  fit_platt(f, pos, a_, b_);
  platt_fitted_ = true;
}

std::vector<ClassScore> SvmClassifier::classify(const LabelledIndex& data, const float* x, int top_k) const {
  if (labels_.empty() || top_k < 1) return {};
  if (labels_.size() == 1) {
    // One person: there was nobody to tell them apart from, so the model says nothing (score 0, unknown).
    const auto& rows = data.rows_of(labels_[0]);
    float best = 1e9f;
    for (std::int64_t r : rows) best = std::min(best, l2(data.index().vector(r), x));
    return {{labels_[0], std::sqrt(best), 0.f, 1.f}};
  }
  if (data.dim() != dim_) throw Error(ErrorCode::kInvalidArgument, "embedding length differs from the trained SVM's");
  const size_t nl = labels_.size();
  std::vector<float> f(nl);
  double total = 0;
  std::vector<double> p(nl);
  for (size_t c = 0; c < nl; ++c) {
    f[c] = decision(c, x);
    p[c] = 1 / (1 + std::exp(a_ * f[c] + b_));
    total += p[c];
  }
  std::vector<size_t> order(nl);
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(top_k, nl);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](size_t a, size_t b) { return f[a] > f[b]; });
  std::vector<ClassScore> out;
  for (size_t i = 0; i < k; ++i) {
    const size_t c = order[i];
    float best = 1e9f;
    for (std::int64_t r : data.rows_of(labels_[c])) best = std::min(best, l2(data.index().vector(r), x));
    out.push_back({labels_[c], std::sqrt(best), static_cast<float>(p[c]), static_cast<float>(p[c] / total)});
  }
  return out;
}

void SvmClassifier::save(std::ostream& out) const {
  out << kSvmMagic << " " << kSvmVersion << " " << dim_ << " " << labels_.size() << " " << platt_fitted_ << "\n";
  out.write(reinterpret_cast<const char*>(&a_), sizeof a_);
  out.write(reinterpret_cast<const char*>(&b_), sizeof b_);
  out.write(reinterpret_cast<const char*>(labels_.data()), labels_.size() * sizeof(std::int64_t));
  out.write(reinterpret_cast<const char*>(w_.data()), w_.size() * sizeof(float));
}

void SvmClassifier::load(std::istream& in) {
  std::string magic;
  int version = 0, dim = 0, fitted = 0;
  size_t n = 0;
  in >> magic >> version >> dim >> n >> fitted;
  if (!in || magic != kSvmMagic || version < 1 || dim <= 0 || n > (1u << 28) || in.get() != '\n')
    throw Error(ErrorCode::kStorage, "not a facekit SVM model");
  if (version > kSvmVersion) throw Error(ErrorCode::kStorage, "SVM model written by a newer facekit");
  dim_ = dim;
  platt_fitted_ = fitted != 0;
  labels_.resize(n);
  w_.resize(n * (dim + 1));
  in.read(reinterpret_cast<char*>(&a_), sizeof a_);
  in.read(reinterpret_cast<char*>(&b_), sizeof b_);
  in.read(reinterpret_cast<char*>(labels_.data()), n * sizeof(std::int64_t));
  in.read(reinterpret_cast<char*>(w_.data()), w_.size() * sizeof(float));
  if (!in) throw Error(ErrorCode::kStorage, "SVM model is truncated");
}

}  // namespace

std::unique_ptr<Classifier> make_svm_classifier(const ClassifierOptions& o) { return std::make_unique<SvmClassifier>(o); }

}  // namespace facekit
