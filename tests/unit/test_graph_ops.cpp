// Unit tier: each graph-runtime op against hand-computed values or a naive reference (no model needed).
#include <gtest/gtest.h>

#include <array>
#include <nlohmann/json.hpp>

#include "graph/graph_model.hpp"
#include "graph/ops_util.hpp"
#include "graph/separable_block.hpp"
#include "nn/depthwise.hpp"
#include "nn/elementwise.hpp"
#include "nn/tf_ops.hpp"

namespace g = facekit::graph;
using nlohmann::json;

namespace {

std::string b64(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : s) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) out.push_back(t[(val >> bits) & 0x3F]), bits -= 6;
  }
  if (bits > -6) out.push_back(t[((val << 8) >> (bits + 8)) & 0x3F]);
  while (out.size() % 4) out.push_back('=');
  return out;
}
json S(const std::string& s) { return {{"s", b64(s)}}; }
json I(int64_t v) { return {{"i", std::to_string(v)}}; }
json Ints(std::vector<int64_t> v) {
  json l = json::array();
  for (auto x : v) l.push_back(std::to_string(x));
  return {{"list", {{"i", l}}}};
}
json Strs(std::vector<std::string> v) {
  json l = json::array();
  for (auto& x : v) l.push_back(b64(x));
  return {{"list", {{"s", l}}}};
}

// Runs one op like the runtime does: prepare with the (constant) inputs, then run.
std::vector<at::Tensor> run(const std::string& op, json attr, std::vector<at::Tensor> in) {
  g::Node n;
  n.op = op;
  n.name = "test";
  n.attr = g::Attrs(std::move(attr));
  const auto& k = g::op_registry().at(op);
  std::vector<const at::Tensor*> cin;
  for (auto& t : in) cin.push_back(&t);
  if (k.prepare) k.prepare(n, cin);
  return k.run(g::OpCall{n, in});
}
at::Tensor run1(const std::string& op, json attr, std::vector<at::Tensor> in) { return run(op, attr, in).at(0); }

at::Tensor ints(std::vector<int> v) { return at::tensor(v, at::kInt); }

// Direct NHWC convolution with TF padding, for reference.
at::Tensor naive_conv_nhwc(const at::Tensor& x, const at::Tensor& f, int stride, bool same) {
  const int64_t H = x.size(1), W = x.size(2), C = x.size(3), kh = f.size(0), kw = f.size(1), O = f.size(3);
  int64_t oh, ow, pt = 0, pl = 0;
  if (same) {
    oh = (H + stride - 1) / stride, ow = (W + stride - 1) / stride;
    pt = std::max<int64_t>((oh - 1) * stride + kh - H, 0) / 2;
    pl = std::max<int64_t>((ow - 1) * stride + kw - W, 0) / 2;
  } else {
    oh = (H - kh) / stride + 1, ow = (W - kw) / stride + 1;
  }
  at::Tensor y = at::zeros({1, oh, ow, O});
  for (int64_t i = 0; i < oh; ++i)
    for (int64_t j = 0; j < ow; ++j)
      for (int64_t o = 0; o < O; ++o) {
        double s = 0;
        for (int64_t u = 0; u < kh; ++u)
          for (int64_t v = 0; v < kw; ++v)
            for (int64_t c = 0; c < C; ++c) {
              const int64_t yy = i * stride + u - pt, xx = j * stride + v - pl;
              if (yy >= 0 && yy < H && xx >= 0 && xx < W) s += x[0][yy][xx][c].item<double>() * f[u][v][c][o].item<double>();
            }
        y[0][i][j][o] = s;
      }
  return y;
}

double maxdiff(const at::Tensor& a, const at::Tensor& b) { return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>(); }

}  // namespace

TEST(GraphOps, FusedConvSameStride2WithBiasAndPrelu) {
  at::manual_seed(1);
  const auto x = at::randn({1, 6, 5, 3}), f = at::randn({3, 3, 3, 4}), b = at::randn({4}), alpha = at::rand({4});
  json a = {{"strides", Ints({1, 2, 2, 1})}, {"padding", S("SAME")}, {"fused_ops", Strs({"BiasAdd", "Prelu"})}};
  const auto y = run1("_FusedConv2D", a, {x, f, b, alpha});
  at::Tensor ref = naive_conv_nhwc(x, f, 2, true) + b;
  ref = at::relu(ref) + alpha * at::clamp_max(ref, 0);
  EXPECT_LT(maxdiff(y, ref), 1e-4);
}

TEST(GraphOps, ConvValidAndExplicitPadding) {
  at::manual_seed(2);
  const auto x = at::randn({1, 7, 7, 2}), f = at::randn({3, 3, 2, 3});
  EXPECT_LT(maxdiff(run1("Conv2D", {{"strides", Ints({1, 1, 1, 1})}, {"padding", S("VALID")}}, {x, f}),
                    naive_conv_nhwc(x, f, 1, false)),
            1e-4);
  // EXPLICIT 1 on every side equals SAME for a 3x3 stride-1 conv.
  json e = {{"strides", Ints({1, 1, 1, 1})}, {"padding", S("EXPLICIT")}, {"explicit_paddings", Ints({0, 0, 1, 1, 1, 1, 0, 0})}};
  EXPECT_LT(maxdiff(run1("Conv2D", e, {x, f}), naive_conv_nhwc(x, f, 1, true)), 1e-4);
}

TEST(GraphOps, DepthwiseWithMultiplier) {
  // filter [1,1,2,2]: channel c, multiplier m scales by (c*2+m+1); output channel order c*mult+m.
  const auto x = at::tensor({1.f, 10.f}).view({1, 1, 1, 2});
  const auto f = at::tensor({1.f, 2.f, 3.f, 4.f}).view({1, 1, 2, 2});
  const auto y = run1("DepthwiseConv2dNative", {{"strides", Ints({1, 1, 1, 1})}, {"padding", S("SAME")}}, {x, f});
  EXPECT_TRUE(at::allclose(y.reshape({-1}), at::tensor({1.f, 2.f, 30.f, 40.f})));
}

// A 3x3 depthwise at stride 2 with SAME padding (one side only) and a fused PReLU: the graph runs it on its own
// kernel where the CPU has AVX-512BW (nn/depthwise.hpp), else on oneDNN; either way the values are these.
TEST(GraphOps, FusedDepthwise3x3Stride2SamePrelu) {
  at::manual_seed(3);
  const auto x = at::randn({1, 8, 7, 5}), f = at::randn({3, 3, 5, 1}), b = at::randn({5}), alpha = at::rand({5});
  json a = {{"strides", Ints({1, 2, 2, 1})}, {"padding", S("SAME")}, {"fused_ops", Strs({"BiasAdd", "Prelu"})}};
  const auto y = run1("FusedDepthwiseConv2dNative", a, {x, f, b, alpha});
  const at::Tensor full = at::zeros({3, 3, 5, 5});  // the depthwise filter as a full one, zero off the diagonal
  for (int c = 0; c < 5; ++c) full.select(2, c).select(2, c).copy_(f.select(2, c).select(2, 0));
  at::Tensor ref = naive_conv_nhwc(x, full, 2, true) + b;
  ref = at::relu(ref) + alpha * at::clamp_max(ref, 0);
  EXPECT_LT(maxdiff(y, ref), 1e-4);
}

// VALID padding on a map smaller than the 3x3 kernel has no output: a clear error, whichever kernel would run
// the node (XNNPACK, which takes such small convolutions, used to abort the process on an assertion).
TEST(GraphOps, ValidConvOnAMapSmallerThanTheKernelIsAnError) {
  const auto x = at::randn({1, 2, 2, 4}), fd = at::randn({3, 3, 4, 1}), f = at::randn({3, 3, 4, 2});
  for (int64_t s : {1, 2}) {
    const json a = {{"strides", Ints({1, s, s, 1})}, {"padding", S("VALID")}};
    EXPECT_THROW(run1("DepthwiseConv2dNative", a, {x, fd}), facekit::Error);
    EXPECT_THROW(run1("Conv2D", a, {x, f}), facekit::Error);
  }
}

TEST(GraphOps, FusedMatMulBiasRelu) {
  const auto a = at::tensor({1.f, -2.f}).view({1, 2}), b = at::tensor({1.f, 2.f, 3.f, 4.f}).view({2, 2});
  const auto bias = at::tensor({1.f, 0.f});
  const auto y = run1("_FusedMatMul", {{"fused_ops", Strs({"BiasAdd", "Relu"})}}, {a, b, bias});
  // [1,-2] x [[1,2],[3,4]] = [-5,-6]; + [1,0] = [-4,-6]; relu = 0
  EXPECT_TRUE(at::equal(y, at::zeros({1, 2})));
  const auto yt = run1("MatMul", {{"transpose_b", {{"b", true}}}}, {a, b});
  EXPECT_TRUE(at::allclose(yt, at::tensor({-3.f, -5.f}).view({1, 2})));
}

TEST(GraphOps, PoolsUseTfPadding) {
  const auto x = at::arange(1, 17, at::kFloat).view({1, 4, 4, 1});
  json a = {{"ksize", Ints({1, 3, 3, 1})}, {"strides", Ints({1, 2, 2, 1})}, {"padding", S("SAME")}};
  // SAME 3x3 stride 2 on 4x4: pad 0 before, 1 after. Window (0,0) covers rows 0-2, cols 0-2.
  const auto mx = run1("MaxPool", a, {x});
  EXPECT_EQ(mx[0][0][0][0].item<float>(), 11.f);
  EXPECT_EQ(mx[0][1][1][0].item<float>(), 16.f);
  // The last window sees rows 2-3, cols 2-3 only: its average excludes the padding.
  const auto av = run1("AvgPool", a, {x});
  EXPECT_FLOAT_EQ(av[0][1][1][0].item<float>(), (11 + 12 + 15 + 16) / 4.f);
  EXPECT_FLOAT_EQ(av[0][0][0][0].item<float>(), (1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11) / 9.f);
}

TEST(GraphOps, ElementwiseAndReductions) {
  const auto a = at::tensor({-1.f, 2.f, -3.f, 4.f}).view({2, 2}), b = at::tensor({2.f});
  EXPECT_TRUE(at::equal(run1("AddV2", {}, {a, b}), a + 2));
  EXPECT_TRUE(at::equal(run1("Maximum", {}, {a, b}), at::tensor({2.f, 2.f, 2.f, 4.f}).view({2, 2})));
  EXPECT_TRUE(at::equal(run1("Prelu", {}, {a, at::tensor({0.5f, 0.25f})}), at::tensor({-0.5f, 2.f, -1.5f, 4.f}).view({2, 2})));
  EXPECT_TRUE(at::equal(run1("Relu6", {}, {a * 3}), at::tensor({0.f, 6.f, 0.f, 6.f}).view({2, 2})));
  EXPECT_TRUE(at::equal(run1("Mean", {{"keep_dims", {{"b", true}}}}, {a, ints({1})}), at::tensor({0.5f, 0.5f}).view({2, 1})));
  EXPECT_TRUE(at::equal(run1("Max", {}, {a, ints({0})}), at::tensor({-1.f, 4.f})));
  EXPECT_FLOAT_EQ(run1("Sum", {}, {a, ints({0, 1})}).item<float>(), 2.f);
  EXPECT_TRUE(at::equal(run1("AddN", {}, {a, a, a}), a * 3));
  EXPECT_NEAR(run1("Rsqrt", {}, {at::tensor({4.f})}).item<float>(), 0.5f, 1e-6);
  EXPECT_TRUE(at::allclose(run1("Softmax", {}, {at::tensor({0.f, std::log(3.f)})}), at::tensor({0.25f, 0.75f})));
  EXPECT_EQ(run1("Cast", {{"DstT", {{"type", "DT_INT32"}}}}, {at::tensor({1.7f, -1.7f})}).scalar_type(), at::kInt);
}

TEST(GraphOps, StridedSliceMasks) {
  const auto x = at::arange(24, at::kFloat).view({2, 3, 4});
  // x[:, 1, ::2] -> shrink axis 1, begin/end masks on 0 and 2.
  json a = {{"begin_mask", I(5)}, {"end_mask", I(5)}, {"shrink_axis_mask", I(2)}};
  auto y = run1("StridedSlice", a, {x, ints({0, 1, 0}), ints({0, 2, 0}), ints({1, 1, 2})});
  EXPECT_TRUE(at::equal(y, at::tensor({4.f, 6.f, 16.f, 18.f}).view({2, 2})));
  // x[..., -1] with an ellipsis, and a reversed slice x[0, 2:0:-1, 0].
  y = run1("StridedSlice", {{"ellipsis_mask", I(1)}, {"shrink_axis_mask", I(2)}},
           {x, ints({0, -1}), ints({0, 0}), ints({1, 1})});
  EXPECT_TRUE(at::equal(y, at::tensor({3.f, 7.f, 11.f, 15.f, 19.f, 23.f}).view({2, 3})));
  y = run1("StridedSlice", {{"shrink_axis_mask", I(5)}}, {x, ints({0, 2, 0}), ints({1, 0, 1}), ints({1, -1, 1})});
  EXPECT_TRUE(at::equal(y, at::tensor({8.f, 4.f})));
  // new axis
  y = run1("StridedSlice", {{"new_axis_mask", I(1)}, {"begin_mask", I(2)}, {"end_mask", I(2)}},
           {x, ints({0, 0}), ints({0, 0}), ints({1, 1})});
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST(GraphOps, ShapeOps) {
  const auto x = at::arange(6, at::kFloat).view({1, 2, 3});
  EXPECT_EQ(run1("Reshape", {}, {x, ints({3, -1})}).sizes(), (std::vector<int64_t>{3, 2}));
  EXPECT_TRUE(at::equal(run1("Shape", {}, {x}), ints({1, 2, 3})));
  EXPECT_EQ(run1("Squeeze", {{"squeeze_dims", Ints({0})}}, {x}).sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(run1("ExpandDims", {}, {x, ints({-1})}).sizes(), (std::vector<int64_t>{1, 2, 3, 1}));
  const auto p = run1("Pad", {}, {x, ints({0, 0, 1, 0, 0, 2}).view({3, 2})});
  EXPECT_EQ(p.sizes(), (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(p[0][0].sum().item<float>(), 0.f);
  EXPECT_EQ(p[0][1][4].item<float>(), 0.f);
  EXPECT_EQ(p[0][2][2].item<float>(), 5.f);
  EXPECT_EQ(run1("ConcatV2", {}, {x, x, ints({-1})}).sizes(), (std::vector<int64_t>{1, 2, 6}));
  EXPECT_EQ(run1("Pack", {{"axis", I(1)}}, {x, x}).sizes(), (std::vector<int64_t>{1, 2, 2, 3}));
  EXPECT_EQ(run1("Transpose", {}, {x, ints({2, 0, 1})}).sizes(), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_EQ(run1("Tile", {}, {x, ints({2, 1, 2})}).sizes(), (std::vector<int64_t>{2, 2, 6}));
  EXPECT_TRUE(at::equal(run1("GatherV2", {}, {x.view({2, 3}), ints({2, 0}), ints({1})}),
                        at::tensor({2.f, 0.f, 5.f, 3.f}).view({2, 2})));
  EXPECT_TRUE(at::equal(run1("GatherNd", {}, {x.view({2, 3}), ints({1, 2, 0, 1}).view({2, 2})}), at::tensor({5.f, 1.f})));
  EXPECT_TRUE(at::equal(run1("Fill", {}, {ints({2}), at::tensor(7.f)}), at::tensor({7.f, 7.f})));
  EXPECT_TRUE(at::equal(run1("Range", {}, {at::tensor(1), at::tensor(7), at::tensor(2)}), at::tensor({1, 3, 5}, at::kLong)));
}

TEST(GraphOps, DepthToSpaceAndResize) {
  // DepthToSpace block 2: channel k of cell (0,0) goes to (k/2, k%2).
  const auto x = at::arange(4, at::kFloat).view({1, 1, 1, 4});
  EXPECT_TRUE(at::equal(run1("DepthToSpace", {{"block_size", I(2)}}, {x}).view({2, 2}),
                        at::tensor({0.f, 1.f, 2.f, 3.f}).view({2, 2})));
  const auto img = at::tensor({0.f, 4.f}).view({1, 1, 2, 1});
  // half-pixel 2 -> 4: samples at -0.25, 0.25, 0.75, 1.25 (clamped) -> 0, 1, 3, 4
  auto r = run1("ResizeBilinear", {{"half_pixel_centers", {{"b", true}}}}, {img, ints({1, 4})});
  EXPECT_TRUE(at::allclose(r.reshape({-1}), at::tensor({0.f, 1.f, 3.f, 4.f})));
  // legacy 2 -> 4: samples at 0, 0.5, 1, 1.5 (clamped) -> 0, 2, 4, 4
  r = run1("ResizeBilinear", {}, {img, ints({1, 4})});
  EXPECT_TRUE(at::allclose(r.reshape({-1}), at::tensor({0.f, 2.f, 4.f, 4.f})));
}

TEST(GraphOps, UnknownOpIsALoadError) {
  EXPECT_EQ(g::op_registry().count("NonMaxSuppressionV3"), 0u);
  EXPECT_GT(g::op_registry().size(), 60u);
}

// The fused separable block (graph/separable_block.hpp) against the three ATen ops it replaces: a depthwise
// 3x3 with zero padding, a 1x1 with bias, the residual add and ReLU. Shapes cover every channel count the
// kernel is built for, widths that are not a multiple of its pixel step (AVX2: 1-4, AVX-512: 8 or 16 pixels a
// step), one-row maps and a batch.
TEST(SeparableBlock, MatchesTheThreeOpsItReplaces) {
  for (int64_t c : {8, 16, 24, 32, 48, 64, 96}) {
    if (!g::detail::separable_block_supported(c)) GTEST_SKIP() << "this CPU has no AVX2/FMA";
    for (auto [n, h, w] : {std::tuple{1, 1, 1}, std::tuple{2, 5, 7}, std::tuple{1, 33, 18}, std::tuple{3, 16, 16}, std::tuple{1, 3, 41}}) {
      SCOPED_TRACE(std::to_string(c) + " channels, " + std::to_string(n) + "x" + std::to_string(h) + "x" + std::to_string(w));
      at::manual_seed(c * 1000 + h);
      const at::Tensor x = at::randn({n, h, w, c});
      const at::Tensor wd = at::randn({9, c}) * 0.3, wp = at::randn({c, c}) * (1.0 / std::sqrt(double(c)));
      const at::Tensor bp = at::randn({c});
      for (bool dw_bias : {false, true}) {
        const at::Tensor bd = dw_bias ? at::randn({c}) : at::Tensor();
        const at::Tensor xn = x.permute({0, 3, 1, 2});
        const at::Tensor d = at::conv2d(xn, wd.t().reshape({c, 1, 3, 3}), bd, 1, 1, 1, c);
        const at::Tensor p = at::conv2d(d, wp.t().reshape({c, c, 1, 1}), bp);
        const at::Tensor want = at::relu(p + xn).permute({0, 2, 3, 1});
        const at::Tensor got = g::detail::separable_block(x, wd, bd, wp, bp);
        ASSERT_EQ(got.sizes(), x.sizes());
        EXPECT_LT((got - want).abs().max().item<float>(), 1e-4f);
        EXPECT_GE(got.min().item<float>(), 0.f);
        // PReLU instead of ReLU (FaceMesh's blocks): slopes of either sign.
        const at::Tensor alpha = at::randn({c}) * 0.5;
        const at::Tensor want_p = at::prelu(p + xn, alpha).permute({0, 2, 3, 1});
        const at::Tensor got_p = g::detail::separable_block(x, wd, bd, wp, bp, alpha);
        EXPECT_LT((got_p - want_p).abs().max().item<float>(), 1e-4f);
        EXPECT_LT(got_p.min().item<float>(), 0.f);
      }
    }
  }
}

TEST(SeparableBlock, TheGraphFusesADepthwiseOneByOneResidualBlock) {
  // x -> depthwise 3x3 -> 1x1 + bias -> + x -> relu, as BlazeFace writes its blocks.
  if (!g::detail::separable_block_supported(8)) GTEST_SKIP() << "this CPU has no AVX2/FMA";
  at::manual_seed(7);
  const at::Tensor x = at::randn({1, 6, 9, 8});
  const at::Tensor fd = at::randn({3, 3, 8, 1}) * 0.3, fp = at::randn({1, 1, 8, 8}) * 0.35, bp = at::randn({8});
  g::Node dw, pw;
  dw.name = "dw", dw.op = "DepthwiseConv2dNative";
  dw.attr = g::Attrs(json{{"strides", Ints({1, 1, 1, 1})}, {"padding", S("SAME")}});
  pw.name = "pw", pw.op = "_FusedConv2D";
  pw.attr = g::Attrs(json{{"strides", Ints({1, 1, 1, 1})}, {"padding", S("VALID")}, {"fused_ops", Strs({"BiasAdd"})}});
  const auto& reg = g::op_registry();
  dw.kernel = &reg.at(dw.op), pw.kernel = &reg.at(pw.op);
  dw.kernel->prepare(dw, {nullptr, &fd});
  pw.kernel->prepare(pw, {nullptr, &fp, &bp});
  dw.inputs = {{0, 0}, {1, 0}};
  pw.inputs = {{2, 0}, {3, 0}, {4, 0}, {0, 0}};  // (dw's output, filter, bias, residual = dw's input)
  pw.residual_relu = true;
  std::vector<at::Tensor> a1 = {x, fd};
  const at::Tensor d = dw.kernel->run(g::OpCall{dw, a1}).at(0);
  std::vector<at::Tensor> a2 = {d, fp, bp, x};
  const at::Tensor want = pw.kernel->run(g::OpCall{pw, a2}).at(0);
  ASSERT_TRUE(g::fuse_separable_block(dw, pw));
  EXPECT_EQ(pw.inputs.size(), 1u);
  std::vector<at::Tensor> a3 = {x};
  const at::Tensor got = pw.kernel->run(g::OpCall{pw, a3}).at(0);
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-4f);
  // A block whose residual is not the depthwise's input is left alone.
  g::Node pw2 = pw;
  pw2.inputs = {{2, 0}, {3, 0}, {4, 0}, {9, 0}};
  pw2.kernel = &reg.at(pw2.op);
  pw2.kernel->prepare(pw2, {nullptr, &fp, &bp});
  EXPECT_FALSE(g::fuse_separable_block(dw, pw2));
}

namespace {
// A [N, C, H, W] tensor in channels-last memory, as the graph runtime's convolutions return them.
at::Tensor channels_last(int64_t n, int64_t c, int64_t h, int64_t w, at::ScalarType dt) {
  return (at::randn({n, c, h, w}) * 3).to(dt).contiguous(at::MemoryFormat::ChannelsLast);
}
bool has_avx512bw() { return __builtin_cpu_supports("avx512bw"); }
}  // namespace

// The element-wise kernels (nn/elementwise.hpp) against ATen's ops, in bf16 (the same rounding: exact) and
// float; odd channel counts exercise the vector loops' remainders.
TEST(Elementwise, KernelsMatchAten) {
  if (!has_avx512bw()) GTEST_SKIP() << "the bf16 kernels need AVX-512BW";
  for (int64_t c : {1, 7, 16, 33, 128}) {
    SCOPED_TRACE(std::to_string(c) + " channels");
    at::manual_seed(c);
    const at::Tensor alpha = at::randn({c}).to(at::kBFloat16);  // the graph holds bf16 slopes in bf16 mode
    at::Tensor y = channels_last(2, c, 5, 3, at::kBFloat16);
    const at::Tensor r = channels_last(2, c, 5, 3, at::kBFloat16);
    at::Tensor a = y.clone(), b = y.clone(), d = y.clone();
    ASSERT_TRUE(facekit::nn::relu_bf16_(a));
    EXPECT_TRUE(at::equal(a, at::relu(y)));
    ASSERT_TRUE(facekit::nn::prelu_bf16_(b, alpha));
    EXPECT_TRUE(at::equal(b, at::prelu(y, alpha)));
    ASSERT_TRUE(facekit::nn::add_relu_bf16_(d, r));
    EXPECT_TRUE(at::equal(d, at::relu(y.to(at::kFloat) + r.to(at::kFloat)).to(at::kBFloat16)));
    at::Tensor e = y.clone();
    ASSERT_TRUE(facekit::nn::add_prelu_(e, r, alpha));
    EXPECT_TRUE(at::equal(e, at::prelu(y.to(at::kFloat) + r.to(at::kFloat), alpha.to(at::kFloat)).to(at::kBFloat16)));
    const at::Tensor yf = channels_last(2, c, 5, 3, at::kFloat), rf = channels_last(2, c, 5, 3, at::kFloat);
    at::Tensor f = yf.clone();
    ASSERT_TRUE(facekit::nn::add_prelu_(f, rf, alpha));
    EXPECT_LT((f - at::prelu(yf + rf, alpha.to(at::kFloat))).abs().max().item<float>(), 1e-6f);
  }
}

// The depthwise 3x3 kernel (nn/depthwise.hpp) against ATen's float convolution of the same (bf16-rounded)
// values: float within 1e-5, bf16 within one unit in the last place (the sums are float either way; a different
// order of the nine products may round the other way). Maps down to 1x1 take the edge paths only; odd channel
// counts the masked vectors; SAME at stride 2 pads one side only.
TEST(Depthwise, MatchesAtenConvolution) {
  if (!facekit::nn::depthwise3x3_supported()) GTEST_SKIP() << "the kernel needs AVX-512BW";
  using facekit::nn::DwAct;
  int cases = 0;
  for (auto dt : {at::kFloat, at::kBFloat16})
    for (int64_t c : {1, 7, 16, 24, 33, 128})
      for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {2, 3}, {5, 4}, {9, 9}, {12, 17}})
        for (int64_t stride : {1, 2})
          for (int pad = 0; pad < 3; ++pad)  // SAME, VALID, one on every side
            for (DwAct act : {DwAct::kNone, DwAct::kRelu, DwAct::kPrelu}) {
              const auto [h, w] = hw;
              int64_t t = 1, b = 1, l = 1, r = 1;
              if (pad == 0) {
                std::tie(t, b) = facekit::nn::same_padding(h, 3, stride);
                std::tie(l, r) = facekit::nn::same_padding(w, 3, stride);
              } else if (pad == 1) {
                t = b = l = r = 0;
              }
              const int64_t oh = (h + t + b - 3) / stride + 1, ow = (w + l + r - 3) / stride + 1;
              if (h + t + b < 3 || w + l + r < 3) continue;
              SCOPED_TRACE(std::string(dt == at::kFloat ? "float" : "bf16") + " c" + std::to_string(c) + " " +
                           std::to_string(h) + "x" + std::to_string(w) + " s" + std::to_string(stride) + " pad " +
                           std::to_string(pad) + " act " + std::to_string(int(act)));
              at::manual_seed(c * 100 + h);
              const at::Tensor x = (at::randn({2, h, w, c}) * 3).to(dt);
              const at::Tensor wt = at::randn({c, 1, 3, 3}).to(dt).to(at::kFloat);
              const at::Tensor bias = at::randn({c}).to(dt).to(at::kFloat);
              const at::Tensor alpha = at::rand({c}).to(dt).to(at::kFloat);
              const at::Tensor taps = wt.reshape({c, 9}).t().contiguous();
              const at::Tensor y = facekit::nn::depthwise3x3(x, taps, bias, act, alpha, stride, t, l, oh, ow);
              ASSERT_TRUE(y.defined());
              ASSERT_EQ(y.scalar_type(), dt);
              ASSERT_EQ(y.sizes(), (at::IntArrayRef{2, oh, ow, c}));
              at::Tensor ref = at::conv2d(at::constant_pad_nd(x.to(at::kFloat).permute({0, 3, 1, 2}), {l, r, t, b}),
                                          wt, bias, at::IntArrayRef{stride, stride}, at::IntArrayRef{0, 0},
                                          at::IntArrayRef{1, 1}, c);
              if (act == DwAct::kRelu) ref = at::relu(ref);
              if (act == DwAct::kPrelu) ref = at::prelu(ref, alpha);
              ref = ref.permute({0, 2, 3, 1});
              const at::Tensor err = (y.to(at::kFloat) - ref).abs();
              const at::Tensor bound = dt == at::kFloat ? 1e-5 * (1 + ref.abs()) : ref.abs() * (1.0 / 128) + 1e-6;
              EXPECT_TRUE((err <= bound).all().item<bool>()) << "worst error " << err.max().item<float>();
              ++cases;
            }
  EXPECT_EQ(cases, 936);  // every combination but VALID on maps smaller than the kernel
}

TEST(Depthwise, DeclinesWhatItDoesNotHandle) {
  if (!facekit::nn::depthwise3x3_supported()) GTEST_SKIP() << "the kernel needs AVX-512BW";
  using facekit::nn::DwAct;
  const at::Tensor taps = at::randn({9, 4}), none;
  const at::Tensor x = at::randn({1, 5, 5, 4});
  EXPECT_TRUE(facekit::nn::depthwise3x3(x, taps, none, DwAct::kNone, none, 1, 1, 1, 5, 5).defined());
  EXPECT_FALSE(facekit::nn::depthwise3x3(x.to(at::kDouble), taps, none, DwAct::kNone, none, 1, 1, 1, 5, 5).defined());
  EXPECT_FALSE(facekit::nn::depthwise3x3(x.permute({0, 2, 1, 3}), taps, none, DwAct::kNone, none, 1, 1, 1, 5, 5)
                   .defined());  // not contiguous
  EXPECT_FALSE(facekit::nn::depthwise3x3(x, at::randn({9, 3}), none, DwAct::kNone, none, 1, 1, 1, 5, 5).defined());
  EXPECT_FALSE(facekit::nn::depthwise3x3(x, taps, none, DwAct::kPrelu, none, 1, 1, 1, 5, 5).defined());  // no alpha
  EXPECT_FALSE(facekit::nn::depthwise3x3(x, taps, at::randn({5}), DwAct::kNone, none, 1, 1, 1, 5, 5).defined());
}

// Max pooling (nn::max_pool_channels_last) picks one of its inputs: equal to ATen's bit for bit, with and
// without the ReLU folded in.
TEST(Elementwise, MaxPoolMatchesAten) {
  for (auto dt : {at::kFloat, at::kBFloat16}) {
    if (dt == at::kBFloat16 && !has_avx512bw()) continue;
    for (int64_t c : {1, 7, 16, 24, 33})
      for (auto ks : std::vector<std::array<int64_t, 4>>{{2, 2, 2, 2}, {3, 3, 2, 2}, {3, 3, 1, 1}, {1, 1, 1, 1}, {2, 3, 1, 2}})
        for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{3, 3}, {7, 8}, {16, 13}}) {
          SCOPED_TRACE(std::to_string(int(dt)) + " c" + std::to_string(c) + " k" + std::to_string(ks[0]) + "x" +
                       std::to_string(ks[1]) + " s" + std::to_string(ks[2]) + " " + std::to_string(hw.first) + "x" +
                       std::to_string(hw.second));
          const at::Tensor x = channels_last(2, c, hw.first, hw.second, dt);
          const at::Tensor y = facekit::nn::max_pool_channels_last(x, ks[0], ks[1], ks[2], ks[3]);
          ASSERT_TRUE(y.defined());
          EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast));
          EXPECT_TRUE(at::equal(y, at::max_pool2d(x, {ks[0], ks[1]}, {ks[2], ks[3]})));
          const at::Tensor yr = facekit::nn::max_pool_channels_last(x, ks[0], ks[1], ks[2], ks[3], /*relu=*/true);
          EXPECT_TRUE(at::equal(yr, at::relu(at::max_pool2d(x, {ks[0], ks[1]}, {ks[2], ks[3]}))));
        }
  }
  EXPECT_FALSE(facekit::nn::max_pool_channels_last(at::randn({1, 4, 5, 5}), 2, 2, 2, 2).defined());  // NCHW
  EXPECT_FALSE(facekit::nn::max_pool_channels_last(channels_last(1, 4, 2, 2, at::kFloat), 3, 3, 1, 1).defined());
}

TEST(Elementwise, KernelsDeclineWhatTheyDoNotHandle) {
  at::Tensor f = at::randn({1, 4, 3, 3});
  EXPECT_FALSE(facekit::nn::relu_bf16_(f));  // float: ATen's own relu is vectorised
  at::Tensor nchw = at::randn({1, 4, 3, 3}).to(at::kBFloat16);  // contiguous NCHW, not channels-last
  EXPECT_FALSE(facekit::nn::prelu_bf16_(nchw, at::ones({4})));
  at::Tensor cl = channels_last(1, 4, 3, 3, at::kBFloat16);
  EXPECT_FALSE(facekit::nn::add_relu_bf16_(cl, nchw));  // strides differ
  EXPECT_FALSE(facekit::nn::add_prelu_(cl, channels_last(1, 4, 3, 3, at::kBFloat16), at::ones({3})));  // alpha size
  const at::Tensor before = cl.clone();
  EXPECT_FALSE(facekit::nn::add_prelu_(cl, channels_last(1, 4, 3, 3, at::kFloat), at::ones({4})));  // dtypes differ
  EXPECT_TRUE(at::equal(cl, before));  // untouched
}
