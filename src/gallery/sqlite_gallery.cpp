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
//  - Format 2: every person and template row carries a BLAKE2b checksum, verified whenever the row is read, so
//    a damaged page is an error naming the person instead of a template silently near 1e20. Templates may be
//    encrypted (secretbox) with a key the gallery never stores; meta.key_check tells a wrong key at open.
//  - A new gallery is built in a temporary file and linked into place, so a 0-byte gallery is never ours:
//    finding one means the file was truncated, and the user is told instead of being handed an empty gallery.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <bit>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <mutex>
#include <random>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/json_depth.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "gallery/crypto.hpp"
#include "gallery/store_common.hpp"

namespace facekit {
namespace fs = std::filesystem;

using detail::now_seconds;
using detail::parse_metadata;
using detail::random_uuid;

namespace {

static_assert(std::endian::native == std::endian::little, "embeddings are stored as little-endian float32");

constexpr int kApplicationId = 0x464B474C;  // "FKGL"

// The current schema; a format 1 gallery lacks the two checksum columns and gains them when upgraded.
const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE people(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  metadata TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  checksum BLOB);
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
  revision INTEGER NOT NULL,
  checksum BLOB);
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

constexpr const char* kCipher = "xsalsa20poly1305";
std::string key_check_text(const std::string& uuid) { return "facekit gallery key check " + uuid; }

std::string person_checksum(const std::string& name, const std::string& metadata, std::int64_t created_at) {
  return detail::Checksum().add(name).add(metadata).add(created_at).digest();
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
  std::string blob(int c) const {
    const void* p = sqlite3_column_blob(st_, c);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(st_, c)) : std::string();
  }
  bool is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }

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

/// An Error(kStorage) that keeps SQLite's result code, so that opening can tell "not a database" from I/O.
class SqliteError : public Error {
 public:
  SqliteError(int rc, const std::string& message) : Error(ErrorCode::kStorage, message), rc_(rc) {}
  int rc() const { return rc_; }

 private:
  int rc_;
};

// An I/O error on a full disk says "disk I/O error"; look at the file system to say what is really wrong.
bool disk_full(const fs::path& file) {
  struct statvfs st {};
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  return ::statvfs(dir.c_str(), &st) == 0 && st.f_bavail * st.f_frsize < (64u << 10);
}

[[noreturn]] void throw_sqlite(sqlite3* db, int rc, const std::string& where) {
  const std::string msg = where + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  const char* file = db ? sqlite3_db_filename(db, "main") : nullptr;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw SqliteError(rc, msg + " (another process holds the gallery; try again)");
    case SQLITE_FULL:
      throw SqliteError(rc, msg + " (the disk is full; nothing of this write was stored)");
    case SQLITE_IOERR:
      if (file && *file && disk_full(file))
        throw SqliteError(rc, msg + " (the disk holding " + std::string(file) +
                                  " is full; free some space; nothing of this write was stored)");
      throw SqliteError(rc, msg);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      throw SqliteError(rc, msg + " (the file is not a facekit gallery or is damaged)");
    case SQLITE_CANTOPEN:
      throw SqliteError(rc, msg + " (cannot open the file)");
    case SQLITE_READONLY:
      throw SqliteError(rc, msg + " (the gallery is read-only here)");
    default:
      throw SqliteError(rc, msg);
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
  Template template_by_id(std::int64_t template_id) const override;
  void rename_person(std::int64_t id, const std::string& new_name) override;
  void set_metadata(std::int64_t id, const std::string& metadata_json) override;
  void remove_person(std::int64_t id) override;
  TemplateRemoval remove_template(std::int64_t template_id) override;
  void for_each_template(const EmbedderId& embedder, const std::function<void(const Template&)>& fn,
                         std::int64_t* revision_out) const override;
  GalleryChanges changes_since(const EmbedderId& embedder, std::int64_t revision) const override;
  std::int64_t revision() const override;
  std::string uuid() const override { return uuid_; }
  GalleryStats stats() const override;
  std::string location() const override { return path_.string(); }
  bool encrypted() const override { return options_.key.has_value() && encrypted_; }
  std::string seal(const std::string& plain) const override;
  std::string unseal(const std::string& sealed) const override;
  GalleryCheck check() const override;
  void rekey(const std::optional<GalleryKey>& new_key) override;

 private:
  void open_connection(const std::string& uri, int flags);
  void init_or_check();
  void create_schema(const std::string& where);
  void upgrade_from_1(const std::string& where);
  void check_key(const std::string& where);
  void require_writable() const {
    if (options_.read_only)
      throw Error(ErrorCode::kInvalidArgument, "the gallery " + path_.string() + " was opened read-only");
    if (!read_only_reason_.empty())
      throw Error(ErrorCode::kStorage, "cannot write to the gallery " + path_.string() + ": " + read_only_reason_ +
                                           "; nothing was changed");
  }
  std::int64_t revision_locked() const;
  void bump_revision(std::int64_t rev);
  std::optional<Person> person_locked(std::int64_t id) const;
  std::optional<Person> find_locked(const std::string& name) const;
  std::string person_columns() const;
  Person read_person(const Stmt& s) const;  // columns as in person_columns()
  std::string template_columns() const;
  Template read_template(const Stmt& s) const;  // columns as in template_columns()
  std::string template_checksum(std::int64_t person_id, const Template& t, const std::string& stored) const;
  std::string stored_embedding(std::int64_t person_id, const Embedding& e, const std::optional<GalleryKey>& key) const;
  /// The embedding of a stored blob, or a reason it cannot be read.
  std::optional<Embedding> embedding_of(std::int64_t person_id, std::int64_t dim, const std::string& blob,
                                        const std::optional<GalleryKey>& key, std::string* why) const;
  std::string name_for_message(std::int64_t person_id) const;

  fs::path path_;
  GalleryOptions options_;
  sqlite3* db_ = nullptr;
  std::string uuid_;
  int format_ = kGalleryFormatVersion;  // on disk; 1 when a format 1 gallery could not be upgraded (read-only)
  bool encrypted_ = false;
  std::string read_only_reason_;  // why writes are impossible here ("" when they are possible)
  mutable std::mutex mu_;
};

// A person's name for an error message, even when the person row itself is what is damaged.
std::string SqliteGallery::name_for_message(std::int64_t person_id) const {
  try {
    Stmt s(db_, "SELECT name FROM people WHERE id=?", "read name");
    s.bind(1, person_id);
    if (s.step()) return "'" + s.text(0) + "' (id " + std::to_string(person_id) + ")";
  } catch (const Error&) {
  }
  return "id " + std::to_string(person_id);
}

std::string SqliteGallery::person_columns() const {
  return format_ >= 2 ? "p.id, p.name, p.metadata, p.created_at, p.checksum" : "p.id, p.name, p.metadata, p.created_at, NULL";
}

Person SqliteGallery::read_person(const Stmt& s) const {
  Person p{s.i64(0), s.text(1), s.text(2), s.i64(3), 0};
  if (format_ >= 2 && s.blob(4) != person_checksum(p.name, p.metadata, p.created_at))
    throw Error(ErrorCode::kStorage, "the gallery " + path_.string() + " is damaged: the record of person id " +
                                         std::to_string(p.id) + " ('" + p.name +
                                         "') fails its checksum; run `facekit gallery check`");
  return p;
}

std::string SqliteGallery::template_columns() const {
  return std::string("id, person_id, embedder, embedder_version, embedding, quality, source_sha256, kind, created_at, "
                     "revision, dim, ") +
         (format_ >= 2 ? "checksum" : "NULL");
}

std::string SqliteGallery::template_checksum(std::int64_t person_id, const Template& t, const std::string& stored) const {
  return detail::Checksum()
      .add(person_id)
      .add(t.embedder.name)
      .add(t.embedder.version)
      .add(static_cast<std::int64_t>(t.embedding.size()))
      .add(stored)
      .add(static_cast<double>(t.quality))
      .add(t.source_sha256)
      .add(t.kind)
      .add(t.created_at)
      .add(t.revision)
      .digest();
}

// Plain: little-endian float32. Encrypted: secretbox of the person id and the floats, so that a sealed template
// moved to another person's row does not open as theirs.
std::string SqliteGallery::stored_embedding(std::int64_t person_id, const Embedding& e,
                                            const std::optional<GalleryKey>& key) const {
  std::string plain(reinterpret_cast<const char*>(e.data()), e.size() * sizeof(float));
  if (!key) return plain;
  std::string bound(8, '\0');
  for (int i = 0; i < 8; ++i) bound[i] = static_cast<char>(static_cast<std::uint64_t>(person_id) >> (8 * i));
  return detail::seal(*key, bound + plain);
}

std::optional<Embedding> SqliteGallery::embedding_of(std::int64_t person_id, std::int64_t dim, const std::string& blob,
                                                     const std::optional<GalleryKey>& key, std::string* why) const {
  std::string plain = blob;
  if (key) {
    auto opened = detail::unseal(*key, blob);
    std::int64_t owner = 0;
    if (opened && opened->size() >= 8)
      for (int i = 0; i < 8; ++i) owner |= std::int64_t{static_cast<unsigned char>((*opened)[i])} << (8 * i);
    if (!opened || opened->size() < 8 || owner != person_id) {
      *why = "does not authenticate with the gallery's key (damaged or tampered)";
      return std::nullopt;
    }
    plain = opened->substr(8);
  }
  if (dim <= 0 || plain.size() != static_cast<std::size_t>(dim) * sizeof(float)) {
    *why = "has " + std::to_string(plain.size()) + " bytes of embedding for " + std::to_string(dim) + " values";
    return std::nullopt;
  }
  Embedding e(static_cast<std::size_t>(dim));
  std::memcpy(e.data(), plain.data(), plain.size());
  return e;
}

Template SqliteGallery::read_template(const Stmt& s) const {
  Template t;
  t.id = s.i64(0);
  t.person_id = s.i64(1);
  t.embedder = {s.text(2), s.text(3)};
  const std::string blob = s.blob(4);
  t.quality = static_cast<float>(s.f64(5));
  t.source_sha256 = s.text(6);
  t.kind = s.text(7);
  t.created_at = s.i64(8);
  t.revision = s.i64(9);
  const std::int64_t dim = s.i64(10);
  const auto damaged = [&](const std::string& why) {
    return Error(ErrorCode::kStorage, "the gallery " + path_.string() + " is damaged: template " + std::to_string(t.id) +
                                          " of person " + name_for_message(t.person_id) + " " + why +
                                          "; run `facekit gallery check`");
  };
  if (format_ >= 2) {
    t.embedding.resize(static_cast<std::size_t>(std::max<std::int64_t>(dim, 0)));  // only its size is hashed
    // The quality went in as a float widened to double; the same widening reproduces the hashed value.
    if (s.blob(11) != template_checksum(t.person_id, t, blob)) throw damaged("fails its checksum");
  }
  std::string why;
  auto e = embedding_of(t.person_id, dim, blob, encrypted() ? options_.key : std::nullopt, &why);
  if (!e) throw damaged(why);
  t.embedding = std::move(*e);
  return t;
}

void SqliteGallery::open_connection(const std::string& uri, int flags) {
  const int rc = sqlite3_open_v2(uri.c_str(), &db_, flags | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);  // serialised by mu_
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw Error(ErrorCode::kStorage, "cannot open gallery " + path_.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db_, options_.busy_timeout_ms);
}

// A file: URI for SQLite (which would otherwise read '?' and '#' in a path as URI syntax).
std::string file_uri(const fs::path& path, const std::string& query = "") {
  std::string u = "file:";
  for (unsigned char c : fs::absolute(path).string()) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      u += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      u += buf;
    }
  }
  return query.empty() ? u : u + "?" + query;
}

// Why a gallery cannot be written here ("" when it can): SQLite needs the file and, for its -wal and -shm files,
// the folder. access() also answers for read-only mounts (EROFS), where root's permissions do not help.
std::string read_only_reason(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (::access(path.c_str(), W_OK) != 0)
    return errno == EROFS ? "it is on a read-only file system" : "the file is read-only (" + std::string(std::strerror(errno)) + ")";
  if (::access(dir.c_str(), W_OK) != 0) {
    if (errno == EROFS) return "it is on a read-only file system";
    // Existing, writable -wal and -shm files are enough without a writable folder.
    const std::string p = path.string();
    if (::access((p + "-wal").c_str(), W_OK) == 0 && ::access((p + "-shm").c_str(), W_OK) == 0) return "";
    return "its folder " + dir.string() + " is read-only (SQLite keeps its -wal and -shm files beside the gallery)";
  }
  return "";
}

SqliteGallery::SqliteGallery(const fs::path& path, const GalleryOptions& options) : path_(path), options_(options) {
  std::error_code ec;
  const bool exists = fs::exists(path, ec);
  if (!exists && (!options.create || options.read_only))
    throw Error(ErrorCode::kNotFound, "no gallery at " + path.string() + " (enrol someone first, or pass --gallery)");
  if (exists && fs::is_directory(path, ec))
    throw Error(ErrorCode::kInvalidArgument, "gallery path " + path.string() + " is a directory");
  if (exists && fs::file_size(path, ec) == 0 && !ec)
    throw Error(ErrorCode::kStorage, path.string() + " is an empty file (0 bytes), not a gallery: it may have been "
                                     "truncated; restore it from a backup, or remove it to start a new gallery");
  if (!exists) {
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    // Built whole beside its final name, then linked into place: no one ever sees a half-made gallery, and
    // two processes creating it at once end up sharing one (link fails for the second).
    const fs::path tmp = path.string() + ".new-" + std::to_string(::getpid()) + "-" + random_uuid().substr(0, 8);
    try {
      open_connection(file_uri(tmp), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
      create_schema("gallery " + path.string());
      sqlite3_close_v2(db_);
      db_ = nullptr;
    } catch (...) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(tmp.string() + suffix, ec);
      throw;
    }
    const int linked = ::link(tmp.c_str(), path.c_str());
    const int link_errno = errno;
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(tmp.string() + suffix, ec);
    if (linked != 0 && link_errno != EEXIST)
      throw Error(ErrorCode::kStorage, "cannot create the gallery " + path.string() + ": " + std::strerror(link_errno));
  }
  std::string uri = file_uri(path);
  int flags = SQLITE_OPEN_READWRITE;
  if (options.read_only) {
    flags = SQLITE_OPEN_READONLY;
  } else if (read_only_reason_ = read_only_reason(path); !read_only_reason_.empty()) {
    flags = SQLITE_OPEN_READONLY;
  }
  if (flags == SQLITE_OPEN_READONLY && !read_only_reason(path).empty()) {
    // SQLite cannot create the -shm file a WAL reader needs. With no log to replay, reading the file as it
    // stands (immutable) is exact; with one, it must be read through the existing -wal and -shm.
    std::error_code wec;
    const auto wal = fs::file_size(path.string() + "-wal", wec);
    if (wec || wal == 0) uri = file_uri(path, "immutable=1");
  }
  open_connection(uri, flags);
  try {
    init_or_check();
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

void SqliteGallery::create_schema(const std::string& where) {
  exec(db_, "PRAGMA journal_mode=WAL", where);
  Transaction tx(db_, true);
  exec(db_, kSchema, where + ": create schema");
  const std::string uuid = random_uuid();
  std::vector<std::pair<std::string, std::string>> meta = {
      {"uuid", uuid}, {"revision", "0"}, {"created_at", std::to_string(now_seconds())}};
  if (options_.key) {
    meta.emplace_back("encryption", kCipher);
    meta.emplace_back("key_check", detail::to_hex(detail::seal(*options_.key, key_check_text(uuid))));
  }
  Stmt ins(db_, "INSERT INTO meta(key, value) VALUES (?, ?)", where);
  for (const auto& [k, v] : meta) ins.bind(1, k).bind(2, v).run();
  exec(db_, ("PRAGMA application_id=" + std::to_string(kApplicationId)).c_str(), where);
  exec(db_, ("PRAGMA user_version=" + std::to_string(kGalleryFormatVersion)).c_str(), where);
  tx.commit();
}

// Format 1 -> 2: the checksum columns, filled for every row, in one transaction.
void SqliteGallery::upgrade_from_1(const std::string& where) {
  Transaction tx(db_, true);
  Stmt v(db_, "PRAGMA user_version", where);
  if (v.step() && v.i64(0) != 1) return;  // another process upgraded it first
  v.reset();
  exec(db_, "ALTER TABLE people ADD COLUMN checksum BLOB", where + ": upgrade");
  exec(db_, "ALTER TABLE templates ADD COLUMN checksum BLOB", where + ": upgrade");
  format_ = 2;
  {
    Stmt s(db_, "SELECT id, name, metadata, created_at FROM people", where);
    Stmt up(db_, "UPDATE people SET checksum=? WHERE id=?", where);
    std::vector<std::pair<std::int64_t, std::string>> sums;
    while (s.step()) sums.emplace_back(s.i64(0), person_checksum(s.text(1), s.text(2), s.i64(3)));
    for (const auto& [id, sum] : sums) up.bind_blob(1, sum.data(), sum.size()).bind(2, id).run();
  }
  {
    Stmt s(db_, "SELECT id, person_id, embedder, embedder_version, embedding, quality, source_sha256, kind, created_at, "
                "revision, dim FROM templates", where);
    Stmt up(db_, "UPDATE templates SET checksum=? WHERE id=?", where);
    std::vector<std::pair<std::int64_t, std::string>> sums;
    while (s.step()) {
      Template t;
      t.embedder = {s.text(2), s.text(3)};
      t.quality = static_cast<float>(s.f64(5));
      t.source_sha256 = s.text(6);
      t.kind = s.text(7);
      t.created_at = s.i64(8);
      t.revision = s.i64(9);
      t.embedding.resize(static_cast<std::size_t>(std::max<std::int64_t>(s.i64(10), 0)));
      sums.emplace_back(s.i64(0), template_checksum(s.i64(1), t, s.blob(4)));
    }
    for (const auto& [id, sum] : sums) up.bind_blob(1, sum.data(), sum.size()).bind(2, id).run();
  }
  exec(db_, "PRAGMA user_version=2", where);
  tx.commit();
}

void SqliteGallery::check_key(const std::string& where) {
  std::string check;
  {
    Stmt s(db_, "SELECT value FROM meta WHERE key='key_check'", where);
    if (s.step()) check = s.text(0);
  }
  encrypted_ = !check.empty();
  const std::string how = "--key-file FILE, $FACEKIT_GALLERY_KEY_FILE or $FACEKIT_GALLERY_KEY";
  if (encrypted_ && !options_.key)
    throw Error(ErrorCode::kStorage, path_.string() + " is encrypted: give its key (" + how + "); nothing was read");
  if (encrypted_) {
    std::optional<std::string> opened;
    try {
      opened = detail::unseal(*options_.key, detail::from_hex(check, "meta.key_check"));
    } catch (const Error& e) {
      throw Error(ErrorCode::kStorage, path_.string() + " is damaged: " + e.what());
    }
    if (!opened || *opened != key_check_text(uuid_))
      throw Error(ErrorCode::kStorage, "the key given does not open " + path_.string() + " (a wrong key?); nothing was read");
  } else if (options_.key && !options_.key_optional) {
    throw Error(ErrorCode::kStorage, path_.string() + " is not encrypted, but a key was given: encrypt it with "
                                     "`facekit gallery rekey --new-key-file FILE`, or give no key; nothing was changed");
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
  } catch (const SqliteError& e) {
    // I/O trouble (a full disk, permissions) is said as such; only a file SQLite cannot read is "not a gallery".
    const int rc = e.rc() & 0xff;
    if (rc != SQLITE_NOTADB && rc != SQLITE_CORRUPT) throw;
    throw Error(ErrorCode::kStorage, path_.string() + " is not a facekit gallery (" + e.what() + ")");
  }
  if (objects > 0 && app != kApplicationId)
    throw Error(ErrorCode::kStorage, path_.string() + " is an SQLite database but not a facekit gallery");
  if (objects == 0)
    throw Error(ErrorCode::kStorage, path_.string() + " holds no gallery (an empty SQLite database)");
  if (!options_.read_only && read_only_reason_.empty()) {
    // WAL persists in the file; it lets readers run beside one writer. synchronous=FULL makes a commit durable
    // across power loss; NORMAL still survives the process being killed.
    Stmt(db_, "PRAGMA journal_mode=WAL", where).run();
    exec(db_, options_.durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", where);
  }
  exec(db_, "PRAGMA foreign_keys=ON", where);
  if (version > kGalleryFormatVersion)
    throw Error(ErrorCode::kStorage, path_.string() + " has gallery format " + std::to_string(version) +
                                         ", newer than this facekit reads (" +
                                         std::to_string(kGalleryFormatVersion) + "): upgrade facekit");
  if (version < 1) throw Error(ErrorCode::kStorage, path_.string() + " has no gallery format version");
  {
    Stmt s(db_, "SELECT value FROM meta WHERE key='uuid'", where);
    if (!s.step()) throw Error(ErrorCode::kStorage, path_.string() + " is damaged: no uuid in meta");
    uuid_ = s.text(0);
  }
  format_ = static_cast<int>(version);
  // Upgrades, each in its own transaction. A gallery that cannot be written is read in its own format.
  if (format_ == 1 && !options_.read_only && read_only_reason_.empty()) upgrade_from_1(where);
  check_key(where);
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
         ("SELECT " + person_columns() + ", (SELECT count(*) FROM templates t WHERE t.person_id=p.id) "
          "FROM people p WHERE id=?").c_str(),
         "read person");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  Person p = read_person(s);
  p.templates = static_cast<int>(s.i64(5));
  return p;
}

std::optional<Person> SqliteGallery::find_locked(const std::string& name) const {
  Stmt s(db_, "SELECT id FROM people WHERE name=?", "find person");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return person_locked(s.i64(0));
}

std::vector<AddResult> SqliteGallery::add_people(const std::vector<NewPerson>& people, OnConflict on_conflict) {
  require_writable();
  // Everything is checked before the store is touched, so that bad input is reported with nothing begun.
  const detail::CheckedPeople checked = detail::check_new_people(people);
  const auto& meta = checked.metadata;
  const auto& dims = checked.dims;
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
  const bool sums = format_ >= 2;
  Stmt find(db_, "SELECT id, metadata, name, created_at FROM people WHERE name=?", "find person");
  // Checksums cover no row id, so each row is written once, checksum included (format 1 has no such column).
  Stmt ins_person(db_, sums ? "INSERT INTO people(name, metadata, created_at, checksum) VALUES (?, ?, ?, ?)"
                            : "INSERT INTO people(name, metadata, created_at) VALUES (?, ?, ?)",
                  "insert person");
  Stmt upd_meta(db_, "UPDATE people SET metadata=? WHERE id=?", "update metadata");
  Stmt upd_person_sum(db_, "UPDATE people SET checksum=? WHERE id=?", "update checksum");
  Stmt dup(db_,
           "SELECT 1 FROM templates WHERE person_id=? AND embedder=? AND embedder_version=? AND source_sha256=? "
           "AND kind=? LIMIT 1",
           "check duplicate");
  Stmt ins_tpl(db_,
               sums ? "INSERT INTO templates(person_id, embedder, embedder_version, dim, embedding, quality, "
                      "source_sha256, kind, created_at, revision, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    : "INSERT INTO templates(person_id, embedder, embedder_version, dim, embedding, quality, "
                      "source_sha256, kind, created_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               "insert template");
  const auto set_sum = [](Stmt& st, const std::string& sum, std::int64_t id) {
    st.bind_blob(1, sum.data(), sum.size()).bind(2, id).run();
  };
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
      const std::string old_meta = find.text(1), name = find.text(2);
      const std::int64_t created = find.i64(3);
      find.reset();
      if (on_conflict == OnConflict::kFail)
        throw Error(ErrorCode::kInvalidArgument,
                    "'" + p.name + "' is already enrolled (id " + std::to_string(pid) + "); nothing stored");
      if (!meta[i].empty()) {
        auto merged = parse_metadata(old_meta);
        merged.update(meta[i]);
        const std::string m = merged.dump();
        upd_meta.bind(1, m).bind(2, pid).run();
        if (sums) set_sum(upd_person_sum, person_checksum(name, m, created), pid);
      }
    } else {
      const std::string m = meta[i].dump();
      ins_person.bind(1, p.name).bind(2, m).bind(3, now);
      if (sums) {
        const std::string sum = person_checksum(p.name, m, now);
        ins_person.bind_blob(4, sum.data(), sum.size());
      }
      ins_person.run();
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
      const std::string stored = stored_embedding(pid, t.embedding, encrypted() ? options_.key : std::nullopt);
      ins_tpl.bind(1, pid)
          .bind(2, t.embedder.name)
          .bind(3, t.embedder.version)
          .bind(4, static_cast<std::int64_t>(t.embedding.size()))
          .bind_blob(5, stored.data(), stored.size())
          .bind(6, static_cast<double>(t.quality))
          .bind(7, t.source_sha256)
          .bind(8, t.kind)
          .bind(9, now)
          .bind(10, rev);
      if (sums) {
        Template row;
        static_cast<NewTemplate&>(row) = t;
        row.created_at = now;
        row.revision = rev;
        const std::string sum = template_checksum(pid, row, stored);
        ins_tpl.bind_blob(11, sum.data(), sum.size());
      }
      ins_tpl.run();
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
         ("SELECT " + person_columns() + ", count(t.id) FROM people p "
          "LEFT JOIN templates t ON t.person_id=p.id GROUP BY p.id ORDER BY p.id").c_str(),
         "list people");
  std::vector<Person> out;
  while (s.step()) {
    out.push_back(read_person(s));
    out.back().templates = static_cast<int>(s.i64(5));
  }
  return out;
}

std::vector<Template> SqliteGallery::templates_of(std::int64_t person_id) const {
  std::lock_guard lock(mu_);
  Transaction tx(db_, false);
  if (!person_locked(person_id)) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(person_id));
  Stmt s(db_, ("SELECT " + template_columns() + " FROM templates WHERE person_id=? ORDER BY id").c_str(),
         "read templates");
  s.bind(1, person_id);
  std::vector<Template> out;
  while (s.step()) out.push_back(read_template(s));
  tx.commit();
  return out;
}

Template SqliteGallery::template_by_id(std::int64_t template_id) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, ("SELECT " + template_columns() + " FROM templates WHERE id=?").c_str(), "read template");
  s.bind(1, template_id);
  if (!s.step()) throw Error(ErrorCode::kNotFound, "no template with id " + std::to_string(template_id));
  return read_template(s);
}

void SqliteGallery::rename_person(std::int64_t id, const std::string& new_name) {
  require_writable();
  if (new_name.empty()) throw Error(ErrorCode::kInvalidArgument, "a person needs a non-empty name");
  check_person_name(new_name);
  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  const auto p = person_locked(id);
  if (!p) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(id));
  if (auto other = find_locked(new_name); other && other->id != id)
    throw Error(ErrorCode::kInvalidArgument,
                "'" + new_name + "' is already the name of person " + std::to_string(other->id));
  Stmt(db_, "UPDATE people SET name=? WHERE id=?", "rename").bind(1, new_name).bind(2, id).run();
  if (format_ >= 2) {
    const std::string sum = person_checksum(new_name, p->metadata, p->created_at);
    Stmt(db_, "UPDATE people SET checksum=? WHERE id=?", "rename").bind_blob(1, sum.data(), sum.size()).bind(2, id).run();
  }
  bump_revision(revision_locked() + 1);
  tx.commit();
}

void SqliteGallery::set_metadata(std::int64_t id, const std::string& metadata_json) {
  require_writable();
  const auto j = parse_metadata(metadata_json);
  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  const auto p = person_locked(id);
  if (!p) throw Error(ErrorCode::kNotFound, "no person with id " + std::to_string(id));
  const std::string m = j.dump();
  Stmt(db_, "UPDATE people SET metadata=? WHERE id=?", "set metadata").bind(1, m).bind(2, id).run();
  if (format_ >= 2) {
    const std::string sum = person_checksum(p->name, m, p->created_at);
    Stmt(db_, "UPDATE people SET checksum=? WHERE id=?", "set metadata").bind_blob(1, sum.data(), sum.size()).bind(2, id).run();
  }
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

TemplateRemoval SqliteGallery::remove_template(std::int64_t template_id) {
  require_writable();
  std::lock_guard lock(mu_);
  Transaction tx(db_, true);
  Stmt find(db_, "SELECT person_id FROM templates WHERE id=?", "find template");
  find.bind(1, template_id);
  if (!find.step()) throw Error(ErrorCode::kNotFound, "no template with id " + std::to_string(template_id));
  const std::int64_t person_id = find.i64(0);
  TemplateRemoval out;
  out.template_id = template_id;
  out.person = person_locked(person_id).value();
  const std::int64_t rev = revision_locked() + 1;
  Stmt(db_,
       "INSERT INTO removed_templates(template_id, person_id, embedder, embedder_version, revision) "
       "SELECT id, person_id, embedder, embedder_version, ? FROM templates WHERE id=?",
       "log removal")
      .bind(1, rev)
      .bind(2, template_id)
      .run();
  Stmt(db_, "DELETE FROM templates WHERE id=?", "remove template").bind(1, template_id).run();
  Stmt left(db_, "SELECT COUNT(*) FROM templates WHERE person_id=?", "count templates");
  left.bind(1, person_id);
  out.person_removed = left.step() && left.i64(0) == 0;
  if (out.person_removed) Stmt(db_, "DELETE FROM people WHERE id=?", "remove person").bind(1, person_id).run();
  bump_revision(rev);
  tx.commit();
  return out;
}

void SqliteGallery::for_each_template(const EmbedderId& embedder, const std::function<void(const Template&)>& fn,
                                      std::int64_t* revision_out) const {
  std::lock_guard lock(mu_);
  Transaction tx(db_, false);  // one snapshot for the revision and the rows
  if (revision_out) *revision_out = revision_locked();
  Stmt s(db_,
         ("SELECT " + template_columns() + " FROM templates WHERE embedder=? AND embedder_version=? ORDER BY id").c_str(),
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
         ("SELECT " + template_columns() +
          " FROM templates WHERE embedder=? AND embedder_version=? AND revision>? ORDER BY id").c_str(),
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
  st.format_version = format_;
  st.encrypted = encrypted();
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

std::string SqliteGallery::seal(const std::string& plain) const {
  return encrypted() ? detail::seal(*options_.key, plain) : plain;
}

std::string SqliteGallery::unseal(const std::string& sealed) const {
  if (!encrypted()) return sealed;
  auto plain = detail::unseal(*options_.key, sealed);
  if (!plain) throw Error(ErrorCode::kStorage, "data sealed for " + path_.string() + " does not open with its key");
  return std::move(*plain);
}

GalleryCheck SqliteGallery::check() const {
  std::lock_guard lock(mu_);
  GalleryCheck c;
  const auto attempt = [&](const char* what, const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      c.problems.push_back(std::string(what) + ": " + e.what());
    }
  };
  attempt("structure", [&] {
    Stmt s(db_, "PRAGMA integrity_check(100)", "integrity check");
    while (s.step())
      if (s.text(0) != "ok") c.problems.push_back("structure: " + s.text(0));
  });
  if (format_ < 2) c.problems.push_back("format " + std::to_string(format_) + ": rows carry no checksum (open it writable once to upgrade)");
  attempt("people", [&] {
    Stmt s(db_, ("SELECT " + person_columns() + " FROM people p ORDER BY p.id").c_str(), "check people");
    while (s.step()) {
      ++c.people;
      try {
        read_person(s);
      } catch (const Error&) {
        c.problems.push_back("person id " + std::to_string(s.i64(0)) + " ('" + s.text(1) + "'): fails its checksum");
      }
    }
  });
  attempt("templates", [&] {
    Stmt s(db_, ("SELECT " + template_columns() + ", (SELECT count(*) FROM people p WHERE p.id=person_id) FROM templates ORDER BY id").c_str(),
           "check templates");
    while (s.step()) {
      ++c.templates;
      const std::string who = "template " + std::to_string(s.i64(0)) + " of person " + name_for_message(s.i64(1));
      if (s.i64(12) == 0) c.problems.push_back(who + ": belongs to no person");
      try {
        const Template t = read_template(s);
        double norm = 0;
        for (float v : t.embedding) norm += double(v) * v;
        if (!std::isfinite(norm) || std::abs(std::sqrt(norm) - 1.0) > 1e-3)
          c.problems.push_back(who + ": embedding has length " + std::to_string(std::sqrt(norm)) + ", not 1");
      } catch (const Error& e) {
        const std::string m = e.what();
        const auto at = m.find(": template ");
        c.problems.push_back(at == std::string::npos ? who + ": " + m : m.substr(at + 2));
      }
    }
  });
  return c;
}

void SqliteGallery::rekey(const std::optional<GalleryKey>& new_key) {
  require_writable();
  if (format_ < 2) throw Error(ErrorCode::kStorage, path_.string() + " could not be upgraded to format 2");
  const std::string where = "rekey " + path_.string();
  std::lock_guard lock(mu_);
  // Freed pages are zeroed, and the file is rebuilt afterwards: no page keeps a template in its old form.
  exec(db_, "PRAGMA secure_delete=ON", where);
  {
    Transaction tx(db_, true);
    std::vector<std::tuple<std::int64_t, std::string, std::string>> rows;  // id, new blob, new checksum
    {
      Stmt s(db_, ("SELECT " + template_columns() + " FROM templates ORDER BY id").c_str(), where);
      while (s.step()) {
        Template t = read_template(s);  // verifies checksum and (old) key
        const std::string blob = stored_embedding(t.person_id, t.embedding, new_key);
        rows.emplace_back(t.id, blob, template_checksum(t.person_id, t, blob));
      }
    }
    Stmt up(db_, "UPDATE templates SET embedding=?, checksum=? WHERE id=?", where);
    for (const auto& [id, blob, sum] : rows) up.bind_blob(1, blob.data(), blob.size()).bind_blob(2, sum.data(), sum.size()).bind(3, id).run();
    exec(db_, "DELETE FROM meta WHERE key IN ('encryption', 'key_check')", where);
    if (new_key) {
      Stmt ins(db_, "INSERT INTO meta(key, value) VALUES (?, ?)", where);
      ins.bind(1, std::string("encryption")).bind(2, std::string(kCipher)).run();
      ins.bind(1, std::string("key_check")).bind(2, detail::to_hex(detail::seal(*new_key, key_check_text(uuid_)))).run();
    }
    tx.commit();
  }
  options_.key = new_key;
  encrypted_ = new_key.has_value();
  exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)", where);
  exec(db_, "VACUUM", where);
  exec(db_, "PRAGMA wal_checkpoint(TRUNCATE)", where);
}

}  // namespace

std::unique_ptr<Gallery> open_sqlite_gallery(const fs::path& path, const GalleryOptions& options) {
  return std::make_unique<SqliteGallery>(path, options);
}

}  // namespace facekit
