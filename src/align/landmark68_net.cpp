#include "align/landmark68_net.hpp"

namespace facekit::detail {
namespace {

nn::Conv2d dw(const WeightMap& w, const std::string& p, int64_t ch, int stride) {
  nn::Conv2d c;
  c.weight = nn::depthwise_weight_from_tf(take(w, p + "/depthwise_filter", {3, 3, ch, 1}));
  c.stride = stride;
  c.groups = static_cast<int>(ch);
  return c;
}

nn::Conv2d pw(const WeightMap& w, const std::string& p, int64_t in, int64_t out) {
  nn::Conv2d c;
  c.weight = nn::conv_weight_from_tf(take(w, p + "/pointwise_filter", {1, 1, in, out}));
  c.bias = take(w, p + "/bias", {out});
  return c;
}

}  // namespace

Landmark68Net::Landmark68Net(const WeightMap& w, const at::Device& device) : device_(device) {
  const int64_t ch[5] = {3, 32, 64, 128, 256};
  for (int b = 0; b < 4; ++b) {
    const std::string p = "dense" + std::to_string(b);
    const int64_t in = ch[b], out = ch[b + 1];
    DenseBlock d;
    d.is_first = b == 0;
    if (d.is_first) {
      d.first.weight = nn::conv_weight_from_tf(take(w, p + "/conv0/filters", {3, 3, in, out}));
      d.first.bias = take(w, p + "/conv0/bias", {out});
      d.first.stride = 2;
      d.first.to(device);
    } else {
      d.conv0 = {dw(w, p + "/conv0", in, 2), pw(w, p + "/conv0", in, out)};
    }
    d.conv1 = {dw(w, p + "/conv1", out, 1), pw(w, p + "/conv1", out, out)};
    d.conv2 = {dw(w, p + "/conv2", out, 1), pw(w, p + "/conv2", out, out)};
    d.conv3 = {dw(w, p + "/conv3", out, 1), pw(w, p + "/conv3", out, out)};
    for (SepConv* s : {&d.conv0, &d.conv1, &d.conv2, &d.conv3})
      if (s->dw.weight.defined()) s->dw.to(device), s->pw.to(device);
    blocks_.push_back(std::move(d));
  }
  fc_w_ = take(w, "fc/weights", {256, 136}).to(device);
  fc_b_ = take(w, "fc/bias", {136}).to(device);
}

at::Tensor Landmark68Net::forward(const at::Tensor& x) const {
  at::Tensor out = x.contiguous(at::MemoryFormat::ChannelsLast);
  for (const auto& d : blocks_) {
    // Dense connections: each conv sees relu(sum of all earlier outputs). One running sum, updated in place,
    // instead of re-adding: elementwise passes over these maps cost more than the convs at batch 16.
    at::Tensor o1 = (d.is_first ? d.first(out) : d.conv0(out)).relu_();
    at::Tensor sum = o1 + d.conv1(o1);
    sum.add_(d.conv2(at::relu(sum)));
    sum.add_(d.conv3(at::relu(sum)));
    out = sum.relu_();
  }
  // 7x7 features, avgPool 7x7 stride 2 VALID = the mean over the map.
  at::Tensor pooled = at::avg_pool2d(out, {7, 7}, {2, 2}).flatten(1);
  return at::addmm(fc_b_, pooled, fc_w_);
}

}  // namespace facekit::detail
