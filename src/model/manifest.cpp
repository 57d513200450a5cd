#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "gallery/atomic_file.hpp"

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
  std::stringstream text;
  text << in.rdbuf();
  return parse_manifest(text.str(), "manifest " + p.string(), dir);
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

void save_manifest(const fs::path& file, const ModelManifest& m, const std::string& extra_json) {
  const std::string text = manifest_to_json(m, extra_json);
  if (!file.parent_path().empty()) fs::create_directories(file.parent_path());
  write_file_atomically(file, [&](std::ostream& os) { os << text; });
}

}  // namespace facekit
