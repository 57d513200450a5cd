// The dlib ResNet in int8 through libtorch's quantised operators on oneDNN (DlibResNetInt8, dlib_resnet.hpp).
// The operators are called through the dispatcher: libtorch 1.13's C++ API has no wrappers for them.
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "embed/dlib_resnet.hpp"
#include "facekit/error.hpp"

namespace facekit::detail {
namespace {

struct QParams {
  double scale = 1;
  int64_t zero_point = 0;
};

// uint8 parameters covering [min, max] and always 0 (ReLU outputs and zero padding must stay exact).
QParams qparams(double lo, double hi) {
  lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  QParams q;
  q.scale = std::max((hi - lo) / 255.0, 1e-8);
  q.zero_point = std::clamp<int64_t>(std::llround(-lo / q.scale), 0, 255);
  return q;
}

c10::IValue call(const c10::OperatorHandle& op, std::vector<c10::IValue> stack) {
  op.callBoxed(&stack);
  return stack.at(0);
}

c10::OperatorHandle op(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
}

int64_t symmetric_padding(const nn::Conv2d& c) {
  if (c.padding == nn::Padding::kValid) return 0;
  if (c.stride == 1 && c.weight.size(2) % 2 == 1 && c.weight.size(2) == c.weight.size(3)) return c.weight.size(2) / 2;
  throw Error(ErrorCode::kInvalidArgument, "int8: a SAME-padded strided convolution has no symmetric padding");
}

}  // namespace

struct DlibResNetInt8::Impl {
  struct Conv {
    c10::IValue packed;
    QParams out;
  };
  struct Block {
    Conv conv1, conv2;
    QParams out;
    bool down = false;
  };
  QParams in;
  Conv stem;
  std::vector<Block> blocks;
  at::Tensor fc;
  std::optional<c10::OperatorHandle> conv, conv_relu, add_relu;  // no default constructor
};

bool DlibResNetInt8::available() {
  const auto& engines = at::globalContext().supportedQEngines();
  return std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end();
}

DlibResNetInt8::DlibResNetInt8(const DlibResNet& net, const std::vector<std::pair<float, float>>& ranges) {
  if (!available())
    throw Error(ErrorCode::kInvalidArgument, "int8 needs libtorch's oneDNN quantised engine, which this build lacks");
  if (ranges.size() != kActivations)
    throw Error(ErrorCode::kInvalidArgument, "int8: " + std::to_string(ranges.size()) + " activation ranges, the network has " +
                                                 std::to_string(kActivations));
  for (const auto& [lo, hi] : ranges)
    if (!(lo <= hi)) throw Error(ErrorCode::kInvalidArgument, "int8: an activation range has min > max (or NaN)");
  if (net.has_projection() || !net.device().is_cpu() || 2 + 3 * net.blocks_.size() != kActivations)
    throw Error(ErrorCode::kInvalidArgument, "int8 runs the stock dlib ResNet on the CPU only");
  // The engine is process-wide; nothing else in facekit uses quantised operators.
  at::globalContext().setQEngine(at::QEngine::ONEDNN);
  auto impl = std::make_shared<Impl>();
  impl->conv = op("quantized::conv2d", "new");
  impl->conv_relu = op("quantized::conv2d_relu", "new");
  impl->add_relu = op("quantized::add_relu", "");
  const auto prepack = op("quantized::conv2d_prepack", "");
  size_t k = 0;
  auto next = [&] {
    const auto& r = ranges[k++];
    return qparams(r.first, r.second);
  };
  auto make = [&](const nn::Conv2d& c) {
    Impl::Conv q;
    const at::Tensor w = c.weight.to(at::kFloat).contiguous();
    // Per output channel, symmetric: each filter keeps its own 8 bits of resolution.
    const at::Tensor s = w.abs().amax({1, 2, 3}).to(at::kDouble).div(127.0).clamp_min(1e-12);
    const at::Tensor qw = at::quantize_per_channel(w, s, at::zeros({w.size(0)}, at::kLong), 0, at::kQInt8);
    const int64_t pad = symmetric_padding(c), stride = c.stride;
    q.packed = call(prepack, {qw, c.bias.to(at::kFloat).contiguous(), c10::List<int64_t>({stride, stride}),
                              c10::List<int64_t>({pad, pad}), c10::List<int64_t>({1, 1}), int64_t{1}});
    q.out = next();
    return q;
  };
  impl->in = next();
  impl->stem = make(net.stem_);
  for (const auto& b : net.blocks_) {
    Impl::Block q;
    q.down = b.down;
    q.conv1 = make(b.conv1);
    q.conv2 = make(b.conv2);
    q.out = next();
    impl->blocks.push_back(std::move(q));
  }
  impl->fc = net.fc_.to(at::kFloat).contiguous();
  impl_ = std::move(impl);
}

DlibResNetInt8::~DlibResNetInt8() = default;

namespace {

// Zero-pads a small quantised tensor in H and W (through float: the last two blocks' odd pixel only).
at::Tensor pad_spatial(const at::Tensor& q, at::IntArrayRef pad) {
  const at::Tensor f = at::constant_pad_nd(q.dequantize(), pad, 0).contiguous(at::MemoryFormat::ChannelsLast);
  return at::quantize_per_tensor(f, q.q_scale(), q.q_zero_point(), q.scalar_type());
}

// Zero-extends the channels in the quantised domain: a block of zero points appended.
at::Tensor pad_channels(const at::Tensor& q, int64_t extra) {
  at::Tensor z = at::_empty_affine_quantized({q.size(0), extra, q.size(2), q.size(3)}, q.options(), q.q_scale(),
                                             q.q_zero_point(), at::MemoryFormat::ChannelsLast);
  std::memset(z.data_ptr(), static_cast<int>(q.q_zero_point()), static_cast<size_t>(z.numel()));
  return at::cat({q, z}, 1).contiguous(at::MemoryFormat::ChannelsLast);
}

}  // namespace

at::Tensor DlibResNetInt8::forward(const at::Tensor& x) const {
  const Impl& m = *impl_;
  auto conv = [](const c10::OperatorHandle& o, const at::Tensor& t, const Impl::Conv& c) {
    return call(o, {t, c.packed, c.out.scale, c.out.zero_point}).toTensor();
  };
  at::Tensor out = at::quantize_per_tensor(x.to(at::kFloat).contiguous(at::MemoryFormat::ChannelsLast), m.in.scale,
                                           m.in.zero_point, at::kQUInt8);
  out = conv(*m.conv_relu, out, m.stem);
  // Quantised max-pool: padding and dilation given explicitly (1.13 computes a wrong size from the defaults).
  out = at::max_pool2d(out, {3, 3}, {2, 2}, {0, 0}, {1, 1});
  for (const auto& b : m.blocks) {
    at::Tensor y = conv(*m.conv, conv(*m.conv_relu, out, b.conv1), b.conv2);
    at::Tensor shortcut = out;
    if (b.down) {
      // As DlibResNet::blocks: dlib adds tensors of different sizes over their overlap.
      shortcut = at::avg_pool2d(out, {2, 2}, {2, 2});
      const int64_t dh = shortcut.size(2) - y.size(2), dw = shortcut.size(3) - y.size(3);
      if (dh > 0 || dw > 0) y = pad_spatial(y, {0, std::max<int64_t>(dw, 0), 0, std::max<int64_t>(dh, 0)});
      const int64_t dc = y.size(1) - shortcut.size(1);
      if (dc > 0) shortcut = pad_channels(shortcut, dc);
    }
    out = call(*m.add_relu, {y, shortcut, b.out.scale, b.out.zero_point}).toTensor();
  }
  return at::mm(out.dequantize().mean({2, 3}), m.fc);
}

std::vector<std::pair<float, float>> read_int8_ranges(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(ErrorCode::kModelMissing, "int8: no activation ranges at " + path);
  try {
    const auto j = nlohmann::json::parse(f);
    std::vector<std::pair<float, float>> r;
    for (const auto& p : j.at("ranges")) r.emplace_back(p.at(0).get<float>(), p.at(1).get<float>());
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, "int8: " + path + " does not parse: " + e.what());
  }
}

}  // namespace facekit::detail
