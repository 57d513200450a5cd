#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/model.hpp"

#include "model/model_files.hpp"
#include "gallery/atomic_file.hpp"
#include "model/calibration_json.hpp"
#include "core/json_depth.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {
fs::path env_or(const char* var, const fs::path& fallback) {
  const char* v = std::getenv(var);
  return v && *v ? fs::path(v) : fallback;
}

// Where this library's data is when no variable says otherwise (the rule is in facekit/model.hpp). Worked out
// once: the library file does not move while it is loaded.
struct DataHome {
  bool build_tree = false;
  fs::path share;   // manifests, calibration tables
  fs::path models;  // model weights
};

const DataHome& data_home() {
  static const DataHome home = [] {
    // The address of an object with internal linkage, so that it names this library's file (a function's
    // address could be the executable's PLT entry).
    static const char anchor = 0;
    Dl_info info{};
    DataHome h;
    std::error_code ec;
    if (dladdr(&anchor, &info) == 0 || info.dli_fname == nullptr || *info.dli_fname == 0) {
      h.share = FACEKIT_INSTALL_FULL_DATADIR;  // cannot tell where we are: the configured install location
    } else {
      // Compared as paths, without touching the build directory: as the loader spelled it (the build's run
      // path) or with links resolved.
      const fs::path libdir = fs::absolute(fs::path(info.dli_fname), ec).parent_path().lexically_normal();
      const fs::path built = fs::path(FACEKIT_BUILD_LIBDIR).lexically_normal();
      if (libdir == built || fs::canonical(libdir, ec) == built) {
        h.build_tree = true;
        h.share = fs::path(FACEKIT_SOURCE_DIR) / "share";
        h.models = fs::path(FACEKIT_SOURCE_DIR) / "models";
        return h;
      }
      h.share = (libdir / FACEKIT_LIBDIR_TO_DATADIR).lexically_normal();
    }
    h.models = h.share / "weights";
    return h;
  }();
  return home;
}

// What to do about missing or damaged registered data: fetch it again in a source tree, reinstall otherwise.
std::string refetch_hint() {
  if (std::getenv("FACEKIT_MODELS") || std::getenv("FACEKIT_DATA") || data_home().build_tree)
    return "run scripts/setup to fetch the models";
  return "reinstall facekit with its data and models, or set FACEKIT_DATA or FACEKIT_MODELS (docs/install.md)";
}
}  // namespace

fs::path share_dir() { return env_or("FACEKIT_DATA", data_home().share); }
fs::path models_dir() {
  if (const char* v = std::getenv("FACEKIT_MODELS"); v && *v) return v;
  if (const char* v = std::getenv("FACEKIT_DATA"); v && *v) return fs::path(v) / "weights";
  return data_home().models;
}
fs::path manifests_dir() { return env_or("FACEKIT_MANIFESTS", share_dir() / "models"); }
bool data_from_source_tree() { return data_home().build_tree; }

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
    if (known.empty())
      throw Error(ErrorCode::kNotFound, "unknown model '" + name + "': there are no manifests in " +
                                            manifests_dir().string() + "; " + refetch_hint());
    throw Error(ErrorCode::kNotFound, "unknown model '" + name + "' (known: " + known + ")");
  }
  ModelManifest m = load_manifest_file(p);
  // A fusion embedder's length is its members' (bench fuse writes 0): known before any network loads, so that
  // a wrong-length embedding is refused against an empty gallery too.
  if (m.arch == "fusion" && m.kind == "embedder" && m.embedding_dim == 0) {
    thread_local int depth = 0;
    if (depth > 8) throw Error(ErrorCode::kModelCorrupt, "fusion " + name + " nests fusions too deep (a cycle?)");
    struct Nested {
      Nested() { ++depth; }
      ~Nested() { --depth; }
    } nested;
    for (const auto& [member, w] : m.members)
      if (w > 0) m.embedding_dim += load_manifest(member).embedding_dim;
  }
  return m;
}

ModelManifest load_manifest_file(const fs::path& p, const fs::path& dir) {
  std::ifstream in(p);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read manifest " + p.string());
  std::stringstream text;
  text << in.rdbuf();
  return parse_manifest(text.str(), "manifest " + p.string(), dir);
}

namespace detail {
fs::path verified_model_file(const ModelManifest& m, const std::string& role) {
  verify_model_files(m);
  return m.file_path(role);
}
}  // namespace detail

void verify_model_files(const ModelManifest& m) {
  for (const auto& f : m.files) {
    const fs::path p = (m.dir.empty() ? models_dir() : m.dir) / f.path;
    // A trained model's directory is not fetched by the set-up: say so instead of pointing there.
    const std::string fix = m.dir.empty() ? refetch_hint() : "the model directory is incomplete";
    if (!fs::exists(p))
      throw Error(ErrorCode::kModelMissing, "model " + m.name + ": file " + p.string() + " is missing; " + fix);
    const std::string got = sha256_file(p);
    if (got != f.sha256)
      throw Error(ErrorCode::kModelCorrupt, "model " + m.name + ": file " + p.string() + " has sha256 " + got +
                                                ", expected " + f.sha256 + "; " +
                                                (m.dir.empty() ? refetch_hint() : "the model directory is damaged"));
  }
}

void save_manifest(const fs::path& file, const ModelManifest& m, const std::string& extra_json) {
  const std::string text = manifest_to_json(m, extra_json);
  if (!file.parent_path().empty()) fs::create_directories(file.parent_path());
  write_file_atomically(file, [&](std::ostream& os) { os << text; });
}

ScoreCalibration load_calibration(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read calibration file " + file.string());
  std::stringstream text;
  text << in.rdbuf();
  try {
    const auto j = parse_json_limited(text.str(), file.string());
    return calibration_from_json(j.at("calibration"), file.string());
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, file.string() + " is not a calibration file: " + e.what());
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, e.what());
  }
}

void save_calibration(const fs::path& file, const ScoreCalibration& c, const std::string& embedder) {
  const nlohmann::json j = {{"embedder", embedder}, {"calibration", calibration_to_json(c)}};
  if (!file.parent_path().empty()) fs::create_directories(file.parent_path());
  write_file_atomically(file, [&](std::ostream& os) { os << j.dump(2) << "\n"; });
}

}  // namespace facekit
