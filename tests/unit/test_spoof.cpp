// Anti-spoofing without models: ISO 30107-3 metrics against hand-computed values, threshold calibration and
// states, the logistic fits, the texture features on synthetic images, and the texture/fusion checkers built
// from manifests written here.
#include <gtest/gtest.h>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/spoof.hpp"
#include "facekit/spoof_eval.hpp"
#include "spoof/spoof_models.hpp"
#include "../error_code.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

using fk_test::error_code_of;

// Bona fide and attack scores small enough to work every figure out by hand (see each test).
const std::vector<float> kBona = {0.9f, 0.8f, 0.7f, 0.4f};
const std::vector<float> kAttacks = {0.1f, 0.3f, 0.5f, 0.75f, 0.2f};

}  // namespace

TEST(PadMetrics, RatesAtAThresholdMatchHandCount) {
  // t = 0.6: attacks >= 0.6 are {0.75}: APCER 1/5; bona fide < 0.6 are {0.4}: BPCER 1/4.
  const auto m = fk::pad_metrics(kBona, kAttacks, 0.6f);
  EXPECT_DOUBLE_EQ(m.apcer, 0.2);
  EXPECT_DOUBLE_EQ(m.bpcer, 0.25);
  EXPECT_DOUBLE_EQ(m.acer, 0.225);
  // A score equal to the threshold is accepted as bona fide.
  const auto at = fk::pad_metrics(kBona, kAttacks, 0.75f);
  EXPECT_DOUBLE_EQ(at.apcer, 0.2);
  EXPECT_DOUBLE_EQ(at.bpcer, 0.5);
}

TEST(PadMetrics, BpcerAtApcerTargets) {
  // APCER <= 20%: one attack (0.75) may pass; the threshold sits just above 0.5, rejecting bona fide 0.4.
  auto m = fk::pad_at_apcer(kBona, kAttacks, 0.2);
  EXPECT_DOUBLE_EQ(m.apcer, 0.2);
  EXPECT_DOUBLE_EQ(m.bpcer, 0.25);
  EXPECT_GT(m.threshold, 0.5f);
  EXPECT_LE(m.threshold, 0.5001f);
  // APCER 0: above 0.75, so 0.7 and 0.4 are rejected.
  m = fk::pad_at_apcer(kBona, kAttacks, 0.0);
  EXPECT_DOUBLE_EQ(m.apcer, 0.0);
  EXPECT_DOUBLE_EQ(m.bpcer, 0.5);
  // 5% of five attacks rounds down to none allowed: same point as 0.
  EXPECT_DOUBLE_EQ(fk::pad_at_apcer(kBona, kAttacks, 0.05).bpcer, 0.5);
  // Everything may pass: nothing rejected.
  m = fk::pad_at_apcer(kBona, kAttacks, 1.0);
  EXPECT_DOUBLE_EQ(m.apcer, 1.0);
  EXPECT_DOUBLE_EQ(m.bpcer, 0.0);
}

TEST(PadMetrics, EqualErrorThresholdAndAuc) {
  // Sorted: .1a .2a .3a .4b .5a .7b .75a .8b .9b. Between .5 and .7: APCER .2, BPCER .25, the closest pair.
  EXPECT_NEAR(fk::pad_eer_threshold(kBona, kAttacks), 0.6f, 1e-6);
  // Bona fide above attacks: 0.9 -> 5, 0.8 -> 5, 0.7 -> 4, 0.4 -> 3; 17 of 20 pairs.
  EXPECT_DOUBLE_EQ(fk::pad_auc(kBona, kAttacks), 0.85);
  // Ties count one half.
  EXPECT_DOUBLE_EQ(fk::pad_auc({0.5f}, {0.5f}), 0.5);
  EXPECT_DOUBLE_EQ(fk::pad_auc({0.5f, 0.6f}, {0.1f}), 1.0);
}

TEST(PadMetrics, RocRunsFromNothingAcceptedToEverythingAccepted) {
  const auto roc = fk::pad_roc(kBona, kAttacks);
  ASSERT_EQ(roc.size(), 10u);  // nine distinct scores: ten cuts
  EXPECT_DOUBLE_EQ(roc.front().apcer, 0.0);
  EXPECT_DOUBLE_EQ(roc.front().bpcer, 1.0);
  EXPECT_DOUBLE_EQ(roc.back().apcer, 1.0);
  EXPECT_DOUBLE_EQ(roc.back().bpcer, 0.0);
  for (size_t i = 1; i < roc.size(); ++i) {
    EXPECT_LT(roc[i].threshold, roc[i - 1].threshold);
    EXPECT_GE(roc[i].apcer, roc[i - 1].apcer);
    EXPECT_LE(roc[i].bpcer, roc[i - 1].bpcer);
  }
}

TEST(PadMetrics, EmptyListsAreInvalid) {
  EXPECT_EQ(error_code_of([] { fk::pad_metrics({}, kAttacks, 0.5f); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([] { fk::pad_auc(kBona, {}); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([] { fk::calibrate_spoof_thresholds(kBona, kAttacks, 1.0); }),
            fk::ErrorCode::kInvalidArgument);
}

TEST(SpoofThresholds, CalibrationGivesAnUncertainBandWhereClassesOverlap) {
  // Decision at the equal-error point 0.6. APCER <= 20% needs t > 0.5, below the decision: live = 0.6.
  // BPCER <= 20% of 4 allows no rejection: the lowest bona fide score, 0.4, is the spoof threshold.
  const auto t = fk::calibrate_spoof_thresholds(kBona, kAttacks, 0.2);
  EXPECT_NEAR(t.decision, 0.6f, 1e-6);
  EXPECT_NEAR(t.live, 0.6f, 1e-6);
  EXPECT_FLOAT_EQ(t.spoof, 0.4f);
  EXPECT_EQ(t.state(0.65f), fk::SpoofState::kLive);
  EXPECT_EQ(t.state(0.5f), fk::SpoofState::kUncertain);
  EXPECT_EQ(t.state(0.4f), fk::SpoofState::kUncertain);  // at the spoof threshold: not below it
  EXPECT_EQ(t.state(0.39f), fk::SpoofState::kSpoof);
  // Separated classes: no band.
  const auto s = fk::calibrate_spoof_thresholds({0.8f, 0.9f}, {0.1f, 0.2f}, 0.05);
  EXPECT_FLOAT_EQ(s.live, s.decision);
  EXPECT_FLOAT_EQ(s.spoof, s.decision);
  EXPECT_GT(s.decision, 0.2f);
  EXPECT_LT(s.decision, 0.8f);
  EXPECT_STREQ(fk::to_string(fk::SpoofState::kUncertain), "uncertain");
}

TEST(Logistic, SeparatesAndIsOrientedTowardsTrue) {
  const std::vector<std::vector<float>> x = {{-2}, {-1}, {-1.5}, {1}, {2}, {1.5}};
  const std::vector<bool> y = {false, false, false, true, true, true};
  const auto w = fk::fit_logistic(x, y, 10.0);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_GT(w[0], 0.f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(w[0] * x[i][0] + w[1] > 0, y[i]) << i;
  std::vector<bool> flipped(y.size());
  for (size_t i = 0; i < y.size(); ++i) flipped[i] = !y[i];
  EXPECT_LT(fk::fit_logistic(x, flipped, 10.0)[0], 0.f);
  EXPECT_EQ(error_code_of([&] { fk::fit_logistic(x, std::vector<bool>(6, true), 1.0); }),
            fk::ErrorCode::kInvalidArgument);
}

TEST(Logistic, MonotoneFitDropsAColumnThatPointsTheWrongWay) {
  // Column 0 says "true" when high, column 1 is its mirror: a free fit splits the weight as (+a, -a).
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.f, 0.3f);
  std::vector<std::vector<float>> x;
  std::vector<bool> y;
  for (int i = 0; i < 60; ++i) {
    const bool live = i % 2 == 0;
    const float v = (live ? 1.f : -1.f) + noise(rng);
    x.push_back({v, -v + noise(rng)});
    y.push_back(live);
  }
  EXPECT_LT(fk::fit_logistic(x, y, 1.0)[1], 0.f);
  const auto w = fk::fit_monotone_logistic(x, y, 1.0);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_GT(w[0], 0.f);
  EXPECT_EQ(w[1], 0.f);
}

TEST(Logistic, MonotoneFitWithOnlyWrongWayColumnsKeepsJustTheBias) {
  const std::vector<std::vector<float>> x = {{2}, {1}, {-1}, {-2}};
  const std::vector<bool> y = {false, false, true, true};
  const auto w = fk::fit_monotone_logistic(x, y, 1.0);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0], 0.f);
  EXPECT_NEAR(w[1], 0.f, 1e-3);  // balanced classes: no preference left
}

TEST(SpoofScores, ThresholdsMustBeOrdered) {
  fk::ModelManifest m;
  m.name = "t";
  m.spoof.threshold = 0.5f;
  m.spoof.live_threshold = 0.4f;  // below the decision threshold
  m.spoof.spoof_threshold = 0.3f;
  EXPECT_EQ(error_code_of([&] { fk::detail::thresholds_of(m); }), fk::ErrorCode::kModelCorrupt);
  m.spoof.live_threshold = 0.6f;
  EXPECT_FLOAT_EQ(fk::detail::thresholds_of(m).live, 0.6f);
}

TEST(SpoofScores, TextureAndFusionFormulas) {
  fk::ModelManifest m;
  m.name = "f";
  m.members = {{"a", 1.f}, {"b", 0.f}, {"c", 2.f}};
  m.spoof.bias = -0.5f;
  const double z = -0.5 + std::log(0.8 / 0.2) + 2 * std::log(0.6 / 0.4);
  EXPECT_NEAR(fk::detail::fusion_score(m, {0.8f, 0.1f, 0.6f}), 1 / (1 + std::exp(-z)), 1e-6);
  EXPECT_EQ(error_code_of([&] { fk::detail::fusion_score(m, {0.5f}); }), fk::ErrorCode::kInvalidArgument);
  // Saturated member scores stay finite.
  EXPECT_TRUE(std::isfinite(fk::detail::fusion_score(m, {1.f, 0.f, 1.f})));

  fk::ModelManifest::Spoof t;
  t.feature_mean = {1.f, 2.f};
  t.feature_std = {2.f, 0.5f};
  t.weights = {1.f, -1.f};
  t.bias = 0.25f;
  // z = 0.25 + (3-1)/2 - (2.5-2)/0.5 = 0.25
  EXPECT_NEAR(fk::detail::texture_score(t, {3.f, 2.5f}), 1 / (1 + std::exp(-0.25)), 1e-6);
  EXPECT_EQ(error_code_of([&] { fk::detail::texture_score(t, {1.f}); }), fk::ErrorCode::kModelCorrupt);
}

TEST(TextureFeatures, HistogramsAndSizes) {
  cv::Mat img(90, 70, CV_8UC3);
  cv::randu(img, 0, 255);
  const auto f = fk::texture_features(img);
  ASSERT_EQ(static_cast<int>(f.size()), fk::texture_feature_size());
  for (int p = 0; p < 3; ++p) {
    double sum = 0;
    for (int b = 0; b < 59; ++b) sum += f[p * 59 + b];
    EXPECT_NEAR(sum, 1.0, 1e-5) << "plane " << p;
  }
  // A flat image: every neighbour equals the centre, so all of each plane's mass is in one (uniform) bin.
  const auto flat = fk::texture_features(cv::Mat(64, 64, CV_8UC3, cv::Scalar(120, 90, 60)));
  for (int p = 0; p < 3; ++p) EXPECT_FLOAT_EQ(*std::max_element(flat.begin() + p * 59, flat.begin() + (p + 1) * 59), 1.f);
  EXPECT_EQ(error_code_of([] { fk::texture_features(cv::Mat()); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([] { fk::texture_features(cv::Mat(8, 8, CV_8UC1)); }),
            fk::ErrorCode::kInvalidArgument);
}

TEST(TextureFeatures, GroupsSelectSlicesOfTheFullVector) {
  cv::Mat img(100, 80, CV_8UC3);
  cv::randu(img, 0, 255);
  const auto all = fk::texture_features(img);
  EXPECT_EQ(fk::texture_feature_size({"lbp"}), 177);
  EXPECT_EQ(fk::texture_feature_size({"spectrum"}), 7);
  EXPECT_EQ(fk::texture_feature_size({"sharpness"}), 1);
  EXPECT_EQ(fk::texture_feature_size({"chroma"}), 4);
  EXPECT_EQ(fk::texture_feature_size(), 189);
  // Order follows texture_feature_groups() whatever order the caller lists them in.
  const auto some = fk::texture_features(img, {"chroma", "sharpness"});
  ASSERT_EQ(some.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_FLOAT_EQ(some[i], all[184 + i]) << i;
  EXPECT_EQ(error_code_of([&] { fk::texture_features(img, {"colour"}); }), fk::ErrorCode::kInvalidArgument);
}

TEST(TextureFeatures, BlurLowersSharpnessAndHighFrequencyEnergy) {
  cv::Mat img(128, 128, CV_8UC3);
  cv::randn(img, cv::Scalar::all(128), cv::Scalar::all(40));
  cv::Mat blurred;
  cv::GaussianBlur(img, blurred, {0, 0}, 2.0);
  const auto a = fk::texture_features(img), b = fk::texture_features(blurred);
  const int sharp = 3 * 59 + 6 + 1;  // after the LBP histograms, 6 bands and the peak ratio
  EXPECT_GT(a[sharp], b[sharp] + 0.5f);
  const int top_band = 3 * 59 + 5;
  EXPECT_GT(a[top_band], b[top_band] + 1.f);
}

TEST(TextureFeatures, AGratingLikeScreenMoireRaisesThePeakRatio) {
  // Same smooth shading with random fine texture, with and without a fine diagonal grating (period 3.3 px).
  cv::Mat noise(128, 128, CV_32F);
  cv::randn(noise, 0, 6);
  cv::Mat base(128, 128, CV_32F), grating(128, 128, CV_32F);
  for (int y = 0; y < 128; ++y)
    for (int x = 0; x < 128; ++x) {
      base.at<float>(y, x) = 100 + 0.5f * x + noise.at<float>(y, x);
      grating.at<float>(y, x) = base.at<float>(y, x) + 20 * std::sin(2 * M_PI * (x + y) / 3.3);
    }
  auto rgb = [](const cv::Mat& g) {
    cv::Mat u, c;
    g.convertTo(u, CV_8U);
    cv::cvtColor(u, c, cv::COLOR_GRAY2RGB);
    return c;
  };
  const int peak = 3 * 59 + 6;
  EXPECT_GT(fk::texture_features(rgb(grating))[peak], fk::texture_features(rgb(base))[peak] + 0.5f);
}

TEST(SpoofCrop, RegionBorderAndSize) {
  cv::Mat img(10, 12, CV_8UC3);
  cv::randu(img, 0, 255);
  const auto inside = fk::spoof_crop(img, {2, 3, 4, 5}, 1.f, 0);
  ASSERT_EQ(inside.size(), cv::Size(4, 5));
  EXPECT_EQ(cv::norm(inside, img(cv::Rect(2, 3, 4, 5)), cv::NORM_INF), 0);
  // Half outside: outside pixels repeat the border.
  const auto corner = fk::spoof_crop(img, {-2, -2, 4, 4}, 1.f, 0);
  ASSERT_EQ(corner.size(), cv::Size(4, 4));
  EXPECT_EQ(corner.at<cv::Vec3b>(0, 0), img.at<cv::Vec3b>(0, 0));
  EXPECT_EQ(corner.at<cv::Vec3b>(3, 3), img.at<cv::Vec3b>(1, 1));
  // Scaled about the centre, resized.
  EXPECT_EQ(fk::spoof_crop(img, {4, 4, 2, 2}, 2.f, 0).size(), cv::Size(4, 4));
  EXPECT_EQ(fk::spoof_crop(img, {0, 0, 12, 10}, 1.f, 32).size(), cv::Size(32, 32));
  EXPECT_EQ(error_code_of([&] { fk::spoof_crop(img, {20, 20, 4, 4}, 1.f, 0); }),
            fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { fk::spoof_crop(img, {0, 0, 0, 4}, 1.f, 0); }),
            fk::ErrorCode::kInvalidArgument);
}

namespace {

// A folder with a texture manifest (all weights zero: P(live) = sigmoid(bias)) and a fusion of it.
struct ManifestDir {
  fs::path path = fs::temp_directory_path() / ("facekit_spoof_" + std::to_string(::getpid()));
  ManifestDir(float texture_bias, float fusion_weight, float fusion_bias) {
    fs::create_directories(path);
    const int n = fk::texture_feature_size();
    nlohmann::json thresholds = {{"decision", 0.5}, {"live", 0.6}, {"spoof", 0.4}, {"source", "test"}};
    nlohmann::json tex = {{"name", "spoof-texture"}, {"kind", "spoof"}, {"arch", "texture"}, {"files", nlohmann::json::array()},
                          {"spoof", {{"feature_mean", std::vector<float>(n, 0.f)}, {"feature_std", std::vector<float>(n, 1.f)},
                                     {"weights", std::vector<float>(n, 0.f)}, {"bias", texture_bias}, {"thresholds", thresholds}}}};
    nlohmann::json fusion = {{"name", "spoof-combined"}, {"kind", "spoof"}, {"arch", "fusion"}, {"files", nlohmann::json::array()},
                             {"members", {{{"name", "spoof-texture"}, {"weight", fusion_weight}}}},
                             {"spoof", {{"bias", fusion_bias}, {"thresholds", thresholds}}}};
    std::ofstream(path / "spoof-texture.json") << tex.dump();
    std::ofstream(path / "spoof-combined.json") << fusion.dump();
  }
  ~ManifestDir() { fs::remove_all(path); }
};

}  // namespace

TEST(SpoofChecker, TextureAndFusionFromManifests) {
  ManifestDir dir(0.5f, 2.f, -0.25f);
  fk::SpoofOptions o;
  o.manifests = dir.path;
  cv::Mat img(60, 50, CV_8UC3);
  cv::randu(img, 0, 255);
  fk::Face face;
  face.box = {5, 5, 40, 50};

  const auto tex = fk::create_spoof_checker("texture", o);
  EXPECT_EQ(tex->name(), "spoof-texture");
  const auto r = tex->check(img, face);
  const float p = 1 / (1 + std::exp(-0.5f));
  EXPECT_NEAR(r.score, p, 1e-6);
  EXPECT_EQ(r.state, fk::SpoofState::kLive);  // 0.62 >= live 0.6
  ASSERT_EQ(r.signals.size(), 1u);
  EXPECT_EQ(r.signals[0].name, "spoof-texture");

  const auto fused = fk::create_spoof_checker("combined", o);
  const auto f = fused->check(img, face);
  // sigmoid(-0.25 + 2 * logit(p)) = sigmoid(-0.25 + 2 * 0.5)
  EXPECT_NEAR(f.score, 1 / (1 + std::exp(-0.75f)), 1e-5);
  ASSERT_EQ(f.signals.size(), 1u);
  EXPECT_NEAR(f.signals[0].score, p, 1e-6);
  EXPECT_FLOAT_EQ(fused->thresholds().live, 0.6f);

  EXPECT_EQ(error_code_of([&] { tex->check(cv::Mat(), face); }), fk::ErrorCode::kInvalidArgument);
}

TEST(SpoofChecker, FactoryErrors) {
  EXPECT_EQ(error_code_of([] { fk::create_spoof_checker("no_such_checker"); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([] { fk::create_spoof_checker("dlib_resnet"); }), fk::ErrorCode::kInvalidArgument);
  // Committed manifests: thresholds ordered, every signal named by spoof_signal_names() exists.
  for (const auto& n : fk::spoof_signal_names()) {
    const auto m = fk::load_manifest(n);
    EXPECT_EQ(m.kind, "spoof");
    EXPECT_LE(m.spoof.spoof_threshold, m.spoof.threshold);
    EXPECT_LE(m.spoof.threshold, m.spoof.live_threshold);
    EXPECT_FALSE(m.spoof.threshold_source.empty());
  }
}

TEST(SpoofRoc, DrawsAReadablePng) {
  const fs::path png = fs::temp_directory_path() / ("facekit_roc_" + std::to_string(::getpid()) + ".png");
  fk::draw_pad_roc(png, {{"a", fk::pad_roc(kBona, kAttacks)}, {"b", fk::pad_roc(kAttacks, kBona)}}, "test");
  const auto img = fk::load_image(png);
  EXPECT_EQ(img.cols, 640);
  EXPECT_EQ(img.rows, 640);
  // Not blank: curves and text are drawn.
  cv::Mat grey;
  cv::cvtColor(img, grey, cv::COLOR_RGB2GRAY);
  EXPECT_GT(cv::countNonZero(grey < 200), 1000);
  fs::remove(png);
}
