// The manifest parser, apart from the file and path handling in manifest.cpp so that it can be fuzzed alone.
#include <cmath>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "core/json_depth.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "model/calibration_json.hpp"

namespace facekit {

namespace {

/// Every number facekit reads from a manifest is small (sizes, indices, means, scales, thresholds, weights). One
/// beyond the range of an int would be undefined (a float) or silently wrapped (an integer) when read into the
/// int and float fields below, so any such number is refused here, once, wherever it stands in the parts read
/// (scripts/fuzz found "size": 5.9e59); other fields (a trained model's "training" record) are kept as they
/// are. The parser's depth limit bounds the recursion.
void check_numbers(const nlohmann::json& j, const std::string& where) {
  constexpr double kMax = 2147483647.0;
  double v = 0;
  if (j.is_number_float()) v = j.get<double>();
  else if (j.is_number_unsigned()) v = static_cast<double>(j.get<std::uint64_t>());
  else if (j.is_number_integer()) v = static_cast<double>(j.get<std::int64_t>());
  else if (j.is_structured())
    for (const auto& e : j) check_numbers(e, where);
  if (!std::isfinite(v) || std::abs(v) > kMax)
    throw Error(ErrorCode::kModelCorrupt, where + " is malformed: the number " + j.dump() + " is out of range");
}

}  // namespace

ScoreCalibration calibration_from_json(const nlohmann::json& c, const std::string& where) {
  ScoreCalibration k;
  k.method = c.at("method");
  k.fitted_on = c.value("fitted_on", "");
  k.pairs = c.value("pairs", 0);
  k.fit_prior = c.value("fit_prior", 0.5);
  const auto bad = [&](const std::string& why) { return Error(ErrorCode::kModelCorrupt, where + ": calibration " + why); };
  if (k.method == "platt") {
    k.a = c.at("a");
    k.b = c.at("b");
    if (!std::isfinite(k.a) || !std::isfinite(k.b)) throw bad("a and b must be finite");
  } else if (k.method == "isotonic") {
    k.distance = c.at("distance").get<std::vector<float>>();
    k.probability = c.at("probability").get<std::vector<float>>();
    if (k.distance.empty() || k.distance.size() != k.probability.size()) throw bad("needs as many probabilities as distances");
    for (size_t i = 0; i < k.distance.size(); ++i) {
      if (!(k.probability[i] >= 0 && k.probability[i] <= 1)) throw bad("probabilities must lie in [0, 1]");
      if (i > 0 && !(k.distance[i] > k.distance[i - 1] && k.probability[i] <= k.probability[i - 1]))
        throw bad("distances must rise and probabilities must not");
    }
  } else {
    throw bad("method must be \"platt\" or \"isotonic\"");
  }
  if (!(k.fit_prior > 0 && k.fit_prior < 1)) throw bad("fit_prior must lie in (0, 1)");
  return k;
}

nlohmann::json calibration_to_json(const ScoreCalibration& k) {
  nlohmann::json c = {{"method", k.method}, {"fitted_on", k.fitted_on}, {"pairs", k.pairs}, {"fit_prior", k.fit_prior}};
  if (k.method == "platt") {
    c["a"] = k.a;
    c["b"] = k.b;
  } else {
    c["distance"] = k.distance;
    c["probability"] = k.probability;
  }
  return c;
}

ModelManifest parse_manifest(const std::string& text, const std::string& where, const std::filesystem::path& dir) {
  ModelManifest m;
  m.dir = dir;
  try {
    const auto j = parse_json_limited(text, where);
    for (const char* part : {"input", "alignment", "embedding", "landmark_box", "members", "spoof", "attributes", "mesh", "cascade"})
      if (j.contains(part)) check_numbers(j[part], where);
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
      m.cluster_threshold = e.value("cluster_threshold", 0.f);
      m.cluster_threshold_source = e.value("cluster_threshold_source", "");
      if (e.contains("calibration")) m.calibration = calibration_from_json(e["calibration"], where);
    }
    for (const char* key : {"graph", "onnx"})  // the network's input and output names, channel order
      if (j.contains(key)) {
        m.graph_input = j[key].value("input", "");
        m.graph_output = j[key].value("output", "");
        m.channels = j[key].value("channels", "rgb");
        if (m.channels != "rgb" && m.channels != "bgr" && m.channels != "grey")
          throw Error(ErrorCode::kModelCorrupt, where + ": channels must be \"rgb\", \"bgr\" or \"grey\"");
        m.onnx_runtime = j[key].value("runtime", "auto");
        if (m.onnx_runtime != "auto" && m.onnx_runtime != "graph" && m.onnx_runtime != "opencv")
          throw Error(ErrorCode::kModelCorrupt, where + ": runtime must be \"auto\", \"graph\" or \"opencv\"");
        m.bf16_source = j[key].value("bf16", "");
      }
    if (j.contains("landmark_box")) m.box_adjust = j["landmark_box"].get<std::array<float, 4>>();
    m.box_adjust_source = j.value("landmark_box_source", "");
    if (j.contains("mesh")) {
      const auto& me = j["mesh"];
      m.mesh.passes = me.value("passes", 1);
      m.mesh.refine_scale = me.value("refine_scale", 1.5f);
      m.mesh.mirror = me.value("mirror", "never");
      if (m.mesh.mirror != "never" && m.mesh.mirror != "grey" && m.mesh.mirror != "always")
        throw Error(ErrorCode::kModelCorrupt,
                    where + ": mesh.mirror must be \"never\", \"grey\" or \"always\"");
      m.mesh.point_offsets = me.value("point_offsets", std::vector<std::array<float, 2>>{});
      m.mesh.point_offsets_source = me.value("point_offsets_source", "");
      if (m.mesh.passes < 1 || m.mesh.passes > 4 || !(m.mesh.refine_scale > 0.5f && m.mesh.refine_scale < 4.f))
        throw Error(ErrorCode::kModelCorrupt, where + ": mesh.passes must be 1-4 and mesh.refine_scale in (0.5, 4)");
      if (!m.mesh.point_offsets.empty() && m.mesh.point_offsets.size() != 68)
        throw Error(ErrorCode::kModelCorrupt, where + ": mesh.point_offsets must have 68 [dx, dy] pairs");
    }
    if (j.contains("cascade")) {
      m.cascade.unsure_below = j["cascade"].value("unsure_below", 0.75f);
      m.cascade.unsure_below_source = j["cascade"].value("unsure_below_source", "");
      if (!(m.cascade.unsure_below >= 0.f && m.cascade.unsure_below <= 1.f))
        throw Error(ErrorCode::kModelCorrupt, where + ": cascade.unsure_below must be in [0, 1]");
    }
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
    if (j.contains("attributes")) {
      const auto& a = j["attributes"];
      auto& t = m.attributes;
      t.crop_scale = a.value("crop_scale", 1.f);
      t.crop_scale_source = a.value("crop_scale_source", "");
      if (a.contains("crop")) t.crop = a["crop"].get<std::array<float, 4>>();
      if (a.contains("sources")) t.sources = a["sources"].get<std::map<std::string, std::string>>();
      // Each attribute is optional (a gender-only model has one); at least one is needed.
      const auto read = [&](const char* key, std::string& node, std::vector<std::string>& labels) {
        if (!a.contains(key)) return;
        node = a.at(key).at("output");
        labels = a.at(key).at("labels").get<std::vector<std::string>>();
        if (labels.empty()) throw Error(ErrorCode::kModelCorrupt, where + ": attributes." + key + " has no labels");
      };
      read("age", t.age_output, t.age_labels);
      read("gender", t.gender_output, t.gender_labels);
      read("group", t.group_output, t.group_labels);
      if (t.age_output.empty() && t.gender_output.empty() && t.group_output.empty() && t.sources.empty())
        throw Error(ErrorCode::kModelCorrupt, where + ": attributes names no output");
      if (a.contains("age")) t.age_centres = a.at("age").at("centres").get<std::vector<float>>();
      if (t.age_centres.size() != t.age_labels.size())
        throw Error(ErrorCode::kModelCorrupt, where + ": attributes.age needs one centre per label");
      if (!(t.crop_scale > 0) || !(t.crop[0] < t.crop[2]) || !(t.crop[1] < t.crop[3]))
        throw Error(ErrorCode::kModelCorrupt, where + ": attributes crop is empty");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, where + " is malformed: " + e.what());
  }
  return m;
}

std::string manifest_to_json(const ModelManifest& m, const std::string& extra_json) {
  using nlohmann::json;
  json j = {{"name", m.name},       {"kind", m.kind},       {"arch", m.arch},
            {"version", m.version}, {"package", m.package}, {"licence", m.licence},
            {"provenance", m.provenance}};
  json files = json::array();
  for (const auto& f : m.files) files.push_back({{"role", f.role}, {"path", f.path}, {"sha256", f.sha256}});
  j["files"] = files;
  if (m.input_size > 0 || m.mean != std::array<float, 3>{0, 0, 0} || m.scale != 1.f)
    j["input"] = {{"size", m.input_size}, {"mean", m.mean}, {"scale", m.scale}};
  if (!m.alignment_template.empty())
    j["alignment"] = {{"template", m.alignment_template}, {"size", m.chip_size}, {"padding", m.chip_padding}};
  if (!m.metric.empty())
    j["embedding"] = {{"dim", m.embedding_dim},
                      {"metric", m.metric},
                      {"threshold", m.threshold},
                      {"threshold_source", m.threshold_source}};
  if (m.cluster_threshold > 0) {
    j["embedding"]["cluster_threshold"] = m.cluster_threshold;
    j["embedding"]["cluster_threshold_source"] = m.cluster_threshold_source;
  }
  if (!m.calibration.empty()) j["embedding"]["calibration"] = calibration_to_json(m.calibration);
  if (!m.graph_input.empty() || !m.graph_output.empty()) {
    j[m.arch == "onnx" ? "onnx" : "graph"] = {{"input", m.graph_input}, {"output", m.graph_output}, {"channels", m.channels}};
    if (m.arch == "onnx" && m.onnx_runtime != "auto") j["onnx"]["runtime"] = m.onnx_runtime;
    if (!m.bf16_source.empty()) j[m.arch == "onnx" ? "onnx" : "graph"]["bf16"] = m.bf16_source;
  }
  if (m.box_adjust != std::array<float, 4>{1, 1, 0, 0}) j["landmark_box"] = m.box_adjust;
  if (!m.box_adjust_source.empty()) j["landmark_box_source"] = m.box_adjust_source;
  if (m.arch == "facemesh") {
    j["mesh"] = {{"passes", m.mesh.passes}, {"refine_scale", m.mesh.refine_scale}, {"mirror", m.mesh.mirror}};
    if (!m.mesh.point_offsets.empty()) j["mesh"]["point_offsets"] = m.mesh.point_offsets;
    if (!m.mesh.point_offsets_source.empty()) j["mesh"]["point_offsets_source"] = m.mesh.point_offsets_source;
  }
  if (m.arch == "cascade")
    j["cascade"] = {{"unsure_below", m.cascade.unsure_below}, {"unsure_below_source", m.cascade.unsure_below_source}};
  if (!m.members.empty()) {
    json mem = json::array();
    for (const auto& [n, w] : m.members) mem.push_back({{"name", n}, {"weight", w}});
    j["members"] = mem;
  }
  if (m.kind == "spoof") {
    const auto& s = m.spoof;
    json sp = {{"live_index", s.live_index}, {"crop_scale", s.crop_scale}, {"bias", s.bias}};
    if (!s.feature_groups.empty()) sp["feature_groups"] = s.feature_groups;
    if (!s.weights.empty()) {
      sp["feature_mean"] = s.feature_mean;
      sp["feature_std"] = s.feature_std;
      sp["weights"] = s.weights;
    }
    sp["thresholds"] = {{"decision", s.threshold}, {"live", s.live_threshold}, {"spoof", s.spoof_threshold},
                        {"source", s.threshold_source}};
    j["spoof"] = sp;
  }
  if (m.kind == "attributes") {
    const auto& a = m.attributes;
    json aj = {{"crop_scale", a.crop_scale}, {"crop", a.crop}};
    if (!a.crop_scale_source.empty()) aj["crop_scale_source"] = a.crop_scale_source;
    if (!a.age_output.empty())
      aj["age"] = {{"output", a.age_output}, {"labels", a.age_labels}, {"centres", a.age_centres}};
    if (!a.gender_output.empty()) aj["gender"] = {{"output", a.gender_output}, {"labels", a.gender_labels}};
    if (!a.group_output.empty()) aj["group"] = {{"output", a.group_output}, {"labels", a.group_labels}};
    if (!a.sources.empty()) aj["sources"] = a.sources;
    j["attributes"] = aj;
  }
  const json extra = json::parse(extra_json);
  if (!extra.is_object()) throw Error(ErrorCode::kInvalidArgument, "a manifest's extra fields must be a JSON object");
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return j.dump(2) + "\n";
}

}  // namespace facekit
