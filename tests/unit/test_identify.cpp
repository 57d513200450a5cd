// Vector index (FAISS), classifiers (kNN, SVM), the Identifier over a gallery, and the identification metrics,
// on synthetic embeddings: clusters on the unit sphere with known members.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>

#include "../test_dir.hpp"
#include "classify/classifiers.hpp"
#include "facekit/classifier.hpp"
#include "facekit/error.hpp"
#include "facekit/identification_eval.hpp"
#include "facekit/identify.hpp"
#include "facekit/vector_index.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

constexpr int kDim = 32;

fk::Embedding normalise(std::vector<float> v) {
  float s = 0;
  for (float x : v) s += x * x;
  for (float& x : v) x /= std::sqrt(s);
  return v;
}

fk::Embedding random_unit(std::mt19937& rng, int dim = kDim) {
  std::normal_distribution<float> n;
  std::vector<float> v(dim);
  for (auto& x : v) x = n(rng);
  return normalise(v);
}

// A sample of a person: their centre plus noise of this size, renormalised. With 32 dimensions and noise 0.06
// per coordinate, samples of one person lie ~0.45 apart and different people ~1.4 apart.
fk::Embedding near(const fk::Embedding& centre, std::mt19937& rng, float noise = 0.06f) {
  std::normal_distribution<float> n(0, noise);
  std::vector<float> v(centre);
  for (auto& x : v) x += n(rng);
  return normalise(v);
}

struct World {
  std::vector<fk::Embedding> centres;
  std::vector<float> data;
  std::vector<std::int64_t> keys, labels;
  World(int people, int per_person, std::mt19937& rng) {
    for (int p = 0; p < people; ++p) {
      centres.push_back(random_unit(rng));
      for (int k = 0; k < per_person; ++k) {
        const auto e = near(centres.back(), rng);
        data.insert(data.end(), e.begin(), e.end());
        keys.push_back(static_cast<std::int64_t>(keys.size()) + 1);
        labels.push_back(100 + p);  // labels need not be dense
      }
    }
  }
  fk::LabelledIndex index(const fk::IndexOptions& o = {}) const {
    fk::LabelledIndex li(kDim, o, static_cast<std::int64_t>(keys.size()));
    li.add(data.data(), keys.data(), labels.data(), static_cast<std::int64_t>(keys.size()));
    return li;
  }
};

double accuracy(const fk::Classifier& c, const fk::LabelledIndex& index, const World& w, std::mt19937& rng,
                int probes_per_person = 3) {
  int right = 0, n = 0;
  for (size_t p = 0; p < w.centres.size(); ++p)
    for (int k = 0; k < probes_per_person; ++k, ++n) {
      const auto q = near(w.centres[p], rng);
      const auto r = c.classify(index, q.data(), 3);
      right += !r.empty() && r[0].label == static_cast<std::int64_t>(100 + p);
    }
  return static_cast<double>(right) / n;
}

}  // namespace

// ---- vector index ---------------------------------------------------------------------------------------

TEST(VectorIndex, FlatIsExactAndHnswRecallsNearlyAll) {
  std::mt19937 rng(1);
  const int n = 5000;
  std::vector<float> data;
  for (int i = 0; i < n; ++i) {
    const auto e = random_unit(rng);
    data.insert(data.end(), e.begin(), e.end());
  }
  fk::IndexOptions flat_o, hnsw_o;
  flat_o.kind = "flat";
  hnsw_o.kind = "hnsw";
  fk::VectorIndex flat(kDim, flat_o, n), hnsw(kDim, hnsw_o, n);
  flat.add(data.data(), n);
  hnsw.add(data.data(), n);
  EXPECT_FALSE(flat.approximate());
  EXPECT_TRUE(hnsw.approximate());
  int agree = 0;
  for (int q = 0; q < 200; ++q) {
    const auto e = random_unit(rng);
    // Brute force by hand: the flat index must find exactly this.
    float best = 1e9f;
    std::int64_t best_row = -1;
    for (int i = 0; i < n; ++i) {
      float s = 0;
      for (int j = 0; j < kDim; ++j) s += (data[i * kDim + j] - e[j]) * (data[i * kDim + j] - e[j]);
      if (s < best) best = s, best_row = i;
    }
    const auto f = flat.search(e.data(), 5);
    ASSERT_EQ(f.size(), 5u);
    EXPECT_EQ(f[0].row, best_row);
    EXPECT_NEAR(f[0].distance, std::sqrt(best), 1e-4);
    for (size_t k = 1; k < f.size(); ++k) EXPECT_LE(f[k - 1].distance, f[k].distance);
    agree += hnsw.search(e.data(), 1)[0].row == best_row;
  }
  // 32-D random points are a hard case for HNSW; real embeddings (clustered) do better.
  EXPECT_GE(agree, 190) << "HNSW recall@1 " << agree / 200.0;
}

TEST(VectorIndex, RemovedRowsAreNeverReturned) {
  std::mt19937 rng(2);
  for (const char* kind : {"flat", "hnsw"}) {
    fk::IndexOptions o;
    o.kind = kind;
    fk::VectorIndex vi(kDim, o, 100);
    std::vector<float> data;
    for (int i = 0; i < 100; ++i) {
      const auto e = random_unit(rng);
      data.insert(data.end(), e.begin(), e.end());
    }
    vi.add(data.data(), 100);
    const float* row7 = vi.vector(7);
    const fk::Embedding q(row7, row7 + kDim);
    EXPECT_EQ(vi.search(q.data(), 1)[0].row, 7);
    EXPECT_TRUE(vi.remove(7));
    EXPECT_FALSE(vi.remove(7));
    EXPECT_EQ(vi.live(), 99);
    const auto hits = vi.search(q.data(), 100);
    EXPECT_EQ(hits.size(), 99u) << kind;
    for (const auto& h : hits) EXPECT_NE(h.row, 7) << kind;
  }
}

TEST(VectorIndex, SaveLoadGivesTheSameAnswers) {
  std::mt19937 rng(3);
  World w(50, 4, rng);
  for (const char* kind : {"flat", "hnsw"}) {
    fk::IndexOptions o;
    o.kind = kind;
    auto li = w.index(o);
    li.remove_key(5);
    const fs::path p = fs::temp_directory_path() / ("fk_idx_" + std::to_string(::getpid()) + kind);
    std::FILE* f = std::fopen(p.c_str(), "wb");
    li.save(f);
    std::fclose(f);
    f = std::fopen(p.c_str(), "rb");
    auto back = fk::LabelledIndex::load(f);
    std::fclose(f);
    EXPECT_EQ(back.size(), li.size());
    EXPECT_EQ(back.max_key(), li.max_key());
    EXPECT_FALSE(back.has_key(5));
    EXPECT_EQ(back.labels(), li.labels());
    for (int q = 0; q < 20; ++q) {
      const auto e = random_unit(rng);
      const auto a = li.search(e.data(), 5), b = back.search(e.data(), 5);
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k].row, b[k].row);
    }
    // A truncated file is a clear error.
    const auto size = fs::file_size(p);
    fs::resize_file(p, size / 2);
    f = std::fopen(p.c_str(), "rb");
    EXPECT_THROW(fk::LabelledIndex::load(f), fk::Error);
    std::fclose(f);
    fs::remove(p);
  }
}

TEST(LabelledIndex, TracksRowsPerLabelAndRejectsDuplicateKeys) {
  std::mt19937 rng(4);
  World w(3, 2, rng);
  auto li = w.index();
  EXPECT_EQ(li.labels(), (std::vector<std::int64_t>{100, 101, 102}));
  EXPECT_EQ(li.rows_of(101).size(), 2u);
  EXPECT_TRUE(li.remove_key(3));
  EXPECT_EQ(li.rows_of(101).size(), 1u);
  EXPECT_TRUE(li.remove_key(4));
  EXPECT_TRUE(li.rows_of(101).empty());
  EXPECT_EQ(li.labels(), (std::vector<std::int64_t>{100, 102}));
  const std::int64_t k = 1, l = 7;
  EXPECT_THROW(li.add(w.data.data(), &k, &l, 1), fk::Error);
  EXPECT_EQ(li.max_key(), 6);
}

// ---- classifiers ----------------------------------------------------------------------------------------

TEST(Knn, IdentifiesNoisySamplesAndReportsDistances) {
  std::mt19937 rng(5);
  World w(100, 3, rng);
  auto index = w.index();
  auto knn = fk::create_classifier("knn");
  knn->train(index);
  EXPECT_GE(accuracy(*knn, index, w, rng), 0.99);
  const auto q = near(w.centres[10], rng);
  const auto r = knn->classify(index, q.data(), 3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].label, 110);
  float psum = 0;
  for (const auto& c : r) {
    psum += c.probability;
    // The distance is to the candidate's nearest template, computed by hand.
    float best = 1e9f;
    for (std::int64_t row : index.rows_of(c.label)) {
      float s = 0;
      for (int j = 0; j < kDim; ++j) s += (index.index().vector(row)[j] - q[j]) * (index.index().vector(row)[j] - q[j]);
      best = std::min(best, std::sqrt(s));
    }
    EXPECT_NEAR(c.distance, best, 1e-4);
    EXPECT_NEAR(c.score, 1 - c.distance * c.distance / 2, 1e-5);
  }
  EXPECT_LE(psum, 1.0001f);
  EXPECT_GT(r[0].probability, 0.9f);  // the other two are far: almost all the vote
  EXPECT_LT(r[1].score, r[0].score);
}

TEST(Knn, VoteLetsSeveralCloseTemplatesWin) {
  // One template of A at distance 0.30 against three of B at 0.32: the vote (k=5) picks B, k=1 picks A.
  fk::Embedding q(kDim, 0.f);
  q[0] = 1;
  auto at = [&](float d, int axis) {  // a unit vector at distance d from q, towards `axis`
    const float cosang = 1 - d * d / 2, sinang = std::sqrt(1 - cosang * cosang);
    std::vector<float> v(kDim, 0.f);
    v[0] = cosang;
    v[axis] = sinang;
    return v;
  };
  std::vector<float> data;
  for (auto v : {at(0.30f, 1), at(0.32f, 2), at(0.32f, 3), at(0.32f, 4)}) data.insert(data.end(), v.begin(), v.end());
  const std::int64_t keys[] = {1, 2, 3, 4}, labels[] = {1, 2, 2, 2};
  fk::LabelledIndex index(kDim, {}, 4);
  index.add(data.data(), keys, labels, 4);
  fk::ClassifierOptions o;
  o.knn_k = 5;
  EXPECT_EQ(fk::create_classifier("knn", o)->classify(index, q.data(), 2)[0].label, 2);
  o.knn_k = 1;
  const auto r1 = fk::create_classifier("knn", o)->classify(index, q.data(), 2);
  EXPECT_EQ(r1[0].label, 1);
  EXPECT_FLOAT_EQ(r1[0].probability, 1.f);
  EXPECT_FLOAT_EQ(r1[1].probability, 0.f);
}

TEST(Svm, IdentifiesWithCalibratedProbabilitiesAndSurvivesSaveLoad) {
  std::mt19937 rng(6);
  World w(60, 4, rng);
  auto index = w.index();
  fk::ClassifierOptions o;
  o.threads = 2;
  auto svm = fk::create_classifier("svm", o);
  EXPECT_TRUE(svm->trainable());
  svm->train(index);
  EXPECT_NE(svm->describe().find("fitted"), std::string::npos) << svm->describe();
  EXPECT_GE(accuracy(*svm, index, w, rng), 0.97);
  // A sample of a person scores high; a random point (nobody) scores low on every model.
  const auto q = near(w.centres[7], rng);
  const auto r = svm->classify(index, q.data(), 3);
  ASSERT_EQ(r[0].label, 107);
  EXPECT_GT(r[0].score, 0.5f);
  for (const auto& c : r) EXPECT_TRUE(c.probability >= 0 && c.probability <= 1 && c.score >= 0 && c.score <= 1);
  const auto stranger = random_unit(rng);
  EXPECT_LT(svm->classify(index, stranger.data(), 1)[0].score, r[0].score);

  std::stringstream buf;
  svm->save(buf);
  auto back = fk::create_classifier("svm");
  back->load(buf);
  const auto r2 = back->classify(index, q.data(), 3);
  for (size_t k = 0; k < r.size(); ++k) {
    EXPECT_EQ(r2[k].label, r[k].label);
    EXPECT_FLOAT_EQ(r2[k].score, r[k].score);
  }
  std::stringstream junk("facekit-svm 1 32 999999 1\nshort");
  EXPECT_THROW(back->load(junk), fk::Error);
}

TEST(Svm, BoundedNegativesMatchAllNegativesOnSmallGalleries) {
  std::mt19937 rng(7);
  World w(80, 2, rng);
  auto index = w.index();
  fk::ClassifierOptions all;
  all.svm_hard_negative_people = 0;
  all.svm_random_negatives = 0;
  auto a = fk::create_classifier("svm", all), b = fk::create_classifier("svm");
  a->train(index);
  b->train(index);
  std::mt19937 r1(8), r2(8);
  EXPECT_GE(accuracy(*b, index, w, r2), accuracy(*a, index, w, r1) - 0.02);
}

TEST(Platt, RecoversAKnownSigmoid) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> u(-3, 3), p01(0, 1);
  const double A = -2.5, B = 0.7;
  std::vector<double> f;
  std::vector<bool> y;
  for (int i = 0; i < 20000; ++i) {
    const double x = u(rng);
    f.push_back(x);
    y.push_back(p01(rng) < 1 / (1 + std::exp(A * x + B)));
  }
  double a = 0, b = 0;
  fk::fit_platt(f, y, a, b);
  EXPECT_NEAR(a, A, 0.15);
  EXPECT_NEAR(b, B, 0.1);
}

TEST(Classifier, UnknownNameIsAnError) {
  EXPECT_THROW(fk::create_classifier("forest"), fk::Error);
  fk::ClassifierOptions o;
  o.knn_k = 0;
  EXPECT_THROW(fk::create_classifier("knn", o), fk::Error);
}

// ---- metrics ----------------------------------------------------------------------------------------------

TEST(Metrics, RankAndDirAtFpirByHand) {
  // 4 mated probes: ranks 1 (score .9), 1 (.6), 2 (.8), none. 10 non-mated with top scores .05 .. .95 step .1.
  std::vector<fk::ProbeOutcome> p = {{true, 1, 0.9f, true}, {true, 1, 0.6f, true}, {true, 2, 0.8f, true}, {true, 0, 0, false}};
  for (int i = 0; i < 10; ++i) p.push_back({false, 0, 0.05f + 0.1f * i, true});
  EXPECT_DOUBLE_EQ(fk::rank_k(p, 1), 0.5);
  EXPECT_DOUBLE_EQ(fk::rank_k(p, 5), 0.75);
  // FPIR <= 10%: one non-mated may pass -> threshold just above the 2nd highest (0.85): only .95 passes.
  auto r = fk::dir_at_fpir(p, 0.1);
  EXPECT_NEAR(r.threshold, 0.85f, 1e-5);
  EXPECT_GT(r.threshold, 0.85f);
  EXPECT_DOUBLE_EQ(r.fpir, 0.1);
  EXPECT_DOUBLE_EQ(r.dir, 0.25);  // only the rank-1 probe at 0.9
  // FPIR <= 1% of 10: none may pass -> threshold above 0.95: no mated probe accepted.
  r = fk::dir_at_fpir(p, 0.01);
  EXPECT_DOUBLE_EQ(r.fpir, 0.0);
  EXPECT_DOUBLE_EQ(r.dir, 0.0);
  // FPIR <= 50%: threshold above 0.45: both rank-1 probes pass.
  r = fk::dir_at_fpir(p, 0.5);
  EXPECT_DOUBLE_EQ(r.fpir, 0.5);
  EXPECT_DOUBLE_EQ(r.dir, 0.5);
  EXPECT_THROW(fk::dir_at_fpir({{true, 1, 1, true}}, 0.01), fk::Error);
}

// ---- identifier over a gallery ----------------------------------------------------------------------------

namespace {

const fk::EmbedderId kEmb{"synthetic", "1"};

class IdentifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_ident");
    gallery_ = fk::open_gallery(dir_ / "g.db");
    for (int p = 0; p < 30; ++p) centres_.push_back(random_unit(rng_));
    for (int p = 0; p < 20; ++p) enrol(p, 3);  // people 20..29 stay strangers
  }
  void TearDown() override {
    gallery_.reset();
    fs::remove_all(dir_);
  }
  std::int64_t enrol(int p, int n, const fk::EmbedderId& emb = kEmb) {
    fk::NewPerson np;
    np.name = "person" + std::to_string(p);
    for (int k = 0; k < n; ++k) {
      fk::NewTemplate t;
      t.embedder = emb;
      t.embedding = near(centres_[p], rng_);
      np.templates.push_back(t);
    }
    return gallery_->add_person(np, fk::OnConflict::kMerge).person.id;
  }
  fk::IdentifyOptions options(const std::string& clf = "knn") const {
    fk::IdentifyOptions o;
    o.classifier = clf;
    o.aggregation = fk::Aggregation::kNone;  // a row per template (the mean test sets kMean)
    o.threshold = clf == "knn" ? 0.8f : 0.5f;  // similarity 0.8 = distance 0.63
    return o;
  }
  fs::path dir_;
  std::unique_ptr<fk::Gallery> gallery_;
  std::vector<fk::Embedding> centres_;
  std::mt19937 rng_{10};
};

}  // namespace

TEST_F(IdentifierTest, KnownPeopleAreNamedAndStrangersAreUnknown) {
  for (const std::string clf : {"knn", "svm"}) {
    fk::Identifier id(*gallery_, kEmb, options(clf));
    int known_right = 0, strangers_rejected = 0;
    for (int p = 0; p < 20; ++p) {
      const auto r = id.identify(near(centres_[p], rng_));
      known_right += r.known && r.candidates[0].name == "person" + std::to_string(p);
    }
    for (int p = 20; p < 30; ++p) strangers_rejected += !id.identify(near(centres_[p], rng_)).known;
    EXPECT_GE(known_right, 19) << clf;
    EXPECT_EQ(strangers_rejected, 10) << clf;
  }
  fk::Identifier id(*gallery_, kEmb, options());
  EXPECT_THROW(id.identify(fk::Embedding(5, 0.f)), fk::Error);  // wrong length
}

TEST_F(IdentifierTest, FollowsTheGalleryIncrementallyAndThroughItsCache) {
  fk::Identifier id(*gallery_, kEmb, options());
  EXPECT_TRUE(id.last_refresh().rebuilt);
  EXPECT_FALSE(id.identify(near(centres_[25], rng_)).known);
  // A new person, an added photo, a removal: applied without a rebuild.
  const auto p25 = enrol(25, 2);
  enrol(3, 1);
  const auto p4 = gallery_->find_person("person4")->id;
  gallery_->remove_person(p4);
  const auto rep = id.refresh();
  EXPECT_FALSE(rep.rebuilt);
  EXPECT_EQ(rep.added, 3);
  EXPECT_EQ(rep.removed, 3);
  EXPECT_EQ(rep.revision, gallery_->revision());
  const auto r25 = id.identify(near(centres_[25], rng_));
  EXPECT_TRUE(r25.known);
  EXPECT_EQ(r25.candidates[0].person_id, p25);
  const auto r4 = id.identify(near(centres_[4], rng_));
  EXPECT_FALSE(r4.known);
  for (const auto& c : r4.candidates) EXPECT_NE(c.person_id, p4);
  // Nothing changed: refresh is a no-op.
  const auto again = id.refresh();
  EXPECT_EQ(again.added + again.removed, 0);
  EXPECT_FALSE(again.rebuilt);

  // A second identifier (a new process) loads the cache instead of rebuilding, and answers the same.
  fk::Identifier second(*gallery_, kEmb, options());
  EXPECT_TRUE(second.last_refresh().index_from_cache);
  EXPECT_FALSE(second.last_refresh().rebuilt);
  const auto q = near(centres_[12], rng_);
  EXPECT_EQ(second.identify(q).candidates[0].person_id, id.identify(q).candidates[0].person_id);
  // After another write, the cached index is brought up to date, not rebuilt.
  enrol(26, 1);
  fk::Identifier third(*gallery_, kEmb, options());
  EXPECT_TRUE(third.last_refresh().index_from_cache);
  EXPECT_EQ(third.last_refresh().added, 1);
  EXPECT_TRUE(third.identify(near(centres_[26], rng_)).known);
}

TEST_F(IdentifierTest, DamagedCacheIsRebuiltNotTrusted) {
  { fk::Identifier id(*gallery_, kEmb, options("svm")); }
  for (const auto& e : fs::directory_iterator(dir_ / "g.db.cache")) {
    std::ofstream f(e.path(), std::ios::binary | std::ios::trunc);
    f << "facekit-index-cache 1 garbage";
  }
  fk::Identifier id(*gallery_, kEmb, options("svm"));
  EXPECT_TRUE(id.last_refresh().rebuilt);
  EXPECT_TRUE(id.last_refresh().retrained);
  EXPECT_TRUE(id.identify(near(centres_[2], rng_)).known);
  // A cache of another gallery at the same path (new uuid) is not used either.
  gallery_.reset();
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(dir_ / (std::string("g.db") + s));
  gallery_ = fk::open_gallery(dir_ / "g.db");
  enrol(0, 1);
  fk::Identifier fresh(*gallery_, kEmb, options("svm"));
  EXPECT_FALSE(fresh.last_refresh().index_from_cache);
  EXPECT_FALSE(fresh.identify(near(centres_[5], rng_)).known);
}

TEST_F(IdentifierTest, TemplatesOfAnotherEmbedderAreNeverCompared) {
  // An impostor enrolled with another embedder's template placed exactly on person 27's centre.
  fk::NewPerson np;
  np.name = "other-embedder";
  np.templates.push_back({{"other", "9"}, centres_[27], 1.f, "", "photo"});
  gallery_->add_person(np);
  fk::Identifier id(*gallery_, kEmb, options());
  const auto r = id.identify(centres_[27]);
  for (const auto& c : r.candidates) EXPECT_NE(c.name, "other-embedder");
  EXPECT_FALSE(r.known);
  fk::Identifier other(*gallery_, {"other", "9"}, options());
  EXPECT_EQ(other.identify(centres_[27]).candidates.at(0).name, "other-embedder");
}

TEST_F(IdentifierTest, MeanAggregationHasOneRowPerPersonAndFollowsChanges) {
  auto o = options();
  o.aggregation = fk::Aggregation::kMean;
  fk::Identifier id(*gallery_, kEmb, o);
  EXPECT_EQ(id.index().size(), 20);
  enrol(5, 2);  // person5 gets two more templates: still one row, a new mean
  gallery_->remove_person(gallery_->find_person("person6")->id);
  const auto rep = id.refresh();
  EXPECT_EQ(id.index().size(), 19);
  EXPECT_EQ(rep.added, 1);
  EXPECT_EQ(rep.removed, 2);
  const auto r = id.identify(near(centres_[5], rng_));
  EXPECT_TRUE(r.known);
  EXPECT_EQ(r.candidates[0].name, "person5");
}

TEST_F(IdentifierTest, MeanRowsScoreTheUnnormalisedMeanAndNameTheEmbeddingLength) {
  // The power comes from the embedder's kNN calibration (saved and read back with it) unless one is given.
  const fs::path file = dir_ / "open_set.json";
  fk::OpenSetCalibration c;
  c.far = {1e-1, 1e-2};
  c.threshold = {0.5f, 0.6f};
  c.mean_norm_power = 0.5f;
  c.turned_fpir_factor = 0.3;
  fk::save_open_set_calibration(file, kEmb, "knn", c);
  ::setenv("FACEKIT_OPEN_SET", file.c_str(), 1);
  EXPECT_FLOAT_EQ(fk::load_open_set_calibration(kEmb, "knn")->mean_norm_power, 0.5f);
  const auto knn = fk::load_open_set_calibration(kEmb, "knn");
  EXPECT_FLOAT_EQ(fk::resolve_mean_norm_power(std::numeric_limits<float>::quiet_NaN(), knn), 0.5f);
  EXPECT_FLOAT_EQ(fk::resolve_mean_norm_power(0.25f, knn), 0.25f);
  EXPECT_FLOAT_EQ(fk::resolve_mean_norm_power(std::numeric_limits<float>::quiet_NaN(),
                                              fk::load_open_set_calibration({"other", "1"}, "knn")),
                  1.f);
  // So does the turned-face factor, per classifier (none recorded for the SVM here: 0.5).
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_DOUBLE_EQ(fk::load_open_set_calibration(kEmb, "knn")->turned_fpir_factor, 0.3);
  EXPECT_DOUBLE_EQ(fk::resolve_turned_fpir_factor(nan, knn), 0.3);
  EXPECT_DOUBLE_EQ(fk::resolve_turned_fpir_factor(nan, fk::load_open_set_calibration(kEmb, "svm")), 0.5);
  EXPECT_DOUBLE_EQ(fk::resolve_turned_fpir_factor(0.2, knn), 0.2);
  auto o = options();
  o.aggregation = fk::Aggregation::kMean;
  o.threshold = 0.f;
  o.turned_fpir_factor = nan;
  fk::Identifier id(*gallery_, kEmb, o);
  EXPECT_DOUBLE_EQ(id.options().turned_fpir_factor, 0.3);
  EXPECT_FLOAT_EQ(id.options().mean_norm_power, 0.5f);
  auto cosine = o;
  cosine.mean_norm_power = 1.f;
  cosine.use_cache = false;
  fk::Identifier cos_id(*gallery_, kEmb, cosine);
  ::unsetenv("FACEKIT_OPEN_SET");
  EXPECT_EQ(id.index().dim(), kDim + 1);  // mean_row's extra value
  // person3's templates from the store: the top candidate's similarity is x.m / |m|^0.5 worked out by hand.
  std::vector<fk::Embedding> mine;
  for (const auto& t : gallery_->templates_of(gallery_->find_person("person3")->id)) mine.push_back(t.embedding);
  ASSERT_GE(mine.size(), 2u);
  const auto q = near(centres_[3], rng_);
  double dot = 0, norm = 0;
  for (int j = 0; j < kDim; ++j) {
    double m = 0;
    for (const auto& e : mine) m += e[j];
    m /= static_cast<double>(mine.size());
    dot += q[j] * m, norm += m * m;
  }
  const auto r = id.identify(q);
  ASSERT_FALSE(r.candidates.empty());
  EXPECT_EQ(r.candidates[0].name, "person3");
  EXPECT_NEAR(r.candidates[0].similarity, dot / std::pow(norm, 0.25), 1e-4);
  EXPECT_GT(r.candidates[0].similarity, dot);  // above the mean similarity, ...
  EXPECT_LT(r.candidates[0].similarity, dot / std::sqrt(norm));  // ... below the cosine to the normalised mean
  EXPECT_NEAR(cos_id.identify(q).candidates.at(0).similarity, dot / std::sqrt(norm), 1e-4);  // power 1
  try {
    id.identify(fk::Embedding(kDim + 1, 0.1f));
    FAIL() << "an embedding of the row's length was accepted";
  } catch (const fk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("templates " + std::to_string(kDim)), std::string::npos) << e.what();
  }
}

TEST(OpenSetKey, EachClassifierAndAggregationHasItsOwnTableAndComparisonCount) {
  using fk::Aggregation;
  EXPECT_EQ(fk::open_set_key("knn", Aggregation::kAuto), "knn");
  EXPECT_EQ(fk::open_set_key("knn", Aggregation::kMean), "knn");
  EXPECT_EQ(fk::open_set_key("knn", Aggregation::kNone), "knn/none");
  EXPECT_EQ(fk::open_set_key("svm", Aggregation::kAuto), "svm");
  EXPECT_EQ(fk::open_set_key("svm", Aggregation::kNone), "svm");
  EXPECT_EQ(fk::open_set_key("svm", Aggregation::kMean), "svm/mean");
  // A stranger meets every person once, except a kNN over every template, where each template is a chance.
  EXPECT_EQ(fk::open_set_comparisons("knn", Aggregation::kMean, 125, 875), 125);
  EXPECT_EQ(fk::open_set_comparisons("knn", Aggregation::kNone, 125, 875), 875);
  EXPECT_EQ(fk::open_set_comparisons("svm", Aggregation::kAuto, 125, 875), 125);
}

TEST(MeanRow, ScoresAProbeAgainstTheUnnormalisedMeanAtTheGivenPower) {
  const fk::Embedding a = {1, 0, 0}, b = {0, 2, 0}, c = {0, 0, 1};  // b is normalised first
  const fk::Embedding x = {1, 0, 0, 0};  // a probe padded with its 0
  auto score = [&](const fk::Embedding& row) {
    float d = 0, n = 0;
    for (size_t i = 0; i < row.size(); ++i) d += row[i] * x[i], n += row[i] * row[i];
    EXPECT_NEAR(n, 1.f, 1e-6);  // rows are unit vectors: an L2 index's 1 - d^2/2 is this dot product
    return d;
  };
  // m = (0.5, 0.5, 0), |m| = sqrt(0.5); x.m = 0.5.
  EXPECT_NEAR(score(fk::mean_row({a, b}, {1, 1}, 0.5f, 0.5f)), 0.5 / std::pow(0.5, 0.25), 1e-6);
  EXPECT_NEAR(score(fk::mean_row({a, b}, {1, 1}, 0.5f, 1.f)), std::sqrt(0.5), 1e-6);  // cosine to the mean
  EXPECT_NEAR(score(fk::mean_row({a, b}, {1, 1}, 0.5f, 0.f)), 0.5, 1e-6);            // mean similarity
  // One template: the embedding itself, whatever the power.
  const auto one = fk::mean_row({a}, {1}, 0.5f, 0.5f);
  EXPECT_EQ(one, (fk::Embedding{1, 0, 0, 0}));
  // A poor template is left out while a good one exists (mean_of_good_templates' rule).
  EXPECT_NEAR(score(fk::mean_row({a, b, c}, {0.9f, 0.9f, 0.1f}, 0.5f, 0.5f)), 0.5 / std::pow(0.5, 0.25), 1e-6);
  EXPECT_THROW(fk::mean_row({a, b}, {1}, 0.5f, 0.5f), fk::Error);
  EXPECT_THROW(fk::mean_row({}, {}, 0.5f, 0.5f), fk::Error);
  EXPECT_THROW(fk::mean_row({a}, {1}, 0.5f, 1.5f), fk::Error);
  EXPECT_THROW(fk::mean_row({a, {1, 0}}, {1, 1}, 0.5f, 0.5f), fk::Error);
}

TEST(MeanOfGoodTemplates, PoorTemplatesAreLeftOutWhileAGoodOneExists) {
  const fk::Embedding a = {1, 0}, b = {0, 1};
  EXPECT_EQ(fk::mean_of_good_templates({a, b}, {0.9f, 0.2f}, 0.5f), a);
  EXPECT_EQ(fk::mean_of_good_templates({a, b}, {0.2f, 0.5f}, 0.5f), b);  // the bound itself is good
  const auto both = fk::mean_of_good_templates({a, b}, {0.1f, 0.2f}, 0.5f);  // none good: all of them
  EXPECT_NEAR(both[0], std::sqrt(0.5f), 1e-6);
  EXPECT_NEAR(both[1], std::sqrt(0.5f), 1e-6);
  EXPECT_NEAR(fk::mean_of_good_templates({a, b}, {0.9f, 0.2f}, 0.f)[1], std::sqrt(0.5f), 1e-6);  // 0 keeps all
  EXPECT_THROW(fk::mean_of_good_templates({a, b}, {0.9f}, 0.5f), fk::Error);
}

namespace {
// A unit vector at cosine `c` to unit vector `u` (its other part orthogonal to u).
fk::Embedding at_cosine(const fk::Embedding& u, float c, std::mt19937& rng) {
  fk::Embedding w = random_unit(rng, static_cast<int>(u.size()));
  float d = 0, n = 0;
  for (size_t i = 0; i < u.size(); ++i) d += w[i] * u[i];
  for (size_t i = 0; i < u.size(); ++i) w[i] -= d * u[i], n += w[i] * w[i];
  fk::Embedding v(u.size());
  for (size_t i = 0; i < u.size(); ++i) v[i] = c * u[i] + std::sqrt(1 - c * c) * w[i] / std::sqrt(n);
  return v;
}
}  // namespace

TEST(TurnedFpirScale, FallsLogLinearlyFromTheFairToThePoorYaw) {
  fk::IdentifyOptions o;  // 25 and 45 degrees
  o.turned_fpir_factor = 0.1;
  EXPECT_DOUBLE_EQ(fk::turned_fpir_scale(0, o), 1);
  EXPECT_DOUBLE_EQ(fk::turned_fpir_scale(-25, o), 1);
  EXPECT_NEAR(fk::turned_fpir_scale(35, o), std::sqrt(0.1), 1e-12);
  EXPECT_NEAR(fk::turned_fpir_scale(-45, o), 0.1, 1e-12);
  EXPECT_NEAR(fk::turned_fpir_scale(90, o), 0.1, 1e-12);
  auto off = o;
  off.turned_fpir_factor = 1;
  EXPECT_DOUBLE_EQ(fk::turned_fpir_scale(90, off), 1);
}

TEST_F(IdentifierTest, MeanTemplatesLeaveOutPoorPhotosAndTurnedFacesMeetAStricterThreshold) {
  // One person enrolled from a good photo (at u) and a poor one (at w, orthogonal): the mean is u alone.
  const fk::Embedding u = random_unit(rng_);
  const fk::Embedding w = at_cosine(u, 0.f, rng_);
  fk::NewPerson np;
  np.name = "exact";
  np.templates.resize(2);
  np.templates[0].embedder = np.templates[1].embedder = kEmb;
  np.templates[0].embedding = u, np.templates[0].quality = 0.9f;
  np.templates[1].embedding = w, np.templates[1].quality = 0.2f;
  gallery_->add_person(np);
  auto o = options();
  o.aggregation = fk::Aggregation::kMean;
  o.turned_fpir_factor = 0.1;
  {
    fk::Identifier id(*gallery_, kEmb, o);
    EXPECT_NEAR(id.identify(u).candidates.at(0).similarity, 1.f, 1e-5);
    o.template_min_quality = 0;  // every template: the mean m = (u + w) / 2 lies between them
    fk::Identifier all(*gallery_, kEmb, o);
    // No calibration to take the power from: 1, the cosine to the normalised mean.
    EXPECT_NEAR(all.identify(u).candidates.at(0).similarity, std::sqrt(0.5f), 1e-5);
    o.template_min_quality = 0.5f;
  }
  // The default thresholds, from a calibration: 21 people at FPIR 1% -> FAR 4.8e-4 per comparison -> 0.73;
  // a face turned 45 degrees or more at FPIR 0.1% -> beyond the table's last FAR -> 0.8; at 35 degrees, FPIR
  // 1% x 10^-0.5.
  const fs::path file = dir_ / "open_set.json";
  fk::OpenSetCalibration c;
  c.far = {1e-1, 1e-2, 1e-3, 1e-4};
  c.threshold = {0.5f, 0.6f, 0.7f, 0.8f};
  c.source = "unit test";
  fk::save_open_set_calibration(file, kEmb, "knn", c);
  ::setenv("FACEKIT_OPEN_SET", file.c_str(), 1);
  o.threshold = std::numeric_limits<float>::quiet_NaN();
  fk::Identifier id(*gallery_, kEmb, o);
  ::unsetenv("FACEKIT_OPEN_SET");
  EXPECT_NEAR(id.threshold(), 0.7 + 0.1 * (std::log10(21e2) - 3), 1e-4);
  EXPECT_FLOAT_EQ(id.threshold_at_yaw(45), 0.8f);
  EXPECT_NEAR(id.threshold_at_yaw(-35), 0.7 + 0.1 * (std::log10(21e2 * std::sqrt(10.0)) - 3), 1e-4);
  const fk::Embedding probe = at_cosine(u, 0.76f, rng_);
  const fk::HeadPose frontal{5, 0, 0}, turned{-40, 0, 0}, just{25, 0, 0};
  for (const fk::HeadPose* pose : {static_cast<const fk::HeadPose*>(nullptr), &frontal, &just}) {
    const auto r = id.identify(probe, pose);
    EXPECT_TRUE(r.known);
    EXPECT_EQ(r.turned, pose == &just);  // turned from 25 degrees, stricter only beyond
    EXPECT_EQ(r.candidates.at(0).name, "exact");
    EXPECT_FLOAT_EQ(r.threshold, id.threshold());
  }
  const auto r = id.identify(probe, &turned);  // FPIR 1% x 10^-0.75: beyond the table, 0.8
  EXPECT_FALSE(r.known);
  EXPECT_TRUE(r.turned);
  EXPECT_FLOAT_EQ(r.threshold, 0.8f);
  // A threshold given by the caller holds for every face.
  o.threshold = 0.75f;
  fk::Identifier given(*gallery_, kEmb, o);
  EXPECT_TRUE(given.identify(probe, &turned).known);
  EXPECT_FLOAT_EQ(given.threshold_at_yaw(60), 0.75f);
  o.turned_fpir_factor = 0;
  EXPECT_THROW(fk::Identifier(*gallery_, kEmb, o), fk::Error);
}

TEST_F(IdentifierTest, EmptyGalleryAnswersUnknown) {
  fk::Identifier id(*gallery_, {"nobody", "0"}, options());
  const auto r = id.identify(centres_[0]);
  EXPECT_FALSE(r.known);
  EXPECT_TRUE(r.candidates.empty());
}

// ---- the scale benchmark, small --------------------------------------------------------------------------

TEST(GalleryScale, SmallRunMeasuresWhatItClaims) {
  // "Real" embeddings: 300 people with 2-6 samples each; the benchmark adds synthetic ones up to 20,000.
  std::mt19937 rng(11);
  std::vector<fk::LabelledEmbedding> real;
  std::uniform_int_distribution<int> count(2, 6);
  for (int p = 0; p < 300; ++p) {
    const auto c = random_unit(rng, 128);
    const int n = count(rng);
    for (int k = 0; k < n; ++k) real.push_back({"person" + std::to_string(p), near(c, rng, 0.03f)});
  }
  fk::GalleryScaleOptions o;
  o.embedder = {"synthetic", "1"};
  o.templates = 20000;
  o.queries = 100;
  o.index.kind = "hnsw";
  o.ef_search = {16, 64};
  o.durable_people = 20;
  o.batch_people = 500;
  o.svm_people = 200;
  const auto r = fk::run_gallery_scale(real, o);
  EXPECT_EQ(r.templates, 20000);
  EXPECT_EQ(r.queries, 100);
  EXPECT_EQ(r.real_templates + r.synthetic_templates, 20000);
  EXPECT_EQ(r.real_templates, static_cast<std::int64_t>(real.size()) - 100);
  // The synthetic people look like the real ones: similar spread within and between people.
  EXPECT_NEAR(r.synthetic_within, r.real_within, 0.25 * r.real_within);
  EXPECT_NEAR(r.synthetic_between, r.real_between, 0.1 * r.real_between);
  EXPECT_NE(r.index_description.find("hnsw"), std::string::npos);
  ASSERT_EQ(r.ef.size(), 2u);
  EXPECT_GE(r.ef[1].recall_at_1, 0.95);
  EXPECT_GE(r.ef[1].recall_at_1, r.ef[0].recall_at_1 - 0.02);
  EXPECT_GE(r.ef[1].rank1, 0.95);  // the held-out sample finds its own person
  EXPECT_GE(r.identify_rank1, 0.95);
  EXPECT_GT(r.durable_people_per_s, 0);
  EXPECT_GT(r.bulk_templates_per_s, r.durable_templates_per_s);  // batching pays
  EXPECT_GT(r.load_seconds, 0);
  EXPECT_GT(r.gallery_bytes, 20000u * 128 * 4);
  EXPECT_GT(r.cache_bytes, 20000u * 128 * 4);
  EXPECT_EQ(r.svm_people, 200);
  EXPECT_GE(r.svm_rank1, 0.9);
  EXPECT_GT(r.exact_latency.p50_ms, 0);
}

// The open-set table has one writer next to its reader: what save writes, load reads back, and other
// entries of the file survive.
TEST(OpenSetCalibration, SavedTableIsReadBackAndOtherEntriesKept) {
  const fs::path dir = fk_test::fresh_test_dir("fk_openset");
  const fs::path file = dir / "open_set.json";
  const fk::EmbedderId a{"model_a", "1"}, b{"model_b", "2"};
  fk::OpenSetCalibration c;
  c.far = {1e-1, 1e-2, 1e-3};
  c.threshold = {0.5f, 0.6f, 0.7f};
  c.source = "unit test";
  fk::save_open_set_calibration(file, a, "knn", c);
  c.threshold = {0.1f, 0.2f, 0.3f};
  fk::save_open_set_calibration(file, b, "svm", c);
  ::setenv("FACEKIT_OPEN_SET", file.c_str(), 1);
  const auto ra = fk::load_open_set_calibration(a, "knn");
  const auto rb = fk::load_open_set_calibration(b, "svm");
  const auto none = fk::load_open_set_calibration(a, "svm");
  ::unsetenv("FACEKIT_OPEN_SET");
  ASSERT_TRUE(ra);
  ASSERT_TRUE(rb);
  EXPECT_FALSE(none);
  EXPECT_EQ(ra->far, (std::vector<double>{1e-1, 1e-2, 1e-3}));
  EXPECT_EQ(ra->threshold, (std::vector<float>{0.5f, 0.6f, 0.7f}));
  EXPECT_EQ(rb->threshold, (std::vector<float>{0.1f, 0.2f, 0.3f}));
  EXPECT_NE(ra->source.find("unit test"), std::string::npos);
  c.far = {1e-3, 1e-2, 1e-1};  // ascending: refused, file untouched
  EXPECT_THROW(fk::save_open_set_calibration(file, a, "knn", c), fk::Error);
  ::setenv("FACEKIT_OPEN_SET", file.c_str(), 1);
  EXPECT_EQ(fk::load_open_set_calibration(a, "knn")->threshold, (std::vector<float>{0.5f, 0.6f, 0.7f}));
  ::unsetenv("FACEKIT_OPEN_SET");
  fs::remove_all(dir);
}
