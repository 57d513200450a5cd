#include "graph/graph_model.hpp"

#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>

#include <c10/core/InferenceMode.h>

#include "facekit/error.hpp"
#include "graph/ops_util.hpp"
#include "graph/onnx_reader.hpp"
#include "nn/tf_ops.hpp"
#include "graph/tflite_reader.hpp"

namespace facekit::graph {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string base64_decode(const std::string& in) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : in) {
    const auto p = chars.find(static_cast<char>(c));
    if (p == std::string::npos) break;  // '=' padding ends the data
    val = (val << 6) + static_cast<int>(p);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

int64_t to_int(const json& v) { return v.is_string() ? std::stoll(v.get<std::string>()) : v.get<int64_t>(); }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::kModelMissing, "cannot open " + p.string() + "; run scripts/setup");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int64_t Attrs::i(const std::string& k, int64_t def) const { return j_.contains(k) ? to_int(j_[k].at("i")) : def; }
double Attrs::f(const std::string& k, double def) const {
  return j_.contains(k) && j_[k].contains("f") ? j_[k]["f"].get<double>() : def;
}
bool Attrs::b(const std::string& k, bool def) const {
  return j_.contains(k) && j_[k].contains("b") ? j_[k]["b"].get<bool>() : def;
}
std::string Attrs::s(const std::string& k, const std::string& def) const {
  return j_.contains(k) && j_[k].contains("s") ? base64_decode(j_[k]["s"].get<std::string>()) : def;
}
std::vector<int64_t> Attrs::ints(const std::string& k) const {
  std::vector<int64_t> out;
  if (j_.contains(k) && j_[k].contains("list") && j_[k]["list"].contains("i"))
    for (const auto& v : j_[k]["list"]["i"]) out.push_back(to_int(v));
  return out;
}
std::vector<std::string> Attrs::strings(const std::string& k) const {
  std::vector<std::string> out;
  if (j_.contains(k) && j_[k].contains("list") && j_[k]["list"].contains("s"))
    for (const auto& v : j_[k]["list"]["s"]) out.push_back(base64_decode(v.get<std::string>()));
  return out;
}
std::string Attrs::type(const std::string& k) const {
  return j_.contains(k) && j_[k].contains("type") ? j_[k]["type"].get<std::string>() : "";
}

std::vector<int64_t> Attrs::shape(const std::string& k) const {
  std::vector<int64_t> out;
  if (j_.contains(k) && j_[k].contains("shape") && j_[k]["shape"].contains("dim"))
    for (const auto& d : j_[k]["shape"]["dim"]) out.push_back(to_int(d.at("size")));
  return out;
}

void register_nn_ops();
void register_math_ops();
void register_array_ops();

std::map<std::string, OpKernel>& mutable_registry() {
  static std::map<std::string, OpKernel> r;
  return r;
}
// Registration is explicit (not static initialisers), which a static library's linker would drop.
const std::map<std::string, OpKernel>& op_registry() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_nn_ops();
    register_math_ops();
    register_array_ops();
  });
  return mutable_registry();
}
void register_op(const std::string& name, OpKernel kernel) { mutable_registry()[name] = std::move(kernel); }

std::map<std::string, at::Tensor> load_weights(const json& manifest, const fs::path& dir) {
  std::map<std::string, at::Tensor> out;
  for (const auto& g : manifest) {
    std::string blob;
    for (const auto& p : g.at("paths")) blob += read_file(dir / p.get<std::string>());
    size_t off = 0;
    for (const auto& w : g.at("weights")) {
      const auto name = w.at("name").get<std::string>();
      std::vector<int64_t> shape;
      for (const auto& d : w.at("shape")) shape.push_back(to_int(d));
      int64_t n = 1;
      for (auto d : shape) n *= d;
      const auto dtype = w.at("dtype").get<std::string>();
      const std::string q = w.contains("quantization") ? w["quantization"].at("dtype").get<std::string>() : "";
      const size_t elem = q == "float16" || q == "uint16" ? 2 : q == "uint8" ? 1 : dtype == "bool" ? 1 : 4;
      if (off + n * elem > blob.size())
        throw Error(ErrorCode::kModelCorrupt, "weights truncated at " + name + " in " + dir.string());
      const char* src = blob.data() + off;
      at::Tensor t;
      if (q == "float16") {
        t = at::empty({n}, at::kHalf);
        std::memcpy(t.data_ptr(), src, n * 2);
        t = t.to(at::kFloat);
      } else if (q == "uint8" || q == "uint16") {
        const float scale = w["quantization"].at("scale").get<float>(), mn = w["quantization"].at("min").get<float>();
        t = at::empty({n}, at::kFloat);
        float* d = t.data_ptr<float>();
        for (int64_t i = 0; i < n; ++i)
          d[i] = (q == "uint8" ? static_cast<uint8_t>(src[i]) : reinterpret_cast<const uint16_t*>(src)[i]) * scale + mn;
        if (dtype == "int32") t = t.round().to(at::kInt);
      } else if (dtype == "float32") {
        t = at::empty({n}, at::kFloat);
        std::memcpy(t.data_ptr(), src, n * 4);
      } else if (dtype == "int32") {
        t = at::empty({n}, at::kInt);
        std::memcpy(t.data_ptr(), src, n * 4);
      } else if (dtype == "bool") {
        t = at::empty({n}, at::kBool);
        std::memcpy(t.data_ptr(), src, n);
      } else {
        throw Error(ErrorCode::kModelCorrupt, "unsupported weight dtype " + dtype + " of " + name);
      }
      off += n * elem;
      out.emplace(name, t.view(shape));
    }
  }
  return out;
}

std::pair<int, int> GraphModel::resolve(const std::string& ref) const {
  std::string name = ref;
  int idx = 0;
  if (const auto c = ref.rfind(':'); c != std::string::npos && c + 1 < ref.size() &&
                                     std::all_of(ref.begin() + c + 1, ref.end(), ::isdigit)) {
    name = ref.substr(0, c);
    idx = std::stoi(ref.substr(c + 1));
  }
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(ErrorCode::kModelCorrupt, name_ + ": no node named " + name);
  return {it->second, idx};
}

GraphModel::GraphModel(const fs::path& model_json, const at::Device& device, at::ScalarType dtype)
    : name_(model_json.stem().string()), device_(device), dtype_(dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16)
    throw Error(ErrorCode::kInvalidArgument, name_ + ": the graph runtime runs float32 or bfloat16 only");
  json j;
  c10::InferenceMode guard;
  std::map<std::string, at::Tensor> weights;
  const bool tflite = model_json.extension() == ".tflite", onnx = model_json.extension() == ".onnx";
  if (tflite || onnx) {
    const std::string bytes = read_file(model_json), file = model_json.filename().string();
    ImportedGraph t = tflite ? read_tflite(bytes, file) : read_onnx(bytes, file);
    j = {{"modelTopology", {{"node", std::move(t.nodes)}}}};
    weights = std::move(t.weights);
  } else {
    try {
      j = json::parse(read_file(model_json));
    } catch (const json::exception& e) {
      throw Error(ErrorCode::kModelCorrupt, model_json.string() + " is not valid JSON: " + e.what());
    }
  }
  try {
    if (!tflite && !onnx) weights = load_weights(j.at("weightsManifest"), model_json.parent_path());
    const auto& jn = j.at("modelTopology").at("node");
    for (const auto& n : jn) {
      Node node;
      node.name = n.at("name");
      node.op = n.at("op");
      node.attr = Attrs(n.value("attr", json::object()));
      index_[node.name] = static_cast<int>(nodes_.size());
      op_counts_[node.op]++;
      nodes_.push_back(std::move(node));
    }
    std::vector<char> consumed(nodes_.size(), 0);
    for (size_t k = 0; k < nodes_.size(); ++k) {
      for (const auto& in : jn[k].value("input", json::array())) {
        const std::string ref = in.get<std::string>();
        if (!ref.empty() && ref[0] == '^') continue;  // control dependency: no data
        nodes_[k].inputs.push_back(resolve(ref));
        consumed[nodes_[k].inputs.back().first] = 1;
      }
    }
    for (size_t k = 0; k < nodes_.size(); ++k) {
      auto& node = nodes_[k];
      if (node.op == "Placeholder") {
        input_names_.push_back(node.name);
        continue;
      }
      if (node.op == "Const") {
        auto it = weights.find(node.name);
        if (it == weights.end()) throw Error(ErrorCode::kModelCorrupt, name_ + ": constant " + node.name + " has no weights");
        node.constant = {it->second.to(device)};
        continue;
      }
      auto it = op_registry().find(node.op);
      if (it == op_registry().end())
        throw Error(ErrorCode::kInvalidArgument, "model " + name_ + " uses op " + node.op + " (node " + node.name +
                                                     "), which facekit's graph runtime does not support");
      node.kernel = &it->second;
      if (!consumed[k]) output_names_.push_back(node.name);
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, model_json.string() + " is malformed: " + e.what());
  }

  // Execution order: depth-first from the outputs, so nodes no output needs are never run.
  std::vector<int> roots;
  for (const auto& o : output_names_) roots.push_back(index_.at(o));
  const std::vector<int> topo = depth_first(roots, [](int) { return true; });

  // Fold constant sub-graphs, let kernels prepare (e.g. convert filters), and plan buffer lifetimes.
  auto prepare = [&](Node& node, int k) {
    std::vector<const at::Tensor*> cin;
    bool all_const = true;
    for (const auto& [src, idx] : node.inputs) {
      const Node& s = nodes_[src];
      cin.push_back(s.is_const() ? &s.constant.at(idx) : nullptr);
      all_const = all_const && s.is_const();
    }
    if (all_const) {
      std::vector<at::Tensor> ins;
      for (const auto* t : cin) ins.push_back(*t);
      if (node.kernel->prepare) node.kernel->prepare(node, cin);
      node.constant = node.kernel->run(OpCall{node, ins});
      return;
    }
    if (node.kernel->prepare) node.kernel->prepare(node, cin);
    order_.push_back(k);
  };
  for (int k : topo) {
    Node& node = nodes_[k];
    if (node.is_const() || node.op == "Placeholder") continue;
    try {
      prepare(node, k);
    } catch (const c10::Error& e) {
      // Constants of impossible shapes reach ATen here (a damaged file): a model error, not a crash.
      throw Error(ErrorCode::kModelCorrupt, name_ + ": node " + node.name + " (" + node.op + ") cannot be prepared: " +
                                                e.what_without_backtrace());
    }
  }
  std::set<int> outs;
  for (const auto& o : output_names_) outs.insert(index_.at(o));
  // FACEKIT_GRAPH_NO_FUSION=1 keeps the graph as written (for A/B benchmarks and debugging).
  if (!std::getenv("FACEKIT_GRAPH_NO_FUSION")) fuse_residual_relu(outs);
  if (dtype_ != at::kFloat) convert_to_dtype();
  if (device_.is_cpu())
    for (int k : order_) use_depthwise3x3(nodes_[k]);
  last_use_.assign(nodes_.size(), -1);
  for (size_t step = 0; step < order_.size(); ++step)
    for (const auto& in : nodes_[order_[step]].inputs) last_use_[in.first] = static_cast<int>(step);
  for (const auto& o : output_names_) last_use_[index_.at(o)] = static_cast<int>(order_.size());
}

// conv (no activation) -> Add/AddV2 (with anything) -> Relu or Prelu, where each feeds only the next: the conv
// node takes the Add's other operand as an extra input and does add + activation in place on its own fresh
// output; the activation node becomes an alias of the conv's output and the Add node is dropped. Without an
// activation after the Add, the conv does the add alone and the Add node becomes the alias.
void GraphModel::fuse_residual_relu(const std::set<int>& outputs) {
  static const std::set<std::string> convs = {"Conv2D", "_FusedConv2D"};
  std::vector<std::vector<int>> consumers(nodes_.size());
  for (int k : order_)
    for (const auto& in : nodes_[k].inputs) consumers[in.first].push_back(k);
  auto only_consumer = [&](int k) { return consumers[k].size() == 1 && !outputs.count(k) ? consumers[k][0] : -1; };
  const OpKernel& identity = op_registry().at("Identity");
  std::set<int> dropped;
  bool resort = false;
  for (int k : order_) {
    Node& conv = nodes_[k];
    if (!convs.count(conv.op) || conv.attr.strings("fused_ops") != std::vector<std::string>{"BiasAdd"}) continue;
    const int add = only_consumer(k);
    if (add < 0 || (nodes_[add].op != "AddV2" && nodes_[add].op != "Add") || nodes_[add].inputs.size() != 2) continue;
    const auto& ai = nodes_[add].inputs;
    if (ai[0].first == k && ai[1].first == k) continue;
    const auto other = ai[0].first == k ? ai[1] : ai[0];
    if (nodes_[other.first].is_const()) continue;  // broadcasting constants: leave to the generic path
    int relu = only_consumer(add);
    const bool prelu = relu >= 0 && nodes_[relu].op == "Prelu";
    if (relu >= 0 && nodes_[relu].op != "Relu" && !prelu) relu = -1;
    // PReLU's alpha: a constant of one value per channel.
    const at::Tensor* alpha = nullptr;
    if (prelu) {
      const auto& pi = nodes_[relu].inputs;
      if (pi.size() != 2 || pi[0].first != add || !nodes_[pi[1].first].is_const()) {
        relu = -1;
      } else {
        alpha = &nodes_[pi[1].first].constant.at(pi[1].second);
        if (conv.prepared.empty() || !conv.prepared[0].defined() || alpha->numel() != conv.prepared[0].size(0)) relu = -1;
      }
    }
    conv.inputs.push_back(other);
    if (relu < 0) {  // no activation to take along: the add alone
      conv.residual_add = true;
      nodes_[add].inputs = {{k, 0}};
      nodes_[add].kernel = &identity;
      resort = true;
      continue;
    }
    if (prelu) {
      conv.residual_prelu = true;
      conv.prepared.resize(3);
      conv.prepared[2] = alpha->reshape({-1}).contiguous();
    } else {
      conv.residual_relu = true;
    }
    nodes_[relu].inputs = {{k, 0}};
    nodes_[relu].kernel = &identity;
    dropped.insert(add);
  }
  // depthwise 3x3 -> that fused 1x1 (its residual the depthwise's input): one pass (separable_block.hpp).
  if (device_.is_cpu() && dtype_ == at::kFloat) {  // the fused block's kernel is float only
    for (int k : order_) {
      Node& pw = nodes_[k];
      if (!(pw.residual_relu || pw.residual_prelu) || pw.inputs.empty()) continue;
      const int dw = pw.inputs[0].first;
      if (only_consumer(dw) != k || dropped.count(dw) || !fuse_separable_block(nodes_[dw], pw)) continue;
      dropped.insert(dw);
    }
  }
  if (dropped.empty() && !resort) return;
  // A fused conv now also reads the residual, which may come later in the old order: sort again.
  std::vector<char> run(nodes_.size(), 0);  // constants and placeholders are not in order_
  for (int k : order_) run[k] = !dropped.count(k);
  order_ = depth_first(order_, [&](int k) { return run[k] != 0; });
}

// Floating-point constants and load-time data become dtype_ (bf16): a float operand beside a bf16 activation
// would promote the op back to float. XNNPACK's prepacked filters are float only, so they are dropped and oneDNN
// runs every convolution.
void GraphModel::convert_to_dtype() {
  auto convert = [&](at::Tensor& t) {
    if (t.defined() && at::isFloatingType(t.scalar_type()) && t.scalar_type() != dtype_) t = t.to(dtype_);
  };
  for (auto& node : nodes_) {
    for (auto& t : node.constant) convert(t);
    for (auto& t : node.prepared) convert(t);
    if (node.op.find("Conv2D") != std::string::npos || node.op.find("DepthwiseConv2dNative") != std::string::npos)
      node.state.reset();
  }
}

// Every node reachable from `roots` through nodes `keep` accepts, each after its inputs.
std::vector<int> GraphModel::depth_first(const std::vector<int>& roots, const std::function<bool(int)>& keep) const {
  std::vector<char> state(nodes_.size(), 0);  // 0 new, 1 visiting, 2 done
  std::vector<int> order;
  std::function<void(int)> visit = [&](int k) {
    if (state[k] == 2 || !keep(k)) return;
    if (state[k] == 1) throw Error(ErrorCode::kModelCorrupt, name_ + ": the graph has a cycle (control flow?)");
    state[k] = 1;
    for (const auto& in : nodes_[k].inputs) visit(in.first);
    state[k] = 2;
    order.push_back(k);
  };
  for (int k : roots) visit(k);
  return order;
}

std::vector<int64_t> GraphModel::input_shape(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(ErrorCode::kNotFound, name_ + ": no input " + name);
  return nodes_[it->second].attr.shape("shape");
}

std::vector<at::Tensor> GraphModel::run(const at::Tensor& input) const {
  if (input_names_.size() != 1)
    throw Error(ErrorCode::kInvalidArgument, name_ + " has " + std::to_string(input_names_.size()) + " inputs");
  return run({{input_names_[0], input}});
}

std::vector<at::Tensor> GraphModel::run(const std::map<std::string, at::Tensor>& inputs,
                                        const std::vector<std::string>& outputs) const {
  return execute(inputs, outputs, nullptr);
}

std::map<std::string, double> GraphModel::profile(const std::map<std::string, at::Tensor>& inputs) const {
  std::map<std::string, double> prof;
  execute(inputs, {}, &prof);
  return prof;
}

std::vector<at::Tensor> GraphModel::execute(const std::map<std::string, at::Tensor>& inputs,
                                            const std::vector<std::string>& outputs,
                                            std::map<std::string, double>* prof) const {
  c10::InferenceMode guard;
  const nn::FlushDenormals ftz;
  std::vector<std::vector<at::Tensor>> slots(nodes_.size());
  for (const auto& name : input_names_) {
    auto it = inputs.find(name);
    if (it == inputs.end()) throw Error(ErrorCode::kInvalidArgument, name_ + ": input " + name + " not given");
    at::Tensor x = it->second.to(device_).contiguous();
    if (dtype_ != at::kFloat && at::isFloatingType(x.scalar_type())) x = x.to(dtype_);
    slots[index_.at(name)] = {x};
  }
  std::vector<char> keep(nodes_.size(), 0);
  for (const auto& o : outputs) keep[resolve(o).first] = 1;
  // Asked for inner nodes: run only what they depend on (e.g. BlazeFace's convolutions without the Reshapes
  // that assume a square input).
  std::vector<char> need(nodes_.size(), outputs.empty() ? 1 : 0);
  if (!outputs.empty()) {
    std::vector<int> stack;
    for (const auto& o : outputs) stack.push_back(resolve(o).first);
    while (!stack.empty()) {
      const int k = stack.back();
      stack.pop_back();
      if (need[k]) continue;
      need[k] = 1;
      for (const auto& in : nodes_[k].inputs) stack.push_back(in.first);
    }
  }
  std::vector<at::Tensor> args;
  for (size_t step = 0; step < order_.size(); ++step) {
    const Node& node = nodes_[order_[step]];
    if (!need[order_[step]]) continue;
    args.clear();
    for (const auto& [src, idx] : node.inputs) {
      const Node& s = nodes_[src];
      const auto& v = s.is_const() ? s.constant : slots[src];
      if (idx >= static_cast<int>(v.size()))
        throw Error(ErrorCode::kInternal, name_ + ": node " + node.name + " reads a missing output of " + s.name);
      args.push_back(v[idx]);
    }
    const auto t0 = prof ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    try {
      slots[order_[step]] = node.kernel->run(OpCall{node, args});
      if (prof) {
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        // FACEKIT_PROFILE_NODES=1: time each node (op, name, input and filter shapes) rather than each op type.
        static const bool per_node = std::getenv("FACEKIT_PROFILE_NODES") != nullptr;
        if (per_node) {
          std::ostringstream os;
          os << node.op << " " << node.name << " " << (args.empty() ? std::string() : c10::str(args[0].sizes()));
          if (!node.prepared.empty() && node.prepared[0].defined()) os << " w" << node.prepared[0].sizes();
          (*prof)[os.str()] += ms;
        } else {
          (*prof)[node.op] += ms;
        }
      }
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kInvalidArgument, name_ + ": op " + node.op + " (" + node.name + ") failed: " +
                                                   e.what_without_backtrace());
    }
    for (const auto& [src, idx] : node.inputs)
      if (last_use_[src] == static_cast<int>(step) && !nodes_[src].is_const() && !keep[src]) slots[src].clear();
  }
  std::vector<at::Tensor> out;
  for (const auto& o : outputs.empty() ? output_names_ : outputs) {
    const auto [k, idx] = resolve(o);
    const auto& v = nodes_[k].is_const() ? nodes_[k].constant : slots[k];
    if (idx >= static_cast<int>(v.size())) throw Error(ErrorCode::kInvalidArgument, name_ + ": no output " + o);
    out.push_back(dtype_ != at::kFloat && v[idx].scalar_type() == dtype_ ? v[idx].to(at::kFloat) : v[idx]);
  }
  return out;
}

}  // namespace facekit::graph
