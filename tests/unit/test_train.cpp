// Training pieces without a model: the triplet loss and its gradient for every mining mode against values
// worked out by hand, the P x K sampler, the split by identity, the tensor file and the small CNN.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include <gtest/gtest.h>

#include "embed/small_cnn.hpp"
#include "facekit/error.hpp"
#include "facekit/train.hpp"
#include "model/tensor_file.hpp"
#include "train/dataset.hpp"
#include "train/triplet.hpp"

namespace fk = facekit;
using fk::Mining;

namespace {

// Four 1-D embeddings, x = [0, 1, 1.5, 2.5], labels [0, 0, 1, 1], margin 1.5. Squared distances:
//   d01 = 1, d02 = 2.25, d03 = 6.25, d12 = 0.25, d13 = 2.25, d23 = 1.
// Every anchor has one positive at distance 1, so a triplet's loss is relu(1 - d_an + 1.5) = relu(2.5 - d_an):
// 0.25 for d_an = 2.25, 2.25 for d_an = 0.25, 0 for d_an = 6.25.
// For an active triplet, d/dx_a = 2(x_n - x_p), d/dx_p = -2(x_a - x_p), d/dx_n = 2(x_a - x_n).
at::Tensor points() { return at::tensor({0.0f, 1.0f, 1.5f, 2.5f}).reshape({4, 1}).requires_grad_(true); }
const std::vector<int> kLabels = {0, 0, 1, 1};
constexpr float kMargin = 1.5f;

struct Expected {
  double loss;
  int64_t triplets, active;
  std::vector<float> grad;
};

void check(Mining m, const Expected& e) {
  std::mt19937_64 rng(1);
  at::Tensor x = points();
  const auto r = fk::detail::triplet_loss(x, kLabels, m, kMargin, rng);
  EXPECT_NEAR(r.loss.item<double>(), e.loss, 1e-6) << fk::to_string(m);
  EXPECT_EQ(r.triplets, e.triplets) << fk::to_string(m);
  EXPECT_EQ(r.active, e.active) << fk::to_string(m);
  EXPECT_NEAR(r.active_fraction(), double(e.active) / e.triplets, 1e-12);
  r.loss.backward();
  const at::Tensor g = x.grad().reshape({-1});
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(g[i].item<float>(), e.grad[i], 1e-5) << fk::to_string(m) << " x" << i;
}

}  // namespace

TEST(TripletLoss, BatchHardMatchesHandComputed) {
  // Per anchor: its positive and its closest negative: (0,1,2) 0.25, (1,0,2) 2.25, (2,3,1) 2.25, (3,2,1) 0.25.
  // Mean 5/4. Gradients summed per point then / 4: x0 = 1 - 2, x1 = 2 + 3 + 1 + 3, x2 = -3 - 1 - 3 - 2,
  // x3 = 2 - 1.
  check(Mining::kBatchHard, {1.25, 4, 4, {-0.25f, 2.25f, -2.25f, 0.25f}});
}

TEST(TripletLoss, SemiHardMatchesHandComputed) {
  // Closest negative farther than the positive (d_an > 1): (0,1,2), (1,0,3), (2,3,0), (3,2,1), each 0.25.
  // Gradients / 4: x0 = 1 - 2 + 3, x1 = 2 + 5 + 3, x2 = -3 - 5 - 2, x3 = -3 + 2 - 1.
  check(Mining::kSemiHard, {0.25, 4, 4, {0.5f, 2.5f, -2.5f, -0.5f}});
}

TEST(TripletLoss, BatchAllMatchesHandComputed) {
  // All 8 triplets; losses .25, 0, 2.25, .25, .25, 2.25, 0, .25: 6 active, sum 5.5, averaged over the active.
  // Gradients / 6: x0 = 1 - 2 - 2 + 3, x1 = 2 + 3 + 5 + 1 + 3, x2 = -3 - 1 - 5 - 3 - 2, x3 = -3 + 2 + 2 - 1.
  check(Mining::kBatchAll, {5.5 / 6, 8, 6, {0.0f, 14.0f / 6, -14.0f / 6, 0.0f}});
}

TEST(TripletLoss, SemiHardFallsBackToTheFarthestNegative) {
  // x = [0, 2, 1, 3], labels 0,0,1,1, margin 0.1: d01 = 4, d02 = 1, d03 = 9, d12 = 1, d13 = 1, d23 = 4.
  // (0,1): negative 3 is farther (9 > 4): 4 - 9 + .1 < 0 -> 0. (1,0): d12 = d13 = 1, none farther than 4:
  // the farthest (a tie, the first: 2): 4 - 1 + .1 = 3.1. (2,3): likewise 3.1. (3,2): 0 is farther: 0.
  std::mt19937_64 rng(1);
  at::Tensor x = at::tensor({0.0f, 2.0f, 1.0f, 3.0f}).reshape({4, 1});
  const auto r = fk::detail::triplet_loss(x, kLabels, Mining::kSemiHard, 0.1f, rng);
  EXPECT_NEAR(r.loss.item<double>(), 6.2 / 4, 1e-6);
  EXPECT_EQ(r.active, 2);
}

TEST(TripletLoss, RandomMiningAveragesOverItsNegatives) {
  // Each anchor-positive pair draws one of its two negatives: expected loss per pair (.25 + 0) / 2,
  // (2.25 + .25) / 2, (.25 + 2.25) / 2, (0 + .25) / 2, mean 0.6875.
  std::mt19937_64 rng(42);
  at::Tensor x = points();
  double sum = 0;
  const int n = 4000;
  std::set<double> seen;
  for (int i = 0; i < n; ++i) {
    const auto r = fk::detail::triplet_loss(x, kLabels, Mining::kRandom, kMargin, rng);
    EXPECT_EQ(r.triplets, 4);
    sum += r.loss.item<double>();
    seen.insert(std::round(r.loss.item<double>() * 1e4));
  }
  EXPECT_NEAR(sum / n, 0.6875, 0.02);
  EXPECT_GT(seen.size(), 4u);  // the draws differ
}

TEST(TripletLoss, NoValidTripletGivesZeroDifferentiableLoss) {
  std::mt19937_64 rng(1);
  at::Tensor x = points();
  const auto r = fk::detail::triplet_loss(x, {0, 1, 2, 3}, Mining::kBatchAll, kMargin, rng);
  EXPECT_EQ(r.triplets, 0);
  EXPECT_EQ(r.loss.item<double>(), 0.0);
  r.loss.backward();
  EXPECT_TRUE(x.grad().defined());
}

TEST(TripletLoss, GradientThroughNormalisationMatchesFiniteDifferences) {
  // The trainer normalises the network's output before the loss: check that path numerically.
  std::mt19937_64 rng(1);
  at::Tensor raw = at::randn({8, 3}, at::kDouble).requires_grad_(true);
  const std::vector<int> labels = {0, 0, 1, 1, 2, 2, 3, 3};
  auto loss_of = [&](const at::Tensor& v) {
    std::mt19937_64 r(1);
    at::Tensor e = v / v.norm(2, {1}, true);
    return fk::detail::triplet_loss(e, labels, Mining::kBatchAll, 0.5f, r).loss;
  };
  loss_of(raw).backward();
  const at::Tensor g = raw.grad().clone();
  at::NoGradGuard ng;
  const double h = 1e-6;
  for (int64_t i = 0; i < raw.numel(); ++i) {
    at::Tensor a = raw.detach().clone(), b = raw.detach().clone();
    a.view(-1)[i] += h;
    b.view(-1)[i] -= h;
    const double num = (loss_of(a).item<double>() - loss_of(b).item<double>()) / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), num, 1e-5) << i;
  }
}

TEST(Mining, ParsesItsNames) {
  for (Mining m : {Mining::kRandom, Mining::kSemiHard, Mining::kBatchHard, Mining::kBatchAll})
    EXPECT_EQ(fk::parse_mining(fk::to_string(m)), m);
  EXPECT_THROW(fk::parse_mining("hardest"), fk::Error);
}

TEST(PKSampler, BatchesAreIdentityBalanced) {
  // Identities 0..4 with 5, 3, 1 (never drawn), 2 and 4 photos.
  std::vector<int> labels;
  for (int id : {0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 3, 4, 4, 4, 4}) labels.push_back(id);
  fk::PKSampler s(labels, 3, 3, 7);
  EXPECT_EQ(s.identities(), 4);
  std::set<int> drawn_ids;
  for (int b = 0; b < 50; ++b) {
    const auto idx = s.next();
    ASSERT_EQ(idx.size(), 9u);
    std::set<int> ids;
    for (int g = 0; g < 3; ++g) {
      const int id = labels[idx[g * 3]];
      ids.insert(id);
      drawn_ids.insert(id);
      std::set<int> distinct;
      for (int j = 0; j < 3; ++j) {
        EXPECT_EQ(labels[idx[g * 3 + j]], id);  // K consecutive photos of one identity
        distinct.insert(idx[g * 3 + j]);
      }
      // Without replacement while the identity has K photos; identity 3 has only 2.
      if (id != 3) EXPECT_EQ(distinct.size(), 3u);
    }
    EXPECT_EQ(ids.size(), 3u);  // P distinct identities
    EXPECT_EQ(ids.count(2), 0u);
  }
  EXPECT_EQ(drawn_ids, (std::set<int>{0, 1, 3, 4}));
}

TEST(PKSampler, SameSeedSameBatches) {
  std::vector<int> labels = {0, 0, 1, 1, 2, 2, 3, 3};
  fk::PKSampler a(labels, 2, 2, 5), b(labels, 2, 2, 5), c(labels, 2, 2, 6);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    const auto x = a.next(), z = c.next();
    EXPECT_EQ(x, b.next());
    differs |= x != z;
  }
  EXPECT_TRUE(differs);
}

TEST(PKSampler, RejectsTooFewIdentities) {
  EXPECT_THROW(fk::PKSampler({0, 0, 1}, 2, 2, 1), fk::Error);  // only one identity with two photos
  EXPECT_THROW(fk::PKSampler({0, 0, 1, 1}, 1, 2, 1), fk::Error);
}

TEST(SplitByIdentity, DisjointCompleteAndSeeded) {
  const auto s = fk::split_by_identity(100, 0.1, 3);
  EXPECT_EQ(s.validation.size(), 10u);
  EXPECT_EQ(s.train.size(), 90u);
  std::set<int> all(s.train.begin(), s.train.end());
  for (int v : s.validation) EXPECT_TRUE(all.insert(v).second) << "identity " << v << " on both sides";
  EXPECT_EQ(all.size(), 100u);
  const auto again = fk::split_by_identity(100, 0.1, 3), other = fk::split_by_identity(100, 0.1, 4);
  EXPECT_EQ(again.validation, s.validation);
  EXPECT_NE(other.validation, s.validation);
  // Small sets still get one identity on each side.
  const auto tiny = fk::split_by_identity(3, 0.1, 1);
  EXPECT_EQ(tiny.validation.size(), 1u);
  EXPECT_EQ(tiny.train.size(), 2u);
  EXPECT_THROW(fk::split_by_identity(10, 1.0, 1), fk::Error);
}

TEST(TensorFile, RoundTripsAndRejectsGarbage) {
  const auto dir = std::filesystem::temp_directory_path() / ("fk_tensors_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  fk::detail::TensorMap m{{"a", at::arange(6, at::kFloat).reshape({2, 3})}, {"b.c", at::tensor({1.5f})}};
  fk::detail::save_tensors(dir / "t.fkt", m);
  const auto back = fk::detail::load_tensors(dir / "t.fkt");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(at::equal(back.at("a"), m["a"]));
  EXPECT_TRUE(at::equal(back.at("b.c"), m["b.c"]));
  std::ofstream(dir / "bad.fkt") << "not tensors";
  try {
    fk::detail::load_tensors(dir / "bad.fkt");
    ADD_FAILURE();
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kModelCorrupt);
  }
  EXPECT_THROW(fk::detail::load_tensors(dir / "absent.fkt"), fk::Error);
  std::filesystem::remove_all(dir);
}

TEST(SmallCnn, ShapesSeedsAndInferenceMode) {
  const auto w = fk::detail::small_cnn_init(4, 16, 9);
  EXPECT_TRUE(at::equal(w.at("s0.c0.w"), fk::detail::small_cnn_init(4, 16, 9).at("s0.c0.w")));
  EXPECT_FALSE(at::equal(w.at("s0.c0.w"), fk::detail::small_cnn_init(4, 16, 10).at("s0.c0.w")));
  EXPECT_EQ(w.at("s3.c1.w").sizes(), (at::IntArrayRef{32, 32, 3, 3}));
  const at::Tensor x = at::randn({2, 3, 32, 32});
  const at::Tensor before = w.at("s0.c0.bn.running_mean").clone();
  EXPECT_EQ(fk::detail::small_cnn_forward(w, x, false).sizes(), (at::IntArrayRef{2, 16}));
  EXPECT_TRUE(at::equal(before, w.at("s0.c0.bn.running_mean")));  // inference leaves the statistics alone
  fk::detail::small_cnn_forward(w, x, true);
  EXPECT_FALSE(at::equal(before, w.at("s0.c0.bn.running_mean")));  // training updates them
  EXPECT_FALSE(fk::detail::small_cnn_trainable("s0.c0.bn.running_var"));
  EXPECT_TRUE(fk::detail::small_cnn_trainable("s0.c0.bn.w"));
  auto broken = w;
  broken.erase("fc.b");
  EXPECT_THROW(fk::detail::small_cnn_check(broken), fk::Error);
}

TEST(Augment, ColourJitterKeepsGreyGreyAndGeometryKeepsTheSize) {
  // A grey chip (R = G = B) stays grey under brightness, contrast and saturation jitter: the jitter must act
  // on all three channels alike.
  fk::Image grey(48, 48, CV_8UC3);
  cv::randu(grey, 0, 255);
  for (int y = 0; y < grey.rows; ++y)
    for (int x = 0; x < grey.cols; ++x) {
      auto& p = grey.at<cv::Vec3b>(y, x);
      p[1] = p[2] = p[0];
    }
  fk::TrainAugmentOptions colour_only;
  colour_only.flip = false;
  colour_only.crop_jitter = colour_only.rotate_deg = colour_only.blur = 0;
  colour_only.colour = 0.4f;
  std::mt19937_64 rng(3);
  bool changed = false;
  for (int i = 0; i < 20; ++i) {
    const fk::Image out = fk::detail::augment_chip(grey, colour_only, rng);
    ASSERT_EQ(out.type(), CV_8UC3);
    std::vector<cv::Mat> ch;
    cv::split(out, ch);
    EXPECT_EQ(cv::norm(ch[0], ch[1], cv::NORM_INF), 0) << "draw " << i;
    EXPECT_EQ(cv::norm(ch[0], ch[2], cv::NORM_INF), 0) << "draw " << i;
    changed |= cv::norm(out, grey, cv::NORM_INF) > 0;
  }
  EXPECT_TRUE(changed);
  fk::TrainAugmentOptions all;
  const fk::Image out = fk::detail::augment_chip(grey, all, rng);
  EXPECT_EQ(out.size(), grey.size());
  all.enabled = false;
  EXPECT_EQ(cv::norm(fk::detail::augment_chip(grey, all, rng), grey, cv::NORM_INF), 0);
}
