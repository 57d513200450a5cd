#include <algorithm>
#include <functional>
#include <cmath>
#include <numeric>

#include "facekit/error.hpp"
#include "facekit/eval.hpp"

namespace facekit {
namespace {

double accuracy(const std::vector<const ScoredPair*>& ps, float thr) {
  if (ps.empty()) return 0;
  size_t ok = 0;
  for (const auto* p : ps) ok += p->valid && ((p->distance <= thr) == p->same);
  return static_cast<double>(ok) / ps.size();
}

float best_threshold(const std::vector<const ScoredPair*>& ps) {
  // Sweep sorted distances once: O(n log n) instead of O(n^2).
  std::vector<const ScoredPair*> v;
  for (const auto* p : ps)
    if (p->valid) v.push_back(p);
  std::sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->distance < b->distance; });
  // Threshold below everything: all valid different pairs correct.
  long correct = std::count_if(v.begin(), v.end(), [](auto* p) { return !p->same; });
  long best = correct;
  float best_t = v.empty() ? 0.f : v.front()->distance - 1e-3f;
  for (size_t i = 0; i < v.size(); ++i) {
    correct += v[i]->same ? 1 : -1;  // pair i now accepted
    if (i + 1 < v.size() && v[i + 1]->distance == v[i]->distance) continue;
    if (correct > best) {
      best = correct;
      best_t = i + 1 < v.size() ? (v[i]->distance + v[i + 1]->distance) / 2 : v[i]->distance + 1e-3f;
    }
  }
  return best_t;
}

}  // namespace

double tar_at_far(const std::vector<ScoredPair>& pairs, double far, float* threshold) {
  std::vector<float> neg, pos;
  size_t n_neg = 0, n_pos = 0;
  for (const auto& p : pairs) {
    (p.same ? n_pos : n_neg)++;
    if (p.valid) (p.same ? pos : neg).push_back(p.distance);
  }
  if (n_neg == 0 || n_pos == 0) throw Error(ErrorCode::kInvalidArgument, "tar_at_far needs same and different pairs");
  std::sort(neg.begin(), neg.end());
  // Accept distance < t. Allowed false accepts: floor(far * n_neg).
  const size_t allowed = static_cast<size_t>(std::floor(far * n_neg + 1e-9));
  const float t = allowed < neg.size() ? neg[allowed] : std::numeric_limits<float>::infinity();
  if (threshold) *threshold = t;
  const size_t tp = std::count_if(pos.begin(), pos.end(), [&](float d) { return d < t; });
  return static_cast<double>(tp) / n_pos;
}

VerificationReport evaluate_verification(const std::vector<ScoredPair>& pairs, int folds) {
  if (pairs.empty() || folds < 1) throw Error(ErrorCode::kInvalidArgument, "no pairs to evaluate");
  VerificationReport r;
  r.pairs = static_cast<int>(pairs.size());
  r.invalid_pairs = static_cast<int>(std::count_if(pairs.begin(), pairs.end(), [](auto& p) { return !p.valid; }));
  std::vector<const ScoredPair*> all;
  for (const auto& p : pairs) all.push_back(&p);
  r.best_threshold = best_threshold(all);
  for (int f = 0; f < folds; ++f) {
    std::vector<const ScoredPair*> train, test;
    for (const auto& p : pairs) (p.fold == f || folds == 1 ? test : train).push_back(&p);
    // One fold (View 1 style): the threshold comes from the same pairs.
    const float t = best_threshold(folds == 1 ? test : train);
    r.folds.push_back({t, accuracy(test, t)});
  }
  double sum = 0;
  for (const auto& f : r.folds) sum += f.accuracy;
  r.accuracy_mean = sum / folds;
  double var = 0;
  for (const auto& f : r.folds) var += (f.accuracy - r.accuracy_mean) * (f.accuracy - r.accuracy_mean);
  r.accuracy_std = folds > 1 ? std::sqrt(var / folds) : 0;
  r.tar_at_far_1e3 = tar_at_far(pairs, 1e-3, &r.threshold_at_far_1e3);
  return r;
}

std::vector<ScoredPair> fuse_pairs(const std::vector<std::vector<ScoredPair>>& members,
                                   const std::vector<float>& weights) {
  if (members.empty() || members.size() != weights.size())
    throw Error(ErrorCode::kInvalidArgument, "fuse_pairs: one weight per member needed");
  std::vector<ScoredPair> out = members[0];
  for (size_t i = 0; i < out.size(); ++i) {
    double d2 = 0;
    for (size_t m = 0; m < members.size(); ++m) {
      const auto& p = members[m].at(i);
      if (p.same != out[i].same || p.fold != out[i].fold)
        throw Error(ErrorCode::kInvalidArgument, "fuse_pairs: members scored different pairs");
      out[i].valid = out[i].valid && p.valid;
      d2 += weights[m] * double(p.distance) * p.distance;
    }
    out[i].distance = static_cast<float>(std::sqrt(d2));
  }
  return out;
}

FusionFit fit_fusion(const std::vector<std::vector<ScoredPair>>& members, double step) {
  if (members.empty() || step <= 0 || step > 1) throw Error(ErrorCode::kInvalidArgument, "fit_fusion: bad input");
  const int n = static_cast<int>(members.size()), steps = static_cast<int>(std::lround(1 / step));
  FusionFit best;
  best.accuracy = -1;
  std::vector<int> k(n, 0);
  // Enumerate compositions of `steps` into n non-negative parts.
  std::function<void(int, int)> rec = [&](int i, int left) {
    if (i == n - 1) {
      k[i] = left;
      std::vector<float> w(n);
      for (int j = 0; j < n; ++j) w[j] = static_cast<float>(k[j]) / steps;
      std::vector<ScoredPair> fused = fuse_pairs(members, w);
      for (auto& p : fused) p.fold = 0;
      std::vector<const ScoredPair*> all;
      for (const auto& p : fused) all.push_back(&p);
      const float t = best_threshold(all);
      const double acc = accuracy(all, t);
      if (acc > best.accuracy + 1e-12) best = {w, t, acc};
      return;
    }
    for (int v = 0; v <= left; ++v) {
      k[i] = v;
      rec(i + 1, left - v);
    }
  };
  rec(0, steps);
  return best;
}

}  // namespace facekit
