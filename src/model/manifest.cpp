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

std::vector<std::string> list_manifests() {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(manifests_dir(), ec))
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

ModelManifest load_manifest(const std::string& name) {
  const fs::path p = manifests_dir() / (name + ".json");
  std::ifstream in(p);
  if (!in) {
    std::string known;
    for (const auto& n : list_manifests()) known += (known.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::kNotFound, "unknown model '" + name + "' (known: " + known + ")");
  }
  ModelManifest m;
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
    if (j.contains("graph")) {
      m.graph_input = j["graph"].value("input", "");
      m.graph_output = j["graph"].value("output", "");
      m.channels = j["graph"].value("channels", "rgb");
    }
    if (j.contains("landmark_box")) m.box_adjust = j["landmark_box"].get<std::array<float, 4>>();
    if (j.contains("members"))
      for (const auto& mem : j["members"]) m.members.emplace_back(mem.at("name"), mem.at("weight").get<float>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, "manifest " + p.string() + " is malformed: " + e.what());
  }
  return m;
}

void verify_model_files(const ModelManifest& m) {
  for (const auto& f : m.files) {
    const fs::path p = models_dir() / f.path;
    if (!fs::exists(p))
      throw Error(ErrorCode::kModelMissing, "model " + m.name + ": file " + p.string() +
                                                " is missing; run scripts/setup to fetch the models");
    const std::string got = sha256_file(p);
    if (got != f.sha256)
      throw Error(ErrorCode::kModelCorrupt, "model " + m.name + ": file " + p.string() + " has sha256 " + got +
                                                ", expected " + f.sha256 + "; run scripts/setup to fetch it again");
  }
}

}  // namespace facekit
