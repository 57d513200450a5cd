// The SQLite gallery store: one file, WAL journal, one transaction per write.
//
// Why these choices:
//  - WAL: readers (identify) never block the writer (enrol) and vice versa; a killed process leaves a WAL
//    whose committed frames are replayed on the next open and whose uncommitted frames are ignored, which is
//    what makes "a person is stored whole or not at all" hold under kill -9.
//  - AUTOINCREMENT ids: a removed person's or template's id is never handed out again, so an index stamped
//    with the highest template id it holds can trust that any larger id is new.
//  - removed_templates: a log of removals (ids only) so an index can drop them without re-reading everything.
//  - PRAGMA application_id marks the file as a facekit gallery; user_version holds the format version.
#include <sqlite3.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/gallery.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

static_assert(std::endian::native == std::endian::little, "embeddings are stored as little-endian float32");

constexpr int kApplicationId = 0x464B474C;  // "FKGL"

const char* kSchemaV1 = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE people(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  metadata TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL);
CREATE TABLE templates(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  person_id INTEGER NOT NULL REFERENCES people(id),
  embedder TEXT NOT NULL,
  embedder_version TEXT NOT NULL,
  dim INTEGER NOT NULL,
  embedding BLOB NOT NULL,
  quality REAL NOT NULL,
  source_sha256 TEXT NOT NULL,
  kind TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  revision INTEGER NOT NULL);
CREATE INDEX templates_person ON templates(person_id);
CREATE INDEX templates_embedder_revision ON templates(embedder, embedder_version, revision);
CREATE TABLE removed_templates(
  template_id INTEGER PRIMARY KEY,
  person_id INTEGER NOT NULL,
  embedder TEXT NOT NULL,
  embedder_version TEXT NOT NULL,
  revision INTEGER NOT NULL);
CREATE INDEX removed_embedder_revision ON removed_templates(embedder, embedder_version, revision);
)sql";

std::int64_t now_seconds() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string random_uuid() {
  std::random_device rd;
  std::uniform_int_distribution<int> d(0, 15);
  std::string s;
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
    s += hex[d(rd)];
  }
  return s;
}

// Parses `text` as a JSON object or throws Error(kInvalidArgument).
nlohmann::json parse_metadata(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.empty() ? "{}" : text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("metadata is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "metadata must be a JSON object, got: " + text);
  return j;
}

class SqliteGallery;

// A prepared statement, reset on destruction. Binding is by 1-based position.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, const std::string& where);
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  // A statement that has been stepped is reset before new values are bound, so one prepared statement serves
  // every row of a batch.
  Stmt& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(ready(), i, v)); }
  Stmt& bind(int i, int v) { return check(sqlite3_bind_int64(ready(), i, v)); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(ready(), i, v)); }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(ready(), i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Stmt& bind_blob(int i, const void* p, size_t n) {
    return check(sqlite3_bind_blob(ready(), i, p, static_cast<int>(n), SQLITE_TRANSIENT));
  }
  /// Ends a query early (releases its read cursor).
  void reset() { ready(); }
  /// true while there is a row.
  bool step();
  void run() {
    while (step()) {
    }
  }
  std::int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double f64(int c) const { return sqlite3_column_double(st_, c); }
  std::string text(int c) const {
    const auto* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, c)) : std::string();
  }
  Embedding blob_floats(int c) const {
    const int n = sqlite3_column_bytes(st_, c);
    Embedding e(n / sizeof(float));
    if (n) std::memcpy(e.data(), sqlite3_column_blob(st_, c), e.size() * sizeof(float));
    return e;
  }

 private:
  Stmt& check(int rc);
  sqlite3_stmt* ready() {
    if (stepped_) sqlite3_reset(st_), stepped_ = false;
    return st_;
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  bool stepped_ = false;
  std::string where_;
};

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& where) {
  const std::string msg = where + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw Error(ErrorCode::kStorage, msg + " (another process holds the gallery; try again)");
    case SQLITE_FULL:
      throw Error(ErrorCode::kStorage, msg + " (disk full; nothing of this write was stored)");
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      throw Error(ErrorCode::kStorage, msg + " (the file is not a facekit gallery or is damaged)");
    case SQLITE_CANTOPEN:
      throw Error(ErrorCode::kStorage, msg + " (cannot open the file)");
    default:
      throw Error(ErrorCode::kStorage, msg);
  }
}

Stmt::Stmt(sqlite3* db, const char* sql, const std::string& where) : db_(db), where_(where) {
  const int rc = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, where);
}
Stmt& Stmt::check(int rc) {
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, where_);
  return *this;
}
bool Stmt::step() {
  stepped_ = true;
  const int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_sqlite(db_, rc, where_);
}

void exec(sqlite3* db, const char* sql, const std::string& where) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    sqlite3_free(err);
    throw_sqlite(db, rc, where);
  }
}

// BEGIN on construction, ROLLBACK on destruction unless commit() ran: an exception anywhere inside a write
// leaves the gallery as it was.
class Transaction {
 public:
  Transaction(sqlite3* db, bool write) : db_(db) {
    exec(db, write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", "begin transaction");
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    exec(db_, "COMMIT", "commit");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

class SqliteGallery final : public Gallery {
 public:
  SqliteGallery(const fs::path& path, const GalleryOptions& options);
  ~SqliteGallery() override { sqlite3_close_v2(db_); }

  std::vector<AddResult> add_people(const std::vector<NewPerson>& people, OnConflict on_conflict) override;
  Person person(std::int64_t id) const override;
  std::optional<Person> find_person(const std::string& name) const override;
  std::vector<Person> people() const override;
  std::vector<Template> templates_of(std::int64_t person_id) const override;
  void rename_person(std::int64_t id, const std::string& new_name) override;
  void set_metadata(std::int64_t id, const std::string& metadata_json) override;
  void remove_person(std::int64_t id) override;
  void for_each_template(const EmbedderId& embedder, const std::function<void(const Template&)>& fn,
                         std::int64_t* revision_out) const override;
  GalleryChanges changes_since(const EmbedderId& embedder, std::int64_t revision) const override;
  std::int64_t revision() const override;
  std::string uuid() const override { return uuid_; }
  GalleryStats stats() const override;
  std::string location() const override { return path_.string(); }

 private:
  void init_or_check();
  void require_writable() const {
    if (options_.read_only)
      throw Error(ErrorCode::kInvalidArgument, "the gallery " + path_.string() + " was opened read-only");
  }
  std::int64_t revision_locked() const;
  void bump_revision(std::int64_t rev);
  std::optional<Person> person_locked(std::int64_t id) const;
  std::optional<Person> find_locked(const std::string& name) const;
  static Template read_template(const Stmt& s);  // columns as in kTemplateColumns

  fs::path path_;
  GalleryOptions options_;
  sqlite3* db_ = nullptr;
  std::string uuid_;
  mutable std::mutex mu_;
};

constexpr const char* kTemplateColumns =
    "id, person_id, embedder, embedder_version, embedding, quality, source_sha256, kind, created_at, revision";

Template SqliteGallery::read_template(const Stmt& s) {
  Template t;
  t.id = s.i64(0);
  t.person_id = s.i64(1);
  t.embedder = {s.text(2), s.text(3)};
  t.embedding = s.blob_floats(4);
  t.quality = static_cast<float>(s.f64(5));
  t.source_sha256 = s.text(6);
  t.kind = s.text(7);
  t.created_at = s.i64(8);
  t.revision = s.i64(9);
  return t;
}

SqliteGallery::SqliteGallery(const fs::path& path, const GalleryOptions& options) : path_(path), options_(options) {
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (!exists && (!options.create || options.read_only))
    throw Error(ErrorCode::kNotFound, "no gallery at " + path.string() + " (enrol someone first, or pass --gallery)");
  if (exists && fs::is_directory(path, ec))
    throw Error(ErrorCode::kInvalidArgument, "gallery path " + path.string() + " is a directory");
  if (!exists && path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
  const int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;  // serialised by mu_
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error(ErrorCode::kStorage, "cannot open gallery " + path.string() + ": " + msg);
  }
  try {
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    init_or_check();
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

void SqliteGallery::init_or_check() {
  const std::string where = "gallery " + path_.string();
  auto pragma_int = [&](const char* sql) {
    Stmt s(db_, sql, where);
    return s.step() ? s.i64(0) : 0;
  };
  // Reading the header is the first thing that fails on a file that is not SQLite at all.
  std::int64_t app = 0, version = 0, objects = 0;
  try {
    app = pragma_int("PRAGMA application_id");
    version = pragma_int("PRAGMA user_version");
    objects = pragma_int("SELECT count(*) FROM sqlite_schema");
  } catch (const Error& e) {
    throw Error(ErrorCode::kStorage, path_.string() + " is not a facekit gallery (" + e.what() + ")");
  }
  if (objects > 0 && app != kApplicationId)
    throw Error(ErrorCode::kStorage, path_.string() + " is an SQLite database but not a facekit gallery");
  if (!options_.read_only) {
    // WAL persists in the file; it lets readers run beside one writer. synchronous=FULL makes a commit durable
    // across power loss; NORMAL still survives the process being killed.
    Stmt(db_, "PRAGMA journal_mode=WAL", where).run();
    exec(db_, options_.durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", where);
  }
  exec(db_, "PRAGMA foreign_keys=ON", where);
  if (objects == 0) {
    if (options_.read_only) throw Error(ErrorCode::kStorage, path_.string() + " is an empty file, not a gallery");
    Transaction tx(db_, true);
    // Another process may have created the schema between our check and our write lock.
    if (pragma_int("SELECT count(*) FROM sqlite_schema") == 0) {
      exec(db_, kSchemaV1, where + ": create schema");
      Stmt ins(db_, "INSERT INTO meta(key, value) VALUES (?, ?)", where);
      for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
               {"uuid", random_uuid()}, {"revision", "0"}, {"created_at", std::to_string(now_seconds())}}) {
        ins.bind(1, k).bind(2, v).run();
      }
      exec(db_, ("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str(), where);
      exec(db_, ("PRAGMA user_version=" + std::to_string(kGalleryFormatVersion)).c_str(), where);
    }
    tx.commit();
    version = pragma_int("PRAGMA user_version");
  }
  if (version > kGalleryFormatVersion)
    throw Error(ErrorCode::kStorage, path_.string() + " has gallery format " + std::to_string(version) +
                                         ", newer than this facekit reads (" +
                                         std::to_string(kGalleryFormatVersion) + "): upgrade facekit");
  if (version < 1) throw Error(ErrorCode::kStorage, path_.string() + " has no gallery format version");
  // Format 1 is the first; upgrades of older formats go here, each in its own transaction.
  Stmt s(db_, "SELECT value FROM meta WHERE key='uuid'", where);
  if (!s.step()) throw Error(ErrorCode::kStorage, path_.string() + " is damaged: no uuid in meta");
  uuid_ = s.text(0);
}

std::int64_t SqliteGallery::revision_locked() const {
  Stmt s(db_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key='revision'", "read revision");
  if (!s.step()) throw Error(ErrorCode::kStorage, path_.string() + " is damaged: no revision in meta");
  return s.i64(0);
}

void SqliteGallery::bump_revision(std::int64_t rev) {
  Stmt(db_, "UPDATE meta SET value=? WHERE key='revision'", "write revision").bind(1, std::to_string(rev)).run();
}

std::int64_t SqliteGallery::revision() const {
  std::lock_guard lock(mu_);
  return revision_locked();
}

std::optional<Person> SqliteGallery::person_locked(std::int64_t id) const {
  Stmt s(db_,
         "SELECT id, name, metadata, created_at, (SELECT count(*) FROM templates t WHERE t.person_id=p.id) "
         "FROM people p WHERE id=?",
         "read person");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return Person{s.i64(0), s.text(1), s.text(2), s.i64(3), static_cast<int>(s.i64(4))};
}

std::optional<Person> SqliteGallery::find_locked(const std::string& name) const {
  Stmt s(db_, "SELECT id FROM people WHERE name=?", "find person");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return person_locked(s.i64(0));
}

std::vector<AddResult> SqliteGallery::add_people(const std::vector<NewPerson>& people, OnConflict on_conflict) {
  require_writable();
  // Validate everything before touching the store, so that bad input is reported with nothing begun.
  std::vector<nlohmann::json> meta;
  std::map<EmbedderId, size_t> dims;
  for (const auto& p : people) {
    if (p.name.empty()) throw Error(ErrorCode::kInvalidArgument, "a person needs a non-empty name");
    if (p.name.size() > 1000) throw Error(ErrorCode::kInvalidArgument, "name longer than 1000 bytes");
    if (p.templates.empty())
      throw Error(ErrorCode::kInvalidArgument, "person '" + p.name + "' has no templates; nothing stored");
    meta.push_back(parse_metadata(p.metadata));
    for (const auto& t : p.templates) {
      if (t.embedder.name.empty())
        throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' names no embedder");
      if (t.embedding.empty())
        throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' has an empty embedding");
      for (float v : t.embedding)
        if (!std::isfinite(v))
          throw Error(ErrorCode::kInvalidArgument, "a template of '" + p.name + "' has a non-finite value");
      auto [it, fresh] = dims.emplace(t.embedder, t.embedding.size());
      if (!fresh && it->second != t.embedding.size())
        throw Error(ErrorCode::kInvalidArgument, "embeddings of " + t.embedder.str() + " differ in length");
    }
  }

  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  // Embeddings of an embedder already stored must keep its length.
  for (const auto& [emb, dim] : dims) {
    Stmt s(db_, "SELECT dim FROM templates WHERE embedder=? AND embedder_version=? LIMIT 1", "check dim");
    s.bind(1, emb.name).bind(2, emb.version);
    if (s.step() && static_cast<size_t>(s.i64(0)) != dim)
      throw Error(ErrorCode::kInvalidArgument, emb.str() + " embeddings in this gallery have " +
                                                   std::to_string(s.i64(0)) + " values, not " + std::to_string(dim));
  }
  const std::int64_t rev = revision_locked() + 1;
  const std::int64_t now = now_seconds();
  Stmt find(db_, "SELECT id, metadata FROM people WHERE name=?", "find person");
  Stmt ins_person(db_, "INSERT INTO people(name, metadata, created_at) VALUES (?, ?, ?)", "insert person");
  Stmt upd_meta(db_, "UPDATE people SET metadata=? WHERE id=?", "update metadata");
  Stmt dup(db_,
           "SELECT 1 FROM templates WHERE person_id=? AND embedder=? AND embedder_version=? AND source_sha256=? "
           "AND kind=? LIMIT 1",
           "check duplicate");
  Stmt ins_tpl(db_,
               "INSERT INTO templates(person_id, embedder, embedder_version, dim, embedding, quality, source_sha256, "
               "kind, created_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               "insert template");
  std::vector<AddResult> results;
  results.reserve(people.size());
  for (size_t i = 0; i < people.size(); ++i) {
    const auto& p = people[i];
    AddResult r;
    std::int64_t pid = 0;
    find.bind(1, p.name);
    const bool exists = find.step();
    if (!exists) find.reset();
    if (exists) {
      pid = find.i64(0);
      const std::string old_meta = find.text(1);
      find.reset();
      if (on_conflict == OnConflict::kFail)
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + p.name + "' is already enrolled (id " + std::to_string(pid) + "); nothing stored");
      if (!meta[i].empty()) {
        auto merged = parse_metadata(old_meta);
        merged.update(meta[i]);
        upd_meta.bind(1, merged.dump()).bind(2, pid).run();
      }
    } else {
      ins_person.bind(1, p.name).bind(2, meta[i].dump()).bind(3, now).run();
      pid = sqlite3_last_insert_rowid(db_);
      r.created = true;
    }
    for (const auto& t : p.templates) {
      if (!t.source_sha256.empty()) {
        dup.bind(1, pid).bind(2, t.embedder.name).bind(3, t.embedder.version).bind(4, t.source_sha256).bind(5, t.kind);
        const bool seen = dup.step();
        dup.reset();
        if (seen) {
          ++r.duplicates;
          continue;
        }
      }
      ins_tpl.bind(1, pid)
          .bind(2, t.embedder.name)
          .bind(3, t.embedder.version)
          .bind(4, static_cast<std::int64_t>(t.embedding.size()))
          .bind_blob(5, t.embedding.data(), t.embedding.size() * sizeof(float))
          .bind(6, static_cast<double>(t.quality))
          .bind(7, t.source_sha256)
          .bind(8, t.kind)
          .bind(9, now)
          .bind(10, rev)
          .run();
      ++r.added;
    }
    r.person = *person_locked(pid);
    results.push_back(std::move(r));
  }
  bump_revision(rev);
  tx.commit();
  return results;
}

Person SqliteGallery::person(std::int64_t id) const {
  std::lock_guard lock(mu_);
  auto p = person_locked(id);
  if (!p) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(id));
  return *p;
}

std::optional<Person> SqliteGallery::find_person(const std::string& name) const {
  std::lock_guard lock(mu_);
  return find_locked(name);
}

std::vector<Person> SqliteGallery::people() const {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT p.id, p.name, p.metadata, p.created_at, count(t.id) FROM people p "
         "LEFT JOIN templates t ON t.person_id=p.id GROUP BY p.id ORDER BY p.id",
         "list people");
  std::vector<Person> out;
  while (s.step()) out.push_back({s.i64(0), s.text(1), s.text(2), s.i64(3), static_cast<int>(s.i64(4))});
  return out;
}

std::vector<Template> SqliteGallery::templates_of(std::int64_t person_id) const {
  std::lock_guard lock(mu_);
  Transaction tx(db_, false);
  if (!person_locked(person_id)) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(person_id));
  Stmt s(db_, (std::string("SELECT ") + kTemplateColumns + " FROM templates WHERE person_id=? ORDER BY id").c_str(),
         "read templates");
  s.bind(1, person_id);
  std::vector<Template> out;
  while (s.step()) out.push_back(read_template(s));
  tx.commit();
  return out;
}

void SqliteGallery::rename_person(std::int64_t id, const std::string& new_name) {
  require_writable();
  if (new_name.empty()) throw Error(ErrorCode::kInvalidArgument, "a person needs a non-empty name");
  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  if (!person_locked(id)) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(id));
  if (auto other = find_locked(new_name); other && other->id != id)
    throw Error(ErrorCode::kInvalidArgument,
                "'" + new_name + "' is already the name of person " + std::to_string(other->id));
  Stmt(db_, "UPDATE people SET name=? WHERE id=?", "rename").bind(1, new_name).bind(2, id).run();
  bump_revision(revision_locked() + 1);
  tx.commit();
}

void SqliteGallery::set_metadata(std::int64_t id, const std::string& metadata_json) {
  require_writable();
  const auto j = parse_metadata(metadata_json);
  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  if (!person_locked(id)) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(id));
  Stmt(db_, "UPDATE people SET metadata=? WHERE id=?", "set metadata").bind(1, j.dump()).bind(2, id).run();
  bump_revision(revision_locked() + 1);
  tx.commit();
}

void SqliteGallery::remove_person(std::int64_t id) {
  require_writable();
  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  if (!person_locked(id)) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(id));
  const std::int64_t rev = revision_locked() + 1;
  Stmt(db_,
       "INSERT INTO removed_templates(template_id, person_id, embedder, embedder_version, revision) "
       "SELECT id, person_id, embedder, embedder_version, ? FROM templates WHERE person_id=?",
       "log removal")
      .bind(1, rev)
      .bind(2, id)
      .run();
  Stmt(db_, "DELETE FROM templates WHERE person_id=?", "remove templates").bind(1, id).run();
  Stmt(db_, "DELETE FROM people WHERE id=?", "remove person").bind(1, id).run();
  bump_revision(rev);
  tx.commit();
}

void SqliteGallery::for_each_template(const EmbedderId& embedder, const std::function<void(const Template&)>& fn,
                                      std::int64_t* revision_out) const {
  std::lock_guard lock(mu_);
  Transaction tx(db_, false);  // one snapshot for the revision and the rows
  if (revision_out) *revision_out = revision_locked();
  Stmt s(db_,
         (std::string("SELECT ") + kTemplateColumns +
          " FROM templates WHERE embedder=? AND embedder_version=? ORDER BY id")
             .c_str(),
         "read templates");
  s.bind(1, embedder.name).bind(2, embedder.version);
  while (s.step()) fn(read_template(s));
  tx.commit();
}

GalleryChanges SqliteGallery::changes_since(const EmbedderId& embedder, std::int64_t revision) const {
  std::lock_guard lock(mu_);
  Transaction tx(db_, false);
  GalleryChanges c;
  c.from_revision = revision;
  c.to_revision = revision_locked();
  Stmt a(db_,
         (std::string("SELECT ") + kTemplateColumns +
          " FROM templates WHERE embedder=? AND embedder_version=? AND revision>? ORDER BY id")
             .c_str(),
         "read changes");
  a.bind(1, embedder.name).bind(2, embedder.version).bind(3, revision);
  while (a.step()) c.added.push_back(read_template(a));
  Stmt r(db_,
         "SELECT template_id, person_id FROM removed_templates WHERE embedder=? AND embedder_version=? AND "
         "revision>? ORDER BY template_id",
         "read removals");
  r.bind(1, embedder.name).bind(2, embedder.version).bind(3, revision);
  while (r.step()) c.removed.emplace_back(r.i64(0), r.i64(1));
  tx.commit();
  return c;
}

GalleryStats SqliteGallery::stats() const {
  std::lock_guard lock(mu_);
  Transaction tx(db_, false);
  GalleryStats st;
  st.location = path_.string();
  st.format_version = kGalleryFormatVersion;
  st.revision = revision_locked();
  {
    Stmt s(db_, "SELECT count(*) FROM people", "stats");
    s.step();
    st.people = s.i64(0);
  }
  {
    Stmt s(db_,
           "SELECT embedder, embedder_version, count(*), count(DISTINCT person_id) FROM templates "
           "GROUP BY embedder, embedder_version",
           "stats");
    while (s.step()) {
      const EmbedderId e{s.text(0), s.text(1)};
      st.templates_by_embedder[e] = s.i64(2);
      st.people_by_embedder[e] = s.i64(3);
      st.templates += s.i64(2);
    }
  }
  tx.commit();
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const auto n = fs::file_size(path_.string() + suffix, ec);
    if (!ec) st.bytes += n;
  }
  return st;
}

}  // namespace

std::unique_ptr<Gallery> open_sqlite_gallery(const fs::path& path, const GalleryOptions& options) {
  return std::make_unique<SqliteGallery>(path, options);
}

}  // namespace facekit
