#include "facekit/bias.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "facekit/error.hpp"

namespace facekit {

float threshold_at_fmr(std::vector<float> d, double target_fmr) {
  if (d.empty()) throw Error(ErrorCode::kInvalidArgument, "a threshold at a target FMR needs impostor pairs");
  if (!(target_fmr >= 0 && target_fmr < 1)) throw Error(ErrorCode::kInvalidArgument, "target FMR must lie in [0, 1)");
  const auto n = static_cast<std::int64_t>(d.size());
  const auto k = static_cast<std::int64_t>(std::floor(target_fmr * static_cast<double>(n) + 1e-9));
  if (k >= n) return *std::max_element(d.begin(), d.end());
  // The (k+1)-th smallest distance must not match: the threshold sits just below it, so ties there stay out.
  std::nth_element(d.begin(), d.begin() + k, d.end());
  return std::nextafter(d[static_cast<size_t>(k)], -std::numeric_limits<float>::infinity());
}

namespace {

// z with P(|Z| <= z) = confidence, by bisection on erfc (monotone; 60 halvings are exact to double).
double normal_quantile_two_sided(double confidence) {
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    const double mid = (lo + hi) / 2;
    if (std::erfc(mid / std::sqrt(2.0)) > 1 - confidence) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

void wilson_interval(std::int64_t errors, std::int64_t pairs, double confidence, double& low, double& high) {
  if (pairs <= 0) {
    low = high = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  const double z = normal_quantile_two_sided(confidence), n = static_cast<double>(pairs);
  const double p = static_cast<double>(errors) / n, z2 = z * z;
  const double centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n);
  low = std::max(0.0, centre - half);
  high = std::min(1.0, centre + half);
}

namespace {

// Resampling n pairs with replacement draws the error count from Binomial(n, errors/n): the percentile
// bootstrap of a proportion without materialising the resamples (millions of impostor pairs stay cheap).
Rate make_rate(std::int64_t errors, std::int64_t pairs, const BiasOptions& o, std::uint64_t stream) {
  Rate r;
  r.errors = errors;
  r.pairs = pairs;
  r.value = pairs > 0 ? static_cast<double>(errors) / static_cast<double>(pairs) : std::numeric_limits<double>::quiet_NaN();
  wilson_interval(errors, pairs, o.confidence, r.wilson_low, r.wilson_high);
  if (pairs <= 0 || o.bootstrap <= 0) {
    r.boot_low = r.boot_high = r.value;
    return r;
  }
  std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + stream);
  std::binomial_distribution<std::int64_t> draw(pairs, r.value);
  std::vector<double> v(static_cast<size_t>(o.bootstrap));
  for (auto& x : v) x = static_cast<double>(draw(rng)) / static_cast<double>(pairs);
  std::sort(v.begin(), v.end());
  const double a = (1 - o.confidence) / 2;
  const auto at = [&](double q) {
    const auto i = static_cast<size_t>(std::clamp(std::floor(q * static_cast<double>(v.size())), 0.0, double(v.size() - 1)));
    return v[i];
  };
  r.boot_low = at(a);
  r.boot_high = at(1 - a);
  return r;
}

Spread spread_of(const std::vector<GroupRates>& g, Rate GroupRates::*which) {
  Spread s;
  double nz_min = std::numeric_limits<double>::infinity();
  s.min = std::numeric_limits<double>::infinity();
  s.max = -1;
  for (const auto& x : g) {
    const Rate& r = x.*which;
    if (r.pairs == 0) continue;
    s.groups++;
    if (r.value > s.max) s.max = r.value, s.max_group = x.group;
    if (r.value < s.min) s.min = r.value, s.min_group = x.group;
    if (r.value == 0) s.zero_groups++;
    else nz_min = std::min(nz_min, r.value);
  }
  if (s.groups == 0) {
    s.max = s.min = s.ratio = s.ratio_nonzero = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
  s.ratio = s.min > 0 ? s.max / s.min : (s.max > 0 ? std::numeric_limits<double>::infinity() : 1.0);
  s.ratio_nonzero = std::isfinite(nz_min) ? s.max / nz_min : std::numeric_limits<double>::quiet_NaN();
  return s;
}

}  // namespace

BiasReport bias_report(const std::vector<GroupedPair>& pairs, const std::vector<std::string>& groups,
                       const std::string& attribute, const BiasOptions& o) {
  if (!(o.confidence > 0 && o.confidence < 1)) throw Error(ErrorCode::kInvalidArgument, "confidence must lie in (0, 1)");
  if (o.bootstrap < 0) throw Error(ErrorCode::kInvalidArgument, "bootstrap resamples must be >= 0");
  const int G = static_cast<int>(groups.size());
  std::vector<float> impostors;
  std::vector<std::vector<float>> own_impostors(static_cast<size_t>(G));
  for (const auto& p : pairs) {
    if (p.group_a < 0 || p.group_a >= G || p.group_b < 0 || p.group_b >= G)
      throw Error(ErrorCode::kInvalidArgument, "a pair names a group outside the " + std::to_string(G) + " given");
    if (!p.valid || p.same) continue;
    impostors.push_back(p.distance);
    if (p.group_a == p.group_b) own_impostors[static_cast<size_t>(p.group_a)].push_back(p.distance);
  }
  BiasReport r;
  r.attribute = attribute;
  r.target_fmr = o.target_fmr;
  r.threshold = threshold_at_fmr(std::move(impostors), o.target_fmr);

  std::vector<float> own(static_cast<size_t>(G), std::numeric_limits<float>::quiet_NaN());
  for (int g = 0; g < G; ++g)
    if (!own_impostors[static_cast<size_t>(g)].empty())
      own[static_cast<size_t>(g)] = threshold_at_fmr(std::move(own_impostors[static_cast<size_t>(g)]), o.target_fmr);

  struct Counts {
    std::int64_t gen = 0, gen_err = 0, imp = 0, imp_err = 0, fta = 0, own_gen_err = 0, own_imp_err = 0;
  };
  std::vector<Counts> c(static_cast<size_t>(G));
  std::vector<std::int64_t> cross_n(static_cast<size_t>(G * G), 0), cross_err(static_cast<size_t>(G * G), 0);
  Counts all;
  for (const auto& p : pairs) {
    const bool one = p.group_a == p.group_b;
    if (!p.valid) {
      c[static_cast<size_t>(p.group_a)].fta++;
      if (!one) c[static_cast<size_t>(p.group_b)].fta++;
      continue;
    }
    const bool match = p.distance <= r.threshold;
    if (p.same) {
      all.gen++, all.gen_err += !match;
      if (!one) {
        r.mixed_genuine++;
        continue;
      }
      auto& x = c[static_cast<size_t>(p.group_a)];
      x.gen++, x.gen_err += !match;
      const float t = own[static_cast<size_t>(p.group_a)];
      x.own_gen_err += !(p.distance <= t);  // NaN (no impostors in the group): nothing matches
    } else {
      all.imp++, all.imp_err += match;
      if (one) {
        auto& x = c[static_cast<size_t>(p.group_a)];
        x.imp++, x.imp_err += match;
        x.own_imp_err += p.distance <= own[static_cast<size_t>(p.group_a)];
      } else {
        const int a = std::min(p.group_a, p.group_b), b = std::max(p.group_a, p.group_b);
        cross_n[static_cast<size_t>(a * G + b)]++;
        cross_err[static_cast<size_t>(a * G + b)] += match;
      }
    }
  }
  std::uint64_t stream = 0;
  r.fmr = make_rate(all.imp_err, all.imp, o, stream++);
  r.fnmr = make_rate(all.gen_err, all.gen, o, stream++);
  for (int g = 0; g < G; ++g) {
    const auto& x = c[static_cast<size_t>(g)];
    GroupRates gr;
    gr.group = groups[static_cast<size_t>(g)];
    gr.fmr = make_rate(x.imp_err, x.imp, o, stream++);
    gr.fnmr = make_rate(x.gen_err, x.gen, o, stream++);
    gr.failures_to_acquire = x.fta;
    gr.own_threshold = own[static_cast<size_t>(g)];
    // A group without impostor pairs of its own has no threshold of its own: no rates at it either.
    const bool own_known = !std::isnan(gr.own_threshold);
    gr.own_fmr = make_rate(x.own_imp_err, own_known ? x.imp : 0, o, stream++);
    gr.own_fnmr = make_rate(own_known ? x.own_gen_err : 0, own_known ? x.gen : 0, o, stream++);
    r.groups.push_back(std::move(gr));
  }
  for (int a = 0; a < G; ++a)
    for (int b = a + 1; b < G; ++b)
      if (cross_n[static_cast<size_t>(a * G + b)] > 0)
        r.cross.push_back({groups[static_cast<size_t>(a)], groups[static_cast<size_t>(b)],
                           make_rate(cross_err[static_cast<size_t>(a * G + b)], cross_n[static_cast<size_t>(a * G + b)], o, stream++)});
  r.fmr_spread = spread_of(r.groups, &GroupRates::fmr);
  r.fnmr_spread = spread_of(r.groups, &GroupRates::fnmr);
  r.own_fmr_spread = spread_of(r.groups, &GroupRates::own_fmr);
  r.own_fnmr_spread = spread_of(r.groups, &GroupRates::own_fnmr);
  return r;
}

}  // namespace facekit
