#include "embed/dlib_resnet.hpp"

namespace facekit::detail {
namespace {

// conv (+bias) followed by dlib's per-channel affine layer, folded into one conv.
nn::Conv2d conv_scale(const WeightMap& w, const std::string& p, int64_t k, int64_t in, int64_t out, int stride,
                      nn::Padding pad) {
  auto filt = nn::conv_weight_from_tf(take(w, p + "/conv/filters", {k, k, in, out}));
  auto bias = take(w, p + "/conv/bias", {out});
  auto s = take(w, p + "/scale/weights", {out});
  auto t = take(w, p + "/scale/biases", {out});
  nn::Conv2d c;
  c.weight = filt * s.view({out, 1, 1, 1});
  c.bias = bias * s + t;
  c.stride = stride;
  c.padding = pad;
  return c;
}

}  // namespace

DlibResNet::DlibResNet(const WeightMap& w, const at::Device& device) : device_(device) {
  using nn::Padding;
  stem_ = conv_scale(w, "conv32_down", 7, 3, 32, 2, Padding::kValid);
  stem_.to(device);
  struct Spec {
    const char* name;
    int64_t in, out;
    bool down;
  };
  const Spec specs[] = {{"conv32_1", 32, 32, false},     {"conv32_2", 32, 32, false},
                        {"conv32_3", 32, 32, false},     {"conv64_down", 32, 64, true},
                        {"conv64_1", 64, 64, false},     {"conv64_2", 64, 64, false},
                        {"conv64_3", 64, 64, false},     {"conv128_down", 64, 128, true},
                        {"conv128_1", 128, 128, false},  {"conv128_2", 128, 128, false},
                        {"conv256_down", 128, 256, true}, {"conv256_1", 256, 256, false},
                        {"conv256_2", 256, 256, false},  {"conv256_down_out", 256, 256, true}};
  for (const auto& s : specs) {
    const std::string p = s.name;
    Residual r;
    r.down = s.down;
    r.conv1 = conv_scale(w, p + "/conv1", 3, s.in, s.out, s.down ? 2 : 1, s.down ? Padding::kValid : Padding::kSame);
    r.conv2 = conv_scale(w, p + "/conv2", 3, s.out, s.out, 1, Padding::kSame);
    r.conv1.to(device);
    r.conv2.to(device);
    blocks_.push_back(std::move(r));
  }
  fc_ = take(w, "fc", {256, 128}).to(device);
}

at::Tensor DlibResNet::forward(const at::Tensor& x) const {
  at::Tensor out = stem_(x.contiguous(at::MemoryFormat::ChannelsLast)).relu_();
  out = at::max_pool2d(out, {3, 3}, {2, 2});
  for (const auto& b : blocks_) {
    at::Tensor y = b.conv2(b.conv1(out).relu_());
    at::Tensor shortcut = out;
    if (b.down) {
      shortcut = at::avg_pool2d(out, {2, 2}, {2, 2});
      // dlib adds tensors of different sizes over their overlap: zero-extend the smaller one.
      const int64_t dh = shortcut.size(2) - y.size(2), dw = shortcut.size(3) - y.size(3);
      if (dh > 0 || dw > 0) y = at::constant_pad_nd(y, {0, std::max<int64_t>(dw, 0), 0, std::max<int64_t>(dh, 0)}, 0);
      const int64_t dc = y.size(1) - shortcut.size(1);
      if (dc > 0) shortcut = at::constant_pad_nd(shortcut, {0, 0, 0, 0, 0, dc}, 0);
    }
    out = (y + shortcut).relu_();
  }
  return at::mm(out.mean({2, 3}), fc_);
}

}  // namespace facekit::detail
