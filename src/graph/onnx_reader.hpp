#pragma once
// ONNX models (float32) read into the graph runtime's form, so that an ONNX network runs on the same kernels
// and load-time fusions as the TF.js and TFLite ones (OpenCV's DNN module stays the runtime for the ops this
// reader lacks: EmbedderOptions / the manifest's "onnx" arch).
#include <string>

#include "graph/imported_graph.hpp"

namespace facekit::graph {

/// Parses `bytes` (a whole .onnx file: protobuf ModelProto, weights inside it). ONNX's NCHW tensors become the
/// runtime's NHWC ones: the placeholder is [N, H, W, C] and filters are converted once; a rank-4 graph output is
/// transposed back to NCHW. Throws facekit::Error kModelCorrupt for a malformed or truncated file and
/// kInvalidArgument for what the reader cannot translate (an op, an attribute value, external weights), naming it.
ImportedGraph read_onnx(const std::string& bytes, const std::string& name);

}  // namespace facekit::graph
