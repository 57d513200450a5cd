// Gallery store (SQLite): persistence, atomic writes, bad input, revisions and change tracking, export/import.
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "../test_dir.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "../error_code.hpp"
#include "unit_vector.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

const fk::EmbedderId kEmb{"test_embedder", "1"};

fk::Embedding unit_vector(std::mt19937& rng) { return fk_test::unit_vector(rng, 8); }

fk::NewPerson person(const std::string& name, int templates, std::mt19937& rng, const std::string& sha_prefix = "") {
  fk::NewPerson p;
  p.name = name;
  for (int i = 0; i < templates; ++i) {
    fk::NewTemplate t;
    t.embedder = kEmb;
    t.embedding = unit_vector(rng);
    t.quality = 0.9f;
    t.source_sha256 = sha_prefix.empty() ? "" : sha_prefix + std::to_string(i);
    p.templates.push_back(t);
  }
  return p;
}

// Raw SQL on a gallery file, to set up states the API refuses to create.
void raw_sql(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(h);
}

using fk_test::error_code_of;

class GalleryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_gallery");
    path_ = dir_ / "g.db";
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_, path_;
  std::mt19937 rng_{42};
};

}  // namespace

TEST_F(GalleryTest, StoresPeopleAndTemplatesAcrossReopen) {
  fk::NewPerson alice = person("Alice", 3, rng_, "sha-a");
  alice.metadata = R"({"team":"red"})";
  std::int64_t id = 0;
  {
    auto g = fk::open_gallery(path_);
    const auto r = g->add_person(alice);
    EXPECT_TRUE(r.created);
    EXPECT_EQ(r.added, 3);
    EXPECT_EQ(r.person.templates, 3);
    id = r.person.id;
    EXPECT_EQ(g->revision(), 1);
  }
  auto g = fk::open_gallery(path_);
  const auto p = g->person(id);
  EXPECT_EQ(p.name, "Alice");
  EXPECT_NE(p.metadata.find("\"team\""), std::string::npos);
  EXPECT_EQ(g->find_person("Alice")->id, id);
  EXPECT_FALSE(g->find_person("alice").has_value());  // names are case-sensitive
  const auto t = g->templates_of(id);
  ASSERT_EQ(t.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(t[i].embedding, alice.templates[i].embedding);  // bit-exact float32 round trip
    EXPECT_EQ(t[i].embedder, kEmb);
    EXPECT_EQ(t[i].source_sha256, "sha-a" + std::to_string(i));
    EXPECT_FLOAT_EQ(t[i].quality, 0.9f);
    EXPECT_EQ(t[i].person_id, id);
    EXPECT_EQ(t[i].revision, 1);
  }
  const auto st = g->stats();
  EXPECT_EQ(st.people, 1);
  EXPECT_EQ(st.templates, 3);
  EXPECT_EQ(st.templates_by_embedder.at(kEmb), 3);
  EXPECT_EQ(st.format_version, fk::kGalleryFormatVersion);
  EXPECT_GT(st.bytes, 0u);
}

TEST_F(GalleryTest, MergeAddsTemplatesAndSkipsTheSamePhoto) {
  auto g = fk::open_gallery(path_);
  const auto first = g->add_person(person("Bob", 2, rng_, "photo"));
  auto again = person("Bob", 3, rng_, "photo");  // photo0, photo1 already enrolled; photo2 is new
  again.metadata = R"({"role":"admin"})";
  EXPECT_EQ(error_code_of([&] { g->add_person(again); }), fk::ErrorCode::kInvalidArgument);  // kFail
  EXPECT_EQ(g->person(first.person.id).templates, 2);
  const auto r = g->add_person(again, fk::OnConflict::kMerge);
  EXPECT_FALSE(r.created);
  EXPECT_EQ(r.person.id, first.person.id);
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.duplicates, 2);
  EXPECT_EQ(r.person.templates, 3);
  EXPECT_NE(r.person.metadata.find("admin"), std::string::npos);
}

TEST_F(GalleryTest, AFailedBatchWritesNothing) {
  auto g = fk::open_gallery(path_);
  g->add_person(person("Carol", 1, rng_));
  const auto rev = g->revision();
  // The second person conflicts: the first of the batch must not be stored either.
  std::vector<fk::NewPerson> batch = {person("Dave", 2, rng_), person("Carol", 1, rng_)};
  EXPECT_EQ(error_code_of([&] { g->add_people(batch); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_FALSE(g->find_person("Dave").has_value());
  EXPECT_EQ(g->revision(), rev);
  EXPECT_EQ(g->stats().templates, 1);
}

TEST_F(GalleryTest, BadInputIsAClearErrorAndStoresNothing) {
  auto g = fk::open_gallery(path_);
  g->add_person(person("Erin", 1, rng_));
  auto no_name = person("", 1, rng_);
  EXPECT_EQ(error_code_of([&] { g->add_person(no_name); }), fk::ErrorCode::kInvalidArgument);
  auto no_templates = person("Frank", 0, rng_);
  EXPECT_EQ(error_code_of([&] { g->add_person(no_templates); }), fk::ErrorCode::kInvalidArgument);
  auto nan = person("Grace", 1, rng_);
  nan.templates[0].embedding[3] = std::nanf("");
  EXPECT_EQ(error_code_of([&] { g->add_person(nan); }), fk::ErrorCode::kInvalidArgument);
  auto wrong_dim = person("Heidi", 1, rng_);
  wrong_dim.templates[0].embedding.resize(5);  // the gallery's test_embedder templates have 8 values
  EXPECT_EQ(error_code_of([&] { g->add_person(wrong_dim); }), fk::ErrorCode::kInvalidArgument);
  auto bad_meta = person("Ivan", 1, rng_);
  bad_meta.metadata = "{not json";
  EXPECT_EQ(error_code_of([&] { g->add_person(bad_meta); }), fk::ErrorCode::kInvalidArgument);
  bad_meta.metadata = "[1,2]";
  EXPECT_EQ(error_code_of([&] { g->add_person(bad_meta); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(g->people().size(), 1u);
  EXPECT_EQ(g->revision(), 1);
  // Unknown ids.
  EXPECT_EQ(error_code_of([&] { g->person(999); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->remove_person(999); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->rename_person(999, "x"); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->templates_of(999); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->set_metadata(999, "{}"); }), fk::ErrorCode::kNotFound);
}

TEST_F(GalleryTest, RenameRemoveAndIdsAreNeverReused) {
  auto g = fk::open_gallery(path_);
  const auto a = g->add_person(person("A", 2, rng_)).person;
  const auto b = g->add_person(person("B", 1, rng_)).person;
  EXPECT_EQ(error_code_of([&] { g->rename_person(a.id, "B"); }), fk::ErrorCode::kInvalidArgument);
  g->rename_person(a.id, "Anna");
  EXPECT_EQ(g->person(a.id).name, "Anna");
  const auto templates_a = g->templates_of(a.id);
  g->remove_person(a.id);
  EXPECT_EQ(error_code_of([&] { g->person(a.id); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(g->people().size(), 1u);
  EXPECT_EQ(g->stats().templates, 1);
  // A new person and template get ids above every id ever used.
  const auto c = g->add_person(person("C", 1, rng_)).person;
  EXPECT_GT(c.id, b.id);
  const auto tc = g->templates_of(c.id);
  EXPECT_GT(tc[0].id, templates_a.back().id);
  EXPECT_GT(tc[0].id, g->templates_of(b.id)[0].id);
}

TEST_F(GalleryTest, ChangesSinceARevisionListAddsAndRemovalsOfOneEmbedder) {
  auto g = fk::open_gallery(path_);
  const auto a = g->add_person(person("A", 2, rng_)).person;
  const std::int64_t r1 = g->revision();
  auto other = person("Other", 1, rng_);
  other.templates[0].embedder = {"another_embedder", "2"};
  g->add_person(other);
  const auto b = g->add_person(person("B", 3, rng_)).person;
  g->remove_person(a.id);
  const auto ch = g->changes_since(kEmb, r1);
  EXPECT_EQ(ch.from_revision, r1);
  EXPECT_EQ(ch.to_revision, g->revision());
  ASSERT_EQ(ch.added.size(), 3u);  // B's three; Other's template belongs to another embedder
  for (const auto& t : ch.added) EXPECT_EQ(t.person_id, b.id);
  ASSERT_EQ(ch.removed.size(), 2u);
  for (const auto& [tid, pid] : ch.removed) EXPECT_EQ(pid, a.id);
  std::int64_t rev = -1;
  int n = 0;
  g->for_each_template(
      kEmb,
      [&](const fk::Template& t) {
        ++n;
        EXPECT_EQ(t.embedder, kEmb);
      },
      &rev);
  EXPECT_EQ(n, 3);
  EXPECT_EQ(rev, g->revision());
  const auto st = g->stats();
  EXPECT_EQ(st.templates_by_embedder.size(), 2u);
  EXPECT_EQ(st.people_by_embedder.at(fk::EmbedderId{"another_embedder", "2"}), 1);
}

TEST_F(GalleryTest, RefusesFilesThatAreNotGalleries) {
  EXPECT_EQ(error_code_of([&] {
              fk::GalleryOptions o;
              o.create = false;
              fk::open_gallery(dir_ / "absent.db", o);
            }),
            fk::ErrorCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ / "absent.db"));
  std::ofstream(dir_ / "text.db") << "this is not a database, it is a text file that is long enough............";
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(dir_ / "text.db"); }), fk::ErrorCode::kStorage);
  raw_sql(dir_ / "other.db", "CREATE TABLE t(x)");
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(dir_ / "other.db"); }), fk::ErrorCode::kStorage);
  // A gallery written by a newer facekit.
  fk::open_gallery(path_)->add_person(person("A", 1, rng_));
  raw_sql(path_, "PRAGMA user_version=99");
  try {
    fk::open_gallery(path_);
    ADD_FAILURE() << "opened a newer format";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kStorage);
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(dir_); }), fk::ErrorCode::kInvalidArgument);  // a directory
}

TEST_F(GalleryTest, CorruptedFileIsReportedNotCrashed) {
  {
    auto g = fk::open_gallery(path_);
    for (int i = 0; i < 50; ++i) g->add_person(person("P" + std::to_string(i), 3, rng_));
  }
  // Overwrite the middle of the file (the b-tree pages) with garbage.
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 8192u);
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    const std::string junk(static_cast<size_t>(size) - 4096, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  // Any of open / list / read may be what notices; each must be a kStorage error, not a crash.
  const auto code = error_code_of([&] {
    auto g = fk::open_gallery(path_);
    g->people();
    for (const auto& p : g->people()) g->templates_of(p.id);
    g->stats();
  });
  EXPECT_EQ(code, fk::ErrorCode::kStorage);
}

TEST_F(GalleryTest, ReadOnlyRefusesWrites) {
  fk::open_gallery(path_)->add_person(person("A", 1, rng_));
  fk::GalleryOptions o;
  o.read_only = true;
  auto g = fk::open_gallery(path_, o);
  EXPECT_EQ(g->people().size(), 1u);
  EXPECT_EQ(error_code_of([&] { g->add_person(person("B", 1, rng_)); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { g->remove_person(1); }), fk::ErrorCode::kInvalidArgument);
}

TEST_F(GalleryTest, TwoConnectionsSeeEachOthersWritesAndConcurrentWritersAllLand) {
  auto a = fk::open_gallery(path_);
  auto b = fk::open_gallery(path_);
  a->add_person(person("A", 1, rng_));
  EXPECT_TRUE(b->find_person("A").has_value());
  EXPECT_EQ(b->revision(), 1);
  // Four writers on their own connections (as four processes would be) enrol 25 people each.
  std::vector<std::thread> th;
  for (int w = 0; w < 4; ++w)
    th.emplace_back([&, w] {
      std::mt19937 r(w);
      auto g = fk::open_gallery(path_);
      for (int i = 0; i < 25; ++i) g->add_person(person("w" + std::to_string(w) + "_" + std::to_string(i), 2, r));
    });
  for (auto& t : th) t.join();
  EXPECT_EQ(a->people().size(), 101u);
  EXPECT_EQ(a->stats().templates, 201);
  EXPECT_EQ(a->revision(), 101);
}

TEST_F(GalleryTest, ExportImportRoundTripAndMalformedImportsChangeNothing) {
  auto g = fk::open_gallery(path_);
  auto p = person("Zoë \"quoted\"", 2, rng_, "s");
  p.metadata = R"({"n":1})";
  g->add_person(p);
  g->add_person(person("Yann", 1, rng_));
  const fs::path out = dir_ / "export.jsonl";
  EXPECT_EQ(fk::export_gallery(*g, out), 2);

  auto h = fk::open_gallery(dir_ / "copy.db");
  const auto res = fk::import_gallery(*h, out);
  ASSERT_EQ(res.size(), 2u);
  const auto z = h->find_person("Zoë \"quoted\"");
  ASSERT_TRUE(z.has_value());
  EXPECT_NE(z->metadata.find("\"n\""), std::string::npos);
  const auto tz = h->templates_of(z->id);
  ASSERT_EQ(tz.size(), 2u);
  EXPECT_EQ(tz[0].embedding, p.templates[0].embedding);
  EXPECT_EQ(tz[1].source_sha256, "s1");
  // Importing again conflicts (all or nothing) unless merging, which then skips the known photos.
  EXPECT_EQ(error_code_of([&] { fk::import_gallery(*h, out); }), fk::ErrorCode::kInvalidArgument);
  const auto merged = fk::import_gallery(*h, out, fk::OnConflict::kMerge);
  EXPECT_EQ(merged[0].duplicates, 2);
  const auto rev = h->revision();

  // Malformed files: each is rejected with the line named, and nothing is added.
  std::ifstream in(out);
  std::string header, line1, line2;
  std::getline(in, header), std::getline(in, line1), std::getline(in, line2);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  };
  const auto truncated = write("trunc.jsonl", header + "\n" + line2 + "\n" + line1.substr(0, line1.size() / 2));
  try {
    fk::import_gallery(*h, truncated);
    ADD_FAILURE() << "truncated import accepted";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(":3:"), std::string::npos) << e.what();
  }
  std::string bad_b64 = line1;
  bad_b64.replace(bad_b64.find("\"embedding\":\"") + 13, 4, "!!!!");
  EXPECT_EQ(error_code_of([&] { fk::import_gallery(*h, write("b64.jsonl", header + "\n" + bad_b64 + "\n")); }),
            fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { fk::import_gallery(*h, write("nohead.jsonl", line1 + "\n")); }),
            fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { fk::import_gallery(*h, dir_ / "missing.jsonl"); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(h->revision(), rev);
  EXPECT_EQ(h->people().size(), 2u);
}

TEST(GalleryPath, DefaultFollowsTheEnvironment) {
  const char* old = std::getenv("FACEKIT_GALLERY");
  const std::string saved = old ? old : "";
  ::setenv("FACEKIT_GALLERY", "/some/where.db", 1);
  EXPECT_EQ(fk::default_gallery_path(), fs::path("/some/where.db"));
  ::unsetenv("FACEKIT_GALLERY");
  ::setenv("XDG_DATA_HOME", "/xdg", 1);
  EXPECT_EQ(fk::default_gallery_path(), fs::path("/xdg/facekit/gallery.db"));
  ::unsetenv("XDG_DATA_HOME");
  EXPECT_EQ(fk::default_gallery_path().filename(), "gallery.db");
  if (old) ::setenv("FACEKIT_GALLERY", saved.c_str(), 1);
}

// A writer process killed with SIGKILL at random moments while it commits large batches (each one transaction
// of 300 people): every batch it reported as committed is there whole, and no batch is there in part. Large
// batches make the kill land inside a transaction most of the time (the CLI test kills whole enrol commands).
TEST_F(GalleryTest, KillNineMidTransactionLeavesOnlyWholeBatches) {
  fk::open_gallery(path_);  // create it before the children race to
  std::mt19937 rng(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<int> delay_ms(30, 400);
  std::set<std::string> reported;
  int kills = 0;
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the writer
      ::close(fds[0]);
      std::mt19937 r(round);
      auto g = fk::open_gallery(path_);
      for (int b = 0;; ++b) {
        std::vector<fk::NewPerson> batch;
        for (int i = 0; i < 300; ++i) batch.push_back(person("r" + std::to_string(round) + "b" + std::to_string(b) + "_" + std::to_string(i), 3, r));
        g->add_people(batch);
        const int msg = b;
        if (::write(fds[1], &msg, sizeof msg) != sizeof msg) ::_exit(1);
      }
    }
    ::close(fds[1]);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
    auto drain = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      while (::poll(&p, 1, timeout_ms) > 0) {
        int b = 0;
        if (::read(fds[0], &b, sizeof b) != sizeof b) break;
        reported.insert("r" + std::to_string(round) + "b" + std::to_string(b));
      }
    };
    while (std::chrono::steady_clock::now() < deadline) drain(5);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    kills += WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    drain(0);  // commits reported just before the signal
    ::close(fds[0]);
  }
  EXPECT_EQ(kills, 6);
  auto g = fk::open_gallery(path_);
  std::map<std::string, int> people_per_batch;
  for (const auto& p : g->people()) {
    EXPECT_EQ(p.templates, 3) << p.name << " is partial";
    people_per_batch[p.name.substr(0, p.name.find('_'))]++;
  }
  for (const auto& [batch, n] : people_per_batch) EXPECT_EQ(n, 300) << "batch " << batch << " is partial";
  for (const auto& b : reported) EXPECT_EQ(people_per_batch[b], 300) << "reported batch " << b << " is missing";
  std::cerr << reported.size() << " batches reported, " << people_per_batch.size() << " stored\n";
}
