#include <algorithm>
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {
fs::path env_or(const char* var, const fs::path& fallback) {
  const char* v = std::getenv(var);
  return v && *v ? fs::path(v) : fallback;
}
}  // namespace

fs::path models_dir() { return env_or("FACEKIT_MODELS", fs::path(FACEKIT_SOURCE_DIR) / "models"); }
fs::path share_dir() { return fs::path(FACEKIT_SOURCE_DIR) / "share"; }
fs::path manifests_dir() { return env_or("FACEKIT_MANIFESTS", share_dir() / "models"); }

const ModelFile& ModelManifest::file(const std::string& role) const {
  for (const auto& f : files)
    if (f.role == role) return f;
  throw Error(ErrorCode::kModelCorrupt, "manifest of " + name + " names no '" + role + "' file");
}

fs::path ModelManifest::file_path(const std::string& role) const {
  return (dir.empty() ? models_dir() : dir) / file(role).path;
}

std::vector<std::string> list_manifests() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(manifests_dir(), ec))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

ModelManifest load_manifest(const std::string& name, const fs::path& dir) {
  const fs::path p = dir / (name + ".json");
  if (!fs::exists(p)) throw Error(ErrorCode::kNotFound, "no manifest " + p.string());
  return load_manifest_file(p);
}

ModelManifest load_manifest(const std::string& name) {
  // A path (a trained model's directory or a manifest file) rather than a registered name.
  if (name.find('/') != std::string::npos || fs::is_directory(name)) {
    const fs::path p = fs::is_directory(name) ? fs::path(name) / "manifest.json" : fs::path(name);
    if (!fs::exists(p))
      throw Error(ErrorCode::kNotFound, "model path " + name + " holds no manifest.json (not a model directory)");
    return load_manifest_file(p, fs::absolute(p).parent_path());
  }
  const fs::path p = manifests_dir() / (name + ".json");
  if (!fs::exists(p)) {
    std::string known;
    for (const auto& n : list_manifests()) known += (known.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::kNotFound, "unknown model '" + name + "' (known: " + known + ")");
  }
  return load_manifest_file(p);
}

ModelManifest load_manifest_file(const fs::path& p, const fs::path& dir) {
  std::ifstream in(p);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read manifest " + p.string());
  ModelManifest m;
  m.dir = dir;
  try {
    const auto j = nlohmann::json::parse(in);
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
          throw Error(ErrorCode::kModelCorrupt, "manifest " + p.string() + ": channels must be \"rgb\" or \"bgr\"");
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
    throw Error(ErrorCode::kModelCorrupt, "manifest " + p.string() + " is malformed: " + e.what());
  }
  return m;
}

void verify_model_files(const ModelManifest& m) {
  for (const auto& f : m.files) {
    const fs::path p = (m.dir.empty() ? models_dir() : m.dir) / f.path;
    // A trained model's directory is not fetched by the set-up: say so instead of pointing there.
    const std::string fix = m.dir.empty() ? "run scripts/setup to fetch the models" : "the model directory is incomplete";
    if (!fs::exists(p))
      throw Error(ErrorCode::kModelMissing, "model " + m.name + ": file " + p.string() + " is missing; " + fix);
    const std::string got = sha256_file(p);
    if (got != f.sha256)
      throw Error(ErrorCode::kModelCorrupt, "model " + m.name + ": file " + p.string() + " has sha256 " + got +
                                                ", expected " + f.sha256 + "; " +
                                                (m.dir.empty() ? "run scripts/setup to fetch it again" : "the model directory is damaged"));
  }
}

}  // namespace facekit
