// Gallery hardening (issue 15): nesting limits, names, damaged files and rows, format 1 galleries, read-only
// and full disks, checked imports, and templates encrypted at rest.
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "../error_code.hpp"
#include "../test_dir.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "facekit/identify.hpp"
#include "unit_vector.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using fk_test::error_code_of;

namespace {

const fk::EmbedderId kEmb{"test_embedder", "1"};

fk::Embedding unit_vector(std::mt19937& rng) { return fk_test::unit_vector(rng, 16); }

fk::NewPerson person(const std::string& name, int templates, std::mt19937& rng) {
  fk::NewPerson p;
  p.name = name;
  for (int i = 0; i < templates; ++i) p.templates.push_back({kEmb, unit_vector(rng), 0.9f, "", "synthetic"});
  return p;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Whether the raw bytes of `file` (and its -wal) contain the float32 bytes of `e`.
bool file_holds(const fs::path& file, const fk::Embedding& e) {
  const std::string needle(reinterpret_cast<const char*>(e.data()), e.size() * sizeof(float));
  for (const char* suffix : {"", "-wal"}) {
    if (read_all(file.string() + suffix).find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

// The test embedder has no manifest to take a default threshold from.
fk::IdentifyOptions given_threshold() {
  fk::IdentifyOptions o;
  o.threshold = 0.5f;
  return o;
}

fs::path key_file(const fs::path& dir, const std::string& name) {
  const fs::path p = dir / name;
  fk::GalleryKey::generate().write_file(p);
  return p;
}

class Hardening : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_harden");
    path_ = dir_ / "g.db";
  }
  void TearDown() override {
    tmpfs_.unmount();
    fs::remove_all(dir_);
  }
  fs::path dir_, path_;
  fk_test::TmpfsMount tmpfs_;
  std::mt19937 rng_{15};
};

}  // namespace

// ---- 1. nesting ----

TEST_F(Hardening, DeeplyNestedMetadataIsRefusedNotACrash) {
  auto g = fk::open_gallery(path_);
  auto p = person("Deep", 1, rng_);
  p.metadata = "{\"a\":" + std::string(60000, '[') + std::string(60000, ']') + "}";
  const std::string m = message_of([&] { g->add_person(p); });
  EXPECT_NE(m.find("deeper than 64"), std::string::npos) << m;
  EXPECT_EQ(error_code_of([&] { g->add_person(p); }), fk::ErrorCode::kInvalidArgument);
  p.metadata = "{\"a\":" + std::string(60, '[') + std::string(60, ']') + "}";  // deep, but within the limit
  g->add_person(p);
  EXPECT_NO_THROW(fk::check_metadata("{\"x\": \"" + std::string(1000, '[') + "\"}"));  // inside a string: not nesting
}

TEST_F(Hardening, DeeplyNestedImportLineIsRefusedNotACrash) {
  auto g = fk::open_gallery(path_);
  g->add_person(person("Ann", 1, rng_));
  fk::export_gallery(*g, dir_ / "x.jsonl");
  std::string text = read_all(dir_ / "x.jsonl");
  text = text.substr(0, text.find('\n') + 1) + std::string(200000, '[') + std::string(200000, ']') + "\n";
  std::ofstream(dir_ / "deep.jsonl") << text;
  auto h = fk::open_gallery(dir_ / "h.db");
  EXPECT_EQ(error_code_of([&] { fk::import_gallery(*h, dir_ / "deep.jsonl"); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(h->people().size(), 0u);
}

// ---- 7, 8. names ----

TEST_F(Hardening, NamesThatCannotBeShownOrReadAsIdsAreRefused) {
  auto g = fk::open_gallery(path_);
  for (const std::string bad : {std::string("Bad\xff\xfe name"), std::string("   "), std::string("tab\there"),
                                std::string("new\nline"), std::string("1"), std::string("0042"), std::string(" Ada"),
                                std::string("bidi\xe2\x80\xaeoverride"), std::string("\xc0\xaf"), std::string("")}) {
    EXPECT_EQ(error_code_of([&] { g->add_person(person(bad, 1, rng_)); }), fk::ErrorCode::kInvalidArgument) << bad;
  }
  for (const std::string good : {"Zoë Ångström", "李小龙", "R2-D2", "Agent 007"}) g->add_person(person(good, 1, rng_));
  EXPECT_EQ(g->people().size(), 4u);
  const auto id = g->find_person("R2-D2")->id;
  EXPECT_EQ(error_code_of([&] { g->rename_person(id, "7"); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { g->rename_person(id, "a\x01"); }), fk::ErrorCode::kInvalidArgument);
}

// ---- 3. damaged rows ----

TEST_F(Hardening, ADamagedTemplateIsAnErrorNamingThePersonAndCheckFindsEveryOne) {
  std::vector<fk::Embedding> stored;
  {
    auto g = fk::open_gallery(path_);
    for (int i = 0; i < 5; ++i) {
      auto p = person("P" + std::to_string(i), 2, rng_);
      stored.push_back(p.templates[0].embedding);
      g->add_person(p);
    }
  }
  // Change two floats of two people's first templates in the file itself, as a damaged disk would.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  std::string bytes = read_all(path_);
  for (int who : {1, 3}) {
    const std::string needle(reinterpret_cast<const char*>(stored[who].data()), stored[who].size() * sizeof(float));
    const auto at = bytes.find(needle);
    ASSERT_NE(at, std::string::npos);
    const float huge = 1e20f;
    std::memcpy(bytes.data() + at + 4, &huge, 4);
  }
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;

  auto g = fk::open_gallery(path_);
  const auto p1 = g->find_person("P1");
  ASSERT_TRUE(p1);
  const std::string m = message_of([&] { g->templates_of(p1->id); });
  EXPECT_NE(m.find("'P1'"), std::string::npos) << m;
  EXPECT_NE(m.find("checksum"), std::string::npos) << m;
  EXPECT_EQ(error_code_of([&] { g->templates_of(p1->id); }), fk::ErrorCode::kStorage);
  EXPECT_EQ(g->templates_of(g->find_person("P2")->id).size(), 2u);  // the others read as they were
  EXPECT_EQ(error_code_of([&] { fk::export_gallery(*g, dir_ / "x.jsonl"); }), fk::ErrorCode::kStorage);
  EXPECT_FALSE(fs::exists(dir_ / "x.jsonl"));
  EXPECT_EQ(error_code_of([&] { fk::Identifier id(*g, kEmb); }), fk::ErrorCode::kStorage);
  const fk::GalleryCheck c = g->check();
  ASSERT_EQ(c.problems.size(), 2u);
  EXPECT_NE(c.problems[0].find("'P1'"), std::string::npos) << c.problems[0];
  EXPECT_NE(c.problems[1].find("'P3'"), std::string::npos) << c.problems[1];
  EXPECT_EQ(c.templates, 10);
}

TEST_F(Hardening, RandomBytesInEveryPageNeverGoUnnoticed) {
  {
    auto g = fk::open_gallery(path_);
    for (int i = 0; i < 40; ++i) g->add_person(person("P" + std::to_string(i), 3, rng_));
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  std::string bytes = read_all(path_);
  ASSERT_GT(bytes.size(), 3 * 4096u);
  std::uniform_int_distribution<int> byte(0, 255), offset(100, 4096 - 33);
  for (std::size_t page = 4096; page + 4096 <= bytes.size(); page += 4096) {  // page 1 is the file header
    const std::size_t at = page + static_cast<std::size_t>(offset(rng_));
    for (int i = 0; i < 32; ++i) bytes[at + i] = static_cast<char>(byte(rng_));
  }
  std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;
  // Either SQLite's own structure check or a row checksum must notice; reading everything must fail.
  bool noticed = false;
  try {
    auto g = fk::open_gallery(path_);
    noticed = !g->check().ok();
    for (const auto& p : g->people()) g->templates_of(p.id);
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kStorage) << e.what();
    noticed = true;
  }
  EXPECT_TRUE(noticed);
}

// ---- format 1 galleries still open ----

TEST_F(Hardening, AFormatOneGalleryIsUpgradedWithChecksumsAndReadsTheSame) {
  // A gallery as today's main writes it (format 1), built with raw SQL.
  const fk::Embedding e = unit_vector(rng_);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    const std::string sql = R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE people(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, metadata TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL);
CREATE TABLE templates(id INTEGER PRIMARY KEY AUTOINCREMENT, person_id INTEGER NOT NULL REFERENCES people(id), embedder TEXT NOT NULL,
  embedder_version TEXT NOT NULL, dim INTEGER NOT NULL, embedding BLOB NOT NULL, quality REAL NOT NULL, source_sha256 TEXT NOT NULL,
  kind TEXT NOT NULL, created_at INTEGER NOT NULL, revision INTEGER NOT NULL);
CREATE INDEX templates_person ON templates(person_id);
CREATE INDEX templates_embedder_revision ON templates(embedder, embedder_version, revision);
CREATE TABLE removed_templates(template_id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, embedder TEXT NOT NULL,
  embedder_version TEXT NOT NULL, revision INTEGER NOT NULL);
CREATE INDEX removed_embedder_revision ON removed_templates(embedder, embedder_version, revision);
INSERT INTO meta VALUES ('uuid', 'old-gallery'), ('revision', '1'), ('created_at', '1700000000');
INSERT INTO people(name, metadata, created_at) VALUES ('Old Timer', '{"since":1999}', 1700000000);
PRAGMA application_id=1179338572;
PRAGMA user_version=1;
)sql";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO templates(person_id, embedder, embedder_version, dim, embedding, quality, "
                           "source_sha256, kind, created_at, revision) VALUES (1, 'test_embedder', '1', 16, ?, 0.5, "
                           "'abc', 'photo', 1700000000, 1)", -1, &st, nullptr);
    sqlite3_bind_blob(st, 1, e.data(), static_cast<int>(e.size() * sizeof(float)), SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  {  // Read-only: read in its own format, not upgraded.
    fk::GalleryOptions ro;
    ro.read_only = true;
    auto g = fk::open_gallery(path_, ro);
    EXPECT_EQ(g->stats().format_version, 1);
    EXPECT_EQ(g->templates_of(1).at(0).embedding, e);
  }
  auto g = fk::open_gallery(path_);
  EXPECT_EQ(g->stats().format_version, 2);
  EXPECT_EQ(g->uuid(), "old-gallery");
  const auto p = g->person(1);
  EXPECT_EQ(p.name, "Old Timer");
  EXPECT_NE(p.metadata.find("1999"), std::string::npos);
  const auto t = g->templates_of(1);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].embedding, e);
  EXPECT_EQ(t[0].source_sha256, "abc");
  EXPECT_TRUE(g->check().ok()) << g->check().problems.at(0);
  g->add_person(person("New Comer", 1, rng_));
  EXPECT_EQ(g->people().size(), 2u);
}

// ---- 4. empty, read-only and full ----

TEST_F(Hardening, AGalleryCutToZeroBytesIsReportedNotStartedAfresh) {
  fk::open_gallery(path_)->add_person(person("Ann", 1, rng_));
  fs::resize_file(path_, 0);
  fs::remove(path_.string() + "-wal");
  const std::string m = message_of([&] { fk::open_gallery(path_); });
  EXPECT_NE(m.find("empty file (0 bytes)"), std::string::npos) << m;
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(path_); }), fk::ErrorCode::kStorage);
  EXPECT_EQ(fs::file_size(path_), 0u);  // nothing was written into it
}

TEST_F(Hardening, AGalleryOnAReadOnlyMountIsReadAndWritesSaySo) {
  const fs::path mnt = dir_ / "mnt";
  if (!tmpfs_.mount(mnt, "size=4m")) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  const fs::path g_path = mnt / "g.db";
  fk::open_gallery(g_path)->add_person(person("Ann", 2, rng_));
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr), 0);
  auto g = fk::open_gallery(g_path);
  ASSERT_EQ(g->people().size(), 1u);
  EXPECT_EQ(g->templates_of(g->people()[0].id).size(), 2u);
  const std::string m = message_of([&] { g->add_person(person("Bob", 1, rng_)); });
  EXPECT_NE(m.find("read-only file system"), std::string::npos) << m;
  EXPECT_EQ(error_code_of([&] { g->add_person(person("Bob", 1, rng_)); }), fk::ErrorCode::kStorage);
  EXPECT_EQ(error_code_of([&] { g->remove_person(1); }), fk::ErrorCode::kStorage);
}

TEST_F(Hardening, AFullDiskIsSaidToBeFullAndLosesNothing) {
  const fs::path mnt = dir_ / "mnt";
  if (!tmpfs_.mount(mnt, "size=1m")) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  const fs::path g_path = mnt / "g.db";
  fk::open_gallery(g_path)->add_person(person("Ann", 2, rng_));
  {  // fill the file system
    std::ofstream fill(mnt / "fill", std::ios::binary);
    const std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  const auto code = error_code_of([&] {
    auto g = fk::open_gallery(g_path);
    std::vector<fk::NewPerson> many;
    for (int i = 0; i < 200; ++i) many.push_back(person("P" + std::to_string(i), 4, rng_));
    g->add_people(many);
  });
  EXPECT_EQ(code, fk::ErrorCode::kStorage);
  const std::string m = message_of([&] {
    auto g = fk::open_gallery(g_path);
    std::vector<fk::NewPerson> many;
    for (int i = 0; i < 200; ++i) many.push_back(person("P" + std::to_string(i), 4, rng_));
    g->add_people(many);
  });
  EXPECT_NE(m.find("full"), std::string::npos) << m;
  EXPECT_EQ(m.find("not a facekit gallery"), std::string::npos) << m;
  fs::remove(mnt / "fill");
  auto g = fk::open_gallery(g_path);
  EXPECT_EQ(g->people().size(), 1u);
  EXPECT_TRUE(g->check().ok());
}

// ---- 5. imports ----

TEST_F(Hardening, ImportsOfTemplatesThatAreNotUnitLengthOrOfCutFilesAreRefusedWhole) {
  auto g = fk::open_gallery(path_);
  g->add_person(person("Ann", 1, rng_));
  g->add_person(person("Bob", 1, rng_));
  fk::export_gallery(*g, dir_ / "x.jsonl");
  const std::string text = read_all(dir_ / "x.jsonl");
  auto h = fk::open_gallery(dir_ / "h.db");
  // The last line missing: the header's count says so.
  const std::string cut = text.substr(0, text.rfind('\n', text.size() - 2) + 1);
  std::ofstream(dir_ / "cut.jsonl") << cut;
  const std::string m = message_of([&] { fk::import_gallery(*h, dir_ / "cut.jsonl"); });
  EXPECT_NE(m.find("says 2 people"), std::string::npos) << m;
  // Embeddings scaled to 1e30 and zeroed.
  for (const float scale : {1e30f, 0.f}) {
    fk::NewPerson p = person("Eve", 1, rng_);
    for (auto& v : p.templates[0].embedding) v *= scale;
    EXPECT_EQ(error_code_of([&] { g->add_person(p); }), fk::ErrorCode::kInvalidArgument) << scale;
  }
  // The same through an export file: rewrite one embedding's base64 with zeros.
  const std::string zeros(16 * 4, '\0');
  std::string b64;
  {
    static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < zeros.size(); i += 3) {
      const size_t left = zeros.size() - i;
      b64 += k[0], b64 += k[0], b64 += left > 1 ? k[0] : '=', b64 += left > 2 ? k[0] : '=';
    }
  }
  std::string zeroed = text;
  const auto at = zeroed.find("\"embedding\":\"") + 13;
  zeroed.replace(at, zeroed.find('"', at) - at, b64);
  std::ofstream(dir_ / "zero.jsonl") << zeroed;
  const std::string mz = message_of([&] { fk::import_gallery(*h, dir_ / "zero.jsonl"); });
  EXPECT_NE(mz.find("length 0"), std::string::npos) << mz;
  EXPECT_EQ(h->people().size(), 0u);
  EXPECT_EQ(fk::import_gallery(*h, dir_ / "x.jsonl").size(), 2u);
}

// ---- encryption at rest ----

TEST_F(Hardening, AnEncryptedGalleryRoundTripsAndGivesNothingWithoutItsKey) {
  const auto key = fk::GalleryKey::from_file(key_file(dir_, "k"));
  const auto other = fk::GalleryKey::from_file(key_file(dir_, "k2"));
  fk::GalleryOptions with;
  with.key = key;
  fk::NewPerson ann = person("Ann", 2, rng_);
  {
    auto g = fk::open_gallery(path_, with);
    EXPECT_TRUE(g->encrypted());
    g->add_person(ann);
    g->add_person(person("Bob", 1, rng_));
    fk::Identifier id(*g, kEmb, given_threshold());  // writes its (sealed) index cache
    EXPECT_EQ(id.identify(ann.templates[0].embedding).candidates.at(0).name, "Ann");
  }
  EXPECT_FALSE(file_holds(path_, ann.templates[0].embedding));
  for (const auto& e : fs::directory_iterator(path_.string() + ".cache")) {
    const std::string needle(reinterpret_cast<const char*>(ann.templates[0].embedding.data()), 16 * sizeof(float));
    EXPECT_EQ(read_all(e.path()).find(needle), std::string::npos) << e.path();
  }
  const std::string before = read_all(path_);
  const std::string m = message_of([&] { fk::open_gallery(path_); });
  EXPECT_NE(m.find("is encrypted"), std::string::npos) << m;
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(path_); }), fk::ErrorCode::kStorage);
  fk::GalleryOptions wrong;
  wrong.key = other;
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(path_, wrong); }), fk::ErrorCode::kStorage);
  EXPECT_EQ(read_all(path_), before);  // nothing was written by the failed opens

  auto g = fk::open_gallery(path_, with);
  EXPECT_EQ(g->templates_of(g->find_person("Ann")->id).at(1).embedding, ann.templates[1].embedding);
  fk::Identifier id(*g, kEmb, given_threshold());
  EXPECT_TRUE(id.last_refresh().index_from_cache);
  EXPECT_EQ(id.identify(ann.templates[1].embedding).candidates.at(0).name, "Ann");
  EXPECT_TRUE(g->check().ok());
  // A plain gallery opened with a key is refused too: the key suggests it should have been encrypted.
  fk::open_gallery(dir_ / "plain.db")->add_person(person("Cy", 1, rng_));
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(dir_ / "plain.db", with); }), fk::ErrorCode::kStorage);
}

TEST_F(Hardening, RekeyEncryptsReencryptsAndDecryptsLeavingNoOldForm) {
  fk::NewPerson ann = person("Ann", 3, rng_);
  fk::open_gallery(path_)->add_person(ann);
  const auto k1 = fk::GalleryKey::from_file(key_file(dir_, "k1"));
  const auto k2 = fk::GalleryKey::from_file(key_file(dir_, "k2"));
  {
    fk::GalleryOptions o;
    o.key = k1;
    o.key_optional = true;
    auto g = fk::open_gallery(path_, o);
    EXPECT_FALSE(g->encrypted());
    g->rekey(k1);
    EXPECT_TRUE(g->encrypted());
  }
  for (const auto& t : ann.templates) EXPECT_FALSE(file_holds(path_, t.embedding));
  {
    fk::GalleryOptions o;
    o.key = k1;
    auto g = fk::open_gallery(path_, o);
    g->rekey(k2);
  }
  fk::GalleryOptions o1, o2;
  o1.key = k1;
  o2.key = k2;
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(path_, o1); }), fk::ErrorCode::kStorage);
  auto g = fk::open_gallery(path_, o2);
  EXPECT_EQ(g->templates_of(1).at(2).embedding, ann.templates[2].embedding);
  g->rekey(std::nullopt);
  EXPECT_FALSE(g->encrypted());
  g.reset();
  EXPECT_EQ(fk::open_gallery(path_)->templates_of(1).at(0).embedding, ann.templates[0].embedding);
}

TEST_F(Hardening, KeyFilesMustBePrivateAndExportsCanBeSealed) {
  const fs::path k = key_file(dir_, "k");
  EXPECT_EQ(fs::status(k).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(error_code_of([&] { key_file(dir_, "k"); }), fk::ErrorCode::kInvalidArgument);  // never overwritten
  fs::permissions(k, fs::perms::group_read, fs::perm_options::add);
  const std::string m = message_of([&] { fk::GalleryKey::from_file(k); });
  EXPECT_NE(m.find("chmod 600"), std::string::npos) << m;
  fs::permissions(k, fs::perms::group_read, fs::perm_options::remove);
  const auto key = fk::GalleryKey::from_file(k);
  std::ofstream(dir_ / "bad.key") << "not a key\n";
  fs::permissions(dir_ / "bad.key", fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
  EXPECT_EQ(error_code_of([&] { fk::GalleryKey::from_file(dir_ / "bad.key"); }), fk::ErrorCode::kInvalidArgument);

  auto g = fk::open_gallery(path_);
  fk::NewPerson ann = person("Ann", 2, rng_);
  g->add_person(ann);
  fk::export_gallery(*g, dir_ / "sealed.jsonl", key);
  const std::string needle(reinterpret_cast<const char*>(ann.templates[0].embedding.data()), 16 * sizeof(float));
  auto h = fk::open_gallery(dir_ / "h.db");
  EXPECT_EQ(error_code_of([&] { fk::import_gallery(*h, dir_ / "sealed.jsonl"); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(fk::import_gallery(*h, dir_ / "sealed.jsonl", fk::OnConflict::kFail, key).size(), 1u);
  EXPECT_EQ(h->templates_of(1).at(0).embedding, ann.templates[0].embedding);
}
