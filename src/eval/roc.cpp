#include <algorithm>
#include <functional>
#include <limits>
#include <cmath>
#include <numeric>

#include "eval/mann_whitney.hpp"
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

std::vector<FarPoint> tar_at_fars(const std::vector<ScoredPair>& pairs, const std::vector<double>& fars) {
  const int impostors = static_cast<int>(std::count_if(pairs.begin(), pairs.end(), [](auto& p) { return !p.same; }));
  std::vector<FarPoint> out;
  for (double far : fars) {
    FarPoint f;
    f.far = far;
    f.tar = tar_at_far(pairs, far, &f.threshold);
    f.impostors = impostors;
    f.allowed_false_accepts = static_cast<int>(std::floor(far * impostors + 1e-9));
    f.supported = f.allowed_false_accepts >= 1;
    out.push_back(f);
  }
  return out;
}

namespace {
// Distances with every invalid pair placed where it is wrong at any threshold: a same-person pair never
// accepted, a different-person pair always accepted (no-face pairs count as errors, as in the accuracy).
void split_scores(const std::vector<ScoredPair>& pairs, std::vector<double>& pos, std::vector<double>& neg) {
  const double inf = std::numeric_limits<double>::infinity();
  for (const auto& p : pairs) {
    if (p.same) pos.push_back(p.valid ? p.distance : inf);
    else neg.push_back(p.valid ? p.distance : -inf);
  }
  if (pos.empty() || neg.empty()) throw Error(ErrorCode::kInvalidArgument, "ROC figures need same and different pairs");
}

// Both kinds of distance sorted, and every distinct distance: the thresholds where an ROC changes.
struct Sweep {
  std::vector<double> pos, neg, cuts;
  explicit Sweep(const std::vector<ScoredPair>& pairs) {
    split_scores(pairs, pos, neg);
    cuts = pos;
    cuts.insert(cuts.end(), neg.begin(), neg.end());
    std::sort(pos.begin(), pos.end());
    std::sort(neg.begin(), neg.end());
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  }
  // Accepted (distance <= t) shares of the same and of the different pairs.
  double same_accepted(double t) const {
    return static_cast<double>(std::upper_bound(pos.begin(), pos.end(), t) - pos.begin()) / pos.size();
  }
  double different_accepted(double t) const {
    return static_cast<double>(std::upper_bound(neg.begin(), neg.end(), t) - neg.begin()) / neg.size();
  }
};
}  // namespace

double roc_auc(const std::vector<ScoredPair>& pairs) {
  std::vector<double> pos, neg;
  split_scores(pairs, pos, neg);
  // The chance that a different pair is farther apart than a same pair, ties counting half.
  return detail::mann_whitney_auc(neg, std::move(pos));
}

std::vector<OperatingPoint> roc_curve(const std::vector<ScoredPair>& pairs) {
  const Sweep sw(pairs);
  std::vector<OperatingPoint> out;
  const auto at = [&](double t) {
    OperatingPoint r;
    r.threshold = static_cast<float>(t);
    r.tar = sw.same_accepted(t);
    r.far = sw.different_accepted(t);
    return r;
  };
  // Below every distance: nothing accepted but the invalid different pairs (which are always accepted).
  const double first = sw.cuts.front();
  out.push_back(at(first == -std::numeric_limits<double>::infinity() ? first : std::nextafter(first, -1e30)));
  for (double t : sw.cuts)
    if (std::isfinite(t)) out.push_back(at(t));
  return out;
}

double equal_error_rate(const std::vector<ScoredPair>& pairs, float* threshold) {
  const Sweep sw(pairs);
  // Accept d <= t. FRR falls and FAR rises as t grows; the EER is where they cross, taken as the mean of the
  // two rates at the threshold where they are closest.
  double best_gap = 2, eer = 1, best_t = 0;
  for (double t : sw.cuts) {
    if (!std::isfinite(t)) continue;
    const double frr = static_cast<double>(sw.pos.end() - std::upper_bound(sw.pos.begin(), sw.pos.end(), t)) / sw.pos.size();
    const double far = sw.different_accepted(t);
    if (std::abs(far - frr) < best_gap) best_gap = std::abs(far - frr), eer = (far + frr) / 2, best_t = t;
  }
  if (threshold) *threshold = static_cast<float>(best_t);
  return eer;
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
  r.tar_at_far = tar_at_fars(pairs);
  if (std::any_of(pairs.begin(), pairs.end(), [](auto& p) { return p.same; }) &&
      std::any_of(pairs.begin(), pairs.end(), [](auto& p) { return !p.same; })) {
    r.auc = roc_auc(pairs);
    r.eer = equal_error_rate(pairs, &r.eer_threshold);
  }
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
  // Each member's scale: the median squared distance of its different-person pairs. Members' distances differ
  // several-fold in scale (the dlib ResNet's impostors sit near 0.57, MobileFaceNets' near 1.4), so a grid over
  // raw weights would spend most of its points where one member drowns the other.
  std::vector<double> scale(n);
  for (int m = 0; m < n; ++m) {
    std::vector<double> d2;
    for (const auto& p : members[m])
      if (!p.same && p.valid) d2.push_back(double(p.distance) * p.distance);
    if (d2.empty()) throw Error(ErrorCode::kInvalidArgument, "fit_fusion: a member has no valid different-person pair");
    std::nth_element(d2.begin(), d2.begin() + static_cast<std::ptrdiff_t>(d2.size() / 2), d2.end());
    scale[m] = std::max(d2[d2.size() / 2], 1e-12);
  }
  FusionFit best;
  best.auc = best.accuracy = -1;
  std::vector<int> k(n, 0);
  // Enumerate compositions of `steps` into n non-negative parts: weights on the scaled squared distances.
  std::function<void(int, int)> rec = [&](int i, int left) {
    if (i == n - 1) {
      k[i] = left;
      std::vector<float> w(n);
      double sum = 0;
      for (int j = 0; j < n; ++j) sum += k[j] / scale[j];
      for (int j = 0; j < n; ++j) w[j] = static_cast<float>(k[j] / scale[j] / sum);
      std::vector<ScoredPair> fused = fuse_pairs(members, w);
      for (auto& p : fused) p.fold = 0;
      std::vector<const ScoredPair*> all;
      for (const auto& p : fused) all.push_back(&p);
      const float t = best_threshold(all);
      const double acc = accuracy(all, t), auc = roc_auc(fused);
      // AUC first: on a few thousand pairs accuracy ties over whole ranges of weights; it breaks AUC's ties.
      if (auc > best.auc + 1e-12 || (auc > best.auc - 1e-12 && acc > best.accuracy + 1e-12)) best = {w, t, acc, auc};
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
