// Neural-network ops: convolutions (plain, depthwise, fused), matrix products, pooling, resizing.
// Image tensors are NHWC; convolutions see them as NCHW through a permute, i.e. channels-last memory.
#include <cstdlib>
#include <mutex>

#include <ATen/core/dispatch/Dispatcher.h>

#include "graph/ops_util.hpp"
#include "graph/separable_block.hpp"
#include "nn/depthwise.hpp"
#include "nn/elementwise.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::graph {
namespace {

enum Act : int64_t { kNone, kRelu, kRelu6, kPrelu, kLeakyRelu, kElu, kSigmoid };

// params layout for conv nodes: [stride_h, stride_w, dil_h, dil_w, pad mode (0 SAME, 1 VALID, 2 EXPLICIT),
// explicit t, b, l, r, activation, depthwise, the filter's input channels]
enum ConvParam { kSh, kSw, kDh, kDw, kPadMode, kPt, kPb, kPl, kPr, kAct, kDepthwise, kInChannels, kNumConvParams };

int64_t activation_of(const Node& n, const std::vector<std::string>& fused, size_t first) {
  if (fused.size() <= first) return kNone;
  if (fused.size() > first + 1) op_error(n, "more than one fused activation");
  const auto& a = fused[first];
  if (a == "Relu") return kRelu;
  if (a == "Relu6") return kRelu6;
  if (a == "Prelu") return kPrelu;
  if (a == "LeakyRelu") return kLeakyRelu;
  if (a == "Elu") return kElu;
  if (a == "Sigmoid") return kSigmoid;
  op_error(n, "unsupported fused op " + a);
}

// Applies an activation to y; `channel_dim` is where alpha's channels broadcast.
at::Tensor activate(const Node& n, at::Tensor y, int64_t act, const at::Tensor& alpha, int64_t channel_dim) {
  switch (act) {
    case kRelu: return nn::relu_bf16_(y) ? y : y.relu_();
    case kRelu6: return y.clamp_(0, 6);
    case kPrelu: {
      if (channel_dim == 1 && nn::prelu_bf16_(y, alpha)) return y;
      // ATen's prelu is one pass; it wants channels at dim 1 (where convolutions and matmuls have them).
      if (channel_dim == 1 && y.dim() >= 2 && alpha.numel() == y.size(1)) return at::prelu(y, alpha);
      std::vector<int64_t> shape(y.dim(), 1);
      shape[channel_dim] = alpha.numel();
      return at::relu(y) + alpha.reshape(shape) * at::clamp_max(y, 0);
    }
    case kLeakyRelu: return at::leaky_relu_(y, n.attr.f("leakyrelu_alpha", 0.2));
    case kElu: return at::elu_(y);
    case kSigmoid: return y.sigmoid_();
    default: return y;
  }
}

// XNNPACK (in libtorch, through its prepacked ops) beats oneDNN on small convolutions and ties or loses on
// larger ones: oneDNN's call costs >= 30 us however little it computes, XNNPACK's ~7 us (a standalone loop,
// 1x1 conv + ReLU). Node against node (FACEKIT_PROFILE_NODES=1 bench/profile_graph.cpp; docs/results.md):
// 0.14-0.5x the time on facemesh's 3x3 and 6x6 maps, BlazeFace's 8x8 and MobileFaceNet's 1x1 (0.04-0.6 M
// multiply-adds), 0.7-1.0x on 1-2.5 M, and slower on MobileFaceNet's 7x7 global depthwise (1.2 M) and larger.
// So a convolution with no activation, ReLU or ReLU6 (XNNPACK fuses only a clamp) and a padding that does not
// depend on the input runs on XNNPACK when it has at most kXnnpackMaxMacs multiply-adds per image
// (FACEKIT_GRAPH_NO_XNNPACK=1: oneDNN only); the two agree to ~1e-5. (Timing both on the first call chose a
// little better, but made the answer depend on the machine's load: the same photo twice gave embeddings 5e-4
// apart.) An XNNPACK operator keeps the buffers of the call it is running, so a context serves one call at a
// time: each concurrent caller takes its own from a pool that grows to the number of callers.
constexpr int64_t kXnnpackMaxMacs = 1'000'000;

class XnnpackConv {
 public:
  static std::shared_ptr<XnnpackConv> make(const at::Tensor& w, const at::Tensor& bias, std::vector<int64_t> stride,
                                           std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups,
                                           int64_t act) {
    static const bool off = std::getenv("FACEKIT_GRAPH_NO_XNNPACK") != nullptr;
    // Absent where libtorch was built without XNNPACK: oneDNN then runs everything.
    static const auto prepack = c10::Dispatcher::singleton().findSchema({"prepacked::conv2d_clamp_prepack", ""});
    if (off || !prepack || !w.is_cpu() || w.scalar_type() != at::kFloat) return nullptr;
    auto x = std::make_shared<XnnpackConv>();
    x->prepack_ = &*prepack;
    x->args_ = {w.contiguous(), bias.defined() ? c10::IValue(bias.contiguous()) : c10::IValue(), c10::List<int64_t>(stride),
                c10::List<int64_t>(padding), c10::List<int64_t>(dilation), groups,
                act == kNone ? c10::IValue() : c10::IValue(at::Scalar(0.0)),
                act == kRelu6 ? c10::IValue(at::Scalar(6.0)) : c10::IValue()};
    try {
      x->release(x->acquire());  // packs once now: a build whose XNNPACK cannot start falls back to oneDNN
    } catch (const c10::Error&) {
      return nullptr;
    }
    return x;
  }
  at::Tensor run(const at::Tensor& nchw_channels_last) {
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("prepacked::conv2d_clamp_run", "");
    c10::IValue ctx = acquire();
    std::vector<c10::IValue> stack{nchw_channels_last, ctx};
    op.callBoxed(&stack);
    release(std::move(ctx));
    return stack.at(0).toTensor();
  }

 private:
  c10::IValue acquire() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!free_.empty()) {
        c10::IValue v = std::move(free_.back());
        free_.pop_back();
        return v;
      }
    }
    std::vector<c10::IValue> stack = args_;
    prepack_->callBoxed(&stack);
    return stack.at(0);
  }
  void release(c10::IValue v) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(std::move(v));
  }
  const c10::OperatorHandle* prepack_ = nullptr;
  std::vector<c10::IValue> args_;
  std::mutex mutex_;
  std::vector<c10::IValue> free_;
};

void prepare_conv(Node& n, const std::vector<const at::Tensor*>& cin, bool depthwise) {
  const auto strides = n.attr.ints("strides");
  auto dil = n.attr.ints("dilations");
  if (dil.empty()) dil = {1, 1, 1, 1};
  if (n.attr.s("data_format", "NHWC") != "NHWC") op_error(n, "only NHWC is supported");
  const std::string pad = n.attr.s("padding");
  std::vector<int64_t> p(kNumConvParams, 0);
  p[kSh] = strides.at(1), p[kSw] = strides.at(2), p[kDh] = dil.at(1), p[kDw] = dil.at(2);
  if (pad == "SAME") {
    p[kPadMode] = 0;
  } else if (pad == "VALID") {
    p[kPadMode] = 1;
  } else if (pad == "EXPLICIT") {
    const auto e = n.attr.ints("explicit_paddings");
    p[kPadMode] = 2, p[kPt] = e.at(2), p[kPb] = e.at(3), p[kPl] = e.at(4), p[kPr] = e.at(5);
  } else {
    op_error(n, "unsupported padding " + pad);
  }
  p[kDepthwise] = depthwise;
  if (cin.size() > 1 && cin[1] && cin[1]->dim() == 4) p[kInChannels] = cin[1]->size(2);
  const auto fused = n.attr.strings("fused_ops");
  size_t first_act = 0;
  if (!fused.empty() && fused[0] == "BiasAdd") first_act = 1;
  else if (!fused.empty() && fused[0] != "BiasAdd") op_error(n, "fused ops must start with BiasAdd");
  p[kAct] = activation_of(n, fused, first_act);
  n.params = p;

  if (cin.size() < 2 || !cin[1]) op_error(n, "filters must be constant");
  const at::Tensor& f = *cin[1];  // [kh, kw, in, out] or depthwise [kh, kw, in, mult]
  at::Tensor w = depthwise ? f.permute({2, 3, 0, 1}).reshape({f.size(2) * f.size(3), 1, f.size(0), f.size(1)})
                           : f.permute({3, 2, 0, 1});
  n.prepared = {w.contiguous(at::MemoryFormat::ChannelsLast), at::Tensor(), at::Tensor()};
  if (first_act == 1) {
    if (cin.size() < 3 || !cin[2]) op_error(n, "bias must be constant");
    n.prepared[1] = *cin[2];
  }
  if (p[kAct] == kPrelu) {
    if (cin.size() < 4 || !cin[3]) op_error(n, "prelu alpha must be constant");
    n.prepared[2] = cin[3]->reshape({-1});
  }
  // Padding fixed at load: VALID, symmetric EXPLICIT, or SAME at stride 1 with an odd kernel (dilation 1).
  const bool same_fixed = p[kPadMode] == 0 && p[kSh] == 1 && p[kSw] == 1 && p[kDh] == 1 && p[kDw] == 1 &&
                          f.size(0) % 2 == 1 && f.size(1) % 2 == 1;
  const bool fixed = p[kPadMode] == 1 || (p[kPadMode] == 2 && p[kPt] == p[kPb] && p[kPl] == p[kPr]);
  if ((p[kAct] == kNone || p[kAct] == kRelu || p[kAct] == kRelu6) && (same_fixed || fixed)) {
    const int64_t ph = same_fixed ? (f.size(0) - 1) / 2 : p[kPt], pw = same_fixed ? (f.size(1) - 1) / 2 : p[kPl];
    n.state = XnnpackConv::make(n.prepared[0], n.prepared[1], {p[kSh], p[kSw]}, {ph, pw}, {p[kDh], p[kDw]},
                                  depthwise ? f.size(2) : 1, p[kAct]);
  }
}

// Zero padding of a channels-last map into a channels-last map: the borders zeroed and the map copied into the
// middle, one pass. (at::constant_pad_nd returns NCHW-contiguous memory, so padding then restoring channels-last
// took two passes, one of them a transpose: 2.8 against 1.9 ms on a 16x128x56x56 float map, 1.35 against 0.92
// in bf16; MobileFaceNet's stride-2 layers pad so.)
at::Tensor pad_channels_last(const at::Tensor& x, int64_t t, int64_t b, int64_t l, int64_t r) {
  const int64_t h = x.size(2), w = x.size(3);
  at::Tensor out = at::empty({x.size(0), x.size(1), h + t + b, w + l + r}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (t) out.narrow(2, 0, t).zero_();
  if (b) out.narrow(2, t + h, b).zero_();
  if (l) out.narrow(3, 0, l).zero_();
  if (r) out.narrow(3, l + w, r).zero_();
  out.narrow(2, t, h).narrow(3, l, w).copy_(x);
  return out;
}

struct Pads {
  int64_t t, b, l, r;
};

// A conv node's zero padding of an h x w map: SAME's depends on the map, VALID's is none (its params are zero),
// EXPLICIT's is the node's. A padded map smaller than the (dilated) kernel has no output: an error here, since
// XNNPACK asserts on it (aborting the process) and oneDNN throws. SAME padding always fits.
Pads conv_padding(const Node& n, int64_t h, int64_t w) {
  const auto& p = n.params;
  const at::Tensor& f = n.prepared[0];  // [out, in / groups, kh, kw]
  const int64_t kh = (f.size(2) - 1) * p[kDh] + 1, kw = (f.size(3) - 1) * p[kDw] + 1;
  Pads d{p[kPt], p[kPb], p[kPl], p[kPr]};
  if (p[kPadMode] == 0) {
    std::tie(d.t, d.b) = nn::same_padding(h, kh, p[kSh]);
    std::tie(d.l, d.r) = nn::same_padding(w, kw, p[kSw]);
  }
  if (h + d.t + d.b < kh || w + d.l + d.r < kw)
    op_error(n, "a " + std::to_string(h) + "x" + std::to_string(w) + " map is smaller than its " +
                    std::to_string(kh) + "x" + std::to_string(kw) + " kernel");
  return d;
}

// oneDNN's convolution of the node's input, padded by `d`, with the node's activation (not its residual).
at::Tensor conv_onednn(const OpCall& c, const Pads& d) {
  const auto& p = c.node.params;
  const at::Tensor& w = c.node.prepared[0];
  // oneDNN's fast kernels need channels-last input; anything else (a strided view, a padded copy) would
  // silently take ATen's slow reference path, so normalise the layout here.
  at::Tensor x = arg(c, 0).permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast);
  const auto [t, b, l, r] = d;
  std::vector<int64_t> pad = {0, 0};
  if (t == b && l == r) {
    pad = {t, l};
  } else {
    x = pad_channels_last(x, t, b, l, r);
  }
  const int64_t groups = p[kDepthwise] ? x.size(1) : 1;
  // On CPU, call oneDNN's convolution directly: at::conv2d would pick it too (channels-last float input),
  // after checks that cost more than the small convolutions of these models (BlazeFace: ~100 of them).
  static const bool direct = !std::getenv("FACEKIT_GRAPH_NO_DIRECT_CONV") && at::hasMKLDNN();
  at::Tensor y = direct && x.is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16)
                     ? at::mkldnn_convolution(x, w, c.node.prepared[1], pad, at::IntArrayRef{p[kSh], p[kSw]},
                                              at::IntArrayRef{p[kDh], p[kDw]}, groups)
                     : at::conv2d(x, w, c.node.prepared[1], at::IntArrayRef{p[kSh], p[kSw]}, pad,
                                  at::IntArrayRef{p[kDh], p[kDw]}, groups);
  return activate(c.node, y, p[kAct], c.node.prepared[2], 1);
}

std::vector<at::Tensor> run_conv(const OpCall& c) {
  at::Tensor y;
  auto* xnn = static_cast<XnnpackConv*>(c.node.state.get());
  const at::Tensor& in = arg(c, 0);  // NHWC
  if (in.dim() != 4) op_error(c.node, "the input is not an NHWC image batch");
  const Pads pads = conv_padding(c.node, in.size(1), in.size(2));
  // The rule depends on the shapes only, so that a photo gives the same answer on every call and every run.
  const at::Tensor& w = c.node.prepared[0];  // [out, in / groups, kh, kw]
  if (xnn && in.is_cpu() && in.scalar_type() == at::kFloat &&
      in.size(1) * in.size(2) / (c.node.params[kSh] * c.node.params[kSw]) * w.numel() <= kXnnpackMaxMacs) {
    y = xnn->run(in.permute({0, 3, 1, 2}).contiguous(at::MemoryFormat::ChannelsLast));
  } else {
    y = conv_onednn(c, pads);
  }
  if (c.node.residual_relu || c.node.residual_prelu || c.node.residual_add) {
    const at::Tensor& res = c.inputs.back();  // NHWC; its NCHW view has y's channels-last strides
    if (res.sizes() != at::IntArrayRef{y.size(0), y.size(2), y.size(3), y.size(1)}) {
      if (c.node.residual_add) return {y.permute({0, 2, 3, 1}) + res};  // broadcasting, as the Add would
      op_error(c.node, "residual shape does not match the convolution's output");
    }
    const at::Tensor r = res.permute({0, 3, 1, 2});
    if (c.node.residual_add) {
      if (!nn::add_bf16_(y, r)) y.add_(r);
    } else if (c.node.residual_prelu) {
      if (!nn::add_prelu_(y, r, c.node.prepared[2])) y = activate(c.node, y.add_(r), kPrelu, c.node.prepared[2], 1);
    } else if (y.scalar_type() == at::kFloat) {
      at::_add_relu_(y, r);  // one pass (add and relu)
    } else if (!nn::add_relu_bf16_(y, r)) {  // ATen's add_relu has no bf16 kernel
      y.add_(r).relu_();
    }
  }
  return {y.permute({0, 2, 3, 1}).contiguous()};  // a no-op when the convolution returned channels-last
}

// A depthwise 3x3 on nn/depthwise.hpp's kernel: prepared [3..5] hold its float taps [9, C], bias and PReLU
// alpha; [0..2] stay for oneDNN where the kernel declines an input.
std::vector<at::Tensor> run_depthwise3x3(const OpCall& c) {
  const auto& p = c.node.params;
  const auto& q = c.node.prepared;
  const at::Tensor x = arg(c, 0).contiguous();  // NHWC
  if (x.dim() == 4) {
    const auto [t, b, l, r] = conv_padding(c.node, x.size(1), x.size(2));
    const int64_t oh = (x.size(1) + t + b - 3) / p[kSh] + 1, ow = (x.size(2) + l + r - 3) / p[kSw] + 1;
    const nn::DwAct act = p[kAct] == kPrelu ? nn::DwAct::kPrelu : p[kAct] == kRelu ? nn::DwAct::kRelu : nn::DwAct::kNone;
    at::Tensor y = nn::depthwise3x3(x, q[3], q[4], act, q[5], p[kSh], t, l, oh, ow);
    if (y.defined()) return {y};
  }
  return run_conv(c);
}

// The fused separable block (separable_block.hpp): prepared = [pointwise filter, pointwise bias, PReLU alpha or
// undefined for ReLU, depthwise
// taps [9, C], depthwise bias or undefined, pointwise [C, C] input major]; one input, the block's input.
std::vector<at::Tensor> run_separable_block(const OpCall& c) {
  const at::Tensor& x = arg(c, 0);
  const auto& p = c.node.prepared;
  if (!x.is_cpu() || x.scalar_type() != at::kFloat || x.dim() != 4 || x.size(3) != p[5].size(0))
    op_error(c.node, "the fused separable block needs a float NHWC input of " + std::to_string(p[5].size(0)) + " channels");
  return {detail::separable_block(x, p[3], p[4], p[5], p[1], p[2])};
}

// params: [transpose_a, transpose_b, activation]
void prepare_matmul(Node& n, const std::vector<const at::Tensor*>& cin) {
  const auto fused = n.attr.strings("fused_ops");
  size_t first_act = 0;
  if (!fused.empty() && fused[0] == "BiasAdd") first_act = 1;
  n.params = {n.attr.b("transpose_a"), n.attr.b("transpose_b"), activation_of(n, fused, first_act)};
  n.prepared = {at::Tensor(), at::Tensor(), at::Tensor()};
  if (cin.size() > 1 && cin[1]) n.prepared[0] = n.attr.b("transpose_b") ? cin[1]->t().contiguous() : *cin[1];
  if (first_act == 1) {
    if (cin.size() < 3 || !cin[2]) op_error(n, "bias must be constant");
    n.prepared[1] = *cin[2];
  }
  if (n.params[2] == kPrelu) n.prepared[2] = cin.at(3)->reshape({-1});
}

std::vector<at::Tensor> run_matmul(const OpCall& c) {
  at::Tensor a = arg(c, 0);
  if (c.node.params[0]) a = a.t();
  at::Tensor b = c.node.prepared[0].defined() ? c.node.prepared[0] : (c.node.params[1] ? arg(c, 1).t() : arg(c, 1));
  at::Tensor y = c.node.prepared[1].defined() ? at::addmm(c.node.prepared[1], a, b) : at::mm(a, b);
  return {activate(c.node, y, c.node.params[2], c.node.prepared[2], 1)};
}

// TF pooling: SAME pads max-pool with -inf and excludes the padding from an average's count.
std::vector<at::Tensor> run_pool(const OpCall& c, bool is_max) {
  const auto k = c.node.attr.ints("ksize"), s = c.node.attr.ints("strides");
  if (c.node.attr.s("data_format", "NHWC") != "NHWC") op_error(c.node, "only NHWC is supported");
  at::Tensor x = arg(c, 0).permute({0, 3, 1, 2});
  if (c.node.attr.s("padding") == "SAME") {
    const auto [t, b] = nn::same_padding(x.size(2), k.at(1), s.at(1));
    const auto [l, r] = nn::same_padding(x.size(3), k.at(2), s.at(2));
    if (t || b || l || r) {
      if (is_max) {
        x = at::constant_pad_nd(x, {l, r, t, b}, -std::numeric_limits<float>::infinity());
      } else {
        at::Tensor ones = at::ones({1, 1, x.size(2), x.size(3)}, x.options());
        at::Tensor count = at::avg_pool2d(at::constant_pad_nd(ones, {l, r, t, b}, 0), {k[1], k[2]}, {s[1], s[2]});
        at::Tensor sum = at::avg_pool2d(at::constant_pad_nd(x, {l, r, t, b}, 0), {k[1], k[2]}, {s[1], s[2]});
        return {(sum / count).permute({0, 2, 3, 1})};
      }
    }
  }
  if (is_max) {
    at::Tensor y = nn::max_pool_channels_last(x, k.at(1), k.at(2), s.at(1), s.at(2));
    if (y.defined()) return {y.permute({0, 2, 3, 1})};
  }
  at::Tensor y = is_max ? at::max_pool2d(x, {k.at(1), k.at(2)}, {s.at(1), s.at(2)})
                        : at::avg_pool2d(x, {k.at(1), k.at(2)}, {s.at(1), s.at(2)});
  return {y.permute({0, 2, 3, 1})};
}

std::vector<at::Tensor> run_resize_bilinear(const OpCall& c) {
  const auto size = to_ints(arg(c, 1));
  const bool align = c.node.attr.b("align_corners"), half = c.node.attr.b("half_pixel_centers");
  at::Tensor x = arg(c, 0).permute({0, 3, 1, 2});
  if (!align && !half) {
    // TF's legacy mode samples at dst * in/out: an affine grid without the half-pixel shift.
    const int64_t ih = x.size(2), iw = x.size(3), oh = size.at(0), ow = size.at(1);
    auto coords = [&](int64_t out, int64_t in) {
      at::Tensor s = at::arange(out, x.options()) * (static_cast<double>(in) / out);
      at::Tensor lo = s.floor().clamp_max(in - 1);
      return std::make_tuple(lo.to(at::kLong), at::clamp_max(lo + 1, in - 1).to(at::kLong), s - lo);
    };
    auto [y0, y1, fy] = coords(oh, ih);
    auto [x0, x1, fx] = coords(ow, iw);
    at::Tensor top = x.index_select(2, y0), bot = x.index_select(2, y1);
    at::Tensor rows = top + (bot - top) * fy.view({1, 1, -1, 1});
    at::Tensor left = rows.index_select(3, x0), right = rows.index_select(3, x1);
    return {(left + (right - left) * fx.view({1, 1, 1, -1})).permute({0, 2, 3, 1}).contiguous()};
  }
  at::Tensor y = at::upsample_bilinear2d(x, {size.at(0), size.at(1)}, align);
  return {y.permute({0, 2, 3, 1})};
}

std::vector<at::Tensor> run_depth_to_space(const OpCall& c) {
  const int64_t bs = c.node.attr.i("block_size");
  const at::Tensor& x = arg(c, 0);
  const int64_t n = x.size(0), h = x.size(1), w = x.size(2), ch = x.size(3) / (bs * bs);
  return {x.reshape({n, h, w, bs, bs, ch}).permute({0, 1, 3, 2, 4, 5}).reshape({n, h * bs, w * bs, ch})};
}

}  // namespace

bool fuse_separable_block(const Node& dw, Node& pw) {
  static const bool off = std::getenv("FACEKIT_GRAPH_NO_SEPARABLE") != nullptr;
  if (off || dw.op.find("DepthwiseConv2dNative") == std::string::npos || !(pw.residual_relu || pw.residual_prelu))
    return false;
  if (pw.op != "Conv2D" && pw.op != "_FusedConv2D") return false;
  const auto& d = dw.params;
  const auto& q = pw.params;
  if (d.size() != kNumConvParams || q.size() != kNumConvParams || !d[kDepthwise] || q[kDepthwise]) return false;
  const at::Tensor& wd = dw.prepared.at(0);  // [C * multiplier, 1, 3, 3]
  const at::Tensor& wp = pw.prepared.at(0);  // [C, C, 1, 1]
  const int64_t ch = wd.size(0);
  // Depthwise: 3x3, multiplier 1, stride 1, no dilation, zero padding of one on every side, no activation.
  const bool pad1 = d[kPadMode] == 0 || (d[kPadMode] == 2 && d[kPt] == 1 && d[kPb] == 1 && d[kPl] == 1 && d[kPr] == 1);
  if (wd.size(2) != 3 || wd.size(3) != 3 || d[kInChannels] != ch || d[kSh] != 1 || d[kSw] != 1 || d[kDh] != 1 ||
      d[kDw] != 1 || !pad1 || d[kAct] != kNone)
    return false;
  // Pointwise: 1x1, C -> C, stride 1, no padding, a bias, no activation of its own (the block's ReLU follows
  // the residual add).
  const bool pad0 = q[kPadMode] != 2 || (q[kPt] == 0 && q[kPb] == 0 && q[kPl] == 0 && q[kPr] == 0);
  if (wp.size(0) != ch || wp.size(1) != ch || wp.size(2) != 1 || wp.size(3) != 1 || q[kSh] != 1 || q[kSw] != 1 ||
      !pad0 || q[kAct] != kNone || !pw.prepared.at(1).defined())
    return false;
  // The residual is the block's input, and the depthwise result feeds only the pointwise.
  if (dw.inputs.empty() || pw.inputs.empty() || pw.inputs.back() != dw.inputs[0]) return false;
  if (!wd.is_cpu() || wd.scalar_type() != at::kFloat || !detail::separable_block_supported(ch)) return false;
  static const OpKernel kernel{nullptr, run_separable_block};
  const at::Tensor alpha = pw.residual_prelu ? pw.prepared.at(2).to(at::kFloat).contiguous() : at::Tensor();
  pw.prepared = {wp, pw.prepared[1].contiguous(), alpha, wd.reshape({ch, 9}).t().contiguous(),
                 dw.prepared.at(1).defined() ? dw.prepared[1].contiguous() : at::Tensor(),
                 wp.reshape({ch, ch}).t().contiguous()};
  pw.inputs = {dw.inputs[0]};
  pw.kernel = &kernel;
  pw.state.reset();
  return true;
}

bool use_depthwise3x3(Node& n) {
  static const bool off = std::getenv("FACEKIT_GRAPH_NO_DEPTHWISE") != nullptr;
  if (off || !nn::depthwise3x3_supported() || n.op.find("DepthwiseConv2dNative") == std::string::npos ||
      n.kernel != &op_registry().at(n.op))
    return false;
  const auto& p = n.params;
  if (p.size() != kNumConvParams || !p[kDepthwise] || n.prepared.size() != 3) return false;
  const at::Tensor w = n.prepared[0];  // [C * multiplier, 1, kh, kw]
  if (!w.is_cpu() || (w.scalar_type() != at::kBFloat16 && w.scalar_type() != at::kFloat) || w.size(2) != 3 ||
      w.size(3) != 3 || w.size(0) != p[kInChannels])  // 3x3, one output channel per input channel
    return false;
  // Equal strides of 1 or 2, no dilation; padding any (SAME, VALID, EXPLICIT): the kernel reads the borders.
  if (p[kSh] != p[kSw] || p[kSh] < 1 || p[kSh] > 2 || p[kDh] != 1 || p[kDw] != 1) return false;
  if (p[kAct] != kNone && p[kAct] != kRelu && p[kAct] != kPrelu) return false;
  const int64_t ch = w.size(0);
  static const OpKernel kernel{nullptr, run_depthwise3x3};
  n.prepared.resize(6);
  n.prepared[3] = w.to(at::kFloat).reshape({ch, 9}).t().contiguous();
  if (n.prepared[1].defined()) n.prepared[4] = n.prepared[1].to(at::kFloat).contiguous();
  if (n.prepared[2].defined()) n.prepared[5] = n.prepared[2].to(at::kFloat).reshape({-1}).contiguous();
  if (p[kAct] == kPrelu && (!n.prepared[5].defined() || n.prepared[5].numel() != ch)) {
    n.prepared.resize(3);
    return false;
  }
  n.kernel = &kernel;
  return true;
}

void register_nn_ops() {
  for (const char* op : {"Conv2D", "_FusedConv2D"})
    register_op(op, {[](Node& n, const std::vector<const at::Tensor*>& cin) { prepare_conv(n, cin, false); }, run_conv});
  for (const char* op : {"DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"})
    register_op(op, {[](Node& n, const std::vector<const at::Tensor*>& cin) { prepare_conv(n, cin, true); }, run_conv});
  for (const char* op : {"MatMul", "_FusedMatMul"}) register_op(op, {prepare_matmul, run_matmul});
  for (const char* op : {"BatchMatMul", "BatchMatMulV2"})
    register_op(op, {nullptr, [](const OpCall& c) {
                       at::Tensor a = arg(c, 0), b = arg(c, 1);
                       if (c.node.attr.b("adj_x")) a = a.transpose(-1, -2);
                       if (c.node.attr.b("adj_y")) b = b.transpose(-1, -2);
                       return std::vector<at::Tensor>{at::matmul(a, b)};
                     }});
  register_op("MaxPool", {nullptr, [](const OpCall& c) { return run_pool(c, true); }});
  register_op("AvgPool", {nullptr, [](const OpCall& c) { return run_pool(c, false); }});
  register_op("ResizeBilinear", {nullptr, run_resize_bilinear});
  register_op("DepthToSpace", {nullptr, run_depth_to_space});
  register_op("Softmax", {nullptr, [](const OpCall& c) { return std::vector<at::Tensor>{at::softmax(arg(c, 0), -1)}; }});
}

}  // namespace facekit::graph
