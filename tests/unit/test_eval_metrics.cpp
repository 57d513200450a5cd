// Unit tier: TAR at several FARs, the ROC curve, pair lists in CSV, score files, calibration maps and their
// error, each against figures worked out by hand on small lists.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "facekit/calibration.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "../test_dir.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {
// Same pairs at 0.1, 0.2, ..., different pairs at given distances.
std::vector<fk::ScoredPair> pairs(const std::vector<float>& same, const std::vector<float>& diff) {
  std::vector<fk::ScoredPair> p;
  for (float d : same) p.push_back({d, true, true, 0});
  for (float d : diff) p.push_back({d, false, true, 0});
  return p;
}
void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }
// A fresh folder named after the running test, removed afterwards.
struct TempDir {
  fs::path dir = fk_test::fresh_test_dir("facekit_eval");
  ~TempDir() { fs::remove_all(dir); }
  const fs::path& path() const { return dir; }
};
}  // namespace

TEST(TarAtFars, CountsTheImpostorsBehindEachRate) {
  // 4 same pairs, 20 impostors at 0.50, 0.51, ..., 0.69.
  std::vector<float> diff;
  for (int i = 0; i < 20; ++i) diff.push_back(0.5f + 0.01f * i);
  const auto p = pairs({0.2f, 0.45f, 0.505f, 0.8f}, diff);
  const auto r = fk::tar_at_fars(p, {0.1, 0.05, 0.01});
  ASSERT_EQ(r.size(), 3u);
  // FAR 0.1: 2 of 20 impostors may pass -> threshold at the third impostor (0.52): 0.2, 0.45, 0.505 pass.
  EXPECT_EQ(r[0].allowed_false_accepts, 2);
  EXPECT_TRUE(r[0].supported);
  EXPECT_NEAR(r[0].threshold, 0.52f, 1e-6);
  EXPECT_DOUBLE_EQ(r[0].tar, 3.0 / 4);
  // FAR 0.05: one may pass -> threshold 0.51.
  EXPECT_EQ(r[1].allowed_false_accepts, 1);
  EXPECT_DOUBLE_EQ(r[1].tar, 3.0 / 4);
  // FAR 0.01 needs 100 impostors: none may pass, threshold at the nearest impostor, flagged unsupported.
  EXPECT_EQ(r[2].allowed_false_accepts, 0);
  EXPECT_FALSE(r[2].supported);
  EXPECT_EQ(r[2].impostors, 20);
  EXPECT_DOUBLE_EQ(r[2].tar, 2.0 / 4);
}

TEST(RocCurve, WalksEveryDistinctThreshold) {
  const auto c = fk::roc_curve(pairs({0.1f, 0.3f}, {0.2f, 0.4f}));
  // Start (0,0), then at 0.1 (tar .5, far 0), 0.2 (.5, .5), 0.3 (1, .5), 0.4 (1, 1).
  ASSERT_EQ(c.size(), 5u);
  EXPECT_DOUBLE_EQ(c[0].tar, 0);
  EXPECT_DOUBLE_EQ(c[0].far, 0);
  EXPECT_DOUBLE_EQ(c[1].tar, 0.5);
  EXPECT_DOUBLE_EQ(c[1].far, 0);
  EXPECT_DOUBLE_EQ(c[2].far, 0.5);
  EXPECT_DOUBLE_EQ(c[3].tar, 1);
  EXPECT_DOUBLE_EQ(c[4].far, 1);
  // Trapezoids under these points give the AUC roc_auc computes (0.75 here).
  double area = 0;
  for (size_t i = 1; i < c.size(); ++i) area += (c[i].far - c[i - 1].far) * (c[i].tar + c[i - 1].tar) / 2;
  EXPECT_DOUBLE_EQ(area, fk::roc_auc(pairs({0.1f, 0.3f}, {0.2f, 0.4f})));
}

TEST(RocCurve, InvalidDifferentPairsAreAlwaysAccepted) {
  auto p = pairs({0.1f}, {0.5f, 0.6f});
  p[1].valid = false;
  const auto c = fk::roc_curve(p);
  EXPECT_DOUBLE_EQ(c.front().far, 0.5);  // accepted even below every distance
}

TEST(PairLists, ReadsCsvWithHeaderFoldsAndQuotes) {
  TempDir dir;
  const auto f = dir.path() / "pairs.csv";
  write(f, "# my pairs\na,b,same,fold\nx/1.jpg,x/2.jpg,1,7\n\"y,1.jpg\",z.jpg,no,3\n/abs/p.png , q.png , TRUE , 7\n");
  const auto p = fk::read_pairs(f);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].a, "x/1.jpg");
  EXPECT_TRUE(p[0].same);
  EXPECT_EQ(p[1].a, "y,1.jpg");
  EXPECT_FALSE(p[1].same);
  EXPECT_EQ(p[2].a, "/abs/p.png");
  EXPECT_TRUE(p[2].same);
  // Folds 3 and 7 renumbered in order of value.
  EXPECT_EQ(p[0].fold, 1);
  EXPECT_EQ(p[1].fold, 0);
  EXPECT_EQ(p[2].fold, 1);
}

TEST(PairLists, CsvWithoutFoldsGetsRoundRobinFolds) {
  TempDir dir;
  const auto f = dir.path() / "pairs.csv";
  write(f, "a.jpg,b.jpg,1\nc.jpg,d.jpg,0\ne.jpg,f.jpg,1\n");
  const auto p = fk::read_pairs(f, 2);
  EXPECT_EQ(p[0].fold, 0);
  EXPECT_EQ(p[1].fold, 1);
  EXPECT_EQ(p[2].fold, 0);
}

TEST(PairLists, MalformedCsvNamesTheLine) {
  TempDir dir;
  const auto f = dir.path() / "bad.csv";
  write(f, "a.jpg,b.jpg,1\nc.jpg,d.jpg,maybe\n");
  try {
    fk::read_pairs(f);
    FAIL() << "accepted a bad flag";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(":2:"), std::string::npos) << e.what();
  }
  write(f, "a.jpg,b.jpg,1,0\nc.jpg,d.jpg,0\n");
  EXPECT_THROW(fk::read_pairs(f), fk::Error);  // folds given for some pairs only
  write(f, "a.jpg,b.jpg\n");
  EXPECT_THROW(fk::read_pairs(f), fk::Error);
  EXPECT_THROW(fk::read_pairs(dir.path() / "none.csv"), fk::Error);
}

TEST(PairLists, LfwFormatStillReads) {
  TempDir dir;
  const auto f = dir.path() / "pairs.txt";
  write(f, "1\t1\nAbe\t1\t2\nAbe\t1\tBob\t3\n");
  const auto p = fk::read_pairs(f);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[1].b, "Bob/Bob_0003.jpg");
}

TEST(PairScores, RoundTripThroughCsv) {
  TempDir dir;
  std::vector<fk::LfwPair> lp = {{"a,1.jpg", "b.jpg", true, 0}, {"c.jpg", "d.jpg", false, 1}};
  std::vector<fk::ScoredPair> s = {{0.25f, true, true, 0}, {0.f, false, false, 1}};
  fk::write_pair_scores(dir.path() / "s.csv", lp, s, {0.9, 0.0});
  const auto back = fk::read_pair_scores(dir.path() / "s.csv");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_NEAR(back[0].distance, 0.25f, 1e-6);
  EXPECT_TRUE(back[0].same);
  EXPECT_FALSE(back[1].valid);
  EXPECT_EQ(back[1].fold, 1);
}

TEST(Calibration, PlattOnAHandMadeSetIsMonotoneAndCentred) {
  // Symmetric about 0.5: same pairs at 0.3..0.55, different at 0.45..0.7, mirrored; P(same) must be 1/2 at 0.5.
  std::vector<fk::LabelledScore> s;
  for (float d : {0.3f, 0.35f, 0.4f, 0.45f, 0.5f, 0.55f}) s.push_back({d, true});
  for (float d : {0.45f, 0.5f, 0.55f, 0.6f, 0.65f, 0.7f}) s.push_back({d, false});
  const auto c = fk::fit_platt(s);
  EXPECT_EQ(c.method, "platt");
  EXPECT_GT(c.a, 0);
  EXPECT_NEAR(c.probability_at(0.5f), 0.5, 1e-6);
  EXPECT_GT(c.probability_at(0.3f), 0.8);
  EXPECT_LT(c.probability_at(0.7f), 0.2);
  // The gradient of the smoothed cross-entropy vanishes at the fit: sum (t_i - p_i) = 0 and sum d_i (t_i - p_i) = 0.
  const double hi = 7.0 / 8, lo = 1.0 / 8;
  double g1 = 0, g2 = 0;
  for (const auto& x : s) {
    const double r = (x.same ? hi : lo) - c.probability_at(x.distance);
    g1 += x.distance * r;
    g2 += r;
  }
  EXPECT_NEAR(g1, 0, 1e-6);
  EXPECT_NEAR(g2, 0, 1e-6);
}

TEST(Calibration, IsotonicPoolsViolatorsByHand) {
  // Distances 0.1 (same), 0.2 (diff), 0.3 (same), 0.4 (diff): the middle two violate the order and pool.
  const std::vector<fk::LabelledScore> s = {{0.1f, true}, {0.2f, false}, {0.3f, true}, {0.4f, false}};
  const auto c = fk::fit_isotonic(s);
  ASSERT_EQ(c.distance.size(), 3u);
  EXPECT_NEAR(c.distance[1], 0.25f, 1e-6);
  EXPECT_NEAR(c.probability[0], 1.5 / 2, 1e-6);   // (1 + 0.5) / (1 + 1)
  EXPECT_NEAR(c.probability[1], 1.5 / 3, 1e-6);   // (1 + 0.5) / (2 + 1)
  EXPECT_NEAR(c.probability[2], 0.5 / 2, 1e-6);   // (0 + 0.5) / (1 + 1)
  EXPECT_NEAR(c.probability_at(0.175f), (0.75 + 0.5) / 2, 1e-6);  // halfway between two knots
  EXPECT_NEAR(c.probability_at(0.05f), 0.75, 1e-6);                // flat beyond the ends
}

TEST(Calibration, NeedsBothKindsOfPair) {
  EXPECT_THROW(fk::fit_platt({{0.1f, true}, {0.2f, true}}), fk::Error);
  EXPECT_THROW(fk::fit_isotonic({{0.1f, false}}), fk::Error);
  EXPECT_THROW(fk::ScoreCalibration{}.probability_at(0.3f), fk::Error);
}

TEST(Calibration, ExpectedErrorByHand) {
  // Bin [0.2, 0.3): predictions 0.2, 0.2, both different -> |0 - 0.2| weighted 2/4.
  // Bin [0.9, 1.0]: predictions 0.9, 1.0 (the last bin holds 1.0), one same -> |0.5 - 0.95| weighted 2/4.
  const std::vector<double> pred = {0.2, 0.2, 0.9, 1.0};
  const std::vector<fk::LabelledScore> s = {{0, false}, {0, false}, {0, true}, {0, false}};
  std::vector<fk::ReliabilityBin> bins;
  const double ece = fk::expected_calibration_error(pred, s, 10, &bins);
  EXPECT_NEAR(ece, 0.5 * 0.2 + 0.5 * 0.45, 1e-12);
  EXPECT_EQ(bins[2].count, 2);
  EXPECT_EQ(bins[9].count, 2);
  EXPECT_NEAR(bins[9].fraction_same, 0.5, 1e-12);
  EXPECT_THROW(fk::expected_calibration_error({0.5}, {}, 10), fk::Error);
}

TEST(Calibration, FileRoundTripAndRefusals) {
  TempDir dir;
  fk::ScoreCalibration c;
  c.method = "isotonic";
  c.distance = {0.2f, 0.4f};
  c.probability = {0.9f, 0.1f};
  c.fitted_on = "test";
  c.pairs = 10;
  fk::save_calibration(dir.path() / "c.json", c, "dlib_resnet");
  const auto back = fk::load_calibration(dir.path() / "c.json");
  EXPECT_EQ(back.method, "isotonic");
  EXPECT_NEAR(back.probability_at(0.3f), 0.5, 1e-6);
  write(dir.path() / "bad.json", R"({"calibration": {"method": "isotonic", "distance": [0.4, 0.2], "probability": [0.9, 0.1]}})");
  EXPECT_THROW(fk::load_calibration(dir.path() / "bad.json"), fk::Error);  // distances must rise
  write(dir.path() / "bad.json", R"({"calibration": {"method": "magic"}})");
  EXPECT_THROW(fk::load_calibration(dir.path() / "bad.json"), fk::Error);
  write(dir.path() / "bad.json", "not json");
  EXPECT_THROW(fk::load_calibration(dir.path() / "bad.json"), fk::Error);
}

TEST(Plots, RocAndReliabilityPngsAreWritten) {
  TempDir dir;
  std::vector<float> same, diff;
  for (int i = 0; i < 200; ++i) same.push_back(0.3f + 0.001f * i), diff.push_back(0.45f + 0.002f * i);
  fk::write_roc_plot(dir.path() / "roc.png", {{"a", pairs(same, diff)}, {"b", pairs(diff, same)}}, "t");
  const cv::Mat img = cv::imread((dir.path() / "roc.png").string());
  ASSERT_FALSE(img.empty());
  EXPECT_GT(img.cols, img.rows);
  fk::write_reliability_plot(dir.path() / "rel.png", {{"x", {{0, 0.5, 10, 0.3, 0.4}, {0.5, 1, 10, 0.7, 0.6}}, 0.1}});
  EXPECT_FALSE(cv::imread((dir.path() / "rel.png").string()).empty());
  EXPECT_THROW(fk::write_roc_plot(dir.path() / "x.png", {}), fk::Error);
  EXPECT_THROW(fk::write_roc_plot(dir.path() / "no" / "such" / "dir.png", {{"a", pairs(same, diff)}}), fk::Error);
}
