// Unit tier: the LFW protocol's arithmetic on hand-made scores.
#include <fstream>

#include <cmath>

#include <gtest/gtest.h>

#include "facekit/error.hpp"
#include "facekit/eval.hpp"

namespace fk = facekit;

TEST(Verification, PerfectSeparationScoresOne) {
  std::vector<fk::ScoredPair> p;
  for (int f = 0; f < 10; ++f)
    for (int i = 0; i < 10; ++i) {
      p.push_back({0.2f + 0.01f * i, true, true, f});
      p.push_back({0.6f + 0.01f * i, false, true, f});
    }
  const auto r = fk::evaluate_verification(p, 10);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 1.0);
  EXPECT_DOUBLE_EQ(r.accuracy_std, 0.0);
  EXPECT_GT(r.best_threshold, 0.29f);
  EXPECT_LT(r.best_threshold, 0.6f);
  EXPECT_DOUBLE_EQ(r.tar_at_far_1e3, 1.0);
}

TEST(Verification, InvalidPairsCountAsErrors) {
  std::vector<fk::ScoredPair> p;
  for (int i = 0; i < 50; ++i) {
    p.push_back({0.1f, true, true, 0});
    p.push_back({0.9f, false, true, 0});
  }
  p[0].valid = false;  // a same pair whose face was not found
  p[1].valid = false;  // a different pair likewise: still wrong, though "reject" would have been right
  const auto r = fk::evaluate_verification(p, 1);
  EXPECT_DOUBLE_EQ(r.accuracy_mean, 98.0 / 100.0);
  EXPECT_EQ(r.invalid_pairs, 2);
}

TEST(Verification, ThresholdComesFromTheOtherFolds) {
  // Fold 0's own best threshold would be 0.55, but the other fold says 0.35: fold 0 must be scored with 0.35.
  std::vector<fk::ScoredPair> p = {
      {0.5f, true, true, 0}, {0.6f, false, true, 0},   // fold 0
      {0.3f, true, true, 1}, {0.4f, false, true, 1}};  // fold 1
  const auto r = fk::evaluate_verification(p, 2);
  EXPECT_NEAR(r.folds[0].threshold, 0.35f, 1e-6);
  EXPECT_DOUBLE_EQ(r.folds[0].accuracy, 0.5);   // the same pair at 0.5 is rejected
  EXPECT_NEAR(r.folds[1].threshold, 0.55f, 1e-6);
  EXPECT_DOUBLE_EQ(r.folds[1].accuracy, 0.5);  // at 0.55 the different pair at 0.4 is accepted
}

TEST(Verification, TarAtFar) {
  std::vector<fk::ScoredPair> p;
  for (int i = 0; i < 1000; ++i) p.push_back({0.5f + i * 1e-4f, false, true, 0});  // negatives 0.5 .. 0.6
  for (int i = 0; i < 100; ++i) p.push_back({0.45f + i * 1e-3f, true, true, 0});  // positives 0.45 .. 0.549
  float t = 0;
  // FAR 1e-3 of 1000 negatives: one may pass, so the threshold is the second-smallest negative (0.5001).
  const double tar = fk::tar_at_far(p, 1e-3, &t);
  EXPECT_NEAR(t, 0.5001f, 1e-6);
  EXPECT_NEAR(tar, 0.51, 1e-9);  // positives below 0.5001: 0.450 .. 0.500 (51 of 100)
}

TEST(LfwPairs, ParsesBothFormats) {
  const auto dir = std::filesystem::temp_directory_path() / ("fk_pairs_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "pairs.txt");
    f << "2\t1\nA_B\t1\t2\nC\t3\tD\t4\nE\t1\t12\nF\t1\tG\t2\n";
  }
  const auto p = fk::read_lfw_pairs(dir / "pairs.txt");
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[0].a, "A_B/A_B_0001.jpg");
  EXPECT_EQ(p[0].b, "A_B/A_B_0002.jpg");
  EXPECT_TRUE(p[0].same);
  EXPECT_EQ(p[1].b, "D/D_0004.jpg");
  EXPECT_FALSE(p[1].same);
  EXPECT_EQ(p[2].fold, 1);
  EXPECT_EQ(p[2].b, "E/E_0012.jpg");
  {
    std::ofstream f(dir / "dev.txt");
    f << "1\nA\t1\t2\nB\t1\tC\t1\n";
  }
  EXPECT_EQ(fk::read_lfw_pairs(dir / "dev.txt").size(), 2u);
  {
    std::ofstream f(dir / "bad.txt");
    f << "1\t2\nA\t1\t2\n";
  }
  EXPECT_THROW(fk::read_lfw_pairs(dir / "bad.txt"), fk::Error);  // header promises 4 pairs
  EXPECT_THROW(fk::read_lfw_pairs(dir / "missing.txt"), fk::Error);
  std::filesystem::remove_all(dir);
}

TEST(Fusion, FindsTheWeightsThatSeparate) {
  // Member A is right on the first half of the pairs and random-ish on the second; member B the opposite.
  // Equal weights separate all; either member alone cannot.
  std::vector<fk::ScoredPair> a, b;
  for (int i = 0; i < 40; ++i) {
    const bool same = i % 2 == 0;
    const bool first = i < 20;
    const float good = same ? 0.2f : 1.0f, bad = same ? 0.8f : 0.5f;
    a.push_back({first ? good : bad, same, true, 0});
    b.push_back({first ? bad : good, same, true, 0});
  }
  const auto fit = fk::fit_fusion({a, b}, 0.1);
  ASSERT_EQ(fit.weights.size(), 2u);
  EXPECT_NEAR(fit.weights[0] + fit.weights[1], 1.f, 1e-6);
  EXPECT_DOUBLE_EQ(fit.accuracy, 1.0);
  EXPECT_GT(fit.weights[0], 0.f);
  EXPECT_GT(fit.weights[1], 0.f);
  // The fused distance is sqrt(sum w d^2).
  const auto fused = fk::fuse_pairs({a, b}, {0.5f, 0.5f});
  EXPECT_NEAR(fused[0].distance, std::sqrt(0.5 * 0.04 + 0.5 * 0.64), 1e-6);
  EXPECT_THROW(fk::fuse_pairs({a, b}, {1.f}), fk::Error);
}

TEST(Fusion, WeighsMembersOfDifferentScalesEvenly) {
  // Two members that each rank half the pairs right; B's distances are 3x A's. The best fused ranking is the
  // same whatever B's scale, so the raw weight on B's squared distances must shrink by 9 when B is 3x larger.
  std::vector<fk::ScoredPair> a, b, b3;
  for (int i = 0; i < 200; ++i) {
    const bool same = i % 2 == 0, first = i < 100;
    const int j = i % 100;
    const float good = same ? 0.2f + 0.001f * j : 1.0f - 0.001f * j, bad = same ? 0.9f - 0.002f * j : 0.3f + 0.002f * j;
    a.push_back({first ? good : bad, same, true, 0});
    b.push_back({first ? bad : good, same, true, 0});
    b3.push_back({3 * b.back().distance, same, true, 0});
  }
  const auto fit = fk::fit_fusion({a, b}, 0.05), fit3 = fk::fit_fusion({a, b3}, 0.05);
  EXPECT_NEAR(fit.auc, fit3.auc, 1e-9);
  const double ratio = fit.weights[1] / fit.weights[0], ratio3 = fit3.weights[1] / fit3.weights[0];
  EXPECT_NEAR(ratio3 * 9, ratio, 1e-3 * ratio);
  EXPECT_NEAR(fit3.weights[0] + fit3.weights[1], 1.f, 1e-6);
  EXPECT_GT(fit.auc, std::max(fk::roc_auc(a), fk::roc_auc(b)));
}

TEST(Verification, AucAndEerByHand) {
  // Same pairs at 0.1, 0.3, 0.5; different pairs at 0.2, 0.6, 0.7.
  // AUC: pairs (same closer than different): 0.1 beats all 3, 0.3 beats 2, 0.5 beats 2 -> 7 of 9.
  std::vector<fk::ScoredPair> p = {{0.1f, true}, {0.3f, true}, {0.5f, true},
                                   {0.2f, false}, {0.6f, false}, {0.7f, false}};
  EXPECT_NEAR(fk::roc_auc(p), 7.0 / 9.0, 1e-9);
  // Accept d <= 0.5: FRR 0, FAR 1/3; d <= 0.3: FRR 1/3, FAR 1/3 -> EER 1/3 at 0.3 (or 0.2).
  float t = 0;
  EXPECT_NEAR(fk::equal_error_rate(p, &t), 1.0 / 3.0, 1e-9);
  EXPECT_TRUE(t == 0.2f || t == 0.3f) << t;
  // A tie between a same and a different pair counts half.
  std::vector<fk::ScoredPair> tie = {{0.4f, true}, {0.4f, false}};
  EXPECT_NEAR(fk::roc_auc(tie), 0.5, 1e-9);
  // Perfect separation: AUC 1, EER 0.
  std::vector<fk::ScoredPair> sep = {{0.1f, true}, {0.2f, true}, {0.8f, false}, {0.9f, false}};
  EXPECT_DOUBLE_EQ(fk::roc_auc(sep), 1.0);
  EXPECT_DOUBLE_EQ(fk::equal_error_rate(sep), 0.0);
}

TEST(Verification, AucCountsInvalidPairsAsErrors) {
  // A same pair without a face is never accepted; a different pair without one is always accepted.
  std::vector<fk::ScoredPair> p = {{0.1f, true}, {0.f, true, false}, {0.8f, false}, {0.f, false, false}};
  // Same 0.1 beats different 0.8 but not the invalid different (-inf); invalid same (+inf) beats none: 1 of 4.
  EXPECT_NEAR(fk::roc_auc(p), 1.0 / 4.0, 1e-9);
  const auto r = fk::evaluate_verification(p, 1);
  EXPECT_NEAR(r.auc, 0.25, 1e-9);
  EXPECT_NEAR(r.eer, 0.5, 1e-9);
}
