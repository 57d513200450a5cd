#pragma once
// TensorFlow Lite flatbuffers (float models) read into the graph runtime's form: the same node list a TF.js
// model.json holds (TF op names and attributes) and the constant tensors, so that one runtime, its kernels and
// its load-time fusion serve both formats.
#include <string>

#include "graph/imported_graph.hpp"

namespace facekit::graph {

/// Parses `bytes` (a whole .tflite file). Throws facekit::Error kModelCorrupt for a malformed or truncated
/// file and kInvalidArgument for what the runtime cannot run (quantised tensors, an op it lacks), naming it.
ImportedGraph read_tflite(const std::string& bytes, const std::string& name);

}  // namespace facekit::graph
