#include "nn/tf_ops.hpp"

#include <cstdlib>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "facekit/error.hpp"
#include "facekit/runtime.hpp"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace facekit::nn {

FlushDenormals::FlushDenormals() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool off = std::getenv("FACEKIT_KEEP_DENORMALS") != nullptr;
  if (off) return;
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | 0x8040);  // FTZ (bit 15) | DAZ (bit 6)
  active_ = true;
#endif
}

FlushDenormals::~FlushDenormals() {
#if defined(__x86_64__) || defined(__i386__)
  if (active_) _mm_setcsr(saved_);
#endif
}

at::Tensor conv_weight_from_tf(const at::Tensor& w) { return w.permute({3, 2, 0, 1}).contiguous(); }
at::Tensor depthwise_weight_from_tf(const at::Tensor& w) { return w.permute({2, 3, 0, 1}).contiguous(); }

std::pair<int64_t, int64_t> same_padding(int64_t in, int64_t kernel, int64_t stride) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + kernel - in, 0);
  return {total / 2, total - total / 2};
}

at::Tensor Conv2d::operator()(const at::Tensor& x) const {
  const int64_t kh = weight.size(2), kw = weight.size(3);
  const int64_t s = stride;
  if (padding == Padding::kValid) return at::conv2d(x, weight, bias, at::IntArrayRef{s, s}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, groups);
  const auto [top, bottom] = same_padding(x.size(2), kh, stride);
  const auto [left, right] = same_padding(x.size(3), kw, stride);
  if (top == bottom && left == right) return at::conv2d(x, weight, bias, at::IntArrayRef{s, s}, at::IntArrayRef{top, left}, at::IntArrayRef{1, 1}, groups);
  // Asymmetric: pad explicitly (only the odd pixel of stride-2 layers lands here).
  auto xp = at::constant_pad_nd(x, {left, right, top, bottom}, 0);
  return at::conv2d(xp, weight, bias, at::IntArrayRef{s, s}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, groups);
}

void Conv2d::to(const at::Device& device) {
  weight = weight.to(device).contiguous(at::MemoryFormat::ChannelsLast);
  if (bias.defined()) bias = bias.to(device);
}

at::Device parse_device(const std::string& device) {
  try {
    at::Device d(device);
    if (d.is_cuda() && !at::hasCUDA())
      throw Error(ErrorCode::kInvalidArgument, "device '" + device + "' requested but this build has no CUDA");
    return d;
  } catch (const c10::Error&) {
    throw Error(ErrorCode::kInvalidArgument, "unknown device '" + device + "' (use cpu or cuda[:N])");
  }
}

}  // namespace facekit::nn

namespace facekit {
bool cpu_has_native_bf16() {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) return false;  // also false when the OS has not enabled AVX-512 state
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u;
  const unsigned max_sub = a;
  bool avx512_bf16 = false;
  if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) avx512_bf16 = (a >> 5) & 1u;
  return avx512_bf16 || amx_bf16;
#else
  return false;
#endif
}

const char* resolve_precision(const std::string& p) {
  if (p == "fp32") return "fp32";
  if (p == "bf16") return "bf16";
  if (p == "int8") return "int8";  // asked for only: never what "auto" picks
  if (p == "auto") return cpu_has_native_bf16() ? "bf16" : "fp32";
  throw Error(ErrorCode::kInvalidArgument, "precision must be fp32, bf16, int8 or auto, not '" + p + "'");
}

}  // namespace facekit
