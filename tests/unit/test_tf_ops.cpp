// Unit tier: TF-semantics convolution against a naive reference on random shapes.
#include <gtest/gtest.h>

#include "nn/tf_ops.hpp"

namespace nn = facekit::nn;

namespace {
// Direct NCHW convolution with TF SAME/VALID padding, written for clarity, not speed.
at::Tensor naive_conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int stride, bool same,
                      int groups) {
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  const int64_t o = w.size(0), kh = w.size(2), kw = w.size(3), cg = c / groups, og = o / groups;
  int64_t oh, ow, pt = 0, pl = 0;
  if (same) {
    oh = (h + stride - 1) / stride;
    ow = (wd + stride - 1) / stride;
    pt = std::max<int64_t>((oh - 1) * stride + kh - h, 0) / 2;
    pl = std::max<int64_t>((ow - 1) * stride + kw - wd, 0) / 2;
  } else {
    oh = (h - kh) / stride + 1;
    ow = (wd - kw) / stride + 1;
  }
  auto y = at::zeros({n, o, oh, ow});
  auto xa = x.accessor<float, 4>();
  auto wa = w.accessor<float, 4>();
  auto ya = y.accessor<float, 4>();
  for (int64_t b_ = 0; b_ < n; ++b_)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double s = b.defined() ? b[oc].item<float>() : 0.0;
          const int64_t g = oc / og;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t yy = i * stride + u - pt, xx = j * stride + v - pl;
                if (yy >= 0 && yy < h && xx >= 0 && xx < wd) s += xa[b_][g * cg + ic][yy][xx] * wa[oc][ic][u][v];
              }
          ya[b_][oc][i][j] = static_cast<float>(s);
        }
  return y;
}
}  // namespace

TEST(TfOps, SamePaddingPutsTheOddPixelAfter) {
  EXPECT_EQ(nn::same_padding(512, 3, 2), (std::pair<int64_t, int64_t>(0, 1)));
  EXPECT_EQ(nn::same_padding(7, 3, 1), (std::pair<int64_t, int64_t>(1, 1)));
  EXPECT_EQ(nn::same_padding(5, 4, 1), (std::pair<int64_t, int64_t>(1, 2)));
  EXPECT_EQ(nn::same_padding(1, 3, 2), (std::pair<int64_t, int64_t>(1, 1)));
}

struct ConvCase {
  int h, w, cin, cout, k, stride;
  bool same, depthwise;
};

class TfConv : public ::testing::TestWithParam<ConvCase> {};

TEST_P(TfConv, MatchesNaiveReference) {
  const auto p = GetParam();
  at::manual_seed(p.h * 131 + p.k);
  const int groups = p.depthwise ? p.cin : 1;
  const int cout = p.depthwise ? p.cin : p.cout;
  nn::Conv2d conv;
  conv.weight = at::randn({cout, p.cin / groups, p.k, p.k});
  conv.bias = at::randn({cout});
  conv.stride = p.stride;
  conv.padding = p.same ? nn::Padding::kSame : nn::Padding::kValid;
  conv.groups = groups;
  const auto x = at::randn({2, p.cin, p.h, p.w});
  const auto ref = naive_conv(x, conv.weight, conv.bias, p.stride, p.same, groups);
  conv.to(at::kCPU);  // channels-last, as in the networks
  const auto got = conv(x.contiguous(at::MemoryFormat::ChannelsLast));
  ASSERT_EQ(got.sizes(), ref.sizes());
  EXPECT_LT((got - ref).abs().max().item<float>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, TfConv,
                         ::testing::Values(ConvCase{8, 8, 3, 4, 3, 2, true, false},   // even input, stride 2
                                           ConvCase{9, 7, 3, 5, 3, 2, true, false},   // odd input
                                           ConvCase{6, 6, 4, 4, 3, 1, true, true},    // depthwise SAME
                                           ConvCase{8, 10, 4, 4, 3, 2, true, true},   // depthwise stride 2
                                           ConvCase{11, 11, 3, 6, 7, 2, false, false},  // dlib stem, VALID
                                           ConvCase{5, 5, 6, 3, 1, 1, true, false}));  // pointwise

TEST(TfOps, WeightLayoutConversion) {
  // TF [kh, kw, in, out] -> torch [out, in, kh, kw]: element (u, v, i, o) must land at (o, i, u, v).
  auto tf = at::arange(2 * 3 * 4 * 5, at::kFloat).view({2, 3, 4, 5});
  auto t = nn::conv_weight_from_tf(tf);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{5, 4, 2, 3}));
  EXPECT_EQ(t[4][3][1][2].item<float>(), tf[1][2][3][4].item<float>());
  auto dw = nn::depthwise_weight_from_tf(at::arange(3 * 3 * 6, at::kFloat).view({3, 3, 6, 1}));
  EXPECT_EQ(dw.sizes(), (std::vector<int64_t>{6, 1, 3, 3}));
}

TEST(TfOps, ImagesToBatchNormalisesInRgbOrder) {
  cv::Mat img(2, 3, CV_8UC3, cv::Scalar(10, 20, 30));
  auto t = nn::images_to_batch({img, img}, {10.f, 0.f, 30.f}, 0.5f, at::kCPU);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3, 2, 3}));
  EXPECT_FLOAT_EQ(t[1][0][1][2].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(t[1][1][1][2].item<float>(), 10.f);
  EXPECT_FLOAT_EQ(t[0][2][0][0].item<float>(), 0.f);
  EXPECT_THROW(nn::images_to_batch({img, cv::Mat(3, 3, CV_8UC3)}, {0, 0, 0}, 1.f, at::kCPU), std::exception);
}
