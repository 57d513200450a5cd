// Shape and indexing ops: reshape, slicing, concatenation, padding, gathering.
#include "graph/ops_util.hpp"

namespace facekit::graph {
namespace {

using Outs = std::vector<at::Tensor>;

Outs reshape(const OpCall& c) {
  auto shape = to_ints(arg(c, 1));
  return {arg(c, 0).reshape(shape)};
}

Outs pad(const OpCall& c) {
  const at::Tensor& x = arg(c, 0);
  const auto p = to_ints(arg(c, 1));  // [rank, 2]
  std::vector<int64_t> torch_pad;
  for (int64_t d = x.dim() - 1; d >= 0; --d) torch_pad.insert(torch_pad.end(), {p.at(2 * d), p.at(2 * d + 1)});
  const double value = c.inputs.size() > 2 ? arg(c, 2).item<double>() : 0.0;
  return {at::constant_pad_nd(x, torch_pad, value)};
}

Outs concat(const OpCall& c, bool axis_last) {
  const size_t n = c.inputs.size() - 1;
  const at::Tensor& axis_t = axis_last ? c.inputs.back() : c.inputs.front();
  std::vector<at::Tensor> parts(c.inputs.begin() + (axis_last ? 0 : 1), c.inputs.begin() + (axis_last ? n : n + 1));
  const int64_t axis = norm_axis(axis_t.item<int64_t>(), parts.at(0).dim());
  // TF allows mixing int32 shape pieces; keep the first input's dtype.
  for (auto& p : parts) p = p.to(parts[0].scalar_type());
  return {at::cat(parts, axis)};
}

// TF's StridedSlice with all five masks. Each index is applied in turn with index_select, which handles
// negative strides too.
Outs strided_slice(const OpCall& c) {
  at::Tensor x = arg(c, 0);
  const auto begin = to_ints(arg(c, 1)), end = to_ints(arg(c, 2)), strides = to_ints(arg(c, 3));
  const auto& a = c.node.attr;
  const int64_t bm = a.i("begin_mask"), em = a.i("end_mask"), ell = a.i("ellipsis_mask"), nam = a.i("new_axis_mask"),
                sam = a.i("shrink_axis_mask");
  const int64_t L = static_cast<int64_t>(begin.size()), R = x.dim();
  int64_t real = 0;
  for (int64_t i = 0; i < L; ++i) real += !((ell >> i) & 1) && !((nam >> i) & 1);
  int64_t d = 0;  // dimension of the current tensor being indexed
  for (int64_t i = 0; i < L; ++i) {
    if ((ell >> i) & 1) {
      d += R - real;  // the ellipsis keeps these dims whole
      continue;
    }
    if ((nam >> i) & 1) {
      x = x.unsqueeze(d++);
      continue;
    }
    const int64_t n = x.size(d), s = strides.at(i);
    if (s == 0) op_error(c.node, "stride 0");
    auto norm = [n](int64_t v) { return v < 0 ? v + n : v; };
    if ((sam >> i) & 1) {
      x = x.select(d, norm(begin.at(i)));
      continue;
    }
    int64_t start, stop;
    if (s > 0) {
      start = (bm >> i) & 1 ? 0 : std::clamp<int64_t>(norm(begin.at(i)), 0, n);
      stop = (em >> i) & 1 ? n : std::clamp<int64_t>(norm(end.at(i)), 0, n);
    } else {
      start = (bm >> i) & 1 ? n - 1 : std::clamp<int64_t>(norm(begin.at(i)), -1, n - 1);
      stop = (em >> i) & 1 ? -1 : std::clamp<int64_t>(norm(end.at(i)), -1, n - 1);
    }
    if (s == 1) {
      x = x.narrow(d, start, std::max<int64_t>(stop - start, 0));
    } else {
      at::Tensor idx = (s > 0 && stop <= start) || (s < 0 && stop >= start)
                           ? at::empty({0}, at::kLong)
                           : at::arange(start, stop, s, at::kLong);
      x = x.index_select(d, idx.to(x.device()));
    }
    ++d;
  }
  return {x};
}

Outs gather(const OpCall& c) {
  const at::Tensor& params = arg(c, 0);
  const at::Tensor idx = arg(c, 1).to(at::kLong);
  const int64_t axis = norm_axis(c.inputs.size() > 2 ? arg(c, 2).item<int64_t>() : 0, params.dim());
  if (c.node.attr.i("batch_dims") != 0) op_error(c.node, "batch_dims != 0 is not supported");
  at::Tensor flat = params.index_select(axis, idx.reshape({-1}));
  std::vector<int64_t> shape(params.sizes().begin(), params.sizes().begin() + axis);
  shape.insert(shape.end(), idx.sizes().begin(), idx.sizes().end());
  shape.insert(shape.end(), params.sizes().begin() + axis + 1, params.sizes().end());
  return {flat.reshape(shape)};
}

Outs gather_nd(const OpCall& c) {
  const at::Tensor& params = arg(c, 0);
  const at::Tensor idx = arg(c, 1).to(at::kLong);
  const int64_t k = idx.size(-1);
  // Linearise the first k dims of params and of the index tuples.
  at::Tensor strides = at::ones({k}, at::kLong);
  for (int64_t j = k - 2; j >= 0; --j) strides[j] = strides[j + 1] * params.size(j + 1);
  at::Tensor lin = (idx * strides.to(idx.device())).sum(-1);
  std::vector<int64_t> rest(params.sizes().begin() + k, params.sizes().end());
  std::vector<int64_t> flat_shape = {-1};
  flat_shape.insert(flat_shape.end(), rest.begin(), rest.end());
  at::Tensor out = params.reshape(flat_shape).index_select(0, lin.reshape({-1}));
  std::vector<int64_t> shape(idx.sizes().begin(), idx.sizes().end() - 1);
  shape.insert(shape.end(), rest.begin(), rest.end());
  return {out.reshape(shape)};
}

}  // namespace

void register_array_ops() {
  register_op("Reshape", {nullptr, reshape});
  register_op("Squeeze", {nullptr, [](const OpCall& c) {
                            at::Tensor x = arg(c, 0);
                            auto dims = c.node.attr.ints("squeeze_dims");
                            if (dims.empty()) dims = c.node.attr.ints("axis");
                            if (dims.empty()) return Outs{x.squeeze()};
                            for (auto& d : dims) d = norm_axis(d, x.dim());
                            std::sort(dims.rbegin(), dims.rend());
                            for (auto d : dims) x = x.squeeze(d);
                            return Outs{x};
                          }});
  register_op("ExpandDims", {nullptr, [](const OpCall& c) {
                               const at::Tensor& x = arg(c, 0);
                               return Outs{x.unsqueeze(norm_axis(arg(c, 1).item<int64_t>(), x.dim() + 1))};
                             }});
  register_op("Pad", {nullptr, pad});
  register_op("PadV2", {nullptr, pad});
  register_op("ConcatV2", {nullptr, [](const OpCall& c) { return concat(c, true); }});
  register_op("Concat", {nullptr, [](const OpCall& c) { return concat(c, false); }});
  register_op("StridedSlice", {nullptr, strided_slice});
  register_op("Slice", {nullptr, [](const OpCall& c) {
                          at::Tensor x = arg(c, 0);
                          const auto b = to_ints(arg(c, 1)), s = to_ints(arg(c, 2));
                          for (int64_t d = 0; d < static_cast<int64_t>(b.size()); ++d)
                            x = x.narrow(d, b[d], s[d] < 0 ? x.size(d) - b[d] : s[d]);
                          return Outs{x};
                        }});
  register_op("Pack", {nullptr, [](const OpCall& c) {
                         std::vector<at::Tensor> parts(c.inputs.begin(), c.inputs.end());
                         for (auto& p : parts) p = p.to(parts[0].scalar_type());
                         return Outs{at::stack(parts, norm_axis(c.node.attr.i("axis"), parts[0].dim() + 1))};
                       }});
  register_op("Unpack", {nullptr, [](const OpCall& c) {
                           const at::Tensor& x = arg(c, 0);
                           auto parts = x.unbind(norm_axis(c.node.attr.i("axis"), x.dim()));
                           return Outs(parts.begin(), parts.end());
                         }});
  register_op("Shape", {nullptr, [](const OpCall& c) {
                          return Outs{at::tensor(arg(c, 0).sizes().vec(), at::kLong).to(at::kInt)};
                        }});
  register_op("Size", {nullptr, [](const OpCall& c) {
                         return Outs{at::tensor({static_cast<int>(arg(c, 0).numel())}, at::kInt).reshape({})};
                       }});
  register_op("Fill", {nullptr, [](const OpCall& c) {
                         return Outs{at::full(to_ints(arg(c, 0)), arg(c, 1).item(), arg(c, 1).options())};
                       }});
  register_op("Range", {nullptr, [](const OpCall& c) {
                          const at::Tensor& s = arg(c, 0);
                          return Outs{at::arange(s.item(), arg(c, 1).item(), arg(c, 2).item(), s.options())};
                        }});
  register_op("Tile", {nullptr, [](const OpCall& c) { return Outs{arg(c, 0).repeat(to_ints(arg(c, 1)))}; }});
  register_op("BroadcastTo", {nullptr, [](const OpCall& c) { return Outs{arg(c, 0).expand(to_ints(arg(c, 1)))}; }});
  register_op("Transpose", {nullptr, [](const OpCall& c) { return Outs{arg(c, 0).permute(to_ints(arg(c, 1)))}; }});
  register_op("GatherV2", {nullptr, gather});
  register_op("GatherNd", {nullptr, gather_nd});
}

}  // namespace facekit::graph
