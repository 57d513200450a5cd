// Clustering methods and their metrics on synthetic embeddings (no model needed).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "facekit/cluster.hpp"
#include "facekit/error.hpp"
#include "unit_vector.hpp"

namespace fk = facekit;

namespace {

fk::Embedding normalised(fk::Embedding e) {
  float s = 0;
  for (float v : e) s += v * v;
  for (float& v : e) v /= std::sqrt(s);
  return e;
}

// `people` centres in 64 dimensions (random directions: ~1.41 apart), `per` faces each at a distance of about
// `spread` from their centre.
struct Synthetic {
  std::vector<fk::Embedding> e;
  std::vector<int> truth, photo;
};
Synthetic make(int people, int per, float spread, unsigned seed = 7) {
  std::mt19937 rng(seed);
  Synthetic s;
  for (int p = 0; p < people; ++p) {
    const auto c = fk_test::unit_vector(rng, 64);
    for (int k = 0; k < per; ++k) {
      const auto n = fk_test::unit_vector(rng, 64);
      fk::Embedding x(64);
      for (int j = 0; j < 64; ++j) x[static_cast<size_t>(j)] = c[static_cast<size_t>(j)] + spread * n[static_cast<size_t>(j)];
      s.e.push_back(normalised(x));
      s.truth.push_back(p);
      s.photo.push_back(static_cast<int>(s.photo.size()));
    }
  }
  return s;
}

}  // namespace

TEST(ClusterMetrics, PairwiseAndBCubedByHand) {
  // Clusters {0,0,0}, {1,1}, one unclustered face; people: 0 0 | 1 1 1 | 2, and one face without truth.
  const std::vector<int> pred{0, 0, 0, 1, 1, -1, 1}, truth{0, 0, 1, 1, 1, 2, -1};
  const auto m = fk::cluster_metrics(pred, truth);
  EXPECT_EQ(m.faces, 6);
  EXPECT_EQ(m.people, 3);
  EXPECT_EQ(m.clusters, 2);
  EXPECT_EQ(m.unclustered, 1);
  EXPECT_EQ(m.singletons, 1);
  // Pairs put together: 3 + 1, of which 1 + 1 are one person; pairs of one person: 1 + 3.
  EXPECT_DOUBLE_EQ(m.pairwise_precision, 0.5);
  EXPECT_DOUBLE_EQ(m.pairwise_recall, 0.5);
  EXPECT_DOUBLE_EQ(m.pairwise_f, 0.5);
  // BCubed precision: (2/3 + 2/3 + 1/3 + 1 + 1 + 1) / 6; recall: (1 + 1 + 1/3 + 2/3 + 2/3 + 1) / 6; both 14/18.
  EXPECT_NEAR(m.bcubed_precision, 14.0 / 18, 1e-12);
  EXPECT_NEAR(m.bcubed_recall, 14.0 / 18, 1e-12);
  EXPECT_NEAR(m.bcubed_f, 14.0 / 18, 1e-12);
  // Perfect clustering scores 1 everywhere.
  const auto p = fk::cluster_metrics({3, 3, 5, 5, 5, -1}, {0, 0, 1, 1, 1, 2});
  EXPECT_DOUBLE_EQ(p.pairwise_f, 1.0);
  EXPECT_DOUBLE_EQ(p.bcubed_f, 1.0);
  EXPECT_THROW(fk::cluster_metrics({0}, {0, 1}), fk::Error);
}

TEST(Cluster, EveryMethodFindsWellSeparatedPeople) {
  const auto s = make(6, 8, 0.25f);
  for (auto m : {fk::ClusterMethod::kAgglomerative, fk::ClusterMethod::kDbscan, fk::ClusterMethod::kChineseWhispers}) {
    fk::ClusterOptions o;
    o.method = m;
    o.threshold = 0.6f;
    const auto r = fk::cluster_faces(s.e, s.photo, o);
    EXPECT_EQ(r.clusters, 6) << fk::to_string(m);
    EXPECT_EQ(r.unclustered, 0) << fk::to_string(m);
    EXPECT_DOUBLE_EQ(fk::cluster_metrics(r.label, s.truth).bcubed_f, 1.0) << fk::to_string(m);
  }
}

TEST(Cluster, ChainingJoinsPeopleForDbscanButNotForAverageLinkage) {
  // Two people and a bridge of faces between them, each a step of 0.3 from the next: single-link methods
  // (DBSCAN) chain across the bridge; average linkage does not.
  std::mt19937 rng(3);
  const auto a = fk_test::unit_vector(rng, 32), b = fk_test::unit_vector(rng, 32);
  std::vector<fk::Embedding> e;
  std::vector<int> truth;
  for (int k = 0; k < 6; ++k) e.push_back(a), truth.push_back(0);
  for (int k = 0; k < 6; ++k) e.push_back(b), truth.push_back(1);
  for (int k = 1; k < 10; ++k) {  // the bridge: evaluated as nobody
    fk::Embedding x(32);
    const float t = static_cast<float>(k) / 10;
    for (size_t j = 0; j < 32; ++j) x[j] = (1 - t) * a[j] + t * b[j];
    e.push_back(normalised(x));
    truth.push_back(-1);
  }
  fk::ClusterOptions o;
  o.threshold = 0.3f;
  o.min_faces = 2;
  o.method = fk::ClusterMethod::kDbscan;
  const auto d = fk::cluster_faces(e, {}, o);
  EXPECT_EQ(d.label[0], d.label[6]);  // chained
  o.method = fk::ClusterMethod::kAgglomerative;
  const auto g = fk::cluster_faces(e, {}, o);
  EXPECT_NE(g.label[0], g.label[6]);
  EXPECT_DOUBLE_EQ(fk::cluster_metrics(g.label, truth).pairwise_precision, 1.0);
}

TEST(Cluster, TwoFacesOfOnePhotoAreNeverOnePerson) {
  auto s = make(1, 6, 0.1f);
  s.photo = {0, 0, 1, 2, 3, 4};  // the first two faces share a photo
  fk::ClusterOptions o;
  o.threshold = 0.8f;
  o.min_cluster_size = 1;
  const auto r = fk::cluster_faces(s.e, s.photo, o);
  EXPECT_NE(r.label[0], r.label[1]);
  EXPECT_EQ(r.clusters, 2);
  o.one_face_per_photo = false;
  EXPECT_EQ(fk::cluster_faces(s.e, s.photo, o).clusters, 1);
}

TEST(Cluster, SmallGroupsAreUnclusteredAndFacesWithoutEmbeddingsToo) {
  auto s = make(2, 5, 0.2f);
  s.e.push_back({});  // a face that could not be embedded
  s.photo.push_back(99);
  auto lone = make(1, 1, 0.f, 11);  // a person seen once
  s.e.push_back(lone.e[0]);
  s.photo.push_back(100);
  fk::ClusterOptions o;
  o.threshold = 0.6f;
  const auto r = fk::cluster_faces(s.e, s.photo, o);
  EXPECT_EQ(r.clusters, 2);
  EXPECT_EQ(r.unclustered, 2);
  EXPECT_EQ(r.label[10], -1);
  EXPECT_EQ(r.label[11], -1);
  // Largest cluster first.
  EXPECT_EQ(r.label[0], r.label[4]);
}

TEST(Cluster, RefusesBadInput) {
  fk::ClusterOptions o;
  EXPECT_THROW(fk::cluster_faces({{1.f, 0.f}, {1.f, 0.f, 0.f}}, {}, o), fk::Error);
  EXPECT_THROW(fk::cluster_faces({{1.f, 0.f}}, {0, 1}, o), fk::Error);
  o.threshold = 0;
  EXPECT_THROW(fk::cluster_faces({{1.f, 0.f}}, {}, o), fk::Error);
  o.threshold = 0.5f;
  o.min_faces = 0;
  EXPECT_THROW(fk::cluster_faces({{1.f, 0.f}}, {}, o), fk::Error);
  EXPECT_EQ(fk::parse_cluster_method("chinese-whispers"), fk::ClusterMethod::kChineseWhispers);
  EXPECT_FALSE(fk::parse_cluster_method("kmeans"));
  EXPECT_NEAR(fk::l2_at_cosine_distance(0.5f), 1.0f, 1e-6);
  // No faces: no clusters.
  o.min_faces = 3;
  EXPECT_EQ(fk::cluster_faces({}, {}, o).clusters, 0);
}

TEST(Cluster, TheSizeAllowanceLetsClustersMergeWhereSingleFacesMayNot) {
  // Two faces 0.5 apart stay apart at threshold 0.4 whatever the allowance (single faces: the threshold alone);
  // two groups of 8 whose faces lie 0.42 apart on average merge only with the allowance (0.4^2 + 0.02 x 1.75 >
  // 0.42^2 > 0.4^2).
  std::mt19937 rng(3);
  const auto c = fk_test::unit_vector(rng, 64), n = fk_test::unit_vector(rng, 64);
  fk::ClusterOptions o;
  o.threshold = 0.4f;
  o.min_cluster_size = 1;
  const auto at = [&](float t) {  // a unit vector at distance ~t from c, towards n
    fk::Embedding x(64);
    for (size_t j = 0; j < 64; ++j) x[j] = c[j] + t * n[j];
    return normalised(x);
  };
  {
    const std::vector<fk::Embedding> two{at(-0.25f), at(0.25f)};
    o.size_allowance = 0.02f;
    EXPECT_EQ(fk::cluster_faces(two, {}, o).clusters, 2);
  }
  // Groups: faces spread around two centres; the centres' distance sets the mean squared distance.
  Synthetic s = make(2, 8, 0.1f, 11);
  const auto mean_sq = [&](const std::vector<fk::Embedding>& e) {
    double sum = 0;
    for (int a = 0; a < 8; ++a)
      for (int b = 8; b < 16; ++b) {
        double d = 0;
        for (size_t j = 0; j < 64; ++j) d += std::pow(e[static_cast<size_t>(a)][j] - e[static_cast<size_t>(b)][j], 2);
        sum += d;
      }
    return sum / 64;
  };
  // Pull the second group towards the first until its mean squared distance lies between the two bars.
  for (int b = 8; b < 16; ++b) {
    fk::Embedding x(64);
    for (size_t j = 0; j < 64; ++j) x[j] = s.e[static_cast<size_t>(b)][j] + 2.6f * s.e[static_cast<size_t>(b - 8)][j];
    s.e[static_cast<size_t>(b)] = normalised(x);
  }
  const double m = mean_sq(s.e);
  ASSERT_GT(m, 0.4 * 0.4);
  ASSERT_LT(m, 0.4 * 0.4 + 0.02 * (2 - 1.0 / 8 - 1.0 / 8));
  o.size_allowance = 0;
  const auto plain = fk::cluster_faces(s.e, s.photo, o);
  o.size_allowance = 0.02f;
  const auto allowed = fk::cluster_faces(s.e, s.photo, o);
  EXPECT_EQ(allowed.clusters, 1);
  EXPECT_GT(plain.clusters, 1);
  o.size_allowance = 1.5f;
  EXPECT_THROW(fk::cluster_faces(s.e, s.photo, o), fk::Error);
}

TEST(Cluster, StartGroupsStayTogetherAndApartTokensKeepClustersApart) {
  const Synthetic s = make(3, 5, 0.15f, 5);
  fk::ClusterOptions o;
  o.threshold = 0.5f;
  // Faces 0 and 5 (two people) start as one cluster: they stay together, and the rest of each joins them.
  fk::ClusterConstraints c;
  c.start.assign(s.e.size(), -1);
  c.start[0] = c.start[5] = 7;
  auto r = fk::cluster_faces(s.e, s.photo, o, c);
  EXPECT_EQ(r.label[0], r.label[5]);
  // Face 1 must not be with face 0's person: a token on face 1 and on face 0.
  c = {};
  c.apart.assign(s.e.size(), {});
  c.apart[0] = {4};
  c.apart[1] = {4};
  r = fk::cluster_faces(s.e, s.photo, o, c);
  EXPECT_NE(r.label[0], r.label[1]);
  EXPECT_EQ(r.label[0], r.label[2]);
  // Without constraints the three people are three clusters.
  EXPECT_EQ(fk::cluster_faces(s.e, s.photo, o).clusters, 3);
  // Only agglomerative takes constraints; sizes must match.
  o.method = fk::ClusterMethod::kDbscan;
  EXPECT_THROW(fk::cluster_faces(s.e, s.photo, o, c), fk::Error);
  o.method = fk::ClusterMethod::kAgglomerative;
  c.apart.pop_back();
  EXPECT_THROW(fk::cluster_faces(s.e, s.photo, o, c), fk::Error);
}
