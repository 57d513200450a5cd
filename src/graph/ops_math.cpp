// Elementwise and reduction ops.
#include "graph/ops_util.hpp"

namespace facekit::graph {
namespace {

using Unary = at::Tensor (*)(const at::Tensor&);
using Binary = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

void unary(const char* name, std::function<at::Tensor(const at::Tensor&)> f) {
  register_op(name, {nullptr, [f](const OpCall& c) { return std::vector<at::Tensor>{f(arg(c, 0))}; }});
}
void binary(const char* name, std::function<at::Tensor(const at::Tensor&, const at::Tensor&)> f) {
  register_op(name, {nullptr, [f](const OpCall& c) { return std::vector<at::Tensor>{f(arg(c, 0), arg(c, 1))}; }});
}

// Mean, Sum, Max, Min, Prod over the axes given by input 1.
std::vector<at::Tensor> reduce(const OpCall& c, const std::string& kind) {
  const at::Tensor& x = arg(c, 0);
  auto axes = to_ints(arg(c, 1));
  for (auto& a : axes) a = norm_axis(a, x.dim());
  const bool keep = c.node.attr.b("keep_dims");
  if (axes.empty()) return {x};
  if (kind == "Mean") return {x.mean(axes, keep)};
  if (kind == "Sum") return {x.sum(axes, keep)};
  at::Tensor y = x;
  std::sort(axes.rbegin(), axes.rend());  // reduce the last axes first so indices stay valid
  for (auto a : axes) {
    if (kind == "Max") y = std::get<0>(y.max(a, keep));
    else if (kind == "Min") y = std::get<0>(y.min(a, keep));
    else if (kind == "Prod") y = y.prod(a, keep);
    else if (kind == "All") y = y.all(a, keep);
    else if (kind == "Any") y = y.any(a, keep);
  }
  return {y};
}

at::ScalarType dtype_of(const Node& n, const std::string& tf) {
  if (tf == "DT_FLOAT") return at::kFloat;
  if (tf == "DT_INT32") return at::kInt;
  if (tf == "DT_INT64") return at::kLong;
  if (tf == "DT_BOOL") return at::kBool;
  if (tf == "DT_UINT8") return at::kByte;
  op_error(n, "unsupported dtype " + tf);
}

}  // namespace

void register_math_ops() {
  binary("Add", [](const at::Tensor& a, const at::Tensor& b) { return a + b; });
  binary("AddV2", [](const at::Tensor& a, const at::Tensor& b) { return a + b; });
  binary("Sub", [](const at::Tensor& a, const at::Tensor& b) { return a - b; });
  binary("Mul", [](const at::Tensor& a, const at::Tensor& b) { return a * b; });
  binary("RealDiv", [](const at::Tensor& a, const at::Tensor& b) { return a / b; });
  binary("Div", [](const at::Tensor& a, const at::Tensor& b) {
    return a.is_floating_point() ? a / b : at::div(a, b, "trunc");
  });
  binary("FloorDiv", [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b, "floor"); });
  binary("FloorMod", [](const at::Tensor& a, const at::Tensor& b) { return at::remainder(a, b); });
  binary("Maximum", [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); });
  binary("Minimum", [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); });
  binary("Pow", [](const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b); });
  binary("SquaredDifference", [](const at::Tensor& a, const at::Tensor& b) { return (a - b).square(); });
  binary("Atan2", [](const at::Tensor& a, const at::Tensor& b) { return at::atan2(a, b); });
  binary("Greater", [](const at::Tensor& a, const at::Tensor& b) { return a > b; });
  binary("GreaterEqual", [](const at::Tensor& a, const at::Tensor& b) { return a >= b; });
  binary("Less", [](const at::Tensor& a, const at::Tensor& b) { return a < b; });
  binary("LessEqual", [](const at::Tensor& a, const at::Tensor& b) { return a <= b; });
  binary("Equal", [](const at::Tensor& a, const at::Tensor& b) { return a == b; });
  binary("NotEqual", [](const at::Tensor& a, const at::Tensor& b) { return a != b; });
  binary("LogicalAnd", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); });
  binary("LogicalOr", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); });
  // TF's Prelu: max(0, x) + alpha * min(0, x), alpha broadcast over the last axis.
  binary("Prelu", [](const at::Tensor& x, const at::Tensor& a) {
    // ATen's prelu is one pass (the formula below makes three temporaries); it wants channels at dim 1.
    if (x.dim() >= 2 && a.numel() == x.size(-1) && x.scalar_type() == a.scalar_type()) {
      std::vector<int64_t> to(x.dim()), back(x.dim());
      to[0] = 0, to[1] = x.dim() - 1;
      for (int64_t d = 2; d < x.dim(); ++d) to[d] = d - 1;
      for (int64_t d = 0; d < x.dim(); ++d) back[to[d]] = d;
      return at::prelu(x.permute(to), a.reshape({-1})).permute(back);
    }
    return at::relu(x) + a * at::clamp_max(x, 0);
  });

  unary("Identity", [](const at::Tensor& x) { return x; });
  unary("Relu", [](const at::Tensor& x) { return at::relu(x); });
  unary("Relu6", [](const at::Tensor& x) { return at::clamp(x, 0, 6); });
  unary("Elu", [](const at::Tensor& x) { return at::elu(x); });
  unary("Sigmoid", [](const at::Tensor& x) { return at::sigmoid(x); });
  unary("Tanh", [](const at::Tensor& x) { return at::tanh(x); });
  unary("Abs", [](const at::Tensor& x) { return at::abs(x); });
  unary("Neg", [](const at::Tensor& x) { return at::neg(x); });
  unary("Exp", [](const at::Tensor& x) { return at::exp(x); });
  unary("Log", [](const at::Tensor& x) { return at::log(x); });
  unary("Sqrt", [](const at::Tensor& x) { return at::sqrt(x); });
  unary("Rsqrt", [](const at::Tensor& x) { return at::rsqrt(x); });
  unary("Square", [](const at::Tensor& x) { return at::square(x); });
  unary("Floor", [](const at::Tensor& x) { return at::floor(x); });
  unary("Ceil", [](const at::Tensor& x) { return at::ceil(x); });
  unary("Round", [](const at::Tensor& x) { return at::round(x); });  // half to even, as TF
  unary("Sign", [](const at::Tensor& x) { return at::sign(x); });
  unary("Sin", [](const at::Tensor& x) { return at::sin(x); });
  unary("Cos", [](const at::Tensor& x) { return at::cos(x); });
  unary("Reciprocal", [](const at::Tensor& x) { return at::reciprocal(x); });
  unary("LogicalNot", [](const at::Tensor& x) { return at::logical_not(x); });
  unary("ZerosLike", [](const at::Tensor& x) { return at::zeros_like(x); });
  unary("OnesLike", [](const at::Tensor& x) { return at::ones_like(x); });
  register_op("LeakyRelu", {nullptr, [](const OpCall& c) {
                              return std::vector<at::Tensor>{at::leaky_relu(arg(c, 0), c.node.attr.f("alpha", 0.2))};
                            }});
  register_op("AddN", {nullptr, [](const OpCall& c) {
                         at::Tensor s = arg(c, 0).clone();
                         for (size_t i = 1; i < c.inputs.size(); ++i) s.add_(c.inputs[i]);
                         return std::vector<at::Tensor>{s};
                       }});
  for (const char* k : {"Mean", "Sum", "Max", "Min", "Prod", "All", "Any"})
    register_op(k, {nullptr, [kind = std::string(k)](const OpCall& c) { return reduce(c, kind); }});
  register_op("Cast", {nullptr, [](const OpCall& c) {
                         return std::vector<at::Tensor>{arg(c, 0).to(dtype_of(c.node, c.node.attr.type("DstT")))};
                       }});
}

}  // namespace facekit::graph
