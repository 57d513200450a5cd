#pragma once
// Helpers shared by the op kernels.
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "facekit/error.hpp"
#include "graph/graph_model.hpp"

namespace facekit::graph {

inline std::vector<int64_t> to_ints(const at::Tensor& t) {
  auto c = t.to(at::kCPU).to(at::kLong).contiguous().view(-1);
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

inline int64_t norm_axis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

[[noreturn]] inline void op_error(const Node& n, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "op " + n.op + " (" + n.name + "): " + what);
}

inline const at::Tensor& arg(const OpCall& c, size_t i) {
  if (i >= c.inputs.size()) op_error(c.node, "missing input " + std::to_string(i));
  return c.inputs[i];
}

/// Load-time fusion (GraphModel): a depthwise 3x3 conv `dw` feeding only a 1x1 conv `pw` that already adds
/// the block's input and applies ReLU (residual_relu) becomes one op on `pw`, reading dw's input
/// (separable_block.hpp). False, with nothing changed, when the pair does not qualify or the CPU lacks AVX2;
/// FACEKIT_GRAPH_NO_SEPARABLE=1 turns it off.
bool fuse_separable_block(const Node& dw, Node& pw);

/// At the end of loading (after fusion and any conversion to bf16): a 3x3 depthwise conv at stride 1 or 2 runs
/// on nn::depthwise3x3 instead of oneDNN or XNNPACK (faster on nearly every shape of the bundled models: docs/results.md).
/// False, with nothing changed, where the node does not qualify or the CPU lacks AVX-512BW;
/// FACEKIT_GRAPH_NO_DEPTHWISE=1 turns it off.
bool use_depthwise3x3(Node& n);

}  // namespace facekit::graph
