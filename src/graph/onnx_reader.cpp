// An ONNX file read without the ONNX library: the protobuf wire format decoded directly (ModelProto -> graph,
// nodes, initializers, attributes), every length checked against the bytes left. Ops become the TF ops the
// graph runtime already runs, NCHW translated to NHWC once here:
//   Conv -> _FusedConv2D (OIHW -> HWIO) or, when every group is one input channel, FusedDepthwiseConv2dNative;
//   a BatchNormalization right after a convolution is folded into its filters, and a Relu, PRelu or Sigmoid
//   that alone reads the convolution becomes its fused activation;
//   Add/Sub/Mul/Div, Relu, PRelu, LeakyRelu, Sigmoid, Clip(0, 6), BatchNormalization, MaxPool, AveragePool,
//   GlobalAveragePool/GlobalMaxPool, Flatten, Reshape, Gemm, MatMul, Concat, Softmax, Identity, Dropout.
// Shapes are followed through the graph (NCHW, batch -1) so that Flatten and Reshape know their sizes; dim 0 is
// the batch and stays free.
#include "graph/onnx_reader.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "facekit/error.hpp"

namespace facekit::graph {
namespace {

using nlohmann::json;
using Shape = std::vector<int64_t>;  // NCHW order, -1 where unknown (always the batch)

// ONNX TensorProto.DataType values.
enum DataType : int { kFloat = 1, kInt32 = 6, kInt64 = 7, kDouble = 11 };

[[noreturn]] void corrupt(const std::string& model, const std::string& what) {
  throw Error(ErrorCode::kModelCorrupt, model + ": not a valid ONNX file (" + what + ")");
}
[[noreturn]] void unsupported(const std::string& model, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, model + ": " + what + ", which facekit's ONNX reader does not translate");
}

// One protobuf message: its fields in order, each a varint, a fixed 4/8 bytes or a length-delimited span.
struct Field {
  uint32_t number = 0;
  int wire = 0;
  uint64_t value = 0;        // varint, fixed32, fixed64
  const char* data = nullptr;  // length-delimited
  size_t size = 0;
};

uint64_t read_varint(const char*& p, const char* end, const std::string& model) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p >= end) corrupt(model, "a number runs past the end");
    const auto c = static_cast<uint8_t>(*p++);
    v |= static_cast<uint64_t>(c & 0x7f) << shift;
    if (c < 0x80) return v;
  }
  corrupt(model, "a number longer than ten bytes");
}

std::vector<Field> fields(const char* p, size_t n, const std::string& model) {
  std::vector<Field> out;
  const char* end = p + n;
  while (p < end) {
    const uint64_t key = read_varint(p, end, model);
    Field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<int>(key & 7);
    switch (f.wire) {
      case 0: f.value = read_varint(p, end, model); break;
      case 1:
      case 5: {
        const size_t k = f.wire == 1 ? 8 : 4;
        if (static_cast<size_t>(end - p) < k) corrupt(model, "a fixed-size field runs past the end");
        std::memcpy(&f.value, p, k);
        p += k;
        break;
      }
      case 2: {
        const uint64_t len = read_varint(p, end, model);
        if (len > static_cast<uint64_t>(end - p)) corrupt(model, "a field's length runs past the end");
        f.data = p, f.size = static_cast<size_t>(len);
        p += len;
        break;
      }
      default: corrupt(model, "wire type " + std::to_string(f.wire));
    }
    out.push_back(f);
  }
  return out;
}

std::string text(const Field& f) { return f.wire == 2 ? std::string(f.data, f.size) : std::string(); }

// A repeated integer field, packed or not, appended to `out`.
void append_ints(const Field& f, std::vector<int64_t>& out, const std::string& model) {
  if (f.wire == 0) {
    out.push_back(static_cast<int64_t>(f.value));
  } else if (f.wire == 2) {
    const char* p = f.data;
    while (p < f.data + f.size) out.push_back(static_cast<int64_t>(read_varint(p, f.data + f.size, model)));
  } else {
    corrupt(model, "an integer list of wire type " + std::to_string(f.wire));
  }
}
void append_floats(const Field& f, std::vector<float>& out, const std::string& model) {
  if (f.wire == 5) {
    float v;
    std::memcpy(&v, &f.value, 4);
    out.push_back(v);
  } else if (f.wire == 2 && f.size % 4 == 0) {
    const size_t n = f.size / 4;
    const size_t at = out.size();
    out.resize(at + n);
    std::memcpy(out.data() + at, f.data, f.size);
  } else {
    corrupt(model, "a float list of wire type " + std::to_string(f.wire));
  }
}

// TensorProto -> an ATen tensor (float32, int64 or int32 data; raw_data or the typed fields).
at::Tensor read_tensor(const char* p, size_t n, const std::string& model, std::string* name_out) {
  std::vector<int64_t> dims, i64;
  std::vector<float> f32;
  std::string name;
  const char* raw = nullptr;
  size_t raw_size = 0;
  int type = 0;
  bool external = false;
  for (const auto& f : fields(p, n, model)) {
    switch (f.number) {
      case 1: append_ints(f, dims, model); break;
      case 2: type = static_cast<int>(f.value); break;
      case 4: append_floats(f, f32, model); break;
      case 5:  // int32_data
      case 7: append_ints(f, i64, model); break;
      case 8: name = text(f); break;
      case 9: raw = f.data, raw_size = f.size; break;
      case 14: external = f.value == 1; break;
      default: break;
    }
  }
  if (name_out) *name_out = name;
  if (external) unsupported(model, "tensor " + name + " keeps its data in an external file");
  if (type != kFloat && type != kInt64 && type != kInt32)
    unsupported(model, "tensor " + name + " has ONNX data type " + std::to_string(type) + " (float32, int64 and int32 are read)");
  int64_t count = 1;
  for (auto d : dims) {
    if (d < 0 || (d > 0 && count > std::numeric_limits<int32_t>::max() / d)) corrupt(model, "tensor " + name + " has dimensions out of range");
    count *= d;
  }
  const auto dtype = type == kFloat ? at::kFloat : type == kInt64 ? at::kLong : at::kInt;
  // Sizes are checked before anything is allocated: a damaged dimension must not ask for gigabytes.
  const size_t elem = type == kInt64 ? 8 : 4, total = static_cast<size_t>(count);
  if (raw ? raw_size != total * elem : (type == kFloat ? f32.size() : i64.size()) != total)
    corrupt(model, "tensor " + name + "'s data does not match its shape");
  at::Tensor t = at::empty(dims, dtype);
  if (raw) {
    if (raw_size) std::memcpy(t.data_ptr(), raw, raw_size);
  } else if (type == kFloat) {
    if (total) std::memcpy(t.data_ptr(), f32.data(), total * 4);
  } else {
    for (size_t i = 0; i < total; ++i) {
      if (type == kInt64) t.data_ptr<int64_t>()[i] = i64[i];
      else t.data_ptr<int32_t>()[i] = static_cast<int32_t>(i64[i]);
    }
  }
  return t;
}

struct Attr {
  std::optional<float> f;
  std::optional<int64_t> i;
  std::optional<std::string> s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  at::Tensor t;
};

struct OnnxNode {
  std::string op, name;
  std::vector<std::string> in, out;
  std::map<std::string, Attr> attrs;

  const Attr* attr(const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? nullptr : &it->second;
  }
  int64_t i(const std::string& k, int64_t def) const { auto a = attr(k); return a && a->i ? *a->i : def; }
  float f(const std::string& k, float def) const { auto a = attr(k); return a && a->f ? *a->f : def; }
  std::string s(const std::string& k, const std::string& def) const { auto a = attr(k); return a && a->s ? *a->s : def; }
  std::vector<int64_t> ints(const std::string& k, std::vector<int64_t> def) const {
    auto a = attr(k);
    return a && !a->ints.empty() ? a->ints : def;
  }
};

OnnxNode read_node(const Field& nf, const std::string& model) {
  OnnxNode n;
  for (const auto& f : fields(nf.data, nf.size, model)) {
    if (f.number == 1) n.in.push_back(text(f));
    else if (f.number == 2) n.out.push_back(text(f));
    else if (f.number == 3) n.name = text(f);
    else if (f.number == 4) n.op = text(f);
    else if (f.number == 7 && !text(f).empty() && text(f) != "ai.onnx") unsupported(model, "op domain " + text(f));
    else if (f.number == 5 && f.wire == 2) {
      std::string an;
      Attr a;
      for (const auto& g : fields(f.data, f.size, model)) {
        switch (g.number) {
          case 1: an = text(g); break;
          case 2: { float v; std::memcpy(&v, &g.value, 4); a.f = v; break; }
          case 3: a.i = static_cast<int64_t>(g.value); break;
          case 4: a.s = text(g); break;
          case 5: if (g.wire == 2) a.t = read_tensor(g.data, g.size, model, nullptr); break;
          case 7: append_floats(g, a.floats, model); break;
          case 8: append_ints(g, a.ints, model); break;
          default: break;
        }
      }
      n.attrs[an] = std::move(a);
    }
  }
  if (n.op.empty()) corrupt(model, "a node without an op type");
  if (n.out.empty()) corrupt(model, "node " + n.name + " (" + n.op + ") has no output");
  return n;
}

// ValueInfoProto -> (name, element type, dims; -1 for symbolic or absent ones).
struct ValueInfo {
  std::string name;
  int type = 0;
  Shape dims;
};
ValueInfo read_value_info(const Field& vf, const std::string& model) {
  ValueInfo v;
  for (const auto& f : fields(vf.data, vf.size, model)) {
    if (f.number == 1) v.name = text(f);
    if (f.number != 2 || f.wire != 2) continue;
    for (const auto& t : fields(f.data, f.size, model)) {  // TypeProto: tensor_type = 1
      if (t.number != 1 || t.wire != 2) continue;
      for (const auto& tt : fields(t.data, t.size, model)) {
        if (tt.number == 1) v.type = static_cast<int>(tt.value);
        if (tt.number != 2 || tt.wire != 2) continue;
        for (const auto& d : fields(tt.data, tt.size, model)) {  // TensorShapeProto: dim = 1
          if (d.number != 1 || d.wire != 2) continue;
          int64_t size = -1;
          for (const auto& dv : fields(d.data, d.size, model))
            if (dv.number == 1 && dv.wire == 0) size = static_cast<int64_t>(dv.value);
          v.dims.push_back(size);
        }
      }
    }
  }
  return v;
}

class Translator {
 public:
  explicit Translator(std::string model) : model_(std::move(model)) { g_.nodes = json::array(); }

  ImportedGraph run(const char* p, size_t n) {
    const Field* graph = nullptr;
    const auto top = fields(p, n, model_);
    for (const auto& f : top)
      if (f.number == 7 && f.wire == 2) graph = &f;
    if (!graph) corrupt(model_, "no graph");
    std::vector<ValueInfo> inputs;
    for (const auto& f : fields(graph->data, graph->size, model_)) {
      if (f.number == 1 && f.wire == 2) nodes_.push_back(read_node(f, model_));
      else if (f.number == 5 && f.wire == 2) {
        std::string name;
        at::Tensor t = read_tensor(f.data, f.size, model_, &name);
        consts_[name] = t;
      } else if (f.number == 11 && f.wire == 2) inputs.push_back(read_value_info(f, model_));
      else if (f.number == 12 && f.wire == 2) outputs_.insert(read_value_info(f, model_).name);
    }
    if (nodes_.empty()) corrupt(model_, "a graph without nodes");
    for (size_t k = 0; k < nodes_.size(); ++k)
      for (const auto& t : nodes_[k].in)
        if (!t.empty()) readers_[t].push_back(k);
    for (const auto& v : inputs) {
      if (consts_.count(v.name)) continue;  // older files list initializers as inputs too
      if (v.type != kFloat) unsupported(model_, "input " + v.name + " of data type " + std::to_string(v.type) + " (float32 is read)");
      Shape s = v.dims;
      if (!s.empty()) s[0] = -1;
      json dims = json::array();
      for (auto d : nhwc(s)) dims.push_back({{"size", std::to_string(d)}});
      const std::string nm = unique(v.name);
      g_.nodes.push_back({{"name", nm}, {"op", "Placeholder"}, {"attr", {{"shape", {{"shape", {{"dim", dims}}}}}}}});
      act_[v.name] = {nm, s};
    }
    skip_.assign(nodes_.size(), 0);
    for (size_t k = 0; k < nodes_.size(); ++k)
      if (!skip_[k]) translate(k);
    for (const auto& o : outputs_)
      if (!act_.count(o)) corrupt(model_, "output " + o + " is never written");
    return std::move(g_);
  }

 private:
  struct Act {
    std::string node;  // the runtime node holding it (NHWC when rank 4)
    Shape shape;       // ONNX's NCHW shape
  };

  static Shape nhwc(const Shape& s) { return s.size() == 4 ? Shape{s[0], s[2], s[3], s[1]} : s; }

  std::string unique(const std::string& onnx_name) {
    std::string s = onnx_name;
    for (auto& ch : s)
      if (ch == ':' || ch == '^') ch = '_';
    if (s.empty()) s = "t";
    std::string u = s;
    for (int k = 1; used_.count(u); ++k) u = s + "#" + std::to_string(k);
    used_.insert(u);
    return u;
  }
  std::string add_const(const std::string& base, const at::Tensor& t) {
    const std::string nm = unique(base);
    g_.nodes.push_back({{"name", nm}, {"op", "Const"}});
    g_.weights.emplace(nm, t.contiguous());
    return nm;
  }
  std::string int_const(const std::string& base, const std::vector<int64_t>& v) {
    return add_const(base, at::tensor(v, at::kLong).to(at::kInt));
  }
  const at::Tensor* constant(const std::string& t) const {
    auto it = consts_.find(t);
    return it == consts_.end() ? nullptr : &it->second;
  }
  at::Tensor need_const(const OnnxNode& n, size_t i, const char* what) const {
    if (i >= n.in.size() || n.in[i].empty() || !constant(n.in[i]))
      unsupported(model_, n.op + " " + n.out[0] + " with a " + what + " that is not a constant");
    return *constant(n.in[i]);
  }
  const Act& activation(const OnnxNode& n, size_t i) const {
    if (i >= n.in.size()) corrupt(model_, n.op + " " + n.out[0] + " has " + std::to_string(n.in.size()) + " inputs");
    auto it = act_.find(n.in[i]);
    if (it == act_.end()) {
      if (constant(n.in[i])) unsupported(model_, n.op + " " + n.out[0] + " on a constant input");
      corrupt(model_, "tensor " + n.in[i] + " is read before any node writes it");
    }
    return it->second;
  }
  // The single node that reads `t` (and t is no graph output), or none.
  std::optional<size_t> sole_reader(const std::string& t) const {
    auto it = readers_.find(t);
    if (outputs_.count(t) || it == readers_.end() || it->second.size() != 1) return std::nullopt;
    return it->second[0];
  }

  // Adds a node writing ONNX tensor `t`; a rank-4 graph output is transposed back to NCHW after it.
  void emit(json node, const std::string& t, const Shape& shape) {
    const bool back = outputs_.count(t) && shape.size() == 4;
    node["name"] = unique(back ? t + "/nhwc" : t);
    const std::string nm = node["name"];
    g_.nodes.push_back(std::move(node));
    act_[t] = {nm, shape};
    if (back) {
      const std::string perm = int_const(t + "/to_nchw", {0, 3, 1, 2});
      const std::string out = unique(t);
      g_.nodes.push_back({{"name", out}, {"op", "Transpose"}, {"input", {nm, perm}}});
      act_[t].node = out;
    }
  }
  void emit_op(const std::string& op, std::vector<std::string> inputs, const std::string& t, const Shape& shape,
               json attr = json::object()) {
    emit({{"op", op}, {"input", inputs}, {"attr", std::move(attr)}}, t, shape);
  }

  // A constant operand of an elementwise op beside an activation of rank `rank`, in the runtime's layout.
  at::Tensor operand_layout(const at::Tensor& c, size_t rank, const OnnxNode& n) const {
    if (rank != 4 || c.numel() == 1) return c;
    if (c.dim() == 4) return c.permute({0, 2, 3, 1});
    if (c.dim() == 3) return c.permute({1, 2, 0});
    unsupported(model_, n.op + " " + n.out[0] + " broadcasting a constant of rank " + std::to_string(c.dim()) +
                            " over a 4-D tensor");
  }
  // A per-channel constant (slope, scale) as [C].
  at::Tensor per_channel(const at::Tensor& c, int64_t channels, const OnnxNode& n) const {
    at::Tensor v = c.to(at::kFloat).reshape({-1});
    if (v.numel() == 1 && channels > 0) v = v.expand({channels}).contiguous();
    if (channels > 0 && v.numel() != channels)
      corrupt(model_, n.op + " " + n.out[0] + " has " + std::to_string(v.numel()) + " values for " +
                          std::to_string(channels) + " channels");
    return v;
  }

  // Strides, dilations, pads and pool sizes within [lo, 4096]: a damaged value must not divide by zero or
  // ask for a huge buffer.
  void check_range(const OnnxNode& n, const char* what, const std::vector<int64_t>& v, int64_t lo) const {
    for (auto x : v)
      if (x < lo || x > 4096) corrupt(model_, n.op + " " + n.out[0] + " has " + what + " of " + std::to_string(x));
  }

  static int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool same) {
    if (in < 0) return -1;
    if (same) return (in + s - 1) / s;
    return (in + pb + pe - d * (k - 1) - 1) / s + 1;
  }

  // TF padding attributes for an ONNX conv or pool: SAME, VALID or EXPLICIT [0,0,t,b,l,r,0,0].
  json padding(const OnnxNode& n, std::vector<int64_t>& pads, bool& same) const {
    const std::string ap = n.s("auto_pad", "NOTSET");
    pads = n.ints("pads", {0, 0, 0, 0});
    if (pads.size() != 4) unsupported(model_, n.op + " " + n.out[0] + " with " + std::to_string(pads.size()) + " pads (2-D only)");
    check_range(n, "pads", pads, 0);
    same = ap == "SAME_UPPER";
    if (same) return {{"padding", str_attr("SAME")}};
    if (ap == "VALID") pads = {0, 0, 0, 0};
    else if (ap != "NOTSET") unsupported(model_, n.op + " " + n.out[0] + " with auto_pad " + ap);
    if (std::all_of(pads.begin(), pads.end(), [](int64_t p) { return p == 0; })) return {{"padding", str_attr("VALID")}};
    return {{"padding", str_attr("EXPLICIT")}, {"explicit_paddings", ints_attr({0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0})}};
  }

  void conv(size_t k) {
    const OnnxNode& n = nodes_[k];
    const Act& x = activation(n, 0);
    at::Tensor w = need_const(n, 1, "filter").to(at::kFloat);
    if (w.dim() != 4 || x.shape.size() != 4) unsupported(model_, "Conv " + n.out[0] + " that is not 2-D");
    const int64_t group = n.i("group", 1), o = w.size(0), kh = w.size(2), kw = w.size(3);
    at::Tensor b = n.in.size() > 2 && !n.in[2].empty() ? need_const(n, 2, "bias").to(at::kFloat).reshape({-1}) : at::zeros({o});
    if (b.numel() != o) corrupt(model_, "Conv " + n.out[0] + "'s bias does not match its filters");
    const auto strides = n.ints("strides", {1, 1}), dil = n.ints("dilations", {1, 1});
    if (strides.size() != 2 || dil.size() != 2) corrupt(model_, "Conv " + n.out[0] + " has malformed strides or dilations");
    check_range(n, "strides", strides, 1);
    check_range(n, "dilations", dil, 1);
    if (group < 1 || o % group) corrupt(model_, "Conv " + n.out[0] + " has " + std::to_string(group) + " groups");
    const bool depthwise = group > 1;
    if (depthwise && x.shape[1] >= 0 && x.shape[1] != group)
      unsupported(model_, "Conv " + n.out[0] + " with " + std::to_string(group) + " groups over " + std::to_string(x.shape[1]) + " channels");
    if (depthwise && w.size(1) != 1)
      unsupported(model_, "Conv " + n.out[0] + " with " + std::to_string(group) + " groups of " +
                              std::to_string(w.size(1)) + " channels (depthwise and ungrouped convolutions are read)");
    std::string t = n.out[0];
    // A BatchNormalization alone after the convolution: folded into its filters and bias.
    if (auto r = sole_reader(t); r && nodes_[*r].op == "BatchNormalization" && nodes_[*r].in.size() >= 5) {
      const OnnxNode& bn = nodes_[*r];
      const at::Tensor s = need_const(bn, 1, "scale").to(at::kFloat).reshape({-1}) /
                           (need_const(bn, 4, "variance").to(at::kFloat).reshape({-1}) + bn.f("epsilon", 1e-5f)).sqrt();
      const at::Tensor beta = need_const(bn, 2, "bias").to(at::kFloat).reshape({-1});
      const at::Tensor mean = need_const(bn, 3, "mean").to(at::kFloat).reshape({-1});
      if (s.numel() != o || beta.numel() != o || mean.numel() != o) corrupt(model_, "BatchNormalization " + bn.out[0] + " does not match " + n.out[0]);
      w = w * s.reshape({-1, 1, 1, 1});
      b = (b - mean) * s + beta;
      skip_[*r] = 1;
      t = bn.out[0];
    }
    std::vector<std::string> fused = {"BiasAdd"};
    at::Tensor alpha;
    if (auto r = sole_reader(t)) {
      const OnnxNode& a = nodes_[*r];
      if (a.op == "Relu" || a.op == "Sigmoid") {
        fused.push_back(a.op);
      } else if (a.op == "PRelu" && a.in.size() == 2 && constant(a.in[1])) {
        alpha = per_channel(*constant(a.in[1]), o, a);
        fused.push_back("Prelu");
      }
      if (fused.size() > 1) skip_[*r] = 1, t = a.out[0];
    }
    at::Tensor f = depthwise ? w.reshape({group, o / group, kh, kw}).permute({2, 3, 0, 1})  // [kh, kw, C, mult]
                             : w.permute({2, 3, 1, 0});                                      // HWIO
    std::vector<int64_t> pads;
    bool same = false;
    json attr = padding(n, pads, same);
    attr["strides"] = ints_attr({1, strides[0], strides[1], 1});
    attr["dilations"] = ints_attr({1, dil[0], dil[1], 1});
    attr["data_format"] = str_attr("NHWC");
    attr["fused_ops"] = strs_attr(fused);
    std::vector<std::string> ins = {x.node, add_const(n.out[0] + "/filter", f), add_const(n.out[0] + "/bias", b)};
    if (alpha.defined()) ins.push_back(add_const(t + "/alpha", alpha));
    const Shape shape = {x.shape[0], o, conv_out(x.shape[2], kh, strides[0], dil[0], pads[0], pads[2], same),
                         conv_out(x.shape[3], kw, strides[1], dil[1], pads[1], pads[3], same)};
    emit_op(depthwise ? "FusedDepthwiseConv2dNative" : "_FusedConv2D", ins, t, shape, attr);
  }

  void pool(const OnnxNode& n, bool max) {
    const Act& x = activation(n, 0);
    const auto ks = n.ints("kernel_shape", {});
    const auto strides = n.ints("strides", {1, 1});
    if (ks.size() != 2 || strides.size() != 2 || x.shape.size() != 4) unsupported(model_, n.op + " " + n.out[0] + " that is not 2-D");
    check_range(n, "kernel_shape", ks, 1);
    check_range(n, "strides", strides, 1);
    if (n.i("ceil_mode", 0) != 0) unsupported(model_, n.op + " " + n.out[0] + " with ceil_mode 1");
    for (auto d : n.ints("dilations", {1, 1}))
      if (d != 1) unsupported(model_, n.op + " " + n.out[0] + " with dilations");
    std::vector<int64_t> pads;
    bool same = false;
    json attr = padding(n, pads, same);
    std::string in = x.node;
    if (attr["padding"] == str_attr("EXPLICIT")) {
      // TF pools take SAME or VALID only: pad first (with -inf for a max, zeros for an average that counts them).
      if (!max && n.i("count_include_pad", 0) == 0)
        unsupported(model_, "AveragePool " + n.out[0] + " with explicit padding that it does not count");
      const std::string p = add_const(n.out[0] + "/pads", at::tensor(std::vector<int64_t>{0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0}, at::kLong)
                                                             .to(at::kInt).reshape({4, 2}));
      const std::string v = add_const(n.out[0] + "/pad_value", at::scalar_tensor(max ? -std::numeric_limits<float>::infinity() : 0.f));
      const std::string nm = unique(n.out[0] + "/padded");
      g_.nodes.push_back({{"name", nm}, {"op", "PadV2"}, {"input", {in, p, v}}});
      in = nm;
      attr = {{"padding", str_attr("VALID")}};
    }
    attr["ksize"] = ints_attr({1, ks[0], ks[1], 1});
    attr["strides"] = ints_attr({1, strides[0], strides[1], 1});
    attr["data_format"] = str_attr("NHWC");
    const Shape shape = {x.shape[0], x.shape[1], conv_out(x.shape[2], ks[0], strides[0], 1, pads[0], pads[2], same),
                         conv_out(x.shape[3], ks[1], strides[1], 1, pads[1], pads[3], same)};
    emit_op(max ? "MaxPool" : "AvgPool", {in}, n.out[0], shape, attr);
  }

  void elementwise(const OnnxNode& n, const std::string& op) {
    if (n.in.size() != 2) corrupt(model_, n.op + " " + n.out[0] + " has " + std::to_string(n.in.size()) + " inputs");
    const auto* a = act_.count(n.in[0]) ? &act_.at(n.in[0]) : nullptr;
    const auto* b = act_.count(n.in[1]) ? &act_.at(n.in[1]) : nullptr;
    if (!a && !b) unsupported(model_, n.op + " " + n.out[0] + " of two constants");
    const size_t rank = std::max(a ? a->shape.size() : 0, b ? b->shape.size() : 0);
    if (a && b && a->shape.size() != b->shape.size() && (a->shape.size() == 4 || b->shape.size() == 4))
      unsupported(model_, n.op + " " + n.out[0] + " broadcasting tensors of different ranks");
    auto operand = [&](size_t i, const Act* act) {
      if (act) return act->node;
      return add_const(n.out[0] + "/operand", operand_layout(need_const(n, i, "operand").to(at::kFloat), rank, n));
    };
    // The result's shape: the activation's (a constant operand broadcasts into it).
    Shape shape = a ? a->shape : b->shape;
    if (a && b)
      for (size_t d = 0; d < shape.size(); ++d) shape[d] = std::max(a->shape[d], b->shape[d]);
    emit_op(op, {operand(0, a), operand(1, b)}, n.out[0], shape);
  }

  void translate(size_t k) {
    const OnnxNode& n = nodes_[k];
    const std::string& t = n.out[0];
    const std::string& op = n.op;
    if (op == "Constant") {
      const Attr* v = n.attr("value");
      if (!v || !v->t.defined()) unsupported(model_, "Constant " + t + " without a tensor value");
      consts_[t] = v->t;
    } else if (op == "Conv") {
      conv(k);
    } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
      elementwise(n, op == "Add" ? "AddV2" : op == "Div" ? "RealDiv" : op);
    } else if (op == "Relu" || op == "Sigmoid" || op == "Identity" || op == "Dropout") {
      const Act& x = activation(n, 0);
      emit_op(op == "Dropout" ? "Identity" : op, {x.node}, t, x.shape);
    } else if (op == "LeakyRelu") {
      const Act& x = activation(n, 0);
      emit_op("LeakyRelu", {x.node}, t, x.shape, {{"alpha", float_attr(n.f("alpha", 0.01f))}});
    } else if (op == "Clip") {
      const Act& x = activation(n, 0);
      float lo = n.f("min", -INFINITY), hi = n.f("max", INFINITY);
      if (n.in.size() > 1 && !n.in[1].empty()) lo = need_const(n, 1, "minimum").to(at::kFloat).item<float>();
      if (n.in.size() > 2 && !n.in[2].empty()) hi = need_const(n, 2, "maximum").to(at::kFloat).item<float>();
      if (lo == 0 && hi == 6) emit_op("Relu6", {x.node}, t, x.shape);
      else if (lo == 0 && std::isinf(hi)) emit_op("Relu", {x.node}, t, x.shape);
      else unsupported(model_, "Clip " + t + " to [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (ReLU and ReLU6 are read)");
    } else if (op == "PRelu") {
      const Act& x = activation(n, 0);
      const int64_t c = x.shape.size() >= 2 ? x.shape[1] : -1;
      at::Tensor slope = per_channel(need_const(n, 1, "slope"), c, n);
      emit_op("Prelu", {x.node, add_const(t + "/alpha", slope)}, t, x.shape);
    } else if (op == "BatchNormalization") {
      const Act& x = activation(n, 0);
      const at::Tensor s = need_const(n, 1, "scale").to(at::kFloat).reshape({-1}) /
                           (need_const(n, 4, "variance").to(at::kFloat).reshape({-1}) + n.f("epsilon", 1e-5f)).sqrt();
      const at::Tensor shift = need_const(n, 2, "bias").to(at::kFloat).reshape({-1}) - need_const(n, 3, "mean").to(at::kFloat).reshape({-1}) * s;
      if (x.shape.size() != 4 && x.shape.size() != 2) unsupported(model_, "BatchNormalization " + t + " of rank " + std::to_string(x.shape.size()));
      const std::string scaled = unique(t + "/scaled");
      g_.nodes.push_back({{"name", scaled}, {"op", "Mul"}, {"input", {x.node, add_const(t + "/scale", s)}}});
      emit_op("AddV2", {scaled, add_const(t + "/shift", shift)}, t, x.shape);
    } else if (op == "MaxPool" || op == "AveragePool") {
      pool(n, op == "MaxPool");
    } else if (op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      const Act& x = activation(n, 0);
      if (x.shape.size() != 4) unsupported(model_, op + " " + t + " that is not 2-D");
      emit_op(op == "GlobalAveragePool" ? "Mean" : "Max", {x.node, int_const(t + "/axes", {1, 2})}, t,
              {x.shape[0], x.shape[1], 1, 1}, {{"keep_dims", {{"b", true}}}});
    } else if (op == "Flatten" || op == "Reshape") {
      reshape(n);
    } else if (op == "Gemm" || op == "MatMul") {
      const Act& a = activation(n, 0);
      if (a.shape.size() != 2) unsupported(model_, op + " " + t + " on a tensor of rank " + std::to_string(a.shape.size()));
      if (n.i("transA", 0)) unsupported(model_, "Gemm " + t + " with transA");
      at::Tensor w = need_const(n, 1, "weight").to(at::kFloat);
      if (w.dim() != 2) corrupt(model_, op + " " + t + "'s weight is not 2-D");
      if (n.i("transB", 0)) w = w.t();
      w = (w * n.f("alpha", 1.f)).contiguous();  // [K, M]
      Shape shape = {a.shape[0], w.size(1)};
      if (op == "Gemm" && n.in.size() > 2 && !n.in[2].empty()) {
        at::Tensor bias = (need_const(n, 2, "bias").to(at::kFloat) * n.f("beta", 1.f)).reshape({-1});
        if (bias.numel() == 1) bias = bias.expand({w.size(1)}).contiguous();
        if (bias.numel() != w.size(1)) corrupt(model_, "Gemm " + t + "'s bias does not match its weight");
        emit_op("_FusedMatMul", {a.node, add_const(t + "/weight", w), add_const(t + "/bias", bias)}, t, shape,
                {{"fused_ops", strs_attr({"BiasAdd"})}});
      } else {
        emit_op("MatMul", {a.node, add_const(t + "/weight", w)}, t, shape);
      }
    } else if (op == "Concat") {
      concat(n);
    } else if (op == "Softmax") {
      const Act& x = activation(n, 0);
      const int64_t axis = n.i("axis", -1);
      if (x.shape.size() != 2 || (axis != -1 && axis != 1)) unsupported(model_, "Softmax " + t + " other than over the last axis of a 2-D tensor");
      emit_op("Softmax", {x.node}, t, x.shape);
    } else {
      unsupported(model_, "op " + op + " (writing " + t + ")");
    }
  }

  void reshape(const OnnxNode& n) {
    const Act& x = activation(n, 0);
    const std::string& t = n.out[0];
    Shape to;
    if (n.op == "Flatten") {
      int64_t axis = n.i("axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(x.shape.size());
      if (axis != 1) unsupported(model_, "Flatten " + t + " at axis " + std::to_string(axis));
      int64_t rest = 1;
      for (size_t d = 1; d < x.shape.size(); ++d) rest = x.shape[d] < 0 || rest < 0 ? -1 : rest * x.shape[d];
      to = {-1, rest};
    } else {
      const at::Tensor s = need_const(n, 1, "shape").to(at::kLong).reshape({-1});
      for (int64_t i = 0; i < s.numel(); ++i) {
        int64_t d = s[i].item<int64_t>();
        if (d == 0) {  // ONNX: copy the input's dimension
          if (static_cast<size_t>(i) >= x.shape.size()) corrupt(model_, "Reshape " + t + " copies a dimension its input lacks");
          d = x.shape[static_cast<size_t>(i)];
        }
        to.push_back(i == 0 ? -1 : d);  // dim 0 is the batch
      }
      // One free dimension besides the batch: worked out from the input's size per sample.
      int64_t per_sample = 1, known = 1;
      for (size_t d = 1; d < x.shape.size(); ++d) per_sample = x.shape[d] < 0 || per_sample < 0 ? -1 : per_sample * x.shape[d];
      for (size_t d = 1; d < to.size(); ++d) known *= to[d] < 0 ? 1 : to[d];
      if (std::count(to.begin() + 1, to.end(), -1) == 1 && per_sample > 0 && known > 0 && per_sample % known == 0)
        *std::find(to.begin() + 1, to.end(), -1) = per_sample / known;
    }
    if (std::count(to.begin() + 1, to.end(), -1) > 0)
      unsupported(model_, n.op + " " + t + " to a shape the reader cannot work out");
    if (to.empty()) corrupt(model_, "Reshape " + t + " to no shape");
    std::string in = x.node;
    if (x.shape.size() == 4) {  // ONNX flattens NCHW: turn the runtime's NHWC back first
      in = unique(t + "/nchw");
      g_.nodes.push_back({{"name", in}, {"op", "Transpose"}, {"input", {x.node, int_const(t + "/perm", {0, 3, 1, 2})}}});
    }
    std::string out_t = t;
    if (to.size() == 4) {  // a 4-D result is NCHW: reshape, then into the runtime's NHWC
      const std::string r = unique(t + "/reshaped");
      g_.nodes.push_back({{"name", r}, {"op", "Reshape"}, {"input", {in, int_const(t + "/shape", to)}}});
      emit_op("Transpose", {r, int_const(t + "/perm", {0, 2, 3, 1})}, t, to);
      return;
    }
    emit_op("Reshape", {in, int_const(t + "/shape", to)}, out_t, to);
  }

  void concat(const OnnxNode& n) {
    const std::string& t = n.out[0];
    size_t rank = 0;
    for (const auto& i : n.in)
      if (act_.count(i)) rank = act_.at(i).shape.size();
    if (rank == 0) unsupported(model_, "Concat " + t + " of constants only");
    int64_t axis = n.i("axis", 1);
    if (axis < 0) axis += static_cast<int64_t>(rank);
    if (axis < 0 || axis >= static_cast<int64_t>(rank)) corrupt(model_, "Concat " + t + " along axis " + std::to_string(axis));
    const int64_t tf_axis = rank == 4 ? std::array<int64_t, 4>{0, 3, 1, 2}[static_cast<size_t>(axis)] : axis;
    std::vector<std::string> ins;
    Shape shape;
    for (size_t i = 0; i < n.in.size(); ++i) {
      Shape s;
      if (act_.count(n.in[i])) {
        ins.push_back(act_.at(n.in[i]).node);
        s = act_.at(n.in[i]).shape;
      } else {
        const at::Tensor c = need_const(n, i, "input").to(at::kFloat);
        if (static_cast<size_t>(c.dim()) != rank) corrupt(model_, "Concat " + t + " of inputs of different ranks");
        ins.push_back(add_const(t + "/part", operand_layout(c, rank, n)));
        s = c.sizes().vec();
      }
      if (s.size() != rank) corrupt(model_, "Concat " + t + " of inputs of different ranks");
      if (shape.empty()) shape = s;
      else shape[static_cast<size_t>(axis)] = shape[static_cast<size_t>(axis)] < 0 || s[static_cast<size_t>(axis)] < 0
                                                  ? -1 : shape[static_cast<size_t>(axis)] + s[static_cast<size_t>(axis)];
    }
    ins.push_back(add_const(t + "/axis", at::scalar_tensor(static_cast<int32_t>(tf_axis), at::kInt)));
    emit_op("ConcatV2", ins, t, shape, {{"N", {{"i", std::to_string(ins.size() - 1)}}}});
  }

  std::string model_;
  ImportedGraph g_;
  std::vector<OnnxNode> nodes_;
  std::vector<char> skip_;
  std::map<std::string, at::Tensor> consts_;
  std::map<std::string, Act> act_;
  std::map<std::string, std::vector<size_t>> readers_;
  std::set<std::string> outputs_, used_;
};

}  // namespace

ImportedGraph read_onnx(const std::string& bytes, const std::string& name) {
  try {
    return Translator(name).run(bytes.data(), bytes.size());
  } catch (const c10::Error& e) {
    // Tensors of impossible shapes reach ATen while filters are converted (a damaged file).
    throw Error(ErrorCode::kModelCorrupt, name + ": not a valid ONNX file (" + e.what_without_backtrace() + ")");
  }
}

}  // namespace facekit::graph
