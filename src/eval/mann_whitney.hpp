#pragma once
// The area under an ROC curve as the Mann-Whitney statistic, shared by the verification (roc.cpp) and
// presentation-attack (spoof_metrics.cpp) figures.
#include <algorithm>
#include <vector>

namespace facekit::detail {

/// P(a value of `higher` > a value of `lower`), ties counting one half. Both must be non-empty.
template <typename T>
double mann_whitney_auc(const std::vector<T>& higher, std::vector<T> lower) {
  std::sort(lower.begin(), lower.end());
  double wins = 0;
  for (const T& h : higher) {
    const auto lo = std::lower_bound(lower.begin(), lower.end(), h), hi = std::upper_bound(lower.begin(), lower.end(), h);
    wins += static_cast<double>(lo - lower.begin()) + 0.5 * static_cast<double>(hi - lo);
  }
  return wins / (static_cast<double>(higher.size()) * static_cast<double>(lower.size()));
}

}  // namespace facekit::detail
