// End-to-end tier for the gallery: enrol, identify, list, rename, remove and re-identify through the facekit
// binary on real photos; bad input; kill -9 during enrolment; and (when LFW is present) identification of LFW
// people through the library.
//
// Photos: Debian libdlib19.1's bald_guys.jpg is a collage of four actors, about six photos each. Each face is
// cut out with a margin into its own photo (one face per photo, as enrolment wants) and the cut-outs are
// grouped into actors by average-linkage clustering of their embeddings.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "actors.hpp"
#include "cli_run.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"
#include "facekit/identification_eval.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"
#include "facekit/model.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/registry.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kFaces = "/usr/share/doc/libdlib19.1/examples/faces";
const fs::path kDemo = fs::path(FACEKIT_TEST_DATA) / ".." / ".." / "models" / "face-api" / "demo";
const fs::path kLfw = FACEKIT_LFW_DIR;

using fk_test::CliRun;
CliRun run(const std::string& args) { return fk_test::run_cli(args); }

std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

// What the gallery records as the default embedder: "name@version".
std::string default_embedder_id() {
  const auto m = fk::load_manifest(fk::defaults::kEmbedder);
  return m.name + "@" + m.version;
}

const fk::FacePipeline& pipeline() { return fk_test::shared_pipeline(); }

using fk_test::actors;

class GalleryCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_gcli");
    gallery_ = dir_ / "people.db";
    const auto& a = actors();
    ASSERT_GE(a.groups.size(), 4u);
    for (size_t g = 0; g < 4; ++g) ASSERT_GE(a.groups[g].size(), 3u) << "actor " << g;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string G() const { return " --gallery " + q(gallery_); }
  json identify(const fs::path& photo) {
    const CliRun r = run("identify --json" + G() + " " + q(photo));
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }
  // The identity of the only face in a photo.
  std::string who(const fs::path& photo) {
    const auto j = identify(photo);
    const auto& faces = j["images"][0]["faces"];
    EXPECT_EQ(faces.size(), 1u) << photo;
    return faces.empty() ? "" : faces[0]["identity"].get<std::string>();
  }
  size_t people_count() {
    const CliRun r = run("people list --json" + G());
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out).size();
  }
  fs::path dir_, gallery_;
};

}  // namespace

TEST_F(GalleryCli, EnrolIdentifyListRenameRemoveAndReidentify) {
  const auto& g = actors().groups;
  // Three actors enrolled from two photos each; the fourth actor is never enrolled.
  for (int k = 0; k < 3; ++k) {
    const CliRun r = run("enroll --json --name actor" + std::to_string(k) + G() + " " + q(g[k][0]) + " " + q(g[k][1]));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = json::parse(r.out);
    EXPECT_TRUE(j["created"].get<bool>());
    EXPECT_EQ(j["templates_added"].get<int>(), 2);
    EXPECT_EQ(j["photos"].size(), 2u);
  }
  ASSERT_EQ(run("enroll --name Tom" + G() + " " + q(kFaces / "Tom_Cruise_avp_2014_4.jpg")).status, 0);
  EXPECT_EQ(people_count(), 4u);

  // Held-out photos of the enrolled actors are named; the unenrolled actor and three strangers are unknown.
  for (int k = 0; k < 3; ++k) EXPECT_EQ(who(g[k][2]), "actor" + std::to_string(k));
  EXPECT_EQ(who(g[3][0]), "unknown");
  EXPECT_EQ(who(kFaces / "Tom_Cruise_avp_2014_4.jpg"), "Tom");
  const auto strangers = identify(kDemo / "sample1.jpg");
  ASSERT_EQ(strangers["images"][0]["faces"].size(), 3u);
  for (const auto& f : strangers["images"][0]["faces"]) {
    EXPECT_EQ(f["identity"], "unknown");
    EXPECT_FALSE(f["known"].get<bool>());
    EXPECT_TRUE(f["person_id"].is_null());
  }
  // Candidates are sorted, with probabilities and similarities in range, and --top is honoured.
  {
    const CliRun r = run("identify --json --top 2" + G() + " " + q(g[0][2]));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto c = json::parse(r.out)["images"][0]["faces"][0]["candidates"];
    ASSERT_EQ(c.size(), 2u);
    EXPECT_EQ(c[0]["name"], "actor0");
    EXPECT_GT(c[0]["similarity"].get<double>(), c[1]["similarity"].get<double>());
    EXPECT_GT(c[0]["probability"].get<double>(), 0.5);
    EXPECT_LE(c[0]["probability"].get<double>(), 1.0);
  }
  // The SVM names the same person. (Its open-set decision is not asserted here: with four people each SVM
  // has a handful of negatives and the unenrolled actor can score as high as an enrolled one; docs/gallery.md.)
  {
    const CliRun r = run("identify --json --classifier svm" + G() + " " + q(g[1][2]) + " " + q(g[3][1]));
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = json::parse(r.out);
    const auto& known = j["images"][0]["faces"][0];
    EXPECT_EQ(known["identity"], "actor1");
    EXPECT_EQ(known["candidates"][0]["name"], "actor1");
    EXPECT_GE(known["candidates"][0]["probability"].get<double>(), known["candidates"][1]["probability"].get<double>());
    std::cerr << "svm: enrolled actor score " << known["candidates"][0]["score"] << ", unenrolled actor's best "
              << j["images"][1]["faces"][0]["candidates"][0] << "\n";
  }
  // Text output names the person.
  {
    const CliRun r = run("identify" + G() + " " + q(g[2][2]));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("actor2"), std::string::npos) << r.out;
  }

  // Rename: identification reports the new name.
  ASSERT_EQ(run("people rename actor1 Patrick" + G()).status, 0);
  EXPECT_EQ(who(g[1][2]), "Patrick");
  // Show by name.
  {
    const CliRun r = run("people show --json Patrick" + G());
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = json::parse(r.out);
    EXPECT_EQ(j["templates"].get<int>(), 2);
    EXPECT_EQ(j["template_list"][0]["embedder"], default_embedder_id());
    EXPECT_EQ(j["template_list"][0]["source_sha256"].get<std::string>().size(), 64u);
  }
  // Remove: the actor is no longer recognised; enrol again: recognised again.
  ASSERT_EQ(run("people remove actor0" + G()).status, 0);
  EXPECT_EQ(people_count(), 3u);
  EXPECT_EQ(who(g[0][2]), "unknown");
  ASSERT_EQ(run("enroll --name actor0" + G() + " " + q(g[0][1])).status, 0);
  EXPECT_EQ(who(g[0][2]), "actor0");
  // Adding a photo to an enrolled name adds a template; the same photo again is skipped.
  {
    CliRun r = run("enroll --json --name actor0" + G() + " " + q(g[0][3 % g[0].size()]));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_FALSE(json::parse(r.out)["created"].get<bool>());
    r = run("enroll --json --name actor0" + G() + " " + q(g[0][1]));
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(json::parse(r.out)["duplicates_skipped"].get<int>(), 1);
    EXPECT_EQ(run("enroll --new --name actor0" + G() + " " + q(g[0][0])).status,
              fk::exit_status(fk::ErrorCode::kInvalidArgument));
  }
}

TEST_F(GalleryCli, BadInputIsAClearErrorAndLosesNothing) {
  const auto& g = actors().groups;
  ASSERT_EQ(run("enroll --name keeper" + G() + " " + q(g[0][0])).status, 0);
  const auto before = fs::file_size(gallery_);
  // Several faces, no face, a corrupt photo, a missing photo: each is an error naming the photo, and even
  // the good photo given with them is not enrolled.
  CliRun r = run("enroll --name crowd" + G() + " " + q(g[1][0]) + " " + q(kFaces / "bald_guys.jpg"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_NE(r.err.find("bald_guys.jpg"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("exactly one face"), std::string::npos) << r.err;
  cv::Mat grey(240, 320, CV_8UC3, cv::Scalar::all(128));
  fk::save_image(dir_ / "grey.png", grey);
  r = run("enroll --name nobody" + G() + " " + q(g[1][0]) + " " + q(dir_ / "grey.png"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNoFace)) << r.err;
  EXPECT_NE(r.err.find("grey.png"), std::string::npos) << r.err;
  std::ofstream(dir_ / "broken.jpg") << "\xff\xd8\xff\xe0 not really a jpeg";
  r = run("enroll --name broken" + G() + " " + q(dir_ / "broken.jpg"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage)) << r.err;
  r = run("enroll --name missing" + G() + " " + q(dir_ / "missing.jpg"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNotFound)) << r.err;
  r = run("enroll --name bad --metadata '{oops'" + G() + " " + q(g[1][0]));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_EQ(people_count(), 1u);
  // Unknown people.
  EXPECT_EQ(run("people remove nobody" + G()).status, fk::exit_status(fk::ErrorCode::kNotFound));
  EXPECT_EQ(run("people remove keeper nobody" + G()).status, fk::exit_status(fk::ErrorCode::kNotFound));
  EXPECT_EQ(people_count(), 1u);  // nothing removed: every name is checked first
  EXPECT_EQ(run("people show 12345" + G()).status, fk::exit_status(fk::ErrorCode::kNotFound));
  EXPECT_EQ(run("people rename nobody x" + G()).status, fk::exit_status(fk::ErrorCode::kNotFound));
  // Absent and malformed galleries.
  EXPECT_EQ(run("identify --gallery " + q(dir_ / "none.db") + " " + q(g[0][1])).status,
            fk::exit_status(fk::ErrorCode::kNotFound));
  EXPECT_FALSE(fs::exists(dir_ / "none.db"));
  std::ofstream(dir_ / "junk.db") << std::string(5000, 'j');
  r = run("people list --gallery " + q(dir_ / "junk.db"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kStorage)) << r.err;
  EXPECT_NE(r.err.find("not a facekit gallery"), std::string::npos) << r.err;
  std::ofstream(dir_ / "bad.jsonl") << "{\"format\":\"facekit-gallery-export\",\"version\":1}\n{\"name\":\"x\"}\n";
  r = run("gallery import" + G() + " " + q(dir_ / "bad.jsonl"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_NE(r.err.find(":2:"), std::string::npos) << r.err;
  EXPECT_EQ(people_count(), 1u);
  EXPECT_EQ(who(g[0][1]), "keeper");
  (void)before;
}

// A gallery enrolled with another embedder (before the default changed, or with --model) is not searched as if
// empty: identify says which embedder its templates are of; with that --model it answers.
TEST_F(GalleryCli, AGalleryOfAnotherEmbedderIsNamedNotCalledEmpty) {
  const auto& g = actors().groups;
  ASSERT_EQ(run("--model dlib_resnet enroll --name actor0" + G() + " " + q(g[0][0])).status, 0);
  const CliRun r = run("identify --json" + G() + " " + q(g[0][1]));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("dlib_resnet@"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--model dlib_resnet"), std::string::npos) << r.err;
  const CliRun ok = run("--model dlib_resnet identify --json" + G() + " " + q(g[0][1]));
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(json::parse(ok.out)["images"][0]["faces"][0]["identity"], "actor0");
}

TEST_F(GalleryCli, StatsExportImportReindex) {
  const auto& g = actors().groups;
  ASSERT_EQ(run("enroll --name a" + G() + " " + q(g[0][0]) + " " + q(g[0][1])).status, 0);
  ASSERT_EQ(run("enroll --name b --metadata '{\"badge\":7}'" + G() + " " + q(g[1][0])).status, 0);
  CliRun r = run("gallery stats --json" + G());
  ASSERT_EQ(r.status, 0) << r.err;
  auto st = json::parse(r.out);
  EXPECT_EQ(st["people"], 2);
  EXPECT_EQ(st["templates"], 3);
  EXPECT_EQ(st["embedders"][0]["embedder"], default_embedder_id());
  EXPECT_EQ(st["format_version"], fk::kGalleryFormatVersion);
  ASSERT_EQ(run("gallery export" + G() + " " + q(dir_ / "out.jsonl")).status, 0);
  const std::string copy = " --gallery " + q(dir_ / "copy.db");
  r = run("gallery import" + copy + " " + q(dir_ / "out.jsonl"));
  ASSERT_EQ(r.status, 0) << r.err;
  r = run("people show --json b" + copy);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["metadata"]["badge"], 7);
  r = run("identify --json" + copy + " " + q(g[0][2]));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"][0]["faces"][0]["identity"], "a");
  r = run("gallery reindex --classifier svm" + G());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("3 rows"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("svm: 2 models"), std::string::npos) << r.out;
}

// kill -9 at a random moment while `facekit enroll` commands run one after another: every enrolment that
// reported success is stored whole, and no person exists without all of their templates.
TEST_F(GalleryCli, KillNineDuringEnrolmentLosesNothingReportedAndLeavesNoPartialPerson) {
  const auto& g = actors().groups;
  const std::vector<std::string> photos = {g[0][0].string(), g[1][0].string(), g[2][0].string(), g[3][0].string()};
  std::mt19937 rng(static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  std::uniform_int_distribution<int> delay_ms(150, 2500);
  std::set<std::string> reported;   // exit status 0 seen
  std::set<std::string> attempted;  // started, outcome unknown or failed
  int kills = 0, next_person = 0;
  const std::string gallery = gallery_.string();
  for (int round = 0; kills < 4 && round < 8; ++round) {
    // The first command of a round runs to completion; the kill comes at a random moment after that.
    auto deadline = std::chrono::steady_clock::time_point::max();
    for (int cmd = 0;; ++cmd) {
      if (cmd == 1) deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
      const std::string name = "p" + std::to_string(next_person++);
      std::vector<std::string> args = {"enroll", "--gallery", gallery, "--name", name};
      args.insert(args.end(), photos.begin(), photos.end());  // four templates per person, one transaction
      const pid_t pid = fk_test::spawn_cli(args);
      ASSERT_GT(pid, 0);
      attempted.insert(name);
      int status = 0;
      bool killed = false;
      while (::waitpid(pid, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() >= deadline) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, &status, 0);
          killed = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (killed) {
        // The process may have finished its work in the instant before the signal: only a reported exit
        // status 0 is a promise.
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) reported.insert(name);
        kills += WIFSIGNALED(status);
        break;
      }
      ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << name << " failed without being killed";
      reported.insert(name);
    }
  }
  EXPECT_GE(kills, 3);
  EXPECT_GE(reported.size(), 4u);
  std::cerr << kills << " kill -9s, " << reported.size() << " enrolments reported, " << attempted.size()
            << " attempted\n";
  // The file is sound, every reported person is there with all four templates, nobody is partial, and
  // nobody appears who was never attempted.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(gallery.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
  auto gal = fk::open_gallery(gallery_);
  std::map<std::string, int> stored;
  for (const auto& p : gal->people()) stored[p.name] = p.templates;
  for (const auto& name : reported) {
    ASSERT_TRUE(stored.count(name)) << name << " reported success but is missing";
    EXPECT_EQ(stored[name], 4) << name;
  }
  for (const auto& [name, n] : stored) {
    EXPECT_EQ(n, 4) << name << " is partial";
    EXPECT_TRUE(attempted.count(name)) << name;
  }
  // And the gallery still takes writes and answers.
  ASSERT_EQ(run("enroll --name after" + G() + " " + q(g[0][1])).status, 0);
  EXPECT_EQ(who(g[1][1]).rfind("p", 0), 0u);
}

// ---- LFW, through the library --------------------------------------------------------------------------

TEST(ClusterCli, GroupsTheActorsCutOutsSkipsABrokenPhotoAndResumesFromItsCache) {
  namespace fs = std::filesystem;
  const auto& a = fk_test::actors();
  const fs::path dir = fk_test::fresh_test_dir("fk_cluster");
  fs::create_directories(dir / "photos" / "sub");
  std::map<std::string, int> actor;  // file name -> actor
  for (size_t g = 0; g < a.groups.size(); ++g)
    for (const auto& f : a.groups[g]) {
      fs::copy_file(f, dir / "photos" / "sub" / f.filename());
      actor[f.filename().string()] = static_cast<int>(g);
    }
  std::ofstream(dir / "photos" / "broken.jpg") << "not a jpeg";
  const auto q = [&](const fs::path& p) { return fk_test::quoted(p); };
  const auto r = fk_test::run_cli("cluster " + q(dir / "photos") + " --out " + q(dir / "c.json") + " --cache " +
                                  q(dir / "faces.cache") + " --html " + q(dir / "sheet"));
  ASSERT_EQ(r.status, 0) << r.err;
  // The contact sheet: a thumbnail for every face it shows, and each one referenced by the page.
  std::ifstream page(dir / "sheet" / "index.html");
  const std::string html((std::istreambuf_iterator<char>(page)), {});
  size_t thumbs = 0;
  for (const auto& e : fs::directory_iterator(dir / "sheet" / "faces")) {
    ++thumbs;
    EXPECT_NE(html.find("faces/" + e.path().filename().string()), std::string::npos) << e.path();
    EXPECT_FALSE(facekit::load_image(e.path()).empty());
  }
  size_t cut_outs = 0;
  for (const auto& g : a.groups) cut_outs += g.size();
  EXPECT_EQ(thumbs, cut_outs);  // one face per cut-out, all shown
  EXPECT_NE(html.find("Cluster 1:"), std::string::npos);
  EXPECT_NE(r.err.find("1 unreadable"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("broken.jpg"), std::string::npos) << r.err;
  std::ifstream in(dir / "c.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["method"], "agglomerative");
  EXPECT_EQ(j["unreadable"].size(), 1u);
  // Every cluster is one actor, and every actor with two or more cut-outs is one cluster.
  std::set<int> seen;
  for (const auto& c : j["clusters"]) {
    std::set<int> who;
    for (const auto& f : c["faces"]) who.insert(actor.at(fs::path(f["photo"].get<std::string>()).filename().string()));
    EXPECT_EQ(who.size(), 1u) << c.dump();
    seen.insert(*who.begin());
  }
  size_t actors_with_two = 0;
  for (const auto& g : a.groups) actors_with_two += g.size() >= 2;
  EXPECT_EQ(j["clusters"].size(), actors_with_two);
  EXPECT_EQ(seen.size(), actors_with_two);
  // A second run takes every photo from the cache and gives the same clusters.
  const auto again = fk_test::run_cli("cluster " + q(dir / "photos") + " --out " + q(dir / "c2.json") + " --cache " + q(dir / "faces.cache"));
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("from the cache"), std::string::npos);
  std::ifstream in2(dir / "c2.json");
  EXPECT_EQ(nlohmann::json::parse(in2)["clusters"], j["clusters"]);
  // A cache of another embedder is refused, not mixed in.
  const auto other = fk_test::run_cli("--model mobileface cluster " + q(dir / "photos") + " --cache " + q(dir / "faces.cache"));
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.err.find(fk::defaults::kEmbedder), std::string::npos) << other.err;
  EXPECT_NE(fk_test::run_cli("cluster " + q(dir / "nowhere")).status, 0);
  EXPECT_NE(fk_test::run_cli("cluster " + q(dir / "photos") + " --method kmeans").status, 0);
  fs::remove_all(dir);
}

// The review workflow on the actors' cut-outs: most photos clustered first, the rest added later.
TEST(ClusterCli, ReviewNamesMergesSplitsKeepsANotAndAssignsNewPhotosToTheNamedPerson) {
  const auto& a = fk_test::actors();
  ASSERT_GE(a.groups.size(), 3u);
  ASSERT_GE(a.groups[0].size(), 4u);
  ASSERT_GE(a.groups[1].size(), 3u);
  ASSERT_GE(a.groups[2].size(), 3u);
  const fs::path dir = fk_test::fresh_test_dir("fk_review");
  fs::create_directories(dir / "first");
  fs::create_directories(dir / "later");
  std::map<std::string, int> actor;  // photo path -> actor
  for (size_t g = 0; g < a.groups.size(); ++g)
    for (size_t k = 0; k < a.groups[g].size(); ++k) {
      // Each actor's last photo arrives later.
      const fs::path to = dir / (k + 1 == a.groups[g].size() ? "later" : "first") / a.groups[g][k].filename();
      fs::copy_file(a.groups[g][k], to);
      actor[to.string()] = static_cast<int>(g);
    }
  const auto q = [&](const fs::path& p) { return fk_test::quoted(p); };
  const std::string state = " --state " + q(dir / "s.json");
  const std::string gallery = " --gallery " + q(dir / "g.db");
  const auto load = [&] {
    std::ifstream in(dir / "s.json");
    return json::parse(in);
  };
  const auto key_of = [](const json& f) { return f["key"].get<std::string>(); };
  // The cluster holding an actor's first photo.
  const auto cluster_of_actor = [&](const json& j, int g) -> json {
    for (const auto& c : j["clusters"])
      for (const auto& f : c["faces"])
        if (actor.at(f["photo"].get<std::string>()) == g) return c;
    return json();
  };
  ASSERT_EQ(fk_test::run_cli("cluster " + q(dir / "first") + " --out " + q(dir / "s.json")).status, 0);
  json j = load();
  EXPECT_EQ(j["format"], "facekit-cluster-state");
  for (size_t g = 0; g < 3; ++g) {
    const json c = cluster_of_actor(j, static_cast<int>(g));
    ASSERT_FALSE(c.is_null());
    EXPECT_EQ(c["size"], a.groups[g].size() - 1) << g;
  }
  // Name actor 0: the cluster is enrolled in the gallery, a template per face.
  const int c0 = cluster_of_actor(j, 0)["cluster"];
  auto r = fk_test::run_cli("cluster name " + std::to_string(c0) + " \"Actor Zero\"" + state + gallery);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(fk::open_gallery(dir / "g.db")->find_person("Actor Zero")->templates, static_cast<int>(a.groups[0].size() - 1));
  // A careless merge of actors 1 and 2, then a split where the cluster falls apart: each part is one actor again.
  const int c1 = cluster_of_actor(j, 1)["cluster"], c2 = cluster_of_actor(j, 2)["cluster"];
  ASSERT_EQ(fk_test::run_cli("cluster merge " + std::to_string(c1) + " " + std::to_string(c2) + state).status, 0);
  j = load();
  EXPECT_EQ(cluster_of_actor(j, 1)["cluster"], cluster_of_actor(j, 2)["cluster"]);
  r = fk_test::run_cli("cluster split " + std::to_string(c1) + state);
  ASSERT_EQ(r.status, 0) << r.err;
  j = load();
  EXPECT_NE(cluster_of_actor(j, 1)["cluster"], cluster_of_actor(j, 2)["cluster"]);
  for (int g : {1, 2}) {
    const json c = cluster_of_actor(j, g);  // held: a loop over a temporary's member would read freed memory
    for (const auto& f : c["faces"]) EXPECT_EQ(actor.at(f["photo"].get<std::string>()), g);
  }
  // Split by hand, then merge back.
  const std::string moved = key_of(cluster_of_actor(j, 0)["faces"][1]);
  r = fk_test::run_cli("cluster split \"Actor Zero\" " + q(moved) + state);
  ASSERT_EQ(r.status, 0) << r.err;
  j = load();
  EXPECT_EQ(cluster_of_actor(j, 0)["size"], a.groups[0].size() - 2);
  int split_off = -1;
  for (const auto& c : j["clusters"])
    if (c["size"] == 1 && key_of(c["faces"][0]) == moved) split_off = c["cluster"];
  ASSERT_GE(split_off, 0);
  ASSERT_EQ(fk_test::run_cli("cluster merge \"Actor Zero\" " + std::to_string(split_off) + state).status, 0);
  EXPECT_EQ(cluster_of_actor(load(), 0)["size"], a.groups[0].size() - 1);
  // A face of actor 1 ends up in the named cluster (actor 1's cluster merged in, all but one of its faces
  // split out again, the name given again so that the stray face is enrolled too); "this face is not Actor
  // Zero" takes it out of the cluster and out of the gallery. (Denying one of actor 0's own faces would leave
  // a twin of the later photo outside the cluster, free to pull it away.)
  j = load();
  const json one = cluster_of_actor(j, 1);
  const std::string denied = key_of(one["faces"][0]);
  std::string others;
  for (size_t k = 1; k < one["faces"].size(); ++k) others += " " + q(key_of(one["faces"][k]));
  ASSERT_EQ(
      fk_test::run_cli("cluster merge \"Actor Zero\" " + std::to_string(one["cluster"].get<int>()) + state)
          .status,
      0);
  r = fk_test::run_cli("cluster split \"Actor Zero\"" + others + state);
  ASSERT_EQ(r.status, 0) << r.err;
  r = fk_test::run_cli("cluster name \"Actor Zero\" \"Actor Zero\"" + state + gallery);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(fk::open_gallery(dir / "g.db")->find_person("Actor Zero")->templates,
            static_cast<int>(a.groups[0].size()));
  r = fk_test::run_cli("cluster not " + q(denied) + " \"Actor Zero\"" + state + gallery);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(fk::open_gallery(dir / "g.db")->find_person("Actor Zero")->templates,
            static_cast<int>(a.groups[0].size() - 1));
  const json zero_now = cluster_of_actor(load(), 0);  // held, as above
  for (const auto& f : zero_now["faces"]) EXPECT_NE(key_of(f), denied);
  // The later photos: each joins its actor's cluster (actor 0's the named one); the "not" holds, also when
  // clusters not named are made afresh.
  for (const std::string extra : {"", " --recluster"}) {
    r = fk_test::run_cli("cluster " + q(dir / "first") + " " + q(dir / "later") + " --out " + q(dir / "s.json") + extra);
    ASSERT_EQ(r.status, 0) << r.err;
    j = load();
    // Every cluster is one actor; a later photo is in its actor's cluster or unclustered, never another's.
    for (const auto& c : j["clusters"]) {
      std::set<int> who;
      for (const auto& f : c["faces"]) who.insert(actor.at(f["photo"].get<std::string>()));
      EXPECT_EQ(who.size(), 1u) << c.dump() << extra;
    }
    const json zero = cluster_of_actor(j, 0);
    EXPECT_EQ(zero["name"], "Actor Zero");
    bool later_in_zero = false;
    for (const auto& f : zero["faces"]) {
      EXPECT_NE(key_of(f), denied) << extra;
      later_in_zero = later_in_zero || f["photo"].get<std::string>().find("/later/") != std::string::npos;
    }
    EXPECT_TRUE(later_in_zero) << extra;
    if (extra.empty()) EXPECT_NE(r.out.find("Actor Zero: +1"), std::string::npos) << r.out;
  }
  // A new library seeded from the gallery: actor 0's photos form the cluster of that name.
  ASSERT_EQ(fk_test::run_cli("cluster " + q(dir / "later") + " --out " + q(dir / "s2.json") + gallery).status, 0);
  std::ifstream in2(dir / "s2.json");
  const json j2 = json::parse(in2);
  bool seeded = false;
  for (const auto& c : j2["clusters"])
    if (c["name"] == "Actor Zero") {
      seeded = true;
      for (const auto& f : c["faces"]) EXPECT_EQ(actor.at(f["photo"].get<std::string>()), 0);
    }
  EXPECT_TRUE(seeded) << j2.dump();
  // Clear errors, and the state untouched by a refused command.
  const std::string before = load().dump();
  EXPECT_EQ(fk_test::run_cli("cluster name 999 Somebody" + state).status, fk::exit_status(fk::ErrorCode::kNotFound));
  EXPECT_NE(fk_test::run_cli("cluster not nowhere.jpg#0 \"Actor Zero\"" + state).status, 0);
  const int c1now = cluster_of_actor(load(), 1)["cluster"];
  ASSERT_EQ(fk_test::run_cli("cluster name " + std::to_string(c1now) + " Other" + state + " --no-enrol").status, 0);
  const std::string named = load().dump();
  EXPECT_EQ(fk_test::run_cli("cluster merge Other \"Actor Zero\"" + state).status,
            fk::exit_status(fk::ErrorCode::kInvalidArgument));
  EXPECT_EQ(load().dump(), named);
  EXPECT_NE(before, named);
  EXPECT_NE(fk_test::run_cli("cluster name 1 X --state " + q(dir / "none.json")).status, 0);
  fs::remove_all(dir);
}

TEST(GalleryLfw, EnrolledPeopleAreFoundAndOthersAreUnknown) {
  if (!fs::exists(kLfw / "lfw-names.txt")) GTEST_SKIP() << "LFW not present at " << kLfw;
  const auto people = fk::lfw_people(kLfw, 4);  // 4+ photos: two to enrol, two to look up
  ASSERT_GE(people.size(), 40u);
  const fs::path dir = fs::temp_directory_path() / ("fk_glfw_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  auto gallery = fk::open_gallery(dir / "lfw.db");
  // Every 25th person: 12 enrolled people, the next 8 people as strangers.
  std::vector<const fk::LfwPerson*> enrolled, strangers;
  for (size_t i = 0; i < people.size() && enrolled.size() < 12; i += 25) enrolled.push_back(&people[i]);
  for (size_t i = 12; i < people.size() && strangers.size() < 8; i += 25) strangers.push_back(&people[i]);
  for (const auto* p : enrolled) {
    std::vector<fk::EnrollPhoto> photos;
    for (int k : {0, 1}) photos.push_back({kLfw / p->photos[k], {}, {}, {}});
    try {
      fk::enroll(*gallery, pipeline(), p->name, photos);
    } catch (const fk::Error& e) {
      // LFW photos sometimes hold a second face, or a face too poor to enrol (blurred, turned away); such a
      // person is simply not enrolled here.
      ASSERT_TRUE(e.code() == fk::ErrorCode::kInvalidArgument || e.code() == fk::ErrorCode::kNoFace ||
                  e.code() == fk::ErrorCode::kPoorQuality)
          << e.what();
    }
  }
  const auto n_enrolled = gallery->people().size();
  ASSERT_GE(n_enrolled, 8u);
  fk::Identifier ident(*gallery, fk::embedder_id(pipeline()));
  int asked = 0, right = 0, strangers_asked = 0, rejected = 0;
  for (const auto* p : enrolled) {
    if (!gallery->find_person(p->name)) continue;
    for (int k : {2, 3}) {
      const auto a = pipeline().analyze_one(fk::load_image(kLfw / p->photos[k]), fk::FacePick::kNearestCenter);
      const auto r = ident.identify(a.embedding);
      ++asked;
      right += r.known && r.candidates[0].name == p->name;
    }
  }
  for (const auto* p : strangers) {
    const auto a = pipeline().analyze_one(fk::load_image(kLfw / p->photos[0]), fk::FacePick::kNearestCenter);
    ++strangers_asked;
    rejected += !ident.identify(a.embedding).known;
  }
  EXPECT_GE(right, asked - 2) << right << "/" << asked;
  EXPECT_GE(rejected, strangers_asked - 1) << rejected << "/" << strangers_asked;
  fs::remove_all(dir);
}
