// Store-independent gallery functions: the factory, the default location, name and metadata checks, export and
// import.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/json_depth.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "gallery/atomic_file.hpp"
#include "gallery/base64.hpp"
#include "gallery/crypto.hpp"

namespace facekit {
namespace fs = std::filesystem;
using nlohmann::json;

std::unique_ptr<Gallery> open_sqlite_gallery(const fs::path& path, const GalleryOptions& options);
std::unique_ptr<Gallery> open_postgres_gallery(const std::string& url, const GalleryOptions& options);

bool is_database_location(const std::string& location) {
  return location.rfind("postgresql://", 0) == 0 || location.rfind("postgres://", 0) == 0;
}

std::string redact_location(const std::string& location) {
  if (!is_database_location(location)) return location;
  static const std::regex userinfo(R"(^(postgres(?:ql)?://[^:@/?]*):[^@/?]*@)");
  static const std::regex param(R"(([?&])password=[^&]*&?)");
  std::string s = std::regex_replace(location, userinfo, "$1@");
  s = std::regex_replace(s, param, "$1");
  while (!s.empty() && (s.back() == '&' || s.back() == '?')) s.pop_back();
  return s;
}

std::unique_ptr<Gallery> open_gallery(const fs::path& path, const GalleryOptions& options) {
  if (path.empty()) throw Error(ErrorCode::kInvalidArgument, "empty gallery path");
  if (is_database_location(path.string())) return open_postgres_gallery(path.string(), options);
  return open_sqlite_gallery(path, options);
}

fs::path Gallery::cache_dir() const { return fs::path(location() + ".cache"); }

std::optional<std::string> Gallery::shared_index(const std::string&) const { return std::nullopt; }
void Gallery::put_shared_index(const std::string&, const std::string&) const {}

bool Gallery::wait_for_change(std::chrono::milliseconds timeout) const {
  std::this_thread::sleep_for(timeout);
  return false;
}

GalleryCopy copy_gallery(const Gallery& from, Gallery& to,
                         const std::function<void(std::int64_t, std::int64_t)>& progress) {
  const auto people = from.people();
  std::vector<NewPerson> batch;
  batch.reserve(people.size());
  GalleryCopy out;
  for (const auto& p : people) {
    NewPerson np{p.name, p.metadata, {}};
    for (auto& t : from.templates_of(p.id)) np.templates.push_back(std::move(static_cast<NewTemplate&>(t)));
    if (np.templates.empty()) continue;  // removed between the two reads
    out.templates += static_cast<std::int64_t>(np.templates.size());
    batch.push_back(std::move(np));
    if (progress && (batch.size() % 1000 == 0 || batch.size() == people.size()))
      progress(static_cast<std::int64_t>(batch.size()), static_cast<std::int64_t>(people.size()));
  }
  out.people = static_cast<std::int64_t>(batch.size());
  to.add_people(batch, OnConflict::kFail);
  return out;
}

fs::path default_gallery_path() {
  if (const char* g = std::getenv("FACEKIT_GALLERY"); g && *g) return g;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return fs::path(x) / "facekit" / "gallery.db";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".local" / "share" / "facekit" / "gallery.db";
  return fs::path("facekit-gallery.db");
}

// ---- export and import --------------------------------------------------------------------------------------

namespace {
constexpr const char* kExportFormat = "facekit-gallery-export";
// 1: the first. 2: the header counts templates too, and embeddings may be sealed with a key.
constexpr int kExportVersion = 2;
constexpr const char* kExportKeyCheck = "facekit export key check";

}  // namespace

std::int64_t export_gallery(const Gallery& gallery, const fs::path& out, const std::optional<GalleryKey>& key) {
  const auto people = gallery.people();
  // Every template is read (and so checked) before anything is written.
  std::vector<std::vector<Template>> templates;
  std::int64_t total = 0;
  for (const auto& p : people) {
    templates.push_back(gallery.templates_of(p.id));
    total += static_cast<std::int64_t>(templates.back().size());
  }
  std::int64_t n = 0;
  write_file_atomically(out, [&](std::ostream& f) {
    json header = {{"format", kExportFormat}, {"version", kExportVersion}, {"gallery_uuid", gallery.uuid()},
                   {"revision", gallery.revision()}, {"people", people.size()}, {"templates", total}};
    if (key) {
      header["encryption"] = "xsalsa20poly1305";
      header["key_check"] = detail::to_hex(detail::seal(*key, kExportKeyCheck));
    }
    f << header.dump() << "\n";
    for (std::size_t i = 0; i < people.size(); ++i) {
      const Person& p = people[i];
      json tj = json::array();
      for (const auto& t : templates[i]) {
        const std::string raw(reinterpret_cast<const char*>(t.embedding.data()), t.embedding.size() * sizeof(float));
        json one = {{"embedder", t.embedder.name}, {"embedder_version", t.embedder.version},
                    {"quality", t.quality},        {"source_sha256", t.source_sha256},
                    {"kind", t.kind},              {"created_at", t.created_at}};
        if (key) {
          const std::string sealed = detail::seal(*key, raw);
          one["embedding_sealed"] = base64_encode(sealed.data(), sealed.size());
        } else {
          one["embedding"] = base64_encode(raw.data(), raw.size());
        }
        tj.push_back(std::move(one));
      }
      try {
        f << json{{"name", p.name}, {"metadata", parse_json_limited(p.metadata, "metadata")},
                  {"created_at", p.created_at}, {"templates", tj}}
                 .dump()
          << "\n";
      } catch (const json::exception& e) {
        // Stored by an older facekit, which did not check names: say which person, and how to fix it.
        throw Error(ErrorCode::kInvalidArgument, "person id " + std::to_string(p.id) +
                                                     " cannot be exported (" + e.what() +
                                                     "); rename it: facekit people rename " + std::to_string(p.id) + " NEW");
      }
      ++n;
    }
  });
  return n;
}

std::vector<AddResult> import_gallery(Gallery& gallery, const fs::path& in, OnConflict on_conflict,
                                      const std::optional<GalleryKey>& key) {
  std::ifstream f(in, std::ios::binary);
  if (!f) throw Error(ErrorCode::kNotFound, "cannot open " + in.string());
  std::string line;
  int lineno = 0;
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, in.string() + ":" + std::to_string(lineno) + ": " + why +
                                                  "; nothing was imported");
  };
  std::vector<NewPerson> people;
  bool header = false;
  std::int64_t want_people = -1, want_templates = -1, templates = 0;
  std::optional<GalleryKey> export_key;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty()) continue;
    if (!header) {
      json j;
      try {
        j = parse_json_limited(line, "the header");
        if (!j.is_object() || j.value("format", "") != kExportFormat) throw bad("not a facekit gallery export (no header line)");
        const int version = j.at("version").get<int>();
        if (version > kExportVersion)
          throw bad("export version " + std::to_string(version) + " is newer than this facekit");
        want_people = j.value("people", std::int64_t{-1});
        want_templates = j.value("templates", std::int64_t{-1});
        if (j.contains("key_check")) {
          if (!key) throw bad("the export is encrypted: give its key (--export-key-file FILE)");
          const auto opened = detail::unseal(*key, detail::from_hex(j.at("key_check").get<std::string>(), "key_check"));
          if (!opened || *opened != kExportKeyCheck) throw bad("the key given does not open this export (a wrong key?)");
          export_key = key;
        }
      } catch (const json::exception& e) {
        throw bad(std::string("not a facekit gallery export (") + e.what() + ")");
      } catch (const Error& e) {
        if (std::string(e.what()).find(in.string()) == 0) throw;
        throw bad(e.what());
      }
      header = true;
      continue;
    }
    try {
      people.push_back(parse_export_person(line, export_key));
    } catch (const Error& e) {
      throw bad(e.what());
    }
    templates += static_cast<std::int64_t>(people.back().templates.size());
  }
  if (!header) throw Error(ErrorCode::kInvalidArgument, in.string() + " is empty or not a facekit gallery export");
  // A file cut at a line boundary parses line by line; only the header's counts show what is missing.
  if (want_people >= 0 && want_people != static_cast<std::int64_t>(people.size()))
    throw Error(ErrorCode::kInvalidArgument, in.string() + ": the header says " + std::to_string(want_people) +
                                                 " people, the file holds " + std::to_string(people.size()) +
                                                 " (truncated?); nothing was imported");
  if (want_templates >= 0 && want_templates != templates)
    throw Error(ErrorCode::kInvalidArgument, in.string() + ": the header says " + std::to_string(want_templates) +
                                                 " templates, the file holds " + std::to_string(templates) +
                                                 " (truncated?); nothing was imported");
  if (people.empty()) return {};
  return gallery.add_people(people, on_conflict);
}

}  // namespace facekit
