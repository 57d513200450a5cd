#include "facekit/bias.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <thread>

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

double percentile(const std::vector<double>& sorted, double q) {
  const auto i = static_cast<size_t>(std::clamp(std::floor(q * static_cast<double>(sorted.size())), 0.0,
                                                static_cast<double>(sorted.size() - 1)));
  return sorted[i];
}

// Resampling n pairs with replacement draws the error count from Binomial(n, errors/n): the percentile
// bootstrap of a proportion without materialising the resamples (millions of impostor pairs stay cheap).
// `samples`: the rate in each resample of the bootstrap over people instead (NaN where a resample had no pair).
Rate make_rate(std::int64_t errors, std::int64_t pairs, const BiasOptions& o, std::uint64_t stream,
               const std::vector<double>* samples = nullptr) {
  Rate r;
  r.errors = errors;
  r.pairs = pairs;
  r.value = pairs > 0 ? static_cast<double>(errors) / static_cast<double>(pairs) : std::numeric_limits<double>::quiet_NaN();
  wilson_interval(errors, pairs, o.confidence, r.wilson_low, r.wilson_high);
  r.boot_low = r.boot_high = r.value;
  if (pairs <= 0 || o.bootstrap <= 0) return r;
  std::vector<double> v;
  if (samples) {
    for (const double x : *samples)
      if (!std::isnan(x)) v.push_back(x);
    if (v.empty()) return r;
  } else {
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + stream);
    std::binomial_distribution<std::int64_t> draw(pairs, r.value);
    v.resize(static_cast<size_t>(o.bootstrap));
    for (auto& x : v) x = static_cast<double>(draw(rng)) / static_cast<double>(pairs);
  }
  std::sort(v.begin(), v.end());
  const double a = (1 - o.confidence) / 2;
  r.boot_low = percentile(v, a);
  r.boot_high = percentile(v, 1 - a);
  return r;
}

// The bootstrap over people. A resample draws S people from the S with replacement (multiplicities m); a pair
// of people a != b then counts m_a * m_b times, a pair within one person m_a times. Every rate is a sum of
// such weights over error pairs divided by the sum over its pairs. Pairs are aggregated into cells (a, b,
// bucket), so a resample costs one pass over the cells (LFW's 30 million all-pairs collapse to ~10 million)
// and one over the error pairs, which are few.
class SubjectBootstrap {
 public:
  static constexpr std::uint64_t kMaxSubjects = 1ull << 24, kMaxBuckets = 1ull << 16;

  explicit SubjectBootstrap(size_t pairs_hint) { keys_.reserve(pairs_hint); }

  void add_pair(int a, int b, int bucket) {
    if (a > b) std::swap(a, b);
    keys_.push_back(static_cast<std::uint64_t>(a) << 40 | static_cast<std::uint64_t>(b) << 16 | static_cast<std::uint64_t>(bucket));
  }
  /// A rate whose denominator is the sum of these buckets; returns its id for add_error.
  int rate(std::vector<int> buckets) {
    rate_buckets_.push_back(std::move(buckets));
    return static_cast<int>(rate_buckets_.size()) - 1;
  }
  void add_error(int a, int b, int rate_id) {
    if (a > b) std::swap(a, b);
    errors_.push_back({a, b, rate_id});
  }

  /// Per rate, its value in each of o.bootstrap resamples (NaN where its pairs were not drawn).
  std::vector<std::vector<double>> run(int subjects, int buckets, const BiasOptions& o) {
    std::sort(keys_.begin(), keys_.end());
    std::vector<Cell> cells;
    for (size_t i = 0; i < keys_.size();) {
      size_t j = i;
      while (j < keys_.size() && keys_[j] == keys_[i]) ++j;
      cells.push_back({static_cast<std::uint32_t>(keys_[i] >> 40), static_cast<std::uint32_t>(keys_[i] >> 16 & 0xFFFFFF),
                       static_cast<std::uint32_t>(keys_[i] & 0xFFFF), static_cast<std::uint32_t>(j - i)});
      i = j;
    }
    keys_.clear();
    keys_.shrink_to_fit();
    const size_t R = static_cast<size_t>(o.bootstrap), K = rate_buckets_.size();
    std::vector<std::vector<double>> out(K, std::vector<double>(R));
    const auto resample = [&](size_t r) {
      // One generator per resample: the intervals do not depend on the number of threads.
      std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + 0xB5297A4Dull * (r + 1));
      std::uniform_int_distribution<int> pick(0, subjects - 1);
      std::vector<std::int64_t> m(static_cast<size_t>(subjects), 0);
      for (int k = 0; k < subjects; ++k) m[static_cast<size_t>(pick(rng))]++;
      const auto w = [&](std::uint32_t a, std::uint32_t b) { return a == b ? m[a] : m[a] * m[b]; };
      std::vector<double> den(static_cast<size_t>(buckets), 0.0), num(K, 0.0);
      for (const auto& c : cells) den[c.bucket] += static_cast<double>(w(c.a, c.b) * c.n);
      for (const auto& e : errors_)
        num[static_cast<size_t>(e.rate)] += static_cast<double>(w(static_cast<std::uint32_t>(e.a), static_cast<std::uint32_t>(e.b)));
      for (size_t k = 0; k < K; ++k) {
        double d = 0;
        for (const int b : rate_buckets_[k]) d += den[static_cast<size_t>(b)];
        out[k][r] = d > 0 ? num[k] / d : std::numeric_limits<double>::quiet_NaN();
      }
    };
    const size_t T = std::clamp<size_t>(static_cast<size_t>(std::max(1, o.threads)), 1, std::max<size_t>(R, 1));
    std::vector<std::thread> pool;
    for (size_t t = 1; t < T; ++t)
      pool.emplace_back([&, t] {
        for (size_t r = t; r < R; r += T) resample(r);
      });
    for (size_t r = 0; r < R; r += T) resample(r);
    for (auto& th : pool) th.join();
    return out;
  }

 private:
  struct Cell {
    std::uint32_t a, b, bucket, n;
  };
  struct ErrorPair {
    int a, b, rate;
  };
  std::vector<std::uint64_t> keys_;
  std::vector<std::vector<int>> rate_buckets_;
  std::vector<ErrorPair> errors_;
};

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
  // People are resampled when every valid pair names both of its people (and the ids fit a cell's key).
  int subjects = 0;
  bool by_subject = o.resample == Resample::kSubjects && o.bootstrap > 0;
  for (const auto& p : pairs) {
    if (!p.valid) continue;
    if (p.subject_a < 0 || p.subject_b < 0) by_subject = false;
    subjects = std::max({subjects, p.subject_a + 1, p.subject_b + 1});
  }
  const std::uint64_t buckets = 2ull * static_cast<std::uint64_t>(G) + static_cast<std::uint64_t>(G) * G + 1;
  if (static_cast<std::uint64_t>(subjects) >= SubjectBootstrap::kMaxSubjects || buckets >= SubjectBootstrap::kMaxBuckets)
    by_subject = false;
  r.subjects = by_subject ? subjects : 0;
  r.resampled = by_subject ? Resample::kSubjects : Resample::kPairs;
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
  // The bootstrap over people: denominator buckets (impostors and genuine pairs per group, impostors per group
  // pair, genuine pairs across groups) and one rate id per interval reported.
  std::optional<SubjectBootstrap> boot;
  const int mixed_bucket = 2 * G + G * G;
  const auto cross_bucket = [G](int a, int b) { return 2 * G + std::min(a, b) * G + std::max(a, b); };
  int all_imp_id = 0, all_gen_id = 0;
  std::vector<int> imp_id(static_cast<size_t>(G)), gen_id(imp_id), own_imp_id(imp_id), own_gen_id(imp_id);
  std::vector<int> cross_id(static_cast<size_t>(G * G), -1);
  if (by_subject) {
    boot.emplace(pairs.size());
    std::vector<int> imp_buckets, gen_buckets{mixed_bucket};
    for (int g = 0; g < G; ++g) {
      imp_buckets.push_back(2 * g), gen_buckets.push_back(2 * g + 1);
      for (int h = g + 1; h < G; ++h) imp_buckets.push_back(cross_bucket(g, h));
    }
    all_imp_id = boot->rate(imp_buckets);
    all_gen_id = boot->rate(gen_buckets);
    for (int g = 0; g < G; ++g) {
      const auto u = static_cast<size_t>(g);
      imp_id[u] = boot->rate({2 * g}), gen_id[u] = boot->rate({2 * g + 1});
      own_imp_id[u] = boot->rate({2 * g}), own_gen_id[u] = boot->rate({2 * g + 1});
      for (int h = g + 1; h < G; ++h) cross_id[static_cast<size_t>(g * G + h)] = boot->rate({cross_bucket(g, h)});
    }
  }
  for (const auto& p : pairs) {
    const bool one = p.group_a == p.group_b;
    if (!p.valid) {
      c[static_cast<size_t>(p.group_a)].fta++;
      if (!one) c[static_cast<size_t>(p.group_b)].fta++;
      continue;
    }
    const bool match = p.distance <= r.threshold;
    // Each error is also recorded for the bootstrap over people, under every rate it counts in.
    const auto error = [&](bool is_error, int id) {
      if (boot && is_error) boot->add_error(p.subject_a, p.subject_b, id);
    };
    const auto ga = static_cast<size_t>(p.group_a);
    if (p.same) {
      if (boot) boot->add_pair(p.subject_a, p.subject_b, one ? 2 * p.group_a + 1 : mixed_bucket);
      all.gen++, all.gen_err += !match;
      error(!match, all_gen_id);
      if (!one) {
        r.mixed_genuine++;
        continue;
      }
      auto& x = c[ga];
      x.gen++, x.gen_err += !match;
      const bool own_miss = !(p.distance <= own[ga]);  // NaN (no impostors in the group): nothing matches
      x.own_gen_err += own_miss;
      error(!match, gen_id[ga]);
      error(own_miss, own_gen_id[ga]);
    } else {
      if (boot) boot->add_pair(p.subject_a, p.subject_b, one ? 2 * p.group_a : cross_bucket(p.group_a, p.group_b));
      all.imp++, all.imp_err += match;
      error(match, all_imp_id);
      if (one) {
        auto& x = c[ga];
        const bool own_match = p.distance <= own[ga];
        x.imp++, x.imp_err += match;
        x.own_imp_err += own_match;
        error(match, imp_id[ga]);
        error(own_match, own_imp_id[ga]);
      } else {
        const int a = std::min(p.group_a, p.group_b), b = std::max(p.group_a, p.group_b);
        cross_n[static_cast<size_t>(a * G + b)]++;
        cross_err[static_cast<size_t>(a * G + b)] += match;
        error(match, cross_id[static_cast<size_t>(a * G + b)]);
      }
    }
  }
  std::vector<std::vector<double>> samples;
  if (boot) samples = boot->run(subjects, static_cast<int>(buckets), o);
  const auto of = [&](int id) { return boot ? &samples[static_cast<size_t>(id)] : nullptr; };
  std::uint64_t stream = 0;
  r.fmr = make_rate(all.imp_err, all.imp, o, stream++, of(all_imp_id));
  r.fnmr = make_rate(all.gen_err, all.gen, o, stream++, of(all_gen_id));
  for (int g = 0; g < G; ++g) {
    const auto& x = c[static_cast<size_t>(g)];
    GroupRates gr;
    gr.group = groups[static_cast<size_t>(g)];
    gr.fmr = make_rate(x.imp_err, x.imp, o, stream++, of(imp_id[static_cast<size_t>(g)]));
    gr.fnmr = make_rate(x.gen_err, x.gen, o, stream++, of(gen_id[static_cast<size_t>(g)]));
    gr.failures_to_acquire = x.fta;
    gr.own_threshold = own[static_cast<size_t>(g)];
    // A group without impostor pairs of its own has no threshold of its own: no rates at it either.
    const bool own_known = !std::isnan(gr.own_threshold);
    gr.own_fmr = make_rate(x.own_imp_err, own_known ? x.imp : 0, o, stream++, of(own_imp_id[static_cast<size_t>(g)]));
    gr.own_fnmr = make_rate(own_known ? x.own_gen_err : 0, own_known ? x.gen : 0, o, stream++, of(own_gen_id[static_cast<size_t>(g)]));
    r.groups.push_back(std::move(gr));
  }
  for (int a = 0; a < G; ++a)
    for (int b = a + 1; b < G; ++b)
      if (cross_n[static_cast<size_t>(a * G + b)] > 0)
        r.cross.push_back({groups[static_cast<size_t>(a)], groups[static_cast<size_t>(b)],
                           make_rate(cross_err[static_cast<size_t>(a * G + b)], cross_n[static_cast<size_t>(a * G + b)], o,
                                     stream++, of(cross_id[static_cast<size_t>(a * G + b)]))});
  r.fmr_spread = spread_of(r.groups, &GroupRates::fmr);
  r.fnmr_spread = spread_of(r.groups, &GroupRates::fnmr);
  r.own_fmr_spread = spread_of(r.groups, &GroupRates::own_fmr);
  r.own_fnmr_spread = spread_of(r.groups, &GroupRates::own_fnmr);
  return r;
}

}  // namespace facekit
