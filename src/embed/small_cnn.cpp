#include "embed/small_cnn.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "facekit/error.hpp"

namespace facekit::detail {
namespace {
constexpr int kStages = 4, kConvsPerStage = 2;
constexpr double kBnMomentum = 0.1, kBnEps = 1e-5;

std::string conv_name(int s, int c) { return "s" + std::to_string(s) + ".c" + std::to_string(c); }

const at::Tensor& get(const TensorMap& w, const std::string& name) {
  auto it = w.find(name);
  if (it == w.end()) throw Error(ErrorCode::kModelCorrupt, "small CNN weights lack '" + name + "'");
  return it->second;
}
}  // namespace

TensorMap small_cnn_init(int width, int dim, uint64_t seed) {
  if (width < 1 || dim < 1) throw Error(ErrorCode::kInvalidArgument, "small CNN width and dim must be >= 1");
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  TensorMap w;
  int64_t in = 3;
  for (int s = 0; s < kStages; ++s) {
    const int64_t out = int64_t(width) << s;
    for (int c = 0; c < kConvsPerStage; ++c) {
      const std::string n = conv_name(s, c);
      // He-normal: keeps activations at unit scale through ReLUs.
      w[n + ".w"] = at::normal(0.0, std::sqrt(2.0 / (in * 9)), {out, in, 3, 3}, gen);
      w[n + ".bn.w"] = at::ones({out});
      w[n + ".bn.b"] = at::zeros({out});
      w[n + ".bn.running_mean"] = at::zeros({out});
      w[n + ".bn.running_var"] = at::ones({out});
      in = out;
    }
  }
  w["fc.w"] = at::normal(0.0, std::sqrt(1.0 / in), {int64_t(dim), in}, gen);
  w["fc.b"] = at::zeros({int64_t(dim)});
  return w;
}

void small_cnn_check(const TensorMap& w) {
  for (int s = 0; s < kStages; ++s)
    for (int c = 0; c < kConvsPerStage; ++c)
      for (const char* part : {".w", ".bn.w", ".bn.b", ".bn.running_mean", ".bn.running_var"})
        get(w, conv_name(s, c) + part);
  get(w, "fc.w");
  get(w, "fc.b");
}

bool small_cnn_trainable(const std::string& name) { return name.find(".running_") == std::string::npos; }

at::Tensor small_cnn_forward(const TensorMap& w, const at::Tensor& x, bool training) {
  at::Tensor h = x;
  for (int s = 0; s < kStages; ++s) {
    if (s > 0) h = at::max_pool2d(h, {2, 2}, {2, 2});
    for (int c = 0; c < kConvsPerStage; ++c) {
      const std::string n = conv_name(s, c);
      h = at::conv2d(h, get(w, n + ".w"), {}, 1, 1);
      h = at::batch_norm(h, get(w, n + ".bn.w"), get(w, n + ".bn.b"), get(w, n + ".bn.running_mean"),
                         get(w, n + ".bn.running_var"), training, kBnMomentum, kBnEps, false);
      h = at::relu(h);
    }
  }
  return at::linear(h.mean({2, 3}), get(w, "fc.w"), get(w, "fc.b"));
}

}  // namespace facekit::detail
