// A TFLite flatbuffer read without the TFLite library (Debian packages none): the schema's few tables the
// runtime needs (model, subgraph, tensor, buffer, operator and the options of the ops below), every offset
// checked against the file's size. Ops become the TF ops the graph runtime already runs:
//   CONV_2D -> _FusedConv2D (filters OHWI -> HWIO), DEPTHWISE_CONV_2D -> FusedDepthwiseConv2dNative
//   ([1,kh,kw,C*m] -> [kh,kw,C,m]), ADD/SUB/MUL -> AddV2/Sub/Mul, RELU/RELU6/ABS, RESHAPE.
// A fused activation becomes the conv's own fused op or a node after the op. TFLite files fix the batch size;
// dim 0 is taken as the batch and left free (a Reshape's first dim becomes -1).
#include "graph/tflite_reader.hpp"

#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "facekit/error.hpp"

namespace facekit::graph {
namespace {

using nlohmann::json;

// TFLite's BuiltinOperator, TensorType, Padding and ActivationFunctionType values (schema.fbs).
enum Builtin : int32_t { kAdd = 0, kConv2d = 3, kDepthwiseConv2d = 4, kMul = 18, kRelu = 19, kRelu6 = 21, kReshape = 22,
                         kSub = 41, kAbs = 101 };
enum TensorType : int8_t { kFloat32 = 0, kInt32 = 2, kInt64 = 4 };
enum Activation : int8_t { kActNone = 0, kActRelu = 1, kActRelu6 = 3 };

class Reader {
 public:
  Reader(const std::string& b, const std::string& name) : b_(b), name_(name) {}
  template <class T>
  T get(size_t off) const {
    need(off, sizeof(T));
    T v;
    std::memcpy(&v, b_.data() + off, sizeof(T));
    return v;
  }
  void need(size_t off, size_t n) const {
    if (off > b_.size() || n > b_.size() - off) fail("an offset points past the end of the file");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kModelCorrupt, name_ + ": not a valid TFLite file (" + what + ")");
  }
  const char* data(size_t off) const { return b_.data() + off; }
  const std::string& name() const { return name_; }

 private:
  const std::string& b_;
  std::string name_;
};

// A flatbuffer table: fields by their index in the schema; absent fields read as their default.
class Table {
 public:
  Table(const Reader& r, size_t pos) : r_(&r), pos_(pos) {
    const int64_t vt = static_cast<int64_t>(pos) - r.get<int32_t>(pos);
    if (vt < 0) r.fail("a table's vtable lies before the file");
    vt_ = static_cast<size_t>(vt);
    vlen_ = r.get<uint16_t>(vt_);
  }
  template <class T>
  T scalar(int field, T def) const {
    const size_t o = offset(field);
    return o ? r_->get<T>(pos_ + o) : def;
  }
  std::optional<Table> table(int field) const {
    const size_t o = offset(field);
    if (!o) return std::nullopt;
    return Table(*r_, pos_ + o + r_->get<uint32_t>(pos_ + o));
  }
  // (first element's offset, count) of a vector of `elem`-byte items; (0, 0) when absent.
  std::pair<size_t, size_t> vec(int field, size_t elem) const {
    const size_t o = offset(field);
    if (!o) return {0, 0};
    const size_t p = pos_ + o + r_->get<uint32_t>(pos_ + o);
    const size_t n = r_->get<uint32_t>(p);
    if (elem && n > (SIZE_MAX - p - 4) / elem) r_->fail("a vector's length overflows");
    r_->need(p + 4, n * elem);
    return {p + 4, n};
  }
  std::vector<Table> tables(int field) const {
    const auto [p, n] = vec(field, 4);
    std::vector<Table> out;
    for (size_t i = 0; i < n; ++i) out.emplace_back(*r_, p + 4 * i + r_->get<uint32_t>(p + 4 * i));
    return out;
  }
  std::vector<int64_t> ints(int field) const {
    const auto [p, n] = vec(field, 4);
    std::vector<int64_t> out;
    for (size_t i = 0; i < n; ++i) out.push_back(r_->get<int32_t>(p + 4 * i));
    return out;
  }
  std::string string(int field) const {
    const auto [p, n] = vec(field, 1);
    return p ? std::string(r_->data(p), n) : std::string();
  }

 private:
  size_t offset(int field) const {
    const size_t o = 4 + 2 * static_cast<size_t>(field);
    return o + 2 <= vlen_ ? r_->get<uint16_t>(vt_ + o) : 0;
  }
  const Reader* r_;
  size_t pos_, vt_;
  uint16_t vlen_;
};

// The TF op of a fused activation ("" for none); the runtime takes ReLU and ReLU6 only.
std::string activation_op(int8_t act, const std::string& model) {
  if (act == kActNone) return "";
  if (act == kActRelu) return "Relu";
  if (act == kActRelu6) return "Relu6";
  throw Error(ErrorCode::kInvalidArgument, model + ": fused activation " + std::to_string(act) + " is not supported");
}

}  // namespace

ImportedGraph read_tflite(const std::string& bytes, const std::string& name) {
  const Reader r(bytes, name);
  if (bytes.size() < 8 || std::memcmp(bytes.data() + 4, "TFL3", 4) != 0) r.fail("no TFL3 identifier");
  const Table model(r, r.get<uint32_t>(0));
  std::vector<int32_t> opcodes;
  for (const auto& c : model.tables(1))  // OperatorCode: deprecated_builtin_code (0), builtin_code (3)
    opcodes.push_back(std::max<int32_t>(c.scalar<int8_t>(0, 0), c.scalar<int32_t>(3, 0)));
  const auto subgraphs = model.tables(2);
  if (subgraphs.size() != 1) r.fail(std::to_string(subgraphs.size()) + " subgraphs; facekit runs files with one");
  const auto buffers = model.tables(4);
  const Table& sg = subgraphs[0];
  const auto tensors = sg.tables(0);

  ImportedGraph g;
  g.nodes = json::array();
  // Node names: the tensor's own, made unique and free of ':' (the runtime reads "name:k" as output k).
  std::vector<std::string> tname(tensors.size());
  std::set<std::string> used;
  for (size_t i = 0; i < tensors.size(); ++i) {
    std::string s = tensors[i].string(3);
    for (auto& ch : s)
      if (ch == ':') ch = '_';
    if (s.empty() || used.count(s)) s += "#" + std::to_string(i);
    used.insert(s);
    tname[i] = s;
  }
  auto shape_of = [&](size_t i) { return tensors[i].ints(0); };
  auto check_index = [&](int64_t i) {
    if (i < 0 || static_cast<size_t>(i) >= tensors.size()) r.fail("an op names tensor " + std::to_string(i));
    return static_cast<size_t>(i);
  };
  // A tensor's constant data, or an undefined tensor when it has none (an activation).
  auto constant = [&](size_t i) -> at::Tensor {
    const uint32_t b = tensors[i].scalar<uint32_t>(2, 0);
    if (b == 0) return {};
    if (b >= buffers.size()) r.fail("tensor " + tname[i] + " names buffer " + std::to_string(b));
    const auto [p, n] = buffers[b].vec(0, 1);
    if (n == 0) return {};
    const int8_t type = tensors[i].scalar<int8_t>(1, 0);
    const auto dtype = type == kFloat32 ? at::kFloat : type == kInt32 ? at::kInt : type == kInt64 ? at::kLong : at::kByte;
    if (dtype == at::kByte)
      throw Error(ErrorCode::kInvalidArgument, name + ": tensor " + tname[i] + " has TFLite type " + std::to_string(type) +
                                                   "; facekit runs float models (quantised ones are not supported)");
    std::vector<int64_t> shape = shape_of(i);
    size_t count = 1;
    for (auto d : shape) {
      if (d < 0 || static_cast<size_t>(d) > n) r.fail("tensor " + tname[i] + " has a dimension of " + std::to_string(d));
      count *= static_cast<size_t>(d);
      if (count > n) break;
    }
    if (count * at::elementSize(dtype) != n) r.fail("tensor " + tname[i] + "'s data does not match its shape");
    at::Tensor t = at::empty(shape, dtype);
    std::memcpy(t.data_ptr(), r.data(p), n);
    return t;
  };
  std::set<std::string> emitted;
  auto add_const = [&](const std::string& n, const at::Tensor& t) {
    if (emitted.insert(n).second) {
      g.nodes.push_back({{"name", n}, {"op", "Const"}});
      g.weights.emplace(n, t);
    }
    return n;
  };
  // An op's input by name: an activation's producer, or the tensor's data as a Const node.
  auto input = [&](size_t i) {
    if (emitted.count(tname[i])) return tname[i];
    const at::Tensor t = constant(i);
    if (!t.defined()) r.fail("tensor " + tname[i] + " is read before any op writes it");
    return add_const(tname[i], t);
  };
  for (auto i : sg.ints(1)) {
    const size_t k = check_index(i);
    if (tensors[k].scalar<int8_t>(1, 0) != kFloat32)
      throw Error(ErrorCode::kInvalidArgument, name + ": input " + tname[k] + " is not float32");
    auto shape = shape_of(k);
    json dims = json::array();
    for (size_t d = 0; d < shape.size(); ++d) dims.push_back({{"size", std::to_string(d == 0 ? -1 : shape[d])}});
    g.nodes.push_back({{"name", tname[k]}, {"op", "Placeholder"}, {"attr", {{"shape", {{"shape", {{"dim", dims}}}}}}}});
    emitted.insert(tname[k]);
  }

  const auto ops = sg.tables(3);
  std::vector<int32_t> op_code;
  std::vector<std::vector<int64_t>> op_ins, op_outs;
  std::vector<int> readers(tensors.size(), 0), producer(tensors.size(), -1);
  for (size_t k = 0; k < ops.size(); ++k) {
    const uint32_t code_index = ops[k].scalar<uint32_t>(0, 0);
    if (code_index >= opcodes.size()) r.fail("an op names operator code " + std::to_string(code_index));
    op_code.push_back(opcodes[code_index]);
    op_ins.push_back(ops[k].ints(1));
    op_outs.push_back(ops[k].ints(2));
    for (auto i : op_ins.back())
      if (i >= 0) readers[check_index(i)]++;
    for (auto i : op_outs.back()) producer[check_index(i)] = static_cast<int>(k);
  }
  // TF's converter writes PReLU as relu(x) + c * (x - |x|) with c = alpha / 2: five ops and four temporaries.
  // Found here, it becomes one Prelu; right after a convolution, the convolution's fused activation.
  std::vector<char> skip(ops.size(), 0);
  std::map<size_t, std::pair<size_t, at::Tensor>> prelu;  // ADD op -> (x, alpha)
  auto made_by = [&](int64_t t, int32_t code) {
    return t >= 0 && producer[t] >= 0 && op_code[producer[t]] == code && readers[t] == 1 ? producer[t] : -1;
  };
  for (size_t k = 0; k < ops.size(); ++k) {
    if (op_code[k] != kAdd || op_ins[k].size() != 2) continue;
    if (const auto o = ops[k].table(4); o && o->scalar<int8_t>(0, 0) != kActNone) continue;
    for (int side = 0; side < 2; ++side) {
      const int relu = made_by(op_ins[k][side], kRelu), mul = made_by(op_ins[k][1 - side], kMul);
      if (relu < 0 || mul < 0 || op_ins[mul].size() != 2) continue;
      const int64_t x = op_ins[relu].at(0);
      const at::Tensor first = constant(check_index(op_ins[mul][0]));
      const int c_side = first.defined() ? 0 : 1;
      const at::Tensor c = c_side == 0 ? first : constant(check_index(op_ins[mul][1]));
      const int sub = made_by(op_ins[mul][1 - c_side], kSub);
      if (!c.defined() || sub < 0 || op_ins[sub].size() != 2 || op_ins[sub][0] != x) continue;
      const int abs = made_by(op_ins[sub][1], kAbs);
      if (abs < 0 || op_ins[abs].at(0) != x) continue;
      skip[relu] = skip[mul] = skip[sub] = skip[abs] = 1;
      prelu[k] = {static_cast<size_t>(x), (c * 2).reshape({-1})};
      break;
    }
  }
  std::map<std::string, size_t> conv_node;  // a convolution's output tensor -> its node's index in g.nodes

  for (size_t k = 0; k < ops.size(); ++k) {
    if (skip[k]) continue;
    const auto& op = ops[k];
    const int32_t code = op_code[k];
    std::vector<int64_t> ins = op_ins[k];
    const auto& outs = op_outs[k];
    if (outs.size() != 1) r.fail("an op with " + std::to_string(outs.size()) + " outputs");
    const size_t out = check_index(outs[0]);
    const auto options = op.table(4);
    auto opt = [&](int field, auto def) { return options ? options->scalar<decltype(def)>(field, def) : def; };
    auto need_inputs = [&](size_t n) {
      if (ins.size() < n) r.fail("op " + std::to_string(code) + " has " + std::to_string(ins.size()) + " inputs");
      for (size_t j = 0; j < n; ++j) check_index(ins[j]);
    };
    json node = {{"name", tname[out]}, {"input", json::array()}, {"attr", json::object()}};
    if (const auto it = prelu.find(k); it != prelu.end()) {
      const auto& [x, alpha] = it->second;
      const auto conv = conv_node.find(tname[x]);
      // x read only by the pattern's relu, abs and sub: the convolution can apply the PReLU itself.
      if (conv != conv_node.end() && readers[x] == 3) {
        const std::string a = add_const(tname[out] + "/alpha", alpha);  // before the reference: it grows g.nodes
        json& c = g.nodes[conv->second];
        c["name"] = tname[out];
        c["input"].push_back(a);
        c["attr"]["fused_ops"] = strs_attr({"BiasAdd", "Prelu"});
      } else {
        g.nodes.push_back({{"name", tname[out]}, {"op", "Prelu"}, {"input", {input(x), add_const(tname[out] + "/alpha", alpha)}}});
      }
      emitted.insert(tname[out]);
      continue;
    }
    int8_t act = kActNone;
    switch (code) {
      case kConv2d:
      case kDepthwiseConv2d: {
        need_inputs(2);
        const bool dw = code == kDepthwiseConv2d;
        at::Tensor f = constant(ins[1]);
        if (!f.defined() || f.dim() != 4) r.fail("a convolution's filters are not a constant 4-D tensor");
        if (dw) {
          const auto in_shape = shape_of(ins[0]);
          const int64_t c = in_shape.size() == 4 ? in_shape[3] : 0;
          if (c <= 0 || f.size(0) != 1 || f.size(3) % c) r.fail("a depthwise filter does not match its input's channels");
          f = f.reshape({f.size(1), f.size(2), c, f.size(3) / c});
        } else {
          f = f.permute({1, 2, 3, 0}).contiguous();  // OHWI -> HWIO
        }
        at::Tensor bias = ins.size() > 2 && ins[2] >= 0 ? constant(check_index(ins[2])) : at::zeros({f.size(3) * (dw ? f.size(2) : 1)});
        if (!bias.defined()) r.fail("a convolution's bias is not constant");
        // Conv2DOptions: padding 0, stride_w 1, stride_h 2, activation 3, dilation_w 4, dilation_h 5;
        // DepthwiseConv2DOptions: the same with depth_multiplier at 3, so activation and dilations one later.
        const int a = dw ? 4 : 3;
        std::vector<std::string> fused = {"BiasAdd"};
        if (const std::string a_op = activation_op(opt(a, int8_t{0}), name); !a_op.empty()) fused.push_back(a_op);
        node["op"] = dw ? "FusedDepthwiseConv2dNative" : "_FusedConv2D";
        node["input"] = {input(ins[0]), add_const(tname[ins[1]] + "/hwio", f), add_const(tname[out] + "/bias", bias)};
        node["attr"] = {{"strides", ints_attr({1, opt(2, int32_t{1}), opt(1, int32_t{1}), 1})},
                        {"dilations", ints_attr({1, opt(a + 2, int32_t{1}), opt(a + 1, int32_t{1}), 1})},
                        {"padding", str_attr(opt(0, int8_t{0}) == 0 ? "SAME" : "VALID")},
                        {"data_format", str_attr("NHWC")},
                        {"fused_ops", strs_attr(fused)}};
        if (fused.size() == 1) conv_node[tname[out]] = g.nodes.size();
        break;
      }
      case kAdd:
      case kSub:
      case kMul:
        need_inputs(2);
        node["op"] = code == kAdd ? "AddV2" : code == kSub ? "Sub" : "Mul";
        node["input"] = {input(ins[0]), input(ins[1])};
        act = opt(0, int8_t{0});  // Add/Sub/MulOptions: fused_activation_function 0
        break;
      case kRelu:
      case kRelu6:
      case kAbs:
        need_inputs(1);
        node["op"] = code == kRelu ? "Relu" : code == kRelu6 ? "Relu6" : "Abs";
        node["input"] = {input(ins[0])};
        break;
      case kReshape: {
        need_inputs(1);
        std::vector<int64_t> shape = shape_of(out);  // the output tensor's shape (ReshapeOptions may be absent)
        if (shape.empty()) r.fail("a Reshape without an output shape");
        shape[0] = -1;
        node["op"] = "Reshape";
        node["input"] = {input(ins[0]), add_const(tname[out] + "/shape", at::tensor(shape, at::kLong).to(at::kInt))};
        break;
      }
      default:
        throw Error(ErrorCode::kInvalidArgument, name + ": TFLite op " + std::to_string(code) + " (writing " + tname[out] +
                                                     ") is not one facekit's graph runtime reads");
    }
    if (const std::string a_op = activation_op(act, name); !a_op.empty()) {
      const std::string pre = tname[out] + "/pre";
      node["name"] = pre;
      g.nodes.push_back(node);
      g.nodes.push_back({{"name", tname[out]}, {"op", a_op}, {"input", {pre}}});
    } else {
      g.nodes.push_back(node);
    }
    emitted.insert(tname[out]);
  }
  // The runtime's outputs are the nodes nobody reads; check that they are the file's.
  for (auto i : sg.ints(2))
    if (!emitted.count(tname[check_index(i)])) r.fail("output " + tname[i] + " is never written");
  return g;
}

}  // namespace facekit::graph
