// A gallery at scale: real embeddings plus synthetic distractors drawn from a Gaussian model of them, enrolled
// into the SQLite store, indexed, reloaded and searched.
#include <malloc.h>
#include <omp.h>

#include <faiss/IndexFlat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <unordered_map>

#include <opencv2/core.hpp>

#include "classify/fast_flat.hpp"
#include "facekit/error.hpp"
#include "facekit/identification_eval.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// VmRSS or VmHWM of this process, MiB.
double proc_status_mb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) return std::stod(line.substr(std::strlen(key))) / 1024.0;
  return 0;
}

LatencyStats latency(std::vector<double> ms) {
  LatencyStats s;
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto q = [&](double f) { return ms[std::min(ms.size() - 1, static_cast<size_t>(f * (ms.size() - 1) + 0.5))]; };
  s.p50_ms = q(0.5);
  s.p99_ms = q(0.99);
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean_ms = sum / ms.size();
  return s;
}

// x ~ N(mean, cov) through the eigen-decomposition (covariances of embeddings are only semi-definite).
struct Gaussian {
  cv::Mat mean, transform;  // 1 x d, d x d (rows: scaled eigenvectors)
  Gaussian(const cv::Mat& samples_rows) {  // CV_64F, n x d
    cv::Mat cov;
    cv::calcCovarMatrix(samples_rows, cov, mean, cv::COVAR_NORMAL | cv::COVAR_ROWS | cv::COVAR_SCALE, CV_64F);
    init(cov);
  }
  Gaussian(const cv::Mat& cov, const cv::Mat& m) : mean(m.clone()) { init(cov); }
  void init(const cv::Mat& cov) {
    cv::Mat evals, evecs;
    cv::eigen(cov, evals, evecs);
    transform = evecs.clone();
    for (int i = 0; i < evecs.rows; ++i) transform.row(i) *= std::sqrt(std::max(0.0, evals.at<double>(i)));
  }
  void sample(std::mt19937_64& rng, double* out) const {
    std::normal_distribution<double> n01;
    const int d = mean.cols;
    std::vector<double> z(d);
    for (auto& v : z) v = n01(rng);
    for (int j = 0; j < d; ++j) out[j] = mean.at<double>(j);
    for (int i = 0; i < d; ++i) {
      const double* t = transform.ptr<double>(i);
      for (int j = 0; j < d; ++j) out[j] += z[i] * t[j];
    }
  }
};

Embedding normalised(const std::vector<double>& v) {
  double n = 0;
  for (double x : v) n += x * x;
  n = std::sqrt(std::max(n, 1e-24));
  Embedding e(v.size());
  for (size_t j = 0; j < v.size(); ++j) e[j] = static_cast<float>(v[j] / n);
  return e;
}

// Mean distance of random same-person pairs and different-person pairs.
void pair_distances(const std::vector<std::vector<Embedding>>& people, std::mt19937_64& rng, double& within,
                    double& between) {
  std::vector<size_t> multi;
  for (size_t p = 0; p < people.size(); ++p)
    if (people[p].size() >= 2) multi.push_back(p);
  std::uniform_int_distribution<size_t> pick(0, people.size() - 1);
  double sw = 0, sb = 0;
  int nw = 0, nb = 0;
  for (int k = 0; k < 20000; ++k) {
    const size_t a = pick(rng), b = pick(rng);
    if (a != b) sb += l2_distance(people[a][0], people[b][0]), ++nb;
    if (!multi.empty()) {
      const auto& ph = people[multi[pick(rng) % multi.size()]];
      std::uniform_int_distribution<size_t> in(0, ph.size() - 1);
      const size_t i = in(rng), j = in(rng);
      if (i != j) sw += l2_distance(ph[i], ph[j]), ++nw;
    }
  }
  within = nw ? sw / nw : 0;
  between = nb ? sb / nb : 0;
}

}  // namespace

GalleryScaleReport run_gallery_scale(const std::vector<LabelledEmbedding>& real, const GalleryScaleOptions& o,
                                     const std::function<void(const std::string&)>& log) {
  const auto t_start = Clock::now();
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  if (real.empty()) throw Error(ErrorCode::kInvalidArgument, "the scale benchmark needs real embeddings");
  const int d = static_cast<int>(real[0].embedding.size());
  GalleryScaleReport rep;
  std::mt19937_64 rng(o.seed);

  // Real people; one photo of up to o.queries people with 2+ photos is held out as a probe.
  std::map<std::string, std::vector<Embedding>> by_name;
  for (const auto& r : real) by_name[r.person].push_back(r.embedding);
  std::vector<std::string> names;
  for (const auto& [n, v] : by_name) names.push_back(n);
  std::vector<std::string> shuffled = names;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  std::vector<std::pair<std::string, Embedding>> queries;
  for (const auto& n : shuffled) {
    if (static_cast<int>(queries.size()) >= o.queries) break;
    auto& v = by_name[n];
    if (v.size() < 2) continue;
    queries.emplace_back(n, v.back());
    v.pop_back();
  }
  rep.queries = static_cast<int>(queries.size());

  // Gaussian model: person centres ~ N(mu, between-covariance); templates ~ centre + N(0, within-covariance).
  std::vector<std::vector<Embedding>> real_people;
  std::vector<int> counts;
  for (const auto& n : names) {
    real_people.push_back(by_name[n]);
    counts.push_back(static_cast<int>(std::min<size_t>(by_name[n].size(), 100)));
  }
  cv::Mat centres(static_cast<int>(real_people.size()), d, CV_64F), dev;
  std::vector<cv::Mat> devs;
  for (size_t p = 0; p < real_people.size(); ++p) {
    std::vector<double> m(d, 0.0);
    for (const auto& e : real_people[p])
      for (int j = 0; j < d; ++j) m[j] += e[j];
    for (int j = 0; j < d; ++j) centres.at<double>(static_cast<int>(p), j) = m[j] / real_people[p].size();
    if (real_people[p].size() < 2) continue;
    for (const auto& e : real_people[p]) {
      cv::Mat r(1, d, CV_64F);
      for (int j = 0; j < d; ++j) r.at<double>(j) = e[j] - centres.at<double>(static_cast<int>(p), j);
      devs.push_back(r);
    }
  }
  cv::vconcat(devs, dev);
  const Gaussian between(centres);
  cv::Mat wcov = dev.t() * dev / std::max(1, dev.rows - static_cast<int>(real_people.size()));
  const Gaussian within(wcov, cv::Mat::zeros(1, d, CV_64F));

  std::int64_t real_templates = 0;
  for (const auto& v : real_people) real_templates += static_cast<std::int64_t>(v.size());
  rep.real_templates = real_templates;
  std::vector<std::vector<Embedding>> synthetic;
  std::int64_t total = real_templates;
  std::uniform_int_distribution<size_t> pick_count(0, counts.size() - 1);
  std::vector<double> c(d), x(d), w(d);
  while (total < o.templates) {
    const int k = static_cast<int>(std::min<std::int64_t>(counts[pick_count(rng)], o.templates - total));
    between.sample(rng, c.data());
    std::vector<Embedding> person;
    for (int i = 0; i < k; ++i) {
      within.sample(rng, w.data());
      for (int j = 0; j < d; ++j) x[j] = c[j] + w[j];
      person.push_back(normalised(x));
    }
    total += k;
    synthetic.push_back(std::move(person));
  }
  rep.synthetic_templates = total - real_templates;
  rep.templates = total;
  rep.people = static_cast<std::int64_t>(real_people.size() + synthetic.size());
  pair_distances(real_people, rng, rep.real_within, rep.real_between);
  if (!synthetic.empty()) pair_distances(synthetic, rng, rep.synthetic_within, rep.synthetic_between);
  say("model: " + std::to_string(rep.people) + " people, " + std::to_string(total) + " templates");

  // The store.
  const bool temp = o.dir.empty();
  const fs::path dir = temp ? fs::temp_directory_path() / ("facekit-scale-" + std::to_string(::getpid())) : o.dir;
  fs::create_directories(dir);
  const fs::path db = dir / "scale-gallery.db";
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(db.string() + s);
  fs::remove_all(db.string() + ".cache");
  {
    auto gallery = open_gallery(db);
    auto make = [&](size_t p) {
      NewPerson np;
      const bool is_real = p < real_people.size();
      np.name = is_real ? "lfw:" + names[p] : "syn:" + std::to_string(p - real_people.size());
      for (const auto& e : is_real ? real_people[p] : synthetic[p - real_people.size()]) {
        NewTemplate t;
        t.embedder = o.embedder;
        t.embedding = e;
        t.quality = 1;
        t.kind = is_real ? "photo" : "synthetic";
        np.templates.push_back(std::move(t));
      }
      return np;
    };
    const size_t np_total = real_people.size() + synthetic.size();
    auto t0 = Clock::now();
    size_t p = 0;
    std::int64_t tpl = 0;
    for (; p < np_total && static_cast<int>(p) < o.durable_people; ++p) {
      const auto person = make(p);
      tpl += static_cast<std::int64_t>(person.templates.size());
      gallery->add_person(person);
    }
    double s = seconds_since(t0);
    rep.durable_people_per_s = p / s;
    rep.durable_templates_per_s = tpl / s;
    say("durable enrolment: " + std::to_string(p) + " people in " + std::to_string(s) + " s");
    t0 = Clock::now();
    std::int64_t bulk = 0;
    while (p < np_total) {
      std::vector<NewPerson> batch;
      for (; p < np_total && static_cast<int>(batch.size()) < o.batch_people; ++p) {
        batch.push_back(make(p));
        bulk += static_cast<std::int64_t>(batch.back().templates.size());
      }
      gallery->add_people(batch);
    }
    s = seconds_since(t0);
    rep.bulk_templates_per_s = bulk / std::max(s, 1e-9);
    rep.gallery_bytes = gallery->stats().bytes;
    say("bulk enrolment: " + std::to_string(bulk) + " templates in " + std::to_string(s) + " s");
  }
  synthetic.clear();
  synthetic.shrink_to_fit();

  auto gallery = open_gallery(db);
  IdentifyOptions io;
  io.classifier = "knn";
  io.aggregation = Aggregation::kNone;  // a row per template: the index holds all of them
  io.index = o.index;
  io.threshold = 0.f;  // the open-set decision is not measured here
  auto t0 = Clock::now();
  auto ident = std::make_unique<Identifier>(*gallery, o.embedder, io);
  rep.build_seconds = seconds_since(t0);
  rep.index_description = ident->index().index().description();
  say("index built in " + std::to_string(rep.build_seconds) + " s: " + rep.index_description);
  ident.reset();
  malloc_trim(0);
  const double rss0 = proc_status_mb("VmRSS:");
  t0 = Clock::now();
  ident = std::make_unique<Identifier>(*gallery, o.embedder, io);
  rep.load_seconds = seconds_since(t0);
  rep.rss_index_mb = proc_status_mb("VmRSS:") - rss0;
  if (!ident->last_refresh().index_from_cache)
    throw Error(ErrorCode::kInternal, "the index was not loaded from its cache: " + ident->last_refresh().cache_error);
  say("index loaded in " + std::to_string(rep.load_seconds) + " s");
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(db.string() + ".cache", ec)) rep.cache_bytes += e.file_size();

  const LabelledIndex& index = ident->index();
  const VectorIndex& vi = index.index();
  std::vector<std::int64_t> expected(queries.size(), -1);
  for (size_t q = 0; q < queries.size(); ++q)
    if (auto p = gallery->find_person("lfw:" + queries[q].first)) expected[q] = p->id;
  std::vector<float> qdata;
  for (const auto& [n, e] : queries) qdata.insert(qdata.end(), e.begin(), e.end());
  const auto nq = static_cast<std::int64_t>(queries.size());

  // Exact answers for all queries in one batched (BLAS) search, then single-query exact latency.
  FastFlatL2 flat(d);  // what VectorIndex's exact kind runs
  flat.add(vi.rows(), vi.vector(0));
  std::vector<float> exact_d(nq);
  std::vector<faiss::Index::idx_t> exact_row(nq);
  flat.search(nq, qdata.data(), 1, exact_d.data(), exact_row.data());
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);  // latencies are one query on one core
  {
    std::vector<double> ms;
    std::vector<float> dd(1);
    std::vector<faiss::Index::idx_t> ii(1);
    for (std::int64_t q = 0; q < std::min<std::int64_t>(nq, 50); ++q) {
      t0 = Clock::now();
      flat.search(1, &qdata[q * d], 1, dd.data(), ii.data());
      ms.push_back(seconds_since(t0) * 1e3);
    }
    rep.exact_latency = latency(ms);
  }
  flat.reset();
  auto dist2 = [&](std::int64_t row, std::int64_t q) {  // exact, in double: ties are judged on true distances
    double s2 = 0;
    for (int j = 0; j < d; ++j) {
      const double e = static_cast<double>(vi.vector(row)[j]) - qdata[q * d + j];
      s2 += e * e;
    }
    return s2;
  };
  for (int ef : o.ef_search) {
    EfResult r;
    r.ef_search = ef;
    ident->set_ef_search(ef);
    std::vector<double> ms;
    std::int64_t hit = 0, right = 0;
    for (std::int64_t q = 0; q < std::min<std::int64_t>(nq, 20); ++q) index.search(&qdata[q * d], 10);  // warm up
    for (std::int64_t q = 0; q < nq; ++q) {
      t0 = Clock::now();
      const auto nn = index.search(&qdata[q * d], 10);
      ms.push_back(seconds_since(t0) * 1e3);
      if (nn.empty()) continue;
      hit += nn[0].row == exact_row[q] || dist2(nn[0].row, q) <= dist2(exact_row[q], q) + 1e-9;
      right += index.label(nn[0].row) == expected[q];
    }
    r.latency = latency(ms);
    r.recall_at_1 = static_cast<double>(hit) / nq;
    r.rank1 = static_cast<double>(right) / nq;
    rep.ef.push_back(r);
    say("efSearch " + std::to_string(ef) + ": p50 " + std::to_string(r.latency.p50_ms) + " ms, recall@1 " +
        std::to_string(r.recall_at_1));
  }
  ident->set_ef_search(o.index.ef_search);
  omp_set_num_threads(saved_threads);

  // identify() as the CLI runs it by default: kNN over per-person mean templates.
  {
    omp_set_num_threads(saved_threads);
    IdentifyOptions dio;
    dio.index = o.index;
    dio.threshold = 0.f;
    t0 = Clock::now();
    Identifier def(*gallery, o.embedder, dio);
    rep.default_build_seconds = seconds_since(t0);
    rep.default_rows = def.index().size();
    rep.default_index = def.index().index().description();
    omp_set_num_threads(1);
    std::vector<double> ms;
    std::int64_t right = 0;
    for (std::int64_t q = 0; q < nq; ++q) {
      const Embedding e(qdata.begin() + q * d, qdata.begin() + (q + 1) * d);
      t0 = Clock::now();
      const auto r = def.identify(e);
      ms.push_back(seconds_since(t0) * 1e3);
      right += !r.candidates.empty() && r.candidates[0].person_id == expected[q];
    }
    rep.identify_latency = latency(ms);
    rep.identify_rank1 = static_cast<double>(right) / nq;
    say("default identify over " + std::to_string(rep.default_rows) + " mean rows: p50 " +
        std::to_string(rep.identify_latency.p50_ms) + " ms");
  }
  omp_set_num_threads(saved_threads);

  // SVM over the first svm_people people (the real ones come first).
  if (o.svm_people > 0) {
    const auto labels = index.labels();
    const size_t n = std::min<size_t>(labels.size(), static_cast<size_t>(o.svm_people));
    std::vector<float> data;
    std::vector<std::int64_t> keys, labs;
    for (size_t k = 0; k < n; ++k)
      for (std::int64_t r : index.rows_of(labels[k])) {
        data.insert(data.end(), vi.vector(r), vi.vector(r) + d);
        keys.push_back(index.key(r));
        labs.push_back(labels[k]);
      }
    IndexOptions flat_opt;
    flat_opt.kind = "flat";
    LabelledIndex sub(d, flat_opt, static_cast<std::int64_t>(keys.size()));
    sub.add(data.data(), keys.data(), labs.data(), static_cast<std::int64_t>(keys.size()));
    auto svm = create_classifier("svm");
    t0 = Clock::now();
    svm->train(sub);
    rep.svm_train_seconds = seconds_since(t0);
    rep.svm_people = static_cast<std::int64_t>(n);
    rep.svm_rows = static_cast<std::int64_t>(keys.size());
    std::int64_t asked = 0, right = 0;
    const std::int64_t last_label = n ? labels[n - 1] : 0;
    for (std::int64_t q = 0; q < nq; ++q) {
      if (expected[q] < 0 || expected[q] > last_label) continue;
      ++asked;
      const auto c = svm->classify(sub, &qdata[q * d], 1);
      right += !c.empty() && c[0].label == expected[q];
    }
    rep.svm_rank1 = asked ? static_cast<double>(right) / asked : 0;
    say("svm: " + std::to_string(n) + " people trained in " + std::to_string(rep.svm_train_seconds) + " s");
  }
  rep.peak_rss_mb = proc_status_mb("VmHWM:");
  ident.reset();
  gallery.reset();
  if (temp) fs::remove_all(dir, ec);
  rep.wall_seconds = seconds_since(t_start);
  return rep;
}

}  // namespace facekit
