// The review workflow's state (names, merges, splits, "not" constraints, incremental runs) on synthetic
// embeddings: no model needed.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <set>

#include "facekit/cluster_review.hpp"
#include "facekit/error.hpp"
#include "../test_dir.hpp"
#include "unit_vector.hpp"

namespace fk = facekit;

namespace {

// `people` people, `per` photos each (one face per photo, "p<person>_<k>.jpg"), faces ~0.15 from their centre.
struct Library {
  std::vector<fk::Embedding> centre;
  fk::LibraryScan scan(int per) const {
    std::mt19937 rng(17);
    fk::LibraryScan s;
    s.embedder = "synthetic";
    for (size_t p = 0; p < centre.size(); ++p)
      for (int k = 0; k < per; ++k) {
        const auto n = fk_test::unit_vector(rng, 64);
        fk::LibraryFace f;
        f.photo = static_cast<int>(s.photos.size());
        f.face.box = {10, 10, 50, 50};
        f.face.score = 0.9f;
        f.main = true;
        f.embedding.resize(64);
        float norm = 0;
        for (size_t j = 0; j < 64; ++j) norm += std::pow(f.embedding[j] = centre[p][j] + 0.15f * n[j], 2.f);
        for (auto& v : f.embedding) v /= std::sqrt(norm);
        s.photos.push_back("p" + std::to_string(p) + "_" + std::to_string(k) + ".jpg");
        s.faces.push_back(f);
      }
    return s;
  }
};

Library people(int n) {
  std::mt19937 rng(9);
  Library l;
  for (int p = 0; p < n; ++p) l.centre.push_back(fk_test::unit_vector(rng, 64));
  return l;
}

fk::ClusterOptions options() {
  fk::ClusterOptions o;
  o.threshold = 0.5f;
  return o;
}

// The person a cluster's faces come from (photo "p<person>_..."); -1 when they are several.
int person_of(const fk::ReviewCluster& c) {
  std::set<char> who;
  for (const auto& f : c.faces) who.insert(f.photo[1]);
  return who.size() == 1 ? *who.begin() - '0' : -1;
}

const fk::ReviewCluster* cluster_with(const fk::ClusterReview& r, const std::string& key) {
  for (const auto* c : r.by_size())
    for (const auto& f : c->faces)
      if (f.key() == key) return c;
  return nullptr;
}

}  // namespace

TEST(ClusterReview, AFirstRunNumbersClustersLargestFirstAndTheStateRoundTrips) {
  const auto lib = people(3);
  fk::LibraryScan s = lib.scan(4);
  s.faces.erase(s.faces.begin() + 8, s.faces.begin() + 10);  // person 2 has two photos without a face
  fk::ClusterReview r;
  const auto u = r.update(s, options());
  EXPECT_EQ(u.new_faces, 10);
  EXPECT_EQ(u.new_clusters, 3);
  const auto v = r.by_size();
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0]->id, 1);
  EXPECT_EQ(v[2]->id, 3);
  EXPECT_EQ(v[2]->faces.size(), 2u);
  for (const auto* c : v) EXPECT_GE(person_of(*c), 0);
  const auto dir = fk_test::fresh_test_dir("fk_review");
  r.cache = dir / "faces";
  r.save(dir / "state.json");
  const auto back = fk::ClusterReview::load(dir / "state.json");
  ASSERT_EQ(back.by_size().size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(back.by_size()[k]->id, v[k]->id);
    ASSERT_EQ(back.by_size()[k]->faces.size(), v[k]->faces.size());
    EXPECT_EQ(back.by_size()[k]->faces[0].key(), v[k]->faces[0].key());
  }
  EXPECT_EQ(back.cache, dir / "faces");
  EXPECT_EQ(back.options.threshold, 0.5f);
  // Not a state: refused; no file: an empty state.
  std::ofstream(dir / "other.json") << R"({"clusters": []})";
  EXPECT_THROW(fk::ClusterReview::load(dir / "other.json"), fk::Error);
  std::ofstream(dir / "broken.json") << R"({"format": "facekit-cluster-state", "version": 1)";
  EXPECT_THROW(fk::ClusterReview::load(dir / "broken.json"), fk::Error);
  EXPECT_TRUE(fk::ClusterReview::load(dir / "none.json").by_size().empty());
  std::filesystem::remove_all(dir);
}

TEST(ClusterReview, NewPhotosOfANamedPersonJoinThemAndOtherClustersKeepTheirIds) {
  const auto lib = people(4);
  fk::ClusterReview r;
  r.update(lib.scan(3), options());
  const int ann = cluster_with(r, "p0_0.jpg#0")->id;
  const int bob = cluster_with(r, "p1_0.jpg#0")->id;
  r.name(ann, "Ann");
  EXPECT_EQ(r.find("Ann").id, ann);
  EXPECT_EQ(r.find("#" + std::to_string(bob)).id, bob);
  EXPECT_THROW(r.name(bob, " Ann"), fk::Error);  // not a valid name
  const auto u = r.update(lib.scan(5), options());
  EXPECT_EQ(u.new_faces, 8);
  EXPECT_EQ(u.joined, 8);
  EXPECT_EQ(u.new_clusters, 0);
  EXPECT_EQ(u.joined_named.at("Ann"), 2);
  EXPECT_EQ(r.find("Ann").faces.size(), 5u);
  EXPECT_EQ(cluster_with(r, "p1_4.jpg#0")->id, bob);
  // Photos removed from the library: their faces go, and so does a cluster left empty.
  fk::LibraryScan fewer = lib.scan(5);
  fewer.faces.erase(fewer.faces.begin() + 5, fewer.faces.begin() + 10);  // all of person 1's faces
  const auto u2 = r.update(fewer, options());
  EXPECT_EQ(u2.dropped, 5);
  EXPECT_THROW(r.cluster(bob), fk::Error);
  EXPECT_EQ(r.find("Ann").faces.size(), 5u);
  // A scan of another embedder is refused.
  fk::LibraryScan other = lib.scan(5);
  other.embedder = "another";
  EXPECT_THROW(r.update(other, options()), fk::Error);
}

TEST(ClusterReview, ANotConstraintSurvivesRerunsAndReclustering) {
  const auto lib = people(3);
  fk::ClusterReview r;
  r.update(lib.scan(5), options());
  const int ann = cluster_with(r, "p0_0.jpg#0")->id;
  r.name(ann, "Ann");
  r.not_same("p0_3.jpg#0", "Ann");
  EXPECT_EQ(cluster_with(r, "p0_3.jpg#0"), nullptr);
  EXPECT_EQ(r.unclustered().size(), 1u);
  ASSERT_EQ(r.constraints().size(), 1u);
  EXPECT_EQ(r.constraints()[0].person, "Ann");
  for (const bool recluster : {false, true}) {
    r.update(lib.scan(5), options(), {}, recluster);
    const auto* c = cluster_with(r, "p0_3.jpg#0");
    EXPECT_TRUE(c == nullptr || c->name != "Ann") << recluster;
    EXPECT_EQ(r.find("Ann").faces.size(), 4u) << recluster;
  }
  // A constraint on an unnamed cluster follows it when it is named; unknown faces and clusters are refused.
  const int other = cluster_with(r, "p1_0.jpg#0")->id;
  r.not_same("p1_2.jpg#0", std::to_string(other));
  r.name(other, "Bob");
  EXPECT_EQ(r.constraints().back().person, "Bob");
  EXPECT_THROW(r.not_same("nowhere.jpg#0", "Ann"), fk::Error);
  EXPECT_THROW(r.not_same("p1_1.jpg#0", "#99"), fk::Error);
}

TEST(ClusterReview, MergeAndSplitByHandOrWhereTheClusterFallsApart) {
  const auto lib = people(3);
  const auto s = lib.scan(5);
  fk::ClusterReview r;
  r.update(s, options());
  const int a = cluster_with(r, "p0_0.jpg#0")->id, b = cluster_with(r, "p1_0.jpg#0")->id;
  r.name(b, "Bea");
  r.merge(a, b);  // two people in one cluster, as a careless merge makes
  EXPECT_EQ(r.cluster(a).faces.size(), 10u);
  EXPECT_EQ(r.cluster(a).name, "Bea");
  EXPECT_THROW(r.cluster(b), fk::Error);
  EXPECT_THROW(r.merge(a, a), fk::Error);
  // Split where it falls apart: each part is one person again.
  const auto made = r.split(a, {}, &s, options());
  ASSERT_EQ(made.size(), 1u);
  EXPECT_GE(person_of(r.cluster(a)), 0);
  EXPECT_GE(person_of(r.cluster(made[0])), 0);
  EXPECT_NE(person_of(r.cluster(a)), person_of(r.cluster(made[0])));
  EXPECT_EQ(r.cluster(a).faces.size() + r.cluster(made[0]).faces.size(), 10u);
  // Split by hand: the listed faces leave.
  const int c = cluster_with(r, "p2_0.jpg#0")->id;
  const auto moved = r.split(c, {"p2_1.jpg#0", "p2_2.jpg#0"}, nullptr, options());
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(r.cluster(moved[0]).faces.size(), 2u);
  EXPECT_EQ(r.cluster(c).faces.size(), 3u);
  EXPECT_THROW(r.split(c, {"p0_0.jpg#0"}, nullptr, options()), fk::Error);  // not in it
  EXPECT_THROW(r.split(c, {}, nullptr, options()), fk::Error);              // no embeddings
  // Clusters named as two people do not merge; naming a cluster as another's person merges them.
  r.name(c, "Cy");
  EXPECT_THROW(r.merge(c, a), fk::Error);
  r.name(moved[0], "Cy");
  EXPECT_EQ(r.find("Cy").faces.size(), 5u);
}

TEST(ClusterReview, GalleryPeopleSeedTheirClusters) {
  const auto lib = people(3);
  const auto s = lib.scan(4);
  fk::SeedPerson seed{"Dee", {s.faces[4].embedding}};  // person 1's first face, as a gallery would hold it
  fk::ClusterReview r;
  const auto u = r.update(lib.scan(4), options(), {seed});
  EXPECT_EQ(r.find("Dee").faces.size(), 4u);
  EXPECT_EQ(person_of(r.find("Dee")), 1);
  EXPECT_EQ(u.joined_named.at("Dee"), 4);
  // Without agglomerative nothing can be kept.
  fk::ClusterOptions o = options();
  o.method = fk::ClusterMethod::kChineseWhispers;
  EXPECT_THROW(r.update(s, o), fk::Error);
}
