#pragma once
// A runtime for TF.js graph models (model.json "graph-model" + weight shards) on ATen.
//
// Tensors keep TensorFlow's logical layout (NHWC for images), stored contiguously; convolutions and pools
// view them as NCHW through a zero-copy permute, which is exactly PyTorch's channels-last memory format, so
// oneDNN runs its fast NHWC kernels with no layout conversion. At load, constant sub-graphs are folded and
// filters are converted once to the kernel's layout. Unknown ops are a load-time error naming op and model.
//
// Thread safety: run() is const and may be called from several threads at once (each call has its own
// activation buffers).
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace facekit::graph {

/// A node's attributes, decoded from the JSON protobuf form.
class Attrs {
 public:
  Attrs() = default;
  explicit Attrs(nlohmann::json j) : j_(std::move(j)) {}
  bool has(const std::string& k) const { return j_.contains(k); }
  int64_t i(const std::string& k, int64_t def = 0) const;
  double f(const std::string& k, double def = 0) const;
  bool b(const std::string& k, bool def = false) const;
  std::string s(const std::string& k, const std::string& def = "") const;  ///< base64-decoded
  std::vector<int64_t> ints(const std::string& k) const;
  std::vector<std::string> strings(const std::string& k) const;
  std::string type(const std::string& k) const;  ///< e.g. "DT_FLOAT"
  std::vector<int64_t> shape(const std::string& k) const;  ///< a "shape" attribute; -1 for unknown dims

 private:
  nlohmann::json j_;
};

struct Node;
class GraphModel;

/// What an op sees when it runs: its inputs and attributes, plus whatever it prepared at load.
struct OpCall {
  const Node& node;
  std::vector<at::Tensor>& inputs;
};

/// An op kernel: optional load-time preparation (may fold constant inputs into node.prepared) and the run
/// function returning the node's outputs.
struct OpKernel {
  std::function<void(Node&, const std::vector<const at::Tensor*>& const_inputs)> prepare;
  std::function<std::vector<at::Tensor>(const OpCall&)> run;
};

/// Registry of kernels by TF op name; ops_*.cpp register into it.
const std::map<std::string, OpKernel>& op_registry();
void register_op(const std::string& name, OpKernel kernel);

struct Node {
  std::string name, op;
  Attrs attr;
  std::vector<std::pair<int, int>> inputs;  // (node index, output index)
  const OpKernel* kernel = nullptr;
  std::vector<at::Tensor> prepared;         // kernel-specific load-time data (converted filters, ...)
  std::vector<int64_t> params;              // kernel-specific load-time integers (strides, padding, ...)
  std::vector<at::Tensor> constant;         // outputs, when the node is constant (Const or folded)
  /// Set by the load-time fusion of conv -> Add -> Relu: the kernel adds its last input (the residual) to
  /// its result and applies Relu, in place (ResNet/BlazeFace blocks; saves two passes and two buffers).
  bool residual_relu = false;
  /// The same with PReLU instead of ReLU (conv -> Add -> Prelu, FaceMesh's blocks); alpha is prepared[2].
  bool residual_prelu = false;
  /// The same with no activation after the add (conv -> Add: MobileFaceNet's linear bottlenecks); the Add node
  /// becomes an alias of the conv's output.
  bool residual_add = false;
  /// Kernel-specific load-time state that is not a tensor (ops_nn.cpp: XNNPACK's prepacked convolutions).
  std::shared_ptr<void> state;
  bool is_const() const { return !constant.empty(); }
};

class GraphModel {
 public:
  /// Loads model.json and its shards (looked up beside it), a float .tflite file (tflite_reader.hpp)
  /// or a float .onnx file (onnx_reader.hpp).
  /// Throws facekit::Error (kModelMissing, kModelCorrupt, kInvalidArgument for an unsupported op) with the
  /// model and op named.
  /// `dtype` at::kBFloat16 runs the graph in bf16 (filters, constants and activations; oneDNN's kernels): for
  /// CPUs with AVX512-BF16 or AMX. Inputs are given and outputs returned as float32 either way.
  explicit GraphModel(const std::filesystem::path& model_json, const at::Device& device = at::kCPU,
                      at::ScalarType dtype = at::kFloat);

  /// Runs the graph. `inputs` maps placeholder names to tensors (float32 NHWC); returns the requested
  /// outputs (node names, optionally "name:k"), by default output_names().
  std::vector<at::Tensor> run(const std::map<std::string, at::Tensor>& inputs,
                              const std::vector<std::string>& outputs = {}) const;
  /// Shorthand for a single-input model.
  std::vector<at::Tensor> run(const at::Tensor& input) const;

  /// Runs once with per-node timing: milliseconds spent per op type (for benchmarks and optimisation).
  std::map<std::string, double> profile(const std::map<std::string, at::Tensor>& inputs) const;

  const std::vector<std::string>& input_names() const { return input_names_; }
  /// Placeholder shape (-1 for dynamic dims).
  std::vector<int64_t> input_shape(const std::string& name) const;
  /// Nodes no other node consumes, in file order (TF.js's model.outputs for graphs without a signature).
  const std::vector<std::string>& output_names() const { return output_names_; }
  const std::string& name() const { return name_; }
  /// Op histogram of the loaded graph (before folding).
  const std::map<std::string, int>& op_counts() const { return op_counts_; }
  const at::Device& device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }

 private:
  void convert_to_dtype();
  std::pair<int, int> resolve(const std::string& ref) const;
  void fuse_residual_relu(const std::set<int>& outputs);
  std::vector<int> depth_first(const std::vector<int>& roots, const std::function<bool(int)>& keep) const;
  std::vector<at::Tensor> execute(const std::map<std::string, at::Tensor>& inputs,
                                  const std::vector<std::string>& outputs, std::map<std::string, double>* prof) const;

  std::string name_;
  at::Device device_;
  at::ScalarType dtype_ = at::kFloat;
  std::vector<Node> nodes_;
  std::map<std::string, int> index_;
  std::vector<int> order_;  // non-constant nodes in execution order
  std::vector<std::string> input_names_, output_names_;
  std::map<std::string, int> op_counts_;
  std::vector<int> last_use_;  // per node: position in order_ after which its outputs can be freed
};

/// Reads a TF.js weights manifest (float32, float16 and uint8 quantisation, int32) into named tensors.
std::map<std::string, at::Tensor> load_weights(const nlohmann::json& manifest, const std::filesystem::path& dir);

}  // namespace facekit::graph
