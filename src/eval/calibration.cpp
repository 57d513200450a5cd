#include "facekit/calibration.hpp"

#include <algorithm>
#include <cmath>

#include "facekit/error.hpp"

namespace facekit {

double ScoreCalibration::probability_at(float d) const {
  if (method == "platt") {
    const double z = a * d + b;
    // exp of a large positive z overflows: use the form that stays finite.
    return z >= 0 ? std::exp(-z) / (1 + std::exp(-z)) : 1 / (1 + std::exp(z));
  }
  if (method == "isotonic") {
    if (distance.empty() || distance.size() != probability.size())
      throw Error(ErrorCode::kInvalidArgument, "isotonic calibration without knots");
    if (d <= distance.front()) return probability.front();
    if (d >= distance.back()) return probability.back();
    const size_t i = std::upper_bound(distance.begin(), distance.end(), d) - distance.begin();  // distance[i-1] <= d < distance[i]
    const double t = (d - distance[i - 1]) / (distance[i] - distance[i - 1]);
    return probability[i - 1] + t * (probability[i] - probability[i - 1]);
  }
  throw Error(ErrorCode::kInvalidArgument, method.empty() ? "no score calibration" : "unknown calibration method " + method);
}

namespace {
void count_kinds(const std::vector<LabelledScore>& s, int& pos, int& neg) {
  pos = static_cast<int>(std::count_if(s.begin(), s.end(), [](auto& x) { return x.same; }));
  neg = static_cast<int>(s.size()) - pos;
  if (pos == 0 || neg == 0) throw Error(ErrorCode::kInvalidArgument, "calibration needs same and different pairs");
}
}  // namespace

ScoreCalibration fit_platt(const std::vector<LabelledScore>& s) {
  int pos = 0, neg = 0;
  count_kinds(s, pos, neg);
  // Platt's targets: a little short of 0 and 1, so a separable set still has a finite fit.
  const double hi = (pos + 1.0) / (pos + 2.0), lo = 1.0 / (neg + 2.0);
  std::vector<double> t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = s[i].same ? hi : lo;
  // Minimise the cross-entropy of p_i = 1 / (1 + exp(A f_i + B)) in (A, B) with Newton steps and a
  // backtracking line search; the loss is written to stay finite for large |A f + B|.
  auto loss = [&](double A, double B) {
    double f = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      const double z = A * s[i].distance + B;
      f += z >= 0 ? t[i] * z + std::log1p(std::exp(-z)) : (t[i] - 1) * z + std::log1p(std::exp(z));
    }
    return f;
  };
  double A = 0, B = std::log((neg + 1.0) / (pos + 1.0));
  double f = loss(A, B);
  for (int it = 0; it < 100; ++it) {
    double h11 = 1e-12, h22 = 1e-12, h21 = 0, g1 = 0, g2 = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      const double d = s[i].distance, z = A * d + B;
      const double p = z >= 0 ? std::exp(-z) / (1 + std::exp(-z)) : 1 / (1 + std::exp(z));
      const double q = 1 - p, w = p * q;
      h11 += d * d * w;
      h22 += w;
      h21 += d * w;
      g1 += d * (t[i] - p);
      g2 += t[i] - p;
    }
    if (std::abs(g1) < 1e-7 && std::abs(g2) < 1e-7) break;
    const double det = h11 * h22 - h21 * h21;
    const double dA = -(h22 * g1 - h21 * g2) / det, dB = -(-h21 * g1 + h11 * g2) / det;
    const double gd = g1 * dA + g2 * dB;
    double step = 1;
    for (; step >= 1e-10; step /= 2) {
      const double nf = loss(A + step * dA, B + step * dB);
      if (nf < f + 1e-4 * step * gd) {
        A += step * dA, B += step * dB, f = nf;
        break;
      }
    }
    if (step < 1e-10) break;
  }
  ScoreCalibration c;
  c.method = "platt";
  c.a = A;
  c.b = B;
  c.pairs = static_cast<int>(s.size());
  c.fit_prior = static_cast<double>(pos) / s.size();
  return c;
}

ScoreCalibration fit_isotonic(const std::vector<LabelledScore>& s) {
  int pos = 0, neg = 0;
  count_kinds(s, pos, neg);
  std::vector<LabelledScore> v = s;
  std::stable_sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.distance < y.distance; });
  // Pool adjacent violators for a non-increasing fit: a block may not have a higher share of same pairs than
  // the block before it (nearer distances). Equal distances always share a block, and so do neighbours with
  // equal shares: otherwise a run of single same-person pairs would stay single blocks, each smoothed to 3/4.
  struct Block {
    double same = 0, n = 0, dsum = 0;
  };
  std::vector<Block> blocks;
  for (size_t i = 0; i < v.size();) {
    Block b;
    const float d = v[i].distance;
    for (; i < v.size() && v[i].distance == d; ++i) b.same += v[i].same, b.n += 1, b.dsum += d;
    blocks.push_back(b);
    while (blocks.size() > 1) {
      const Block& prev = blocks[blocks.size() - 2];
      const Block& last = blocks.back();
      if (prev.same * last.n > last.same * prev.n) break;  // prev's share strictly higher: in order
      Block m{prev.same + last.same, prev.n + last.n, prev.dsum + last.dsum};
      blocks.pop_back();
      blocks.back() = m;
    }
  }
  ScoreCalibration c;
  c.method = "isotonic";
  for (const auto& b : blocks) {
    c.distance.push_back(static_cast<float>(b.dsum / b.n));
    c.probability.push_back(static_cast<float>((b.same + 0.5) / (b.n + 1)));
  }
  // The smoothing can break monotonicity between a small block and a large one: restore it.
  for (size_t i = 1; i < c.probability.size(); ++i) c.probability[i] = std::min(c.probability[i], c.probability[i - 1]);
  c.pairs = static_cast<int>(s.size());
  c.fit_prior = static_cast<double>(pos) / s.size();
  return c;
}

double expected_calibration_error(const std::vector<double>& predicted, const std::vector<LabelledScore>& scores,
                                  int bins, std::vector<ReliabilityBin>* out) {
  if (predicted.size() != scores.size() || scores.empty() || bins < 1)
    throw Error(ErrorCode::kInvalidArgument, "expected_calibration_error: one prediction per scored pair needed");
  std::vector<ReliabilityBin> b(bins);
  std::vector<double> same(bins, 0), pred(bins, 0);
  for (int i = 0; i < bins; ++i) b[i].lo = static_cast<double>(i) / bins, b[i].hi = static_cast<double>(i + 1) / bins;
  for (size_t i = 0; i < scores.size(); ++i) {
    const double p = std::clamp(predicted[i], 0.0, 1.0);
    const int k = std::min(bins - 1, static_cast<int>(p * bins));
    b[k].count++;
    pred[k] += p;
    same[k] += scores[i].same;
  }
  double ece = 0;
  for (int k = 0; k < bins; ++k) {
    if (b[k].count == 0) continue;
    b[k].mean_predicted = pred[k] / b[k].count;
    b[k].fraction_same = same[k] / b[k].count;
    ece += static_cast<double>(b[k].count) / scores.size() * std::abs(b[k].fraction_same - b[k].mean_predicted);
  }
  if (out) *out = std::move(b);
  return ece;
}

}  // namespace facekit
