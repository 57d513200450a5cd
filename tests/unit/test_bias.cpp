// Unit tier: the bias report's threshold, per-group and cross-group rates, spreads, per-group thresholds and
// intervals, against figures worked out by hand on small lists; group tables from CSV; pairs from a report.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "facekit/bias.hpp"
#include "facekit/error.hpp"
#include "../test_dir.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

constexpr int A = 0, B = 1;

fk::GroupedPair imp(float d, int a, int b) { return {d, false, true, a, b}; }
fk::GroupedPair gen(float d, int a, int b) { return {d, true, true, a, b}; }

// Impostors: A-A 0.3 0.9 1.0 1.1; B-B 0.95 1.05 1.2 1.3; A-B 0.4 1.0.
// Genuine: A-A 0.2 0.5 0.95; B-B 0.1 0.85 0.89 1.0; A-B 0.3 (photos of one person put in two groups);
// one A-A genuine pair without a face.
std::vector<fk::GroupedPair> example() {
  std::vector<fk::GroupedPair> p = {imp(0.3f, A, A),  imp(0.9f, A, A),  imp(1.0f, A, A),  imp(1.1f, A, A),
                                    imp(0.95f, B, B), imp(1.05f, B, B), imp(1.2f, B, B),  imp(1.3f, B, B),
                                    imp(0.4f, A, B),  imp(1.0f, B, A),  gen(0.2f, A, A),  gen(0.5f, A, A),
                                    gen(0.95f, A, A), gen(0.1f, B, B),  gen(0.85f, B, B), gen(0.89f, B, B),
                                    gen(1.0f, B, B),  gen(0.3f, A, B)};
  p.push_back({0.f, true, false, A, A});
  return p;
}

}  // namespace

TEST(ThresholdAtFmr, LetsThroughAtMostTheAllowedImpostors) {
  const std::vector<float> d = {1.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f, 1.3f};
  // 10 impostors: FMR 0.1 allows one (0.5 matches, 0.6 must not).
  const float t1 = fk::threshold_at_fmr(d, 0.1);
  EXPECT_GE(t1, 0.5f);
  EXPECT_LT(t1, 0.6f);
  // None allowed: just under the nearest impostor.
  EXPECT_LT(fk::threshold_at_fmr(d, 0.05), 0.5f);
  EXPECT_GT(fk::threshold_at_fmr(d, 0.05), 0.4999f);
  EXPECT_LT(fk::threshold_at_fmr(d, 0.25), 0.7f);
  EXPECT_GE(fk::threshold_at_fmr(d, 0.25), 0.6f);
  // Two impostors tied at the cut: letting one through lets both through, so neither passes.
  EXPECT_LT(fk::threshold_at_fmr({0.5f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.f, 1.1f, 1.2f, 1.3f}, 0.1), 0.5f);
  EXPECT_THROW(fk::threshold_at_fmr({}, 0.1), fk::Error);
  EXPECT_THROW(fk::threshold_at_fmr(d, 1.5), fk::Error);
}

TEST(WilsonInterval, MatchesTheTextbookValues) {
  double lo = 0, hi = 0;
  // 0 of 4 at 95%: [0, z^2 / (n + z^2)] = [0, 0.4899].
  fk::wilson_interval(0, 4, 0.95, lo, hi);
  EXPECT_DOUBLE_EQ(lo, 0.0);
  EXPECT_NEAR(hi, 0.4899, 1e-4);
  // 5 of 10 at 95%: 0.5 +- 0.2634 (centre stays 0.5).
  fk::wilson_interval(5, 10, 0.95, lo, hi);
  EXPECT_NEAR(lo, 0.2366, 1e-4);
  EXPECT_NEAR(hi, 0.7634, 1e-4);
  fk::wilson_interval(0, 0, 0.95, lo, hi);
  EXPECT_TRUE(std::isnan(lo));
}

TEST(BiasReport, RatesPerGroupAtOneGlobalThreshold) {
  fk::BiasOptions o;
  o.target_fmr = 0.2;  // 10 impostors: two may pass, 0.3 (A-A) and 0.4 (A-B); 0.9 must not
  o.bootstrap = 2000;
  const auto r = fk::bias_report(example(), {"A", "B"}, "test", o);
  EXPECT_GE(r.threshold, 0.4f);
  EXPECT_LT(r.threshold, 0.9f);
  EXPECT_EQ(r.fmr.pairs, 10);
  EXPECT_EQ(r.fmr.errors, 2);
  // Genuine: 8 valid; 0.95 (A) and 1.0 (B) are missed.
  EXPECT_EQ(r.fnmr.pairs, 8);
  EXPECT_EQ(r.fnmr.errors, 2);
  EXPECT_EQ(r.mixed_genuine, 1);
  ASSERT_EQ(r.groups.size(), 2u);
  const auto& a = r.groups[0];
  const auto& b = r.groups[1];
  EXPECT_EQ(a.group, "A");
  EXPECT_EQ(a.fmr.pairs, 4);
  EXPECT_EQ(a.fmr.errors, 1);
  EXPECT_DOUBLE_EQ(a.fmr.value, 0.25);
  EXPECT_EQ(b.fmr.errors, 0);
  EXPECT_DOUBLE_EQ(a.fnmr.value, 1.0 / 3);
  EXPECT_DOUBLE_EQ(b.fnmr.value, 0.25);
  EXPECT_EQ(a.failures_to_acquire, 1);
  EXPECT_EQ(b.failures_to_acquire, 0);
  ASSERT_EQ(r.cross.size(), 1u);
  EXPECT_EQ(r.cross[0].fmr.pairs, 2);
  EXPECT_EQ(r.cross[0].fmr.errors, 1);
  // Spread: B has no false match, so max/min is infinite; among the groups with errors it is 1.
  EXPECT_TRUE(std::isinf(r.fmr_spread.ratio));
  EXPECT_EQ(r.fmr_spread.zero_groups, 1);
  EXPECT_DOUBLE_EQ(r.fmr_spread.ratio_nonzero, 1.0);
  EXPECT_EQ(r.fmr_spread.max_group, "A");
  EXPECT_NEAR(r.fnmr_spread.ratio, (1.0 / 3) / 0.25, 1e-12);
  // Own thresholds: each group has 4 impostors, so none may pass: A just under 0.3, B just under 0.95.
  EXPECT_LT(a.own_threshold, 0.3f);
  EXPECT_GE(a.own_threshold, 0.2f);
  EXPECT_LT(b.own_threshold, 0.95f);
  EXPECT_GE(b.own_threshold, 0.89f);
  EXPECT_EQ(a.own_fmr.errors, 0);
  EXPECT_EQ(a.own_fnmr.errors, 2);  // 0.5 and 0.95
  EXPECT_EQ(b.own_fnmr.errors, 1);  // 1.0
  EXPECT_NEAR(r.own_fnmr_spread.ratio, (2.0 / 3) / 0.25, 1e-12);
  // Intervals hold the value; no error seen: the bootstrap collapses, Wilson's does not.
  EXPECT_LE(a.fmr.boot_low, a.fmr.value);
  EXPECT_GE(a.fmr.boot_high, a.fmr.value);
  EXPECT_LT(a.fmr.boot_low, a.fmr.boot_high);
  EXPECT_EQ(b.fmr.boot_high, 0.0);
  EXPECT_NEAR(b.fmr.wilson_high, 0.4899, 1e-4);
  // The pairs name no people: the bootstrap falls back to pairs.
  EXPECT_EQ(r.resampled, fk::Resample::kPairs);
  EXPECT_EQ(r.subjects, 0);
}

// Ten people, every impostor pair between them; every false match involves person 0 (9 of the 45 pairs).
std::vector<fk::GroupedPair> one_person_makes_the_errors() {
  std::vector<fk::GroupedPair> p;
  for (int a = 0; a < 10; ++a)
    for (int b = a + 1; b < 10; ++b) {
      auto q = imp(a == 0 ? 0.1f : 1.0f, 0, 0);
      q.subject_a = a, q.subject_b = b;
      p.push_back(q);
    }
  for (int a = 0; a < 10; ++a) {  // one genuine pair per person; person 0's is missed
    auto q = gen(a == 0 ? 1.5f : 0.2f, 0, 0);
    q.subject_a = q.subject_b = a;
    p.push_back(q);
  }
  return p;
}

TEST(BiasReport, ResamplingPeopleMovesAPersonsPairsTogether) {
  fk::BiasOptions o;
  o.target_fmr = 0.2;  // floor(0.2 x 45) = 9 may pass: person 0's nine pairs at 0.1
  const auto p = one_person_makes_the_errors();
  const auto s = fk::bias_report(p, {"A"}, "t", o);
  EXPECT_EQ(s.resampled, fk::Resample::kSubjects);
  EXPECT_EQ(s.subjects, 10);
  EXPECT_EQ(s.fmr.errors, 9);
  EXPECT_DOUBLE_EQ(s.fmr.value, 0.2);
  EXPECT_DOUBLE_EQ(s.fnmr.value, 0.1);
  // A resample leaves person 0 out with probability 0.9^10 = 0.35: then no false match (and no missed genuine
  // pair) is seen, so both intervals reach 0. Over independent pairs, Binomial(45, 0.2) puts its 2.5% quantile
  // at 4/45.
  EXPECT_EQ(s.fmr.boot_low, 0.0);
  EXPECT_EQ(s.fnmr.boot_low, 0.0);
  EXPECT_GT(s.fmr.boot_high, 0.2);
  o.resample = fk::Resample::kPairs;
  const auto q = fk::bias_report(p, {"A"}, "t", o);
  EXPECT_EQ(q.resampled, fk::Resample::kPairs);
  EXPECT_NEAR(q.fmr.boot_low, 4.0 / 45, 1.5 / 45);
  EXPECT_GT(q.fmr.boot_low, 0.0);
  // The same figures from any number of threads.
  o.resample = fk::Resample::kSubjects;
  o.threads = 1;
  const auto t1 = fk::bias_report(p, {"A"}, "t", o);
  o.threads = 3;
  const auto t3 = fk::bias_report(p, {"A"}, "t", o);
  EXPECT_EQ(t1.fmr.boot_high, t3.fmr.boot_high);
  EXPECT_EQ(t1.groups[0].fnmr.boot_high, t3.groups[0].fnmr.boot_high);
  EXPECT_EQ(t1.fmr.boot_high, s.fmr.boot_high);
}

TEST(BiasReport, APairWithoutItsPeopleMakesTheBootstrapResamplePairs) {
  auto p = one_person_makes_the_errors();
  p[3].subject_b = -1;
  fk::BiasOptions o;
  o.target_fmr = 0.2;
  EXPECT_EQ(fk::bias_report(p, {"A"}, "t", o).resampled, fk::Resample::kPairs);
  p[3].valid = false;  // a failure to acquire is in no rate: its people do not matter
  EXPECT_EQ(fk::bias_report(p, {"A"}, "t", o).resampled, fk::Resample::kSubjects);
}

TEST(BiasReport, TheSameSeedGivesTheSameIntervals) {
  fk::BiasOptions o;
  o.target_fmr = 0.2;
  const auto r1 = fk::bias_report(example(), {"A", "B"}, "t", o);
  const auto r2 = fk::bias_report(example(), {"A", "B"}, "t", o);
  EXPECT_EQ(r1.groups[0].fnmr.boot_low, r2.groups[0].fnmr.boot_low);
  EXPECT_EQ(r1.groups[0].fnmr.boot_high, r2.groups[0].fnmr.boot_high);
  o.bootstrap = 0;
  const auto r3 = fk::bias_report(example(), {"A", "B"}, "t", o);
  EXPECT_EQ(r3.groups[0].fmr.boot_low, r3.groups[0].fmr.value);
}

TEST(BiasReport, RefusesBadInput) {
  auto p = example();
  p.push_back(imp(0.5f, 0, 2));  // group 2 of 2
  EXPECT_THROW(fk::bias_report(p, {"A", "B"}, "t"), fk::Error);
  EXPECT_THROW(fk::bias_report({gen(0.1f, 0, 0)}, {"A"}, "t"), fk::Error);  // no impostors
  fk::BiasOptions o;
  o.confidence = 1.0;
  EXPECT_THROW(fk::bias_report(example(), {"A", "B"}, "t", o), fk::Error);
}

TEST(GroupTable, ReadsImageAndPersonRowsAndFallsBackToThePerson) {
  const fs::path dir = fk_test::fresh_test_dir("facekit_bias");
  const fs::path f = dir / "groups.csv";
  std::ofstream(f) << "# who is in which group\nimage,gender,age\nAnn/Ann_0001.jpg,female,<30\nBob,male,50+\nAnn,female,30-49\n";
  const auto t = fk::read_group_csv(f);
  ASSERT_EQ(t.attributes, (std::vector<std::string>{"gender", "age"}));
  EXPECT_EQ(t.label("Ann/Ann_0001.jpg", 1), "<30");   // the photo's own row
  EXPECT_EQ(t.label("Ann/Ann_0002.jpg", 1), "30-49"); // the person's row
  EXPECT_EQ(t.label("Bob/Bob_0007.jpg", 0), "male");
  EXPECT_EQ(t.label("Cy/Cy_0001.jpg", 0), "");
  // Written and read back: the same labels.
  fk::write_group_csv(dir / "again.csv", t);
  const auto t2 = fk::read_group_csv(dir / "again.csv");
  EXPECT_EQ(t2.label("Ann/Ann_0001.jpg", 1), "<30");
  EXPECT_EQ(t2.label("Bob/Bob_0001.jpg", 1), "50+");
  std::ofstream(dir / "bad.csv") << "image,gender\nAnn/Ann_0001.jpg,female,extra\n";
  try {
    fk::read_group_csv(dir / "bad.csv");
    FAIL() << "a row with too many fields was read";
  } catch (const fk::Error& e) {
    EXPECT_NE(std::string(e.what()).find(":2:"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "twice.csv") << "image,gender\nBob,male\nBob,female\n";
  EXPECT_THROW(fk::read_group_csv(dir / "twice.csv"), fk::Error);
  EXPECT_THROW(fk::read_group_csv(dir / "missing.csv"), fk::Error);
  fs::remove_all(dir);
}

TEST(GroupedPairs, EveryPairOfThePhotosOrTheListedOnes) {
  // Three photos of Ann (group F), two of Bob (group M), one embedding axis each so distances are known.
  fk::LfwReport rep;
  const auto photo = [&](const std::string& p, std::vector<float> e) {
    fk::LfwImage im;
    im.path = p;
    im.faces = 1;
    im.picked = fk::Face{};
    im.embedding = std::move(e);
    rep.image_faces.push_back(im);
  };
  photo("Ann/Ann_0001.jpg", {1, 0});
  photo("Ann/Ann_0002.jpg", {1, 0});
  photo("Ann/Ann_0003.jpg", {0, 1});
  photo("Bob/Bob_0001.jpg", {0, 1});
  photo("Bob/Bob_0002.jpg", {});  // no face
  rep.pairs = {{"Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", true, 0}, {"Ann/Ann_0003.jpg", "Bob/Bob_0001.jpg", false, 0}};
  rep.scored = {{0.f, true, true, 0}, {0.f, false, true, 0}};
  fk::GroupTable t;
  t.attributes = {"gender"};
  t.by_person = {{"Ann", {"F"}}, {"Bob", {"M"}}};
  std::vector<std::string> names;
  std::int64_t left = -1;
  const auto listed = fk::grouped_pairs(rep, t, 0, false, names, &left);
  EXPECT_EQ(names, (std::vector<std::string>{"F", "M"}));
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(left, 0);
  EXPECT_EQ(listed[1].group_a, 0);
  EXPECT_EQ(listed[1].group_b, 1);
  // Each folder is one person for the bootstrap over people.
  EXPECT_EQ(listed[0].subject_a, listed[0].subject_b);
  EXPECT_EQ(listed[1].subject_a, listed[0].subject_a);
  EXPECT_NE(listed[1].subject_b, listed[1].subject_a);
  EXPECT_GE(listed[1].subject_b, 0);
  const auto all = fk::grouped_pairs(rep, t, 0, true, names);
  ASSERT_EQ(all.size(), 10u);  // 5 photos: 10 pairs
  int genuine = 0, invalid = 0;
  for (const auto& p : all) {
    genuine += p.same;
    invalid += !p.valid;
  }
  EXPECT_EQ(genuine, 4);  // Ann 3, Bob 1
  EXPECT_EQ(invalid, 4);  // every pair with Bob_0002
  EXPECT_NEAR(all[1].distance, std::sqrt(2.f), 1e-6);  // Ann_0001 vs Ann_0003
  for (const auto& p : all) EXPECT_EQ(p.same, p.subject_a == p.subject_b);
  // Unlabelled people are left out and counted.
  t.by_person.erase("Bob");
  names.clear();
  const auto some = fk::grouped_pairs(rep, t, 0, true, names, &left);
  EXPECT_EQ(some.size(), 3u);
  EXPECT_EQ(left, 7);
  EXPECT_EQ(fk::age_band(29.9f), "<30");
  EXPECT_EQ(fk::age_band(30.f), "30-49");
  EXPECT_EQ(fk::age_band(50.f), "50+");
}

TEST(BiasReport, AGroupWithoutImpostorsHasNoThresholdOfItsOwn) {
  // Group C has genuine pairs only: no own threshold, so no rates at one (not a 100% FNMR).
  auto p = example();
  p.push_back(gen(0.2f, 2, 2));
  p.push_back(gen(0.3f, 2, 2));
  fk::BiasOptions o;
  o.target_fmr = 0.2;
  const auto r = fk::bias_report(p, {"A", "B", "C"}, "t", o);
  ASSERT_EQ(r.groups.size(), 3u);
  const auto& c = r.groups[2];
  EXPECT_TRUE(std::isnan(c.own_threshold));
  EXPECT_EQ(c.own_fnmr.pairs, 0);
  EXPECT_EQ(c.fnmr.pairs, 2);
  EXPECT_EQ(c.fmr.pairs, 0);
  EXPECT_EQ(r.own_fnmr_spread.groups, 2);  // C is not in the spread at own thresholds
}
