// The PostgreSQL gallery store on a real PostgreSQL server (tests/pg/pg_cluster.sh): the Gallery contract,
// revisions that commit in order under concurrent writers, notifications and what happens when they are lost,
// reconnection after a server restart, copies between SQLite and PostgreSQL, an Identifier kept in step.
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "../error_code.hpp"
#include "../pg/pg_server.hpp"
#include "../test_dir.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "facekit/identify.hpp"
#include "unit_vector.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using fk_test::error_code_of;
using fk_test::PgServer;
using namespace std::chrono_literals;

namespace {

const fk::EmbedderId kEmb{"test_embedder", "1"};

fk::NewPerson person(const std::string& name, int templates, std::mt19937& rng, const std::string& sha_prefix = "") {
  fk::NewPerson p;
  p.name = name;
  for (int i = 0; i < templates; ++i) {
    fk::NewTemplate t;
    t.embedder = kEmb;
    t.embedding = fk_test::unit_vector(rng, 8);
    t.quality = 0.75f;
    t.source_sha256 = sha_prefix.empty() ? "" : sha_prefix + std::to_string(i);
    p.templates.push_back(t);
  }
  return p;
}

class PgGallery : public ::testing::Test {
 protected:
  void SetUp() override {
    FK_REQUIRE_PG();
    url = PgServer::instance().fresh_database(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  std::unique_ptr<fk::Gallery> open(fk::GalleryOptions o = {}) { return fk::open_gallery(url, o); }
  std::string db() const { return url.substr(url.find(":///") + 4, url.find('?') - url.find(":///") - 4); }
  std::string url;
  std::mt19937 rng{7};
};

TEST_F(PgGallery, StoresReadsAndRemovesPeopleAndTemplates) {
  auto g = open();
  EXPECT_EQ(g->revision(), 0);
  EXPECT_TRUE(g->people().empty());
  auto alice = person("Alice", 3, rng, "a");
  alice.metadata = R"({"team": "red"})";
  const auto r = g->add_person(alice);
  EXPECT_TRUE(r.created);
  EXPECT_EQ(r.added, 3);
  EXPECT_EQ(r.person.templates, 3);
  EXPECT_EQ(r.person.name, "Alice");
  EXPECT_EQ(g->revision(), 1);
  const auto ts = g->templates_of(r.person.id);
  ASSERT_EQ(ts.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ts[i].embedding, alice.templates[i].embedding);  // bit-exact through bytea
    EXPECT_EQ(ts[i].embedder, kEmb);
    EXPECT_FLOAT_EQ(ts[i].quality, 0.75f);
    EXPECT_EQ(ts[i].source_sha256, "a" + std::to_string(i));
    EXPECT_EQ(ts[i].revision, 1);
  }
  EXPECT_EQ(g->template_by_id(ts[1].id).embedding, alice.templates[1].embedding);
  EXPECT_EQ(g->find_person("Alice")->metadata, R"({"team":"red"})");
  EXPECT_FALSE(g->find_person("alice"));  // names are case-sensitive

  // Merge: new photos are added, a photo already stored is not; metadata keys merge.
  auto more = person("Alice", 2, rng, "a");  // a0, a1 again
  more.templates.push_back(person("x", 1, rng, "b").templates[0]);
  more.metadata = R"({"floor": 3})";
  const auto m = g->add_person(more, fk::OnConflict::kMerge);
  EXPECT_FALSE(m.created);
  EXPECT_EQ(m.added, 1);
  EXPECT_EQ(m.duplicates, 2);
  EXPECT_EQ(m.person.templates, 4);
  EXPECT_EQ(g->person(m.person.id).metadata, R"({"floor":3,"team":"red"})");
  EXPECT_EQ(error_code_of([&] { g->add_person(person("Alice", 1, rng)); }), fk::ErrorCode::kInvalidArgument);

  g->rename_person(r.person.id, "Alice B");
  EXPECT_EQ(g->person(r.person.id).name, "Alice B");
  const auto bob = g->add_person(person("Bob", 1, rng));
  EXPECT_EQ(error_code_of([&] { g->rename_person(bob.person.id, "Alice B"); }), fk::ErrorCode::kInvalidArgument);
  g->set_metadata(bob.person.id, R"({"x": [1, 2]})");
  EXPECT_EQ(g->person(bob.person.id).metadata, R"({"x":[1,2]})");
  EXPECT_EQ(error_code_of([&] { g->set_metadata(bob.person.id, "[1]"); }), fk::ErrorCode::kInvalidArgument);

  // Removing a person's last template removes the person.
  const auto bt = g->templates_of(bob.person.id);
  const auto rm = g->remove_template(bt[0].id);
  EXPECT_TRUE(rm.person_removed);
  EXPECT_EQ(rm.person.name, "Bob");
  EXPECT_FALSE(g->find_person("Bob"));
  const auto rm2 = g->remove_template(ts[0].id);
  EXPECT_FALSE(rm2.person_removed);
  g->remove_person(r.person.id);
  EXPECT_TRUE(g->people().empty());

  EXPECT_EQ(error_code_of([&] { g->person(r.person.id); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->templates_of(424242); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->template_by_id(424242); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->remove_person(424242); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->remove_template(424242); }), fk::ErrorCode::kNotFound);
  EXPECT_EQ(error_code_of([&] { g->rename_person(424242, "Z"); }), fk::ErrorCode::kNotFound);

  // Ids are never reused.
  const auto carol = g->add_person(person("Carol", 1, rng));
  EXPECT_GT(carol.person.id, bob.person.id);
  EXPECT_GT(g->templates_of(carol.person.id)[0].id, bt[0].id);
}

TEST_F(PgGallery, AFailedBatchWritesNothing) {
  auto g = open();
  g->add_person(person("Ann", 1, rng));
  const auto rev = g->revision();
  // The third person is already enrolled: the whole batch is refused.
  EXPECT_EQ(error_code_of([&] {
              g->add_people({person("Ben", 2, rng), person("Cy", 1, rng), person("Ann", 1, rng)});
            }),
            fk::ErrorCode::kInvalidArgument);
  // Bad input is refused before anything starts.
  auto bad = person("Dee", 1, rng);
  bad.templates[0].embedding[0] += 1.f;  // not unit length
  EXPECT_EQ(error_code_of([&] { g->add_people({person("Eve", 1, rng), bad}); }), fk::ErrorCode::kInvalidArgument);
  auto wrong_dim = person("Fay", 1, rng);
  wrong_dim.templates[0].embedding = fk_test::unit_vector(rng, 16);
  EXPECT_EQ(error_code_of([&] { g->add_person(wrong_dim); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { g->add_person(person("1234", 1, rng)); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(g->revision(), rev);
  ASSERT_EQ(g->people().size(), 1u);
  EXPECT_EQ(g->stats().templates, 1);
}

TEST_F(PgGallery, ABatchThatNamesOnePersonTwiceMergesThem) {
  auto g = open();
  auto a = person("Gus", 1, rng, "g1");
  a.metadata = R"({"a": 1})";
  auto b = person("Gus", 1, rng, "g2");
  b.metadata = R"({"b": 2})";
  const auto r = g->add_people({a, b}, fk::OnConflict::kMerge);
  EXPECT_TRUE(r[0].created);
  EXPECT_FALSE(r[1].created);
  EXPECT_EQ(r[1].person.templates, 2);
  EXPECT_EQ(g->find_person("Gus")->metadata, R"({"a":1,"b":2})");
  EXPECT_EQ(error_code_of([&] { g->add_people({person("Hal", 1, rng), person("Hal", 1, rng)}); }),
            fk::ErrorCode::kInvalidArgument);
}

TEST_F(PgGallery, ChangesSinceARevisionNameEveryAdditionAndRemoval) {
  auto g = open();
  const auto a = g->add_person(person("A", 2, rng));
  const auto r1 = g->revision();
  const auto b = g->add_person(person("B", 1, rng));
  g->remove_person(a.person.id);
  auto other = person("C", 1, rng);
  other.templates[0].embedder = {"other", "2"};
  g->add_person(other);
  const auto ch = g->changes_since(kEmb, r1);
  EXPECT_EQ(ch.from_revision, r1);
  EXPECT_EQ(ch.to_revision, g->revision());
  ASSERT_EQ(ch.added.size(), 1u);
  EXPECT_EQ(ch.added[0].person_id, b.person.id);
  ASSERT_EQ(ch.removed.size(), 2u);
  EXPECT_EQ(ch.removed[0].second, a.person.id);
  std::vector<std::int64_t> ids;
  std::int64_t rev = -1;
  g->for_each_template(kEmb, [&](const fk::Template& t) { ids.push_back(t.id); }, &rev);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(rev, g->revision());
  const auto st = g->stats();
  EXPECT_EQ(st.people, 2);
  EXPECT_EQ(st.templates, 2);
  EXPECT_EQ((st.templates_by_embedder.at(fk::EmbedderId{"other", "2"})), 1);
  EXPECT_GT(st.bytes, 0u);
  EXPECT_TRUE(g->check().ok());
}

TEST_F(PgGallery, ReopensTheSameGalleryAndHidesThePassword) {
  std::string uuid;
  {
    auto g = open();
    g->add_person(person("Ida", 1, rng));
    uuid = g->uuid();
  }
  auto g = open();
  EXPECT_EQ(g->uuid(), uuid);
  EXPECT_EQ(g->people().size(), 1u);
  EXPECT_NE(g->cache_dir().string().find(uuid), std::string::npos);
  EXPECT_EQ(g->cache_dir().string().find("postgres"), std::string::npos);
  // trust authentication ignores the password; location() must not show it.
  const std::string with_pw = "postgresql://postgres:s3cret@" + url.substr(url.find(":///") + 3);
  auto h = fk::open_gallery(with_pw);
  EXPECT_EQ(h->uuid(), uuid);
  EXPECT_EQ(h->location().find("s3cret"), std::string::npos) << h->location();
  // A database without a gallery is not created when creation is off; a key is refused.
  const std::string empty = PgServer::instance().fresh_database("empty");
  fk::GalleryOptions no_create;
  no_create.create = false;
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(empty, no_create); }), fk::ErrorCode::kNotFound);
  fk::GalleryOptions keyed;
  keyed.key = fk::GalleryKey::generate();
  EXPECT_EQ(error_code_of([&] { fk::open_gallery(empty, keyed); }), fk::ErrorCode::kInvalidArgument);
  // A server that is not there is a storage error naming the location.
  try {
    fk::open_gallery("postgresql:///nobody?host=/nonexistent&port=1");
    ADD_FAILURE() << "opened a database that does not exist";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kStorage);
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
  }
  // A newer format is refused.
  PgServer::instance().sql(db(), "UPDATE facekit_meta SET value = '99' WHERE key = 'format'");
  EXPECT_EQ(error_code_of([&] { open(); }), fk::ErrorCode::kStorage);
}

TEST_F(PgGallery, ReadOnlyRefusesWrites) {
  open()->add_person(person("Jo", 1, rng));
  fk::GalleryOptions ro;
  ro.read_only = true;
  auto g = open(ro);
  EXPECT_EQ(g->people().size(), 1u);
  EXPECT_EQ(error_code_of([&] { g->add_person(person("Kim", 1, rng)); }), fk::ErrorCode::kInvalidArgument);
}

// Four writers on four connections and a reader that follows by changes_since: because revisions commit in the
// order they are numbered, the reader ends up with exactly every template, having missed none.
TEST_F(PgGallery, AReaderFollowingRevisionsMissesNothingUnderConcurrentWriters) {
  auto reader = open();
  constexpr int kWriters = 4, kEach = 40;
  std::atomic<int> done{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      auto g = open();
      std::mt19937 r(100 + w);
      for (int i = 0; i < kEach; ++i) {
        const auto added = g->add_person(person("w" + std::to_string(w) + "_" + std::to_string(i), 1 + i % 2, r));
        if (i % 14 == 3) g->remove_template  // of two: the person stays
          (g->templates_of(added.person.id).back().id);
      }
      ++done;
    });
  std::set<std::int64_t> have;
  std::int64_t rev = 0;
  int rounds = 0;
  const auto apply = [&] {
    const auto ch = reader->changes_since(kEmb, rev);
    for (const auto& [tid, pid] : ch.removed) have.erase(tid);
    for (const auto& t : ch.added) have.insert(t.id);
    // A template added and removed within the span is in both lists; removals are applied first, so it
    // would stay: drop any listed as removed.
    for (const auto& [tid, pid] : ch.removed) have.erase(tid);
    rev = ch.to_revision;
    ++rounds;
  };
  while (done < kWriters) apply();
  for (auto& t : writers) t.join();
  apply();
  std::set<std::int64_t> truth;
  reader->for_each_template(kEmb, [&](const fk::Template& t) { truth.insert(t.id); });
  EXPECT_EQ(have, truth);
  EXPECT_EQ(reader->people().size(), static_cast<size_t>(kWriters * kEach));
  EXPECT_GT(rounds, 2);
}

TEST_F(PgGallery, AWaiterWakesOnAChangeAndAfterItsConnectionIsKilled) {
  auto waiter = open();
  auto writer = open();
  waiter->wait_for_change(10ms);  // the first call starts listening (and says: look now)
  EXPECT_FALSE(waiter->wait_for_change(50ms));
  std::thread t([&] {
    std::this_thread::sleep_for(100ms);
    writer->add_person(person("Lee", 1, rng));
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(waiter->wait_for_change(5000ms));
  const auto waited = std::chrono::steady_clock::now() - t0;
  t.join();
  EXPECT_LT(waited, 3000ms);
  // The listening connection is killed: the next wait reconnects and tells the caller to look, and later
  // notifications arrive again.
  PgServer::instance().sql(db(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                                 "'facekit-listen' AND datname = current_database()");
  bool woke = false;
  for (int i = 0; i < 20 && !woke; ++i) woke = waiter->wait_for_change(200ms);
  EXPECT_TRUE(woke);
  while (waiter->wait_for_change(10ms)) {
  }
  writer->add_person(person("Max", 1, rng));
  EXPECT_TRUE(waiter->wait_for_change(5000ms));
}

// On a server of its own: the restart would cut the other tests' connections.
TEST_F(PgGallery, SurvivesAServerRestart) {
  const auto dir = fs::temp_directory_path() / ("facekit-pg-restart-" + std::to_string(::getpid()));
  const std::string cluster = FACEKIT_PG_CLUSTER;
  FILE* p = ::popen((cluster + " start " + dir.string()).c_str(), "r");
  char buf[512] = {0};
  ASSERT_TRUE(p && std::fgets(buf, sizeof buf, p));
  ASSERT_EQ(::pclose(p), 0);
  std::string own(buf);
  own.erase(own.find_last_not_of('\n') + 1);
  {
    auto g = fk::open_gallery(own);
    g->add_person(person("Ned", 1, rng));
    ASSERT_EQ(std::system((cluster + " restart " + dir.string()).c_str()), 0);
    // The connection died with the server; the next call reconnects.
    EXPECT_EQ(g->people().size(), 1u);
    g->add_person(person("Ola", 1, rng));
    EXPECT_EQ(g->revision(), 2);
  }
  std::system((cluster + " stop " + dir.string()).c_str());
}

TEST_F(PgGallery, CopiesToAndFromSqliteWholeOrNothing) {
  const auto dir = fk_test::fresh_test_dir("pg_copy");
  auto lite = fk::open_gallery(dir / "a.db");
  std::vector<fk::NewPerson> people;
  for (int i = 0; i < 30; ++i) people.push_back(person("P" + std::to_string(i), 1 + i % 3, rng, "s" + std::to_string(i)));
  people[4].metadata = R"({"k": "v"})";
  lite->add_people(people);
  auto pg = open();
  const auto c = fk::copy_gallery(*lite, *pg);
  EXPECT_EQ(c.people, 30);
  EXPECT_EQ(c.templates, 60);
  auto back = fk::open_gallery(dir / "b.db");
  fk::copy_gallery(*pg, *back);
  for (const auto* g : {pg.get(), back.get()}) {
    const auto ps = g->people();
    ASSERT_EQ(ps.size(), 30u);
    for (const auto& p : ps) {
      const auto orig = lite->find_person(p.name);
      ASSERT_TRUE(orig);
      EXPECT_EQ(p.metadata, orig->metadata);
      const auto a = lite->templates_of(orig->id), b = g->templates_of(p.id);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].embedding, b[i].embedding);
        EXPECT_EQ(a[i].source_sha256, b[i].source_sha256);
        EXPECT_EQ(a[i].kind, b[i].kind);
      }
    }
  }
  // Into a gallery that already holds one of the names: refused, nothing copied.
  auto clash = open();
  const auto rev = clash->revision();
  EXPECT_EQ(error_code_of([&] { fk::copy_gallery(*lite, *clash); }), fk::ErrorCode::kInvalidArgument);
  EXPECT_EQ(clash->revision(), rev);
  fs::remove_all(dir);
}

TEST_F(PgGallery, AnIdentifierOnTwoConnectionsStaysInStep) {
  const auto dir = fk_test::fresh_test_dir("pg_ident");
  auto writer = open();
  auto reader = open();
  std::vector<fk::NewPerson> people;
  for (int i = 0; i < 20; ++i) people.push_back(person("Q" + std::to_string(i), 2, rng));
  writer->add_people(people);
  fk::IdentifyOptions o;
  o.cache_dir = dir;
  o.threshold = 0.5f;
  fk::Identifier id(*reader, kEmb, o);
  EXPECT_EQ(id.index().label_count(), 20);
  const auto probe = people[3].templates[0].embedding;
  EXPECT_EQ(id.identify(probe).candidates.at(0).name, "Q3");
  // Another connection renames and removes; the reader's identifier follows after a refresh.
  writer->rename_person(writer->find_person("Q3")->id, "Q3 renamed");
  writer->remove_person(writer->find_person("Q5")->id);
  const auto rep = id.refresh();
  EXPECT_FALSE(rep.rebuilt);
  EXPECT_EQ(id.identify(probe).candidates.at(0).name, "Q3 renamed");
  EXPECT_EQ(id.index().label_count(), 19);
  // A new identifier starts from the cache in the folder given (never one derived from the URL).
  fk::Identifier again(*reader, kEmb, o);
  EXPECT_TRUE(again.last_refresh().index_from_cache);
  fs::remove_all(dir);
}

// A server on a new machine (no local cache) loads the index that another built, from the database, and then
// applies what changed since instead of building.
TEST_F(PgGallery, ANewMachineLoadsTheIndexFromTheDatabase) {
  const auto dir = fk_test::fresh_test_dir("pg_shared");
  auto writer = open();
  std::vector<fk::NewPerson> people;
  for (int i = 0; i < 30; ++i) people.push_back(person("S" + std::to_string(i), 2, rng));
  writer->add_people(people);
  fk::IdentifyOptions o;
  o.threshold = 0.5f;
  o.cache_dir = dir / "first";
  {
    fk::Identifier first(*writer, kEmb, o);
    EXPECT_TRUE(first.last_refresh().rebuilt);
    EXPECT_TRUE(writer->shared_index("test_embedder_1.mean").has_value() ||
                writer->shared_index("test_embedder@1.mean").has_value());
  }
  writer->add_person(person("Late", 1, rng));
  auto reader = open();
  o.cache_dir = dir / "second";  // empty: a new machine
  fk::Identifier second(*reader, kEmb, o);
  const auto& rep = second.last_refresh();
  EXPECT_TRUE(rep.index_from_shared) << rep.cache_error;
  EXPECT_FALSE(rep.rebuilt);
  EXPECT_EQ(rep.added, 1);  // the person enrolled after the copy was stored
  EXPECT_EQ(second.index().label_count(), 31);
  EXPECT_EQ(second.identify(people[7].templates[0].embedding).candidates.at(0).name, "S7");
  // It also left a local copy: the next start here reads the file.
  fk::Identifier third(*reader, kEmb, o);
  EXPECT_TRUE(third.last_refresh().index_from_cache);
  EXPECT_FALSE(third.last_refresh().index_from_shared);
  // An SQLite gallery keeps none.
  auto lite = fk::open_gallery(dir / "g.db");
  EXPECT_FALSE(lite->shared_index("anything"));
  fs::remove_all(dir);
}

}  // namespace
