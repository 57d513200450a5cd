#pragma once
// The server's own state, beside the gallery in one SQLite file: API keys (hashes only), subjects declared
// before their first face, and face thumbnails of examples. The gallery holds what recognition needs; this
// file holds what only the service needs, so that the library's gallery keeps its invariants (a person always
// has templates).
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace facekit::server {

/// Scopes a key may hold; kAdmin allows everything.
enum Scope : unsigned { kRead = 1, kRecognize = 2, kEnroll = 4, kAdmin = 8 };
/// "admin,enroll,recognize,read" <-> bits. Throws Error(kInvalidArgument) for an unknown scope or none.
unsigned parse_scopes(const std::string& csv);
std::string scopes_to_string(unsigned scopes);

struct ApiKey {
  std::int64_t id = 0;
  std::string name;
  std::string prefix;   ///< the key's first characters, shown in lists (not secret enough to use)
  unsigned scopes = 0;
  double rate = 0;      ///< requests per second; 0: the server's default
  std::int64_t created_at = 0;
  std::optional<std::int64_t> revoked_at;
};

class StateStore {
 public:
  /// Opens (creating when absent, mode 0600) the state file.
  explicit StateStore(const std::filesystem::path& file);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  const std::filesystem::path& path() const { return path_; }

  // ---- keys ----
  /// A new key; returns its secret text, which is never stored (only its BLAKE2b hash). Names are unique
  /// among keys that are not revoked.
  std::string create_key(const std::string& name, unsigned scopes, double rate = 0);
  std::vector<ApiKey> keys() const;
  /// By name or id; throws Error(kNotFound). Revoking twice is refused (kInvalidArgument).
  ApiKey revoke_key(const std::string& ref);
  /// The key this secret belongs to, unless unknown or revoked.
  std::optional<ApiKey> authenticate(const std::string& secret) const;
  bool has_live_keys() const;

  // ---- subjects declared without faces ----
  /// false when it was already declared.
  bool declare_subject(const std::string& name);
  bool forget_subject(const std::string& name);
  std::vector<std::string> declared_subjects() const;
  bool subject_declared(const std::string& name) const;

  // ---- thumbnails ----
  void put_thumbnail(std::int64_t template_id, const std::string& jpeg);
  std::optional<std::string> thumbnail(std::int64_t template_id) const;
  void drop_thumbnail(std::int64_t template_id);

 private:
  void exec(const char* sql) const;
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mu_;
};

}  // namespace facekit::server
