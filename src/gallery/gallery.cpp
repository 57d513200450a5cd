// Store-independent gallery functions: the factory, the default location, export and import.
#include <cstdlib>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "gallery/base64.hpp"
#include "gallery/atomic_file.hpp"

namespace facekit {
namespace fs = std::filesystem;
using nlohmann::json;

std::unique_ptr<Gallery> open_sqlite_gallery(const fs::path& path, const GalleryOptions& options);

std::unique_ptr<Gallery> open_gallery(const fs::path& path, const GalleryOptions& options) {
  if (path.empty()) throw Error(ErrorCode::kInvalidArgument, "empty gallery path");
  // One store for now; a "postgresql://" location will select the PostgreSQL store.
  if (path.string().rfind("postgresql://", 0) == 0 || path.string().rfind("postgres://", 0) == 0)
    throw Error(ErrorCode::kInvalidArgument, "PostgreSQL galleries are not supported by this build");
  return open_sqlite_gallery(path, options);
}

fs::path default_gallery_path() {
  if (const char* g = std::getenv("FACEKIT_GALLERY"); g && *g) return g;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return fs::path(x) / "facekit" / "gallery.db";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".local" / "share" / "facekit" / "gallery.db";
  return fs::path("facekit-gallery.db");
}

namespace {
constexpr const char* kExportFormat = "facekit-gallery-export";
constexpr int kExportVersion = 1;
}  // namespace

std::int64_t export_gallery(const Gallery& gallery, const fs::path& out) {
  const auto people = gallery.people();
  std::int64_t n = 0;
  write_file_atomically(out, [&](std::ostream& f) {
    f << json{{"format", kExportFormat},
              {"version", kExportVersion},
              {"gallery_uuid", gallery.uuid()},
              {"revision", gallery.revision()},
              {"people", people.size()}}
             .dump()
      << "\n";
    for (const auto& p : people) {
      json tj = json::array();
      for (const auto& t : gallery.templates_of(p.id))
        tj.push_back({{"embedder", t.embedder.name},
                      {"embedder_version", t.embedder.version},
                      {"embedding", base64_encode(t.embedding.data(), t.embedding.size() * sizeof(float))},
                      {"quality", t.quality},
                      {"source_sha256", t.source_sha256},
                      {"kind", t.kind},
                      {"created_at", t.created_at}});
      f << json{{"name", p.name}, {"metadata", json::parse(p.metadata)}, {"created_at", p.created_at}, {"templates", tj}}
               .dump()
        << "\n";
      ++n;
    }
  });
  return n;
}

std::vector<AddResult> import_gallery(Gallery& gallery, const fs::path& in, OnConflict on_conflict) {
  std::ifstream f(in, std::ios::binary);
  if (!f) throw Error(ErrorCode::kNotFound, "cannot open " + in.string());
  std::string line;
  int lineno = 0;
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, in.string() + ":" + std::to_string(lineno) + ": " + why);
  };
  std::vector<NewPerson> people;
  bool header = false;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      throw bad(std::string("not JSON (") + e.what() + ")");
    }
    try {
      if (!header) {
        if (j.value("format", "") != kExportFormat) throw bad("not a facekit gallery export (no header line)");
        if (j.at("version").get<int>() > kExportVersion)
          throw bad("export version " + std::to_string(j.at("version").get<int>()) + " is newer than this facekit");
        header = true;
        continue;
      }
      NewPerson p;
      p.name = j.at("name").get<std::string>();
      p.metadata = j.value("metadata", json::object()).dump();
      for (const auto& t : j.at("templates")) {
        NewTemplate nt;
        nt.embedder = {t.at("embedder").get<std::string>(), t.at("embedder_version").get<std::string>()};
        const std::string bytes = base64_decode(t.at("embedding").get<std::string>());
        if (bytes.empty() || bytes.size() % sizeof(float)) throw bad("embedding is not a whole number of float32");
        nt.embedding.resize(bytes.size() / sizeof(float));
        std::memcpy(nt.embedding.data(), bytes.data(), bytes.size());
        nt.quality = t.value("quality", 0.f);
        nt.source_sha256 = t.value("source_sha256", "");
        nt.kind = t.value("kind", "imported");
        p.templates.push_back(std::move(nt));
      }
      people.push_back(std::move(p));
    } catch (const json::exception& e) {
      throw bad(std::string("malformed record (") + e.what() + ")");
    } catch (const std::invalid_argument& e) {
      throw bad(e.what());
    }
  }
  if (!header) throw Error(ErrorCode::kInvalidArgument, in.string() + " is empty or not a facekit gallery export");
  if (people.empty()) return {};
  return gallery.add_people(people, on_conflict);
}

}  // namespace facekit
