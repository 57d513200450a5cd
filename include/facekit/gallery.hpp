#pragma once
// The gallery: enrolled people and their face templates, persistent across restarts.
//
// A Gallery is a store of people (id, unique name, JSON metadata) and templates (one embedding each, with the
// embedder that made it, a quality, the SHA-256 of the source photo and a time). SQLite is the first store
// (one file, WAL journal), the default; PostgreSQL is the store several servers share (docs/deploy.md).
//
// Guarantees every store keeps:
//  - Every write (enrolment, rename, removal, import) is one transaction: it is stored whole or not at all,
//    also when the process is killed mid-write. A person never exists without templates.
//  - Every write bumps the gallery's revision. Indexes and classifiers built from the gallery are stamped with
//    the revision they saw, and changes_since() tells them what to add or drop to catch up.
//  - Template and person ids are never reused, so a stale index can tell old rows from new ones.
//  - Templates of different embedders (name and version) live side by side and are never compared: readers
//    always ask for one EmbedderId.
#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facekit/types.hpp"

namespace facekit {

/// Which model made an embedding. Two templates are comparable only when both fields are equal.
struct EmbedderId {
  std::string name;     ///< e.g. "dlib_resnet"
  std::string version;  ///< the model manifest's version, e.g. "1.7.15"
  std::string str() const { return name + "@" + version; }
  friend bool operator==(const EmbedderId&, const EmbedderId&) = default;
  friend auto operator<=>(const EmbedderId&, const EmbedderId&) = default;
};

struct Person {
  std::int64_t id = 0;
  std::string name;               ///< unique within a gallery (case-sensitive)
  std::string metadata = "{}";    ///< a JSON object, the caller's own
  std::int64_t created_at = 0;    ///< Unix seconds
  int templates = 0;              ///< templates stored for this person (all embedders)
};

/// A template to store.
struct NewTemplate {
  EmbedderId embedder;
  Embedding embedding;            ///< L2-normalised, embedder.dim floats
  float quality = 0;              ///< the face's quality score (quality.hpp), 0-1; before it, the detector's score
  std::string source_sha256;      ///< SHA-256 of the photo's bytes; "" when unknown (imported, synthetic)
  /// How it was made: "photo" (one photo, the pipeline's embedding), "photo+aug" (the mean over augmented
  /// copies of one photo), "aug" (one augmented copy), "imported", "synthetic".
  std::string kind = "photo";
};

/// A stored template.
struct Template : NewTemplate {
  std::int64_t id = 0;
  std::int64_t person_id = 0;
  std::int64_t created_at = 0;    ///< Unix seconds
  std::int64_t revision = 0;      ///< the gallery revision of the write that stored it
};

/// A person to store with their templates (at least one).
struct NewPerson {
  std::string name;
  std::string metadata = "{}";
  std::vector<NewTemplate> templates;
};

/// What add_people does with a name that is already enrolled.
enum class OnConflict {
  kFail,   ///< throw Error(kInvalidArgument) naming the person; nothing of the batch is written
  kMerge,  ///< add the new templates to the existing person (metadata keys are merged, new values win)
};

/// The outcome of writing one NewPerson.
struct AddResult {
  Person person;          ///< as stored after the write
  bool created = false;   ///< false: merged into an existing person
  int added = 0;          ///< templates written
  int duplicates = 0;     ///< templates skipped: this person already had one from the same photo and embedder
};

struct GalleryStats {
  std::string location;               ///< file path or connection string
  int format_version = 0;
  bool encrypted = false;             ///< templates encrypted at rest
  std::int64_t revision = 0;
  std::int64_t people = 0;
  std::int64_t templates = 0;
  std::map<EmbedderId, std::int64_t> templates_by_embedder;
  std::map<EmbedderId, std::int64_t> people_by_embedder;  ///< people with at least one template of it
  std::uint64_t bytes = 0;            ///< storage used (file plus journal), when known
};

/// Templates stored and removed after some revision, for one embedder: what an index must apply to catch up.
struct GalleryChanges {
  std::int64_t from_revision = 0, to_revision = 0;
  std::vector<Template> added;
  /// (template id, person id) of templates removed, including those added and removed within the span.
  std::vector<std::pair<std::int64_t, std::int64_t>> removed;
  /// People added or renamed in the span, with their names now, when the store can tell (`names_complete`):
  /// a reader keeping names then needs no full list of people per change. A store that cannot tell (SQLite)
  /// leaves it false, and readers read every name again.
  std::vector<std::pair<std::int64_t, std::string>> named;
  bool names_complete = false;
};

/// A 256-bit key for templates encrypted at rest (libsodium secretbox: XSalsa20-Poly1305). Wiped from memory
/// when destroyed. A key file holds the key as 64 hexadecimal digits and must be readable by its owner only.
class GalleryKey {
 public:
  static GalleryKey generate();
  /// Throws Error(kInvalidArgument) unless `hex` is 64 hexadecimal digits (surrounding white space ignored).
  static GalleryKey from_hex(const std::string& hex, const std::string& what = "the key");
  /// Throws Error(kNotFound) for a missing file, Error(kInvalidArgument) for a file that group or others may
  /// read or write (mode must be 0600 or 0400) or that does not hold a key.
  static GalleryKey from_file(const std::filesystem::path& file);
  /// Writes a new key file with mode 0600; refuses (Error(kInvalidArgument)) to replace an existing file.
  void write_file(const std::filesystem::path& file) const;
  const std::array<unsigned char, 32>& bytes() const { return bytes_; }
  ~GalleryKey();
  GalleryKey(const GalleryKey&) = default;
  GalleryKey& operator=(const GalleryKey&) = default;

 private:
  GalleryKey() = default;
  std::array<unsigned char, 32> bytes_{};
};

/// The key given by the environment: the file named by $FACEKIT_GALLERY_KEY_FILE, else the hexadecimal key in
/// $FACEKIT_GALLERY_KEY, else none.
std::optional<GalleryKey> gallery_key_from_environment();

/// What Gallery::remove_template did.
struct TemplateRemoval {
  std::int64_t template_id = 0;
  Person person;                ///< whose it was, as before the removal
  bool person_removed = false;  ///< it was their last template, so they were removed too
};

/// What `gallery check` found: every damaged row, named.
struct GalleryCheck {
  std::int64_t people = 0, templates = 0;  ///< rows read
  std::vector<std::string> problems;        ///< one line per damaged row or structure (empty: whole)
  bool ok() const { return problems.empty(); }
};

/// Checks a person's name before it is stored: valid UTF-8, not blank, no leading or trailing white space, no
/// control characters, not all digits (`people remove 1` must mean one person), at most 1000 bytes. Throws
/// Error(kInvalidArgument) saying what is wrong.
void check_person_name(const std::string& name);
/// Checks metadata: a JSON object nested at most 64 deep. Throws Error(kInvalidArgument).
void check_metadata(const std::string& metadata_json);

/// Thread safety: every method may be called from several threads at once (calls are serialised on the
/// store's connection). Several processes may open the same gallery; a writer waits for another's
/// transaction (up to GalleryOptions::busy_timeout_ms) and readers never block writers.
class Gallery {
 public:
  virtual ~Gallery() = default;

  /// Stores all of `people` in ONE transaction. Throws Error(kInvalidArgument) for an empty name, a person
  /// without templates, an embedding of the wrong length or not finite, or a name conflict under kFail; in
  /// every failure case nothing is written.
  virtual std::vector<AddResult> add_people(const std::vector<NewPerson>& people,
                                            OnConflict on_conflict = OnConflict::kFail) = 0;
  /// One person, one transaction (see add_people).
  AddResult add_person(const NewPerson& person, OnConflict on_conflict = OnConflict::kFail) {
    return add_people({person}, on_conflict).at(0);
  }

  /// Throws Error(kNotFound) when there is no such person.
  virtual Person person(std::int64_t id) const = 0;
  virtual std::optional<Person> find_person(const std::string& name) const = 0;
  /// All people, by id.
  virtual std::vector<Person> people() const = 0;
  /// A person's templates, by id (embeddings included). Throws Error(kNotFound).
  virtual std::vector<Template> templates_of(std::int64_t person_id) const = 0;
  /// One template by id. Throws Error(kNotFound).
  virtual Template template_by_id(std::int64_t template_id) const = 0;

  /// Throws Error(kNotFound) for an unknown id, Error(kInvalidArgument) when the name is taken or empty.
  virtual void rename_person(std::int64_t id, const std::string& new_name) = 0;
  /// Replaces the metadata (a JSON object). Throws Error(kNotFound / kInvalidArgument).
  virtual void set_metadata(std::int64_t id, const std::string& metadata_json) = 0;
  /// Removes the person and all their templates in one transaction. Throws Error(kNotFound).
  virtual void remove_person(std::int64_t id) = 0;
  /// Removes one template (one transaction). A person is never left without templates: removing their last
  /// one removes them too (person_removed). Throws Error(kNotFound) for an unknown template id.
  virtual TemplateRemoval remove_template(std::int64_t template_id) = 0;

  /// Calls `fn` for every template of `embedder` in id order, streaming (a million templates need not fit in
  /// memory twice). The view is one consistent snapshot; `revision_out` receives the revision it reflects.
  virtual void for_each_template(const EmbedderId& embedder, const std::function<void(const Template&)>& fn,
                                 std::int64_t* revision_out = nullptr) const = 0;
  /// What changed for `embedder` after `revision`, as one consistent snapshot.
  virtual GalleryChanges changes_since(const EmbedderId& embedder, std::int64_t revision) const = 0;

  virtual std::int64_t revision() const = 0;
  /// A random id given to the gallery when it was created: caches built from it carry it, so a cache is never
  /// applied to another gallery that happens to reuse the path.
  virtual std::string uuid() const = 0;
  virtual GalleryStats stats() const = 0;
  /// Where it lives: a file path for SQLite, the connection URL without its password for PostgreSQL.
  virtual std::string location() const = 0;
  /// Where indexes and classifiers built from this gallery are cached on this machine: <file>.cache beside an
  /// SQLite gallery; for a database, a folder named by the gallery's uuid under $XDG_CACHE_HOME/facekit (else
  /// ~/.cache/facekit), never derived from the connection URL.
  virtual std::filesystem::path cache_dir() const;

  /// An index built from this gallery, kept in the store itself so that a server starting on a new machine
  /// loads it instead of building it (minutes at a million templates), then applies the changes since.
  /// `name` says which index (embedder, aggregation); the bytes are what the local index cache file holds.
  /// A file gallery keeps none (its cache is beside it): nullopt, and put_shared_index does nothing. Writing
  /// one is not a change of the gallery (no revision).
  virtual std::optional<std::string> shared_index(const std::string& name) const;
  virtual void put_shared_index(const std::string& name, const std::string& bytes) const;

  /// Waits up to `timeout` for another writer to change the gallery. true: it may have changed (a
  /// notification came, or the wait could not listen and the caller should look); false: the time ran out.
  /// A store that cannot be told of changes (SQLite) sleeps and returns false, and its readers poll
  /// revision(). Missing a wake-up costs latency, never correctness: revision() and changes_since() are the
  /// truth. May be called from one thread while others use the gallery.
  virtual bool wait_for_change(std::chrono::milliseconds timeout) const;

  /// Whether templates are encrypted at rest.
  virtual bool encrypted() const = 0;
  /// Seals data derived from templates (index and classifier caches) with the gallery's key; unchanged when the
  /// gallery is not encrypted. unseal() throws Error(kStorage) for data that was not sealed with this key.
  virtual std::string seal(const std::string& plain) const = 0;
  virtual std::string unseal(const std::string& sealed) const = 0;
  /// Reads every row and checks it (SQLite's own structure check, each row's checksum and, when encrypted,
  /// each template's authentication); reports every damaged row instead of stopping at the first.
  virtual GalleryCheck check() const = 0;
  /// Re-encrypts every template with `new_key` (encrypting a plain gallery), or decrypts them all when it is
  /// empty, in one transaction; then rewrites the file so no page keeps the old form.
  virtual void rekey(const std::optional<GalleryKey>& new_key) = 0;
};

struct GalleryOptions {
  /// Create the gallery when it does not exist (false: Error(kNotFound)).
  bool create = true;
  /// Open without write access (writes throw Error(kInvalidArgument)).
  bool read_only = false;
  /// true: every committed write survives power loss (SQLite synchronous=FULL: an fsync per transaction,
  /// a few milliseconds). false: it survives the process being killed but the last commits may be lost if
  /// the machine loses power (synchronous=NORMAL), for bulk loads.
  bool durable = true;
  int busy_timeout_ms = 10000;  ///< how long a write waits for another process's transaction
  /// The key of an encrypted gallery (a new gallery is created encrypted with it). An encrypted gallery opened
  /// without it, with another key, or a plain gallery opened with one, is Error(kStorage): nothing is read or
  /// written.
  std::optional<GalleryKey> key;
  /// With a key given: open a plain gallery too (the key is then unused) instead of refusing it; for
  /// `gallery rekey`, which encrypts a plain gallery.
  bool key_optional = false;
};

/// The gallery format this build writes; older formats are upgraded on open, newer ones refused.
/// 1: the first. 2: a checksum on every person and template row; optional encryption of templates.
inline constexpr int kGalleryFormatVersion = 2;

/// Opens (or creates) a gallery. `path` is an SQLite file, or a PostgreSQL database given as a libpq URL
/// ("postgresql://user@host:port/db?sslmode=require"; a password is best kept in ~/.pgpass or $PGPASSWORD rather
/// than the URL, which location() shows).
///
/// SQLite: throws Error(kNotFound) when it is absent and !options.create, Error(kStorage) when the file is not
/// a facekit gallery, is corrupt, empty (0 bytes), locked, was written by a newer facekit, or is encrypted and
/// the key is missing or wrong. A gallery on a read-only file, folder or file system opens for reading; its
/// writes throw Error(kStorage) saying so.
///
/// PostgreSQL: a database without facekit's tables (prefixed facekit_) gets them when options.create is set,
/// else Error(kNotFound); Error(kStorage) when the server cannot be reached (libpq's reason) or the database
/// holds a gallery of a newer format. Encryption at rest is for SQLite galleries: a key given for a database is
/// Error(kInvalidArgument) (use the database's own encryption and TLS).
std::unique_ptr<Gallery> open_gallery(const std::filesystem::path& path, const GalleryOptions& options = {});

/// Whether `location` names a PostgreSQL database ("postgresql://..." or "postgres://...") rather than a file.
bool is_database_location(const std::string& location);
/// The location as shown in messages, /status and logs: a database URL without its password (user:PASSWORD@
/// and password=...); a file path unchanged.
std::string redact_location(const std::string& location);

/// What copy_gallery did.
struct GalleryCopy {
  std::int64_t people = 0, templates = 0;
};
/// Copies every person and template of `from` into `to` (which must hold none of those names), in one
/// transaction of `to`: whole or nothing. Template kinds, qualities, source hashes and embedder ids are kept;
/// ids and revisions are the destination's own. `progress` (may be empty) hears people copied so far.
GalleryCopy copy_gallery(const Gallery& from, Gallery& to,
                         const std::function<void(std::int64_t people, std::int64_t total)>& progress = {});

/// The per-user default: $FACEKIT_GALLERY, else $XDG_DATA_HOME/facekit/gallery.db, else
/// ~/.local/share/facekit/gallery.db.
std::filesystem::path default_gallery_path();

/// Export format: JSON Lines, a header line (format, version, number of people and templates) then one line per
/// person with their templates (embeddings as base64 of little-endian float32, or sealed with `key` when one is
/// given). Writes to a temporary file and renames it, so `out` is whole or absent. Returns the number of people
/// written.
std::int64_t export_gallery(const Gallery& gallery, const std::filesystem::path& out,
                            const std::optional<GalleryKey>& key = std::nullopt);
/// Reads an export and adds every person in one transaction (all or nothing). Throws Error(kNotFound) for a
/// missing file, Error(kInvalidArgument) naming the line for anything malformed: JSON nested too deep, an
/// embedding that is not unit length (1e30, all zeros), fewer or more people than the header says, sealed
/// embeddings without their key.
std::vector<AddResult> import_gallery(Gallery& gallery, const std::filesystem::path& in,
                                      OnConflict on_conflict = OnConflict::kFail,
                                      const std::optional<GalleryKey>& key = std::nullopt);

/// One person line of an export, parsed and checked (the unit import_gallery reads and the fuzzer drives).
/// Throws Error(kInvalidArgument) for anything malformed, std::invalid_argument never escapes.
NewPerson parse_export_person(const std::string& line, const std::optional<GalleryKey>& key = std::nullopt);

}  // namespace facekit
