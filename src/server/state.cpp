#include "server/state.hpp"

#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <fcntl.h>
#include <unistd.h>

#include "facekit/error.hpp"

namespace facekit::server {

namespace {

const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS keys(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  prefix TEXT NOT NULL,
  hash BLOB NOT NULL,
  scopes INTEGER NOT NULL,
  rate REAL NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER);
CREATE INDEX IF NOT EXISTS keys_prefix ON keys(prefix);
CREATE TABLE IF NOT EXISTS subjects(name TEXT PRIMARY KEY, created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thumbnails(template_id INTEGER PRIMARY KEY, jpeg BLOB NOT NULL);
)sql";

constexpr size_t kPrefixChars = 11;  // "fk_" and 8 hexadecimal digits

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw Error(ErrorCode::kStorage, "server state: " + what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

/// A prepared statement, finalised on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK) fail(db, "prepare");
  }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& blob(int i, const std::string& v) {
    sqlite3_bind_blob(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "step");
  }
  std::int64_t i64(int c) const { return sqlite3_column_int64(st_, c); }
  double f64(int c) const { return sqlite3_column_double(st_, c); }
  bool null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) const {
    const void* p = sqlite3_column_blob(st_, c);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(st_, c)) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

std::string hash_key(const std::string& secret) {
  std::string h(crypto_generichash_BYTES, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(h.data()), h.size(),
                     reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), nullptr, 0);
  return h;
}

ApiKey read_key(const Stmt& s) {  // columns: id, name, prefix, scopes, rate, created_at, revoked_at
  ApiKey k;
  k.id = s.i64(0);
  k.name = s.text(1);
  k.prefix = s.text(2);
  k.scopes = static_cast<unsigned>(s.i64(3));
  k.rate = s.f64(4);
  k.created_at = s.i64(5);
  if (!s.null(6)) k.revoked_at = s.i64(6);
  return k;
}

constexpr const char* kKeyColumns = "id, name, prefix, scopes, rate, created_at, revoked_at";

}  // namespace

unsigned parse_scopes(const std::string& csv) {
  unsigned out = 0;
  size_t at = 0;
  while (at <= csv.size()) {
    const size_t end = std::min(csv.find(',', at), csv.size());
    std::string s = csv.substr(at, end - at);
    while (!s.empty() && s.front() == ' ') s.erase(s.begin());
    while (!s.empty() && s.back() == ' ') s.pop_back();
    if (s == "read") out |= kRead;
    else if (s == "recognize") out |= kRecognize;
    else if (s == "enroll") out |= kEnroll;
    else if (s == "admin") out |= kAdmin;
    else if (!s.empty())
      throw Error(ErrorCode::kInvalidArgument, "unknown scope '" + s + "' (known: admin, enroll, recognize, read)");
    at = end + 1;
  }
  if (!out) throw Error(ErrorCode::kInvalidArgument, "a key needs at least one scope (admin, enroll, recognize, read)");
  return out;
}

std::string scopes_to_string(unsigned s) {
  std::string out;
  for (auto [bit, name] : {std::pair{kAdmin, "admin"}, {kEnroll, "enroll"}, {kRecognize, "recognize"}, {kRead, "read"}})
    if (s & bit) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

StateStore::StateStore(const std::filesystem::path& file) : path_(file) {
  if (sodium_init() < 0) throw Error(ErrorCode::kInternal, "libsodium failed to initialise");
  if (!std::filesystem::exists(file)) {
    // Created 0600 before SQLite opens it: it holds key hashes and face thumbnails.
    const int fd = ::open(file.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST)
      throw Error(ErrorCode::kStorage, "cannot create the server state file " + file.string() + ": " + strerror(errno));
    if (fd >= 0) ::close(fd);
  }
  if (sqlite3_open_v2(file.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error(ErrorCode::kStorage, "cannot open the server state file " + file.string() + ": " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec(kSchema);
}

StateStore::~StateStore() { sqlite3_close(db_); }

void StateStore::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err ? err : "?";
    sqlite3_free(err);
    throw Error(ErrorCode::kStorage, "server state " + path_.string() + ": " + why);
  }
}

std::string StateStore::create_key(const std::string& name, unsigned scopes, double rate) {
  if (name.empty() || name.size() > 200)
    throw Error(ErrorCode::kInvalidArgument, "a key name must have 1 to 200 characters");
  if (!(rate >= 0) || rate > 1e6) throw Error(ErrorCode::kInvalidArgument, "a key's rate must lie in [0, 1e6]");
  unsigned char raw[24];
  randombytes_buf(raw, sizeof raw);
  char hex[2 * sizeof raw + 1];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  const std::string secret = "fk_" + std::string(hex);
  std::lock_guard lock(mu_);
  {
    Stmt s(db_, "SELECT 1 FROM keys WHERE name=? AND revoked_at IS NULL");
    s.bind(1, name);
    if (s.step()) throw Error(ErrorCode::kInvalidArgument, "a key named '" + name + "' exists; revoke it first");
  }
  Stmt(db_, "INSERT INTO keys(name, prefix, hash, scopes, rate, created_at) VALUES(?,?,?,?,?,?)")
      .bind(1, name)
      .bind(2, secret.substr(0, kPrefixChars))
      .blob(3, hash_key(secret))
      .bind(4, std::int64_t(scopes))
      .bind(5, rate)
      .bind(6, now_s())
      .step();
  return secret;
}

std::vector<ApiKey> StateStore::keys() const {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kKeyColumns + " FROM keys ORDER BY id").c_str());
  std::vector<ApiKey> out;
  while (s.step()) out.push_back(read_key(s));
  return out;
}

ApiKey StateStore::revoke_key(const std::string& ref) {
  std::lock_guard lock(mu_);
  std::optional<ApiKey> k;
  {
    Stmt s(db_, (std::string("SELECT ") + kKeyColumns +
                 " FROM keys WHERE (name=? AND revoked_at IS NULL) OR CAST(id AS TEXT)=? ORDER BY id DESC LIMIT 1")
                    .c_str());
    s.bind(1, ref).bind(2, ref);
    if (s.step()) k = read_key(s);
  }
  if (!k) throw Error(ErrorCode::kNotFound, "no key '" + ref + "' (facekit keys list shows them)");
  if (k->revoked_at) throw Error(ErrorCode::kInvalidArgument, "key '" + ref + "' is already revoked");
  k->revoked_at = now_s();
  Stmt(db_, "UPDATE keys SET revoked_at=? WHERE id=?").bind(1, *k->revoked_at).bind(2, k->id).step();
  return *k;
}

std::optional<ApiKey> StateStore::authenticate(const std::string& secret) const {
  if (secret.size() < kPrefixChars || secret.size() > 200) return std::nullopt;
  const std::string h = hash_key(secret);
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kKeyColumns + ", hash FROM keys WHERE prefix=? AND revoked_at IS NULL").c_str());
  s.bind(1, secret.substr(0, kPrefixChars));
  while (s.step()) {
    const std::string stored = s.text(7);
    if (stored.size() == h.size() && sodium_memcmp(stored.data(), h.data(), h.size()) == 0) return read_key(s);
  }
  return std::nullopt;
}

bool StateStore::has_live_keys() const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT 1 FROM keys WHERE revoked_at IS NULL LIMIT 1");
  return s.step();
}

bool StateStore::declare_subject(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT OR IGNORE INTO subjects(name, created_at) VALUES(?,?)");
  s.bind(1, name).bind(2, now_s()).step();
  return sqlite3_changes(db_) > 0;
}

bool StateStore::forget_subject(const std::string& name) {
  std::lock_guard lock(mu_);
  Stmt(db_, "DELETE FROM subjects WHERE name=?").bind(1, name).step();
  return sqlite3_changes(db_) > 0;
}

std::vector<std::string> StateStore::declared_subjects() const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT name FROM subjects ORDER BY name");
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

bool StateStore::subject_declared(const std::string& name) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT 1 FROM subjects WHERE name=?");
  s.bind(1, name);
  return s.step();
}

void StateStore::put_thumbnail(std::int64_t id, const std::string& jpeg) {
  std::lock_guard lock(mu_);
  Stmt(db_, "INSERT OR REPLACE INTO thumbnails(template_id, jpeg) VALUES(?,?)").bind(1, id).blob(2, jpeg).step();
}

std::optional<std::string> StateStore::thumbnail(std::int64_t id) const {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT jpeg FROM thumbnails WHERE template_id=?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void StateStore::drop_thumbnail(std::int64_t id) {
  std::lock_guard lock(mu_);
  Stmt(db_, "DELETE FROM thumbnails WHERE template_id=?").bind(1, id).step();
}

}  // namespace facekit::server
