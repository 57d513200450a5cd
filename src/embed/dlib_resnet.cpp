#include "embed/dlib_resnet.hpp"

#include "facekit/error.hpp"
#include "nn/elementwise.hpp"

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

struct Spec {
  const char* name;
  int64_t in, out;
  bool down;
};
constexpr Spec kSpecs[] = {{"conv32_1", 32, 32, false},     {"conv32_2", 32, 32, false},
                           {"conv32_3", 32, 32, false},     {"conv64_down", 32, 64, true},
                           {"conv64_1", 64, 64, false},     {"conv64_2", 64, 64, false},
                           {"conv64_3", 64, 64, false},     {"conv128_down", 64, 128, true},
                           {"conv128_1", 128, 128, false},  {"conv128_2", 128, 128, false},
                           {"conv256_down", 128, 256, true}, {"conv256_1", 256, 256, false},
                           {"conv256_2", 256, 256, false},  {"conv256_down_out", 256, 256, true}};

std::string block_key(size_t i, const char* conv, const char* part) {
  return "b" + std::to_string(i) + "." + conv + "." + part;
}

at::Tensor need(const TensorMap& m, const std::string& name, at::IntArrayRef shape) {
  auto it = m.find(name);
  if (it == m.end() || it->second.sizes() != shape)
    throw Error(ErrorCode::kModelCorrupt, "fine-tuned dlib ResNet weights lack '" + name + "' of the right shape");
  return it->second;
}

}  // namespace

DlibResNet::DlibResNet(const WeightMap& w, const at::Device& device) : device_(device) {
  using nn::Padding;
  stem_ = conv_scale(w, "conv32_down", 7, 3, 32, 2, Padding::kValid);
  stem_.to(device);
  for (const auto& s : kSpecs) {
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

DlibResNet DlibResNet::from_folded(const TensorMap& m, const at::Device& device) {
  using nn::Padding;
  DlibResNet n(device);
  auto& stem_ = n.stem_;
  stem_.weight = need(m, "stem.w", {32, 3, 7, 7});
  stem_.bias = need(m, "stem.b", {32});
  stem_.stride = 2;
  stem_.padding = Padding::kValid;
  stem_.to(device);
  for (size_t i = 0; i < std::size(kSpecs); ++i) {
    const auto& s = kSpecs[i];
    Residual r;
    r.down = s.down;
    r.conv1.weight = need(m, block_key(i, "conv1", "w"), {s.out, s.in, 3, 3});
    r.conv1.bias = need(m, block_key(i, "conv1", "b"), {s.out});
    r.conv1.stride = s.down ? 2 : 1;
    r.conv1.padding = s.down ? Padding::kValid : Padding::kSame;
    r.conv2.weight = need(m, block_key(i, "conv2", "w"), {s.out, s.out, 3, 3});
    r.conv2.bias = need(m, block_key(i, "conv2", "b"), {s.out});
    r.conv1.to(device);
    r.conv2.to(device);
    n.blocks_.push_back(std::move(r));
  }
  n.fc_ = need(m, "fc", {256, 128}).to(device);
  if (m.count("proj")) n.proj_ = need(m, "proj", {128, 128}).to(device);
  return n;
}

TensorMap DlibResNet::tensors() const {
  TensorMap m{{"stem.w", stem_.weight}, {"stem.b", stem_.bias}, {"fc", fc_}};
  for (size_t i = 0; i < blocks_.size(); ++i) {
    m[block_key(i, "conv1", "w")] = blocks_[i].conv1.weight;
    m[block_key(i, "conv1", "b")] = blocks_[i].conv1.bias;
    m[block_key(i, "conv2", "w")] = blocks_[i].conv2.weight;
    m[block_key(i, "conv2", "b")] = blocks_[i].conv2.bias;
  }
  if (proj_.defined()) m["proj"] = proj_;
  return m;
}

void DlibResNet::set_dtype(at::ScalarType dtype) {
  for (auto& [name, t] : tensors()) {
    at::Tensor live = t;  // shares the network's tensor: set_data changes the weight itself
    live.set_data(t.to(dtype).contiguous(t.dim() == 4 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
  }
}

void DlibResNet::add_projection() { proj_ = at::eye(128, at::TensorOptions().device(device_)); }

at::Tensor DlibResNet::stem(const at::Tensor& x, const Observer* observe) const {
  const at::Tensor in = x.contiguous(at::MemoryFormat::ChannelsLast);
  at::Tensor out = stem_(in);
  // ReLU and max pooling commute: ReLU after the pool (in its pass) touches a quarter of the values.
  if (!observe) {
    at::Tensor pooled = nn::max_pool_channels_last(out, 3, 3, 2, 2, /*relu=*/true);
    if (pooled.defined()) return pooled;
  }
  if (!nn::relu_bf16_(out)) out.relu_();
  if (observe) (*observe)(in), (*observe)(out);
  at::Tensor pooled = nn::max_pool_channels_last(out, 3, 3, 2, 2);
  return pooled.defined() ? pooled : at::max_pool2d(out, {3, 3}, {2, 2});
}

at::Tensor DlibResNet::blocks(at::Tensor out, int begin, int end, const Observer* observe) const {
  for (int i = begin; i < end; ++i) {
    const auto& b = blocks_[i];
    at::Tensor y1 = b.conv1(out);
    if (!nn::relu_bf16_(y1)) y1.relu_();
    at::Tensor y = b.conv2(y1);
    if (observe) (*observe)(y1), (*observe)(y);
    at::Tensor shortcut = out;
    if (b.down) {
      shortcut = at::avg_pool2d(out, {2, 2}, {2, 2});
      // dlib adds tensors of different sizes over their overlap: zero-extend the smaller one.
      const int64_t dh = shortcut.size(2) - y.size(2), dw = shortcut.size(3) - y.size(3);
      if (dh > 0 || dw > 0) y = at::constant_pad_nd(y, {0, std::max<int64_t>(dw, 0), 0, std::max<int64_t>(dh, 0)}, 0);
      const int64_t dc = y.size(1) - shortcut.size(1);
      if (dc > 0) shortcut = at::constant_pad_nd(shortcut, {0, 0, 0, 0, 0, dc}, 0);
    }
    if (!nn::add_relu_bf16_(y, shortcut)) y = (y + shortcut).relu_();
    out = y;
    if (observe) (*observe)(out);
  }
  return out;
}

at::Tensor DlibResNet::head(const at::Tensor& x) const {
  at::Tensor e = at::mm(x.mean({2, 3}), fc_);
  return proj_.defined() ? at::mm(e, proj_) : e;
}

}  // namespace facekit::detail
