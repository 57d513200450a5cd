#pragma once
// What a reader of another model format (TFLite, ONNX) hands the graph runtime: the node list in TF.js's
// "modelTopology.node" form (TF op names and attributes) and the constants by node name, so that one runtime,
// its kernels and its load-time fusions serve every format. Attribute helpers write TF.js's JSON form.
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "gallery/base64.hpp"

namespace facekit::graph {

struct ImportedGraph {
  nlohmann::json nodes;                         ///< TF.js "modelTopology.node" form
  std::map<std::string, at::Tensor> weights;    ///< constants by node name
};

inline nlohmann::json ints_attr(const std::vector<int64_t>& v) {
  nlohmann::json l = nlohmann::json::array();
  for (auto x : v) l.push_back(std::to_string(x));
  return {{"list", {{"i", l}}}};
}
inline nlohmann::json str_attr(const std::string& s) { return {{"s", base64_encode(s.data(), s.size())}}; }
inline nlohmann::json strs_attr(const std::vector<std::string>& v) {
  nlohmann::json l = nlohmann::json::array();
  for (const auto& s : v) l.push_back(base64_encode(s.data(), s.size()));
  return {{"list", {{"s", l}}}};
}
inline nlohmann::json float_attr(double f) { return {{"f", f}}; }

}  // namespace facekit::graph
