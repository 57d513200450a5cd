// The manifest parser, apart from the file and path handling in manifest.cpp so that it can be fuzzed alone.
#include <nlohmann/json.hpp>

#include "core/json_depth.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace facekit {

ModelManifest parse_manifest(const std::string& text, const std::string& where, const std::filesystem::path& dir) {
  ModelManifest m;
  m.dir = dir;
  try {
    const auto j = parse_json_limited(text, where);
    m.name = j.at("name");
    m.kind = j.at("kind");
    m.arch = j.at("arch");
    m.version = j.value("version", "");
    m.package = j.value("package", "");
    m.licence = j.value("licence", "");
    m.provenance = j.value("provenance", "");
    for (const auto& f : j.at("files"))
      m.files.push_back({f.at("role"), f.at("path"), f.at("sha256")});
    if (j.contains("input")) {
      const auto& in_j = j["input"];
      m.input_size = in_j.value("size", 0);
      if (in_j.contains("mean")) m.mean = in_j["mean"].get<std::array<float, 3>>();
      m.scale = in_j.value("scale", 1.f);
    }
    if (j.contains("alignment")) {
      m.alignment_template = j["alignment"].at("template");
      m.chip_size = j["alignment"].at("size");
      m.chip_padding = j["alignment"].value("padding", 0.f);
    }
    if (j.contains("embedding")) {
      const auto& e = j["embedding"];
      m.embedding_dim = e.at("dim");
      m.metric = e.at("metric");
      m.threshold = e.at("threshold");
      m.threshold_source = e.value("threshold_source", "");
    }
    for (const char* key : {"graph", "onnx"})  // the network's input and output names, channel order
      if (j.contains(key)) {
        m.graph_input = j[key].value("input", "");
        m.graph_output = j[key].value("output", "");
        m.channels = j[key].value("channels", "rgb");
        if (m.channels != "rgb" && m.channels != "bgr")
          throw Error(ErrorCode::kModelCorrupt, where + ": channels must be \"rgb\" or \"bgr\"");
      }
    if (j.contains("landmark_box")) m.box_adjust = j["landmark_box"].get<std::array<float, 4>>();
    if (j.contains("members"))
      for (const auto& mem : j["members"]) m.members.emplace_back(mem.at("name"), mem.at("weight").get<float>());
    if (j.contains("spoof")) {
      const auto& s = j["spoof"];
      m.spoof.live_index = s.value("live_index", 0);
      m.spoof.crop_scale = s.value("crop_scale", 1.f);
      m.spoof.feature_groups = s.value("feature_groups", std::vector<std::string>{});
      m.spoof.feature_mean = s.value("feature_mean", std::vector<float>{});
      m.spoof.feature_std = s.value("feature_std", std::vector<float>{});
      m.spoof.weights = s.value("weights", std::vector<float>{});
      m.spoof.bias = s.value("bias", 0.f);
      const auto& t = s.at("thresholds");
      m.spoof.threshold = t.at("decision");
      m.spoof.live_threshold = t.at("live");
      m.spoof.spoof_threshold = t.at("spoof");
      m.spoof.threshold_source = t.value("source", "");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, where + " is malformed: " + e.what());
  }
  return m;
}

}  // namespace facekit
