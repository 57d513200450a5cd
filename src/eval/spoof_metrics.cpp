// ISO/IEC 30107-3 error rates, operating points, ROC, threshold calibration and the logistic fits behind the
// texture and fusion spoof checkers.
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include <linear.h>

#include "eval/mann_whitney.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/spoof_eval.hpp"

namespace facekit {
namespace {

void require_both(const std::vector<float>& b, const std::vector<float>& a) {
  if (b.empty() || a.empty())
    throw Error(ErrorCode::kInvalidArgument, "PAD metrics need bona fide and attack scores (got " +
                                                 std::to_string(b.size()) + " and " + std::to_string(a.size()) + ")");
}

// Every distinct operating point in ascending threshold order. A threshold between two adjacent distinct
// scores splits the samples; the first point accepts everything, the last nothing.
std::vector<RocPoint> sweep(const std::vector<float>& bona, const std::vector<float>& attacks) {
  require_both(bona, attacks);
  std::vector<std::pair<float, bool>> all;  // (score, is bona fide)
  for (float s : bona) all.emplace_back(s, true);
  for (float s : attacks) all.emplace_back(s, false);
  std::sort(all.begin(), all.end());
  const double nb = static_cast<double>(bona.size()), na = static_cast<double>(attacks.size());
  std::vector<RocPoint> pts;
  size_t bona_below = 0, attacks_below = 0;
  for (size_t i = 0; i <= all.size(); ++i) {
    if (i == 0 || i == all.size() || all[i - 1].first < all[i].first) {
      float t;
      if (i == 0) t = all.front().first;
      else if (i == all.size()) t = std::nextafter(all.back().first, std::numeric_limits<float>::infinity());
      else {
        t = (all[i - 1].first + all[i].first) / 2;
        if (!(t > all[i - 1].first)) t = all[i].first;  // adjacent floats: the midpoint rounds down
      }
      pts.push_back({t, (na - attacks_below) / na, bona_below / nb});
    }
    if (i < all.size()) (all[i].second ? bona_below : attacks_below)++;
  }
  return pts;
}

void quiet(const char*) {}

}  // namespace

PadMetrics pad_metrics(const std::vector<float>& bona, const std::vector<float>& attacks, float t) {
  require_both(bona, attacks);
  const auto accepted = std::count_if(attacks.begin(), attacks.end(), [t](float s) { return s >= t; });
  const auto rejected = std::count_if(bona.begin(), bona.end(), [t](float s) { return s < t; });
  PadMetrics m;
  m.threshold = t;
  m.apcer = static_cast<double>(accepted) / attacks.size();
  m.bpcer = static_cast<double>(rejected) / bona.size();
  m.acer = (m.apcer + m.bpcer) / 2;
  return m;
}

PadMetrics pad_at_apcer(const std::vector<float>& bona, const std::vector<float>& attacks, double max_apcer) {
  require_both(bona, attacks);
  if (!(max_apcer >= 0 && max_apcer <= 1)) throw Error(ErrorCode::kInvalidArgument, "APCER target must be in [0, 1]");
  std::vector<float> a = attacks;
  std::sort(a.begin(), a.end(), std::greater<>());
  const size_t allowed = static_cast<size_t>(std::floor(max_apcer * a.size() + 1e-9));
  const float t = allowed >= a.size() ? std::numeric_limits<float>::lowest()
                                      : std::nextafter(a[allowed], std::numeric_limits<float>::infinity());
  return pad_metrics(bona, attacks, t);
}

float pad_eer_threshold(const std::vector<float>& bona, const std::vector<float>& attacks) {
  const auto pts = sweep(bona, attacks);
  const RocPoint* best = &pts.front();
  for (const auto& p : pts) {
    const double gap = std::abs(p.apcer - p.bpcer), best_gap = std::abs(best->apcer - best->bpcer);
    if (gap < best_gap - 1e-12 || (gap <= best_gap + 1e-12 && p.apcer + p.bpcer < best->apcer + best->bpcer)) best = &p;
  }
  return best->threshold;
}

double pad_auc(const std::vector<float>& bona, const std::vector<float>& attacks) {
  require_both(bona, attacks);
  return detail::mann_whitney_auc(bona, attacks);
}

SpoofThresholds calibrate_spoof_thresholds(const std::vector<float>& bona, const std::vector<float>& attacks,
                                           double band_rate) {
  require_both(bona, attacks);
  if (!(band_rate >= 0 && band_rate < 1)) throw Error(ErrorCode::kInvalidArgument, "band rate must be in [0, 1)");
  SpoofThresholds t;
  t.decision = pad_eer_threshold(bona, attacks);
  t.live = std::max(t.decision, pad_at_apcer(bona, attacks, band_rate).threshold);
  std::vector<float> b = bona;
  std::sort(b.begin(), b.end());
  // The highest threshold rejecting at most floor(band_rate * n) bona fide samples: the next sample's score.
  const size_t allowed = static_cast<size_t>(std::floor(band_rate * b.size() + 1e-9));
  t.spoof = std::min(t.decision, b[std::min(allowed, b.size() - 1)]);
  return t;
}

std::vector<RocPoint> pad_roc(const std::vector<float>& bona, const std::vector<float>& attacks) {
  auto pts = sweep(bona, attacks);
  std::reverse(pts.begin(), pts.end());
  return pts;
}

std::vector<float> fit_logistic(const std::vector<std::vector<float>>& x, const std::vector<bool>& y, double c) {
  if (x.empty() || x.size() != y.size()) throw Error(ErrorCode::kInvalidArgument, "logistic fit needs one label per row");
  const size_t pos = std::count(y.begin(), y.end(), true), neg = y.size() - pos;
  if (pos == 0 || neg == 0) throw Error(ErrorCode::kInvalidArgument, "logistic fit needs both classes");
  static std::once_flag once;
  std::call_once(once, [] { set_print_string_function(&quiet); });
  const int d = static_cast<int>(x[0].size());
  std::vector<feature_node> nodes(x.size() * (d + 2));
  std::vector<feature_node*> rows(x.size());
  std::vector<double> labels(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if (static_cast<int>(x[i].size()) != d) throw Error(ErrorCode::kInvalidArgument, "logistic fit: rows differ in length");
    feature_node* n = &nodes[i * (d + 2)];
    for (int j = 0; j < d; ++j) n[j] = {j + 1, x[i][j]};
    n[d] = {d + 1, 1.0};  // bias column
    n[d + 1] = {-1, 0};
    rows[i] = n;
    labels[i] = y[i] ? 1 : -1;
  }
  problem prob{static_cast<int>(x.size()), d + 1, labels.data(), rows.data(), 1.0};
  int weight_label[2] = {1, -1};
  // Balanced classes: each class carries half the total loss, whatever the live/attack ratio.
  double weight[2] = {double(x.size()) / (2.0 * pos), double(x.size()) / (2.0 * neg)};
  parameter param{};
  param.solver_type = L2R_LR;
  param.eps = 1e-4;
  param.C = c;
  param.nr_weight = 2;
  param.weight_label = weight_label;
  param.weight = weight;
  if (const char* err = check_parameter(&prob, &param)) throw Error(ErrorCode::kInternal, std::string("liblinear: ") + err);
  model* m = ::train(&prob, &param);
  const float sign = m->label[0] == 1 ? 1.f : -1.f;
  std::vector<float> w(d + 1);
  for (int j = 0; j <= d; ++j) w[j] = sign * static_cast<float>(m->w[j]);
  free_and_destroy_model(&m);
  return w;
}

std::vector<float> fit_monotone_logistic(const std::vector<std::vector<float>>& x, const std::vector<bool>& y, double c) {
  if (x.empty()) throw Error(ErrorCode::kInvalidArgument, "logistic fit needs rows");
  const size_t d = x[0].size();
  std::vector<size_t> active(d);
  for (size_t j = 0; j < d; ++j) active[j] = j;
  while (true) {
    std::vector<std::vector<float>> sub(x.size());
    for (size_t i = 0; i < x.size(); ++i)
      for (size_t j : active) sub[i].push_back(x[i].at(j));
    const auto w = fit_logistic(sub, y, c);
    const auto worst = std::min_element(w.begin(), w.end() - 1);  // the bias (last) may be negative
    if (worst == w.end() - 1 || *worst >= 0) {
      std::vector<float> full(d + 1, 0.f);
      for (size_t k = 0; k < active.size(); ++k) full[active[k]] = w[k];
      full[d] = w.back();
      return full;
    }
    active.erase(active.begin() + (worst - w.begin()));
  }
}

}  // namespace facekit
