// End-to-end hardening (issue 15): the facekit binary on damaged photos, damaged, read-only and encrypted
// galleries, and hostile arguments. Every case here was accepted or crashed before; each must now be refused
// with its documented exit status and a message that says what is wrong.
#include <unistd.h>

#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_run.hpp"
#include "facekit/error.hpp"
#include "facekit/gallery.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path& kFaces = fk_test::kDlibFaces;
const fs::path& kDemo = fk_test::kDemoPhotos;

using fk_test::CliRun;
using fk_test::run_cli;
CliRun run(const std::string& args, const std::string& env = "") { return run_cli(args, env); }
std::string q(const fs::path& p) { return fk_test::quoted(p); }
int status(fk::ErrorCode c) { return fk::exit_status(c); }

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class HardeningCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_hcli");
    gallery_ = dir_ / "g.db";
  }
  void TearDown() override {
    tmpfs_.unmount();
    fs::remove_all(dir_);
  }
  fs::path write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return dir_ / name;
  }
  std::string G() const { return " --gallery " + q(gallery_); }
  // Enrols the Tom Cruise photo as `name` (exit status checked by the caller).
  CliRun enrol(const std::string& name, const std::string& extra = "") {
    return run("enroll --no-augment --name '" + name + "'" + G() + " " + extra + " " + q(kFaces / "Tom_Cruise_avp_2014_4.jpg"));
  }
  fs::path dir_, gallery_;
  fk_test::TmpfsMount tmpfs_;
};

}  // namespace

// 1. JSON nested 60,000 and 200,000 deep: exit 3, not SIGSEGV.
TEST_F(HardeningCli, DeeplyNestedJsonIsExitThree) {
  const std::string deep = "{\"a\":" + std::string(60000, '[') + std::string(60000, ']') + "}";
  write("meta.json", deep);
  CliRun r = run("enroll --name Deep --metadata \"$(cat " + q(dir_ / "meta.json") + ")\"" + G() + " " +
                 q(kFaces / "Tom_Cruise_avp_2014_4.jpg"));
  EXPECT_EQ(r.status, status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_NE(r.err.find("deeper than"), std::string::npos) << r.err;
  ASSERT_EQ(enrol("Tom").status, 0);
  ASSERT_EQ(run("gallery export " + q(dir_ / "x.jsonl") + G()).status, 0);
  std::string text = read_all(dir_ / "x.jsonl");
  write("deep.jsonl", text.substr(0, text.find('\n') + 1) + std::string(200000, '[') + std::string(200000, ']') + "\n");
  r = run("gallery import " + q(dir_ / "deep.jsonl") + " --gallery " + q(dir_ / "h.db"));
  EXPECT_EQ(r.status, status(fk::ErrorCode::kInvalidArgument)) << r.err;
}

// 2. Damaged JPEGs: exit 4 with libjpeg's reason in every command, unless --accept-damaged.
TEST_F(HardeningCli, DamagedPhotosAreRefusedByEveryCommand) {
  const std::string whole = read_all(kDemo / "sample1.jpg");
  ASSERT_FALSE(whole.empty());
  const fs::path half = write("half.jpg", whole.substr(0, whole.size() / 2));
  std::string eoi = whole;
  eoi.replace(whole.size() / 2, 2, "\xFF\xD9");
  const fs::path early_end = write("eoi.jpg", eoi);
  std::string garbage = whole;
  std::mt19937 rng(1);
  for (std::size_t i = whole.size() / 2; i < whole.size() / 2 + 1024; ++i) garbage[i] = static_cast<char>(rng());
  const fs::path noisy = write("noise.jpg", garbage);
  const fs::path tom = kFaces / "Tom_Cruise_avp_2014_4.jpg";
  fs::create_directories(dir_ / "frames");
  fs::copy_file(half, dir_ / "frames" / "f000.jpg");

  const int bad = status(fk::ErrorCode::kBadImage);
  ASSERT_EQ(enrol("Tom").status, 0);
  for (const std::string cmd : {"detect " + q(half), "embed " + q(noisy), "verify " + q(half) + " " + q(tom),
                                "identify" + G() + " " + q(early_end), "quality " + q(half), "liveness " + q(noisy),
                                "liveness --frames " + q(dir_ / "frames"),
                                "enroll --name Someone" + G() + " " + q(early_end)}) {
    const CliRun r = run(cmd);
    EXPECT_EQ(r.status, bad) << cmd << "\n" << r.err;
    EXPECT_TRUE(r.err.find("Corrupt JPEG data") != std::string::npos || r.err.find("Premature end") != std::string::npos)
        << cmd << "\n" << r.err;
  }
  EXPECT_EQ(run("people list --json" + G()).out.find("Someone"), std::string::npos);  // nothing stored
  // Accepted when asked, and then said.
  const CliRun r = run("--accept-damaged detect " + q(half));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("half.jpg is damaged"), std::string::npos) << r.err;
}

// 3. Damaged rows: exit 11 naming the person; gallery check lists them.
TEST_F(HardeningCli, ADamagedTemplateIsExitElevenNamingThePerson) {
  ASSERT_EQ(enrol("Tom").status, 0);
  CliRun r = run("embed --json " + q(kFaces / "Tom_Cruise_avp_2014_4.jpg"));
  ASSERT_EQ(r.status, 0);
  // The stored template (no augmentation) is this embedding: find its bytes in the file and damage them.
  ASSERT_EQ(run("gallery check" + G()).status, 0);
  {
    fk::GalleryOptions o;
    auto g = fk::open_gallery(gallery_, o);
    const auto t = g->templates_of(g->find_person("Tom")->id).at(0);
    g.reset();
    std::string bytes = read_all(gallery_);
    std::string wal = read_all(gallery_.string() + "-wal");
    const std::string needle(reinterpret_cast<const char*>(t.embedding.data()), t.embedding.size() * sizeof(float));
    const float huge = 1e20f;
    auto at = bytes.find(needle);
    if (at != std::string::npos) {
      std::memcpy(bytes.data() + at + 8, &huge, 4);
      std::ofstream(gallery_, std::ios::binary | std::ios::trunc) << bytes;
    } else {
      at = wal.find(needle);
      ASSERT_NE(at, std::string::npos);
      std::memcpy(wal.data() + at + 8, &huge, 4);
      std::ofstream(gallery_.string() + "-wal", std::ios::binary | std::ios::trunc) << wal;
    }
  }
  for (const std::string cmd : {"gallery export " + q(dir_ / "x.jsonl") + G(), "people show Tom" + G(),
                                "identify" + G() + " " + q(kFaces / "Tom_Cruise_avp_2014_4.jpg")}) {
    r = run(cmd);
    EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find("'Tom'"), std::string::npos) << cmd << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "x.jsonl"));
  r = run("gallery check" + G());
  EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << r.err;
  EXPECT_NE(r.out.find("damaged: template"), std::string::npos) << r.out;
}

// 4. Read-only, empty and full.
TEST_F(HardeningCli, ReadOnlyGalleriesAreReadAndWritesFailWithTheTruth) {
  ASSERT_EQ(enrol("Tom").status, 0);
  // As root, permissions do not stop a write: run the reads and writes as nobody on a read-only file and folder.
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec, fs::perm_options::replace);
  fs::permissions(gallery_, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::replace);
  const std::string as = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  if (!as.empty() && std::system("setpriv --reuid=65534 --regid=65534 --clear-groups true") != 0)
    GTEST_SKIP() << "cannot run as nobody";
  const std::string cli = as + FACEKIT_CLI;
  auto sh = [&](const std::string& args) {
    const fs::path err = dir_.parent_path() / ("fk_ro_err_" + std::to_string(::getpid()));
    FILE* p = ::popen((cli + " " + args + " 2>" + err.string()).c_str(), "r");
    std::string out;
    char buf[4096];
    for (size_t k; (k = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, k);
    const int st = ::pclose(p);
    CliRun r{WIFEXITED(st) ? WEXITSTATUS(st) : -1, out, read_all(err)};
    fs::remove(err);
    return r;
  };
  CliRun r = sh("people list --json" + G());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("Tom"), std::string::npos);
  r = sh("people remove Tom" + G());
  EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << r.err;
  EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not a facekit gallery"), std::string::npos) << r.err;
  fs::permissions(gallery_, fs::perms::owner_write, fs::perm_options::add);
  EXPECT_NE(run("people list" + G()).out.find("Tom"), std::string::npos);
}

TEST_F(HardeningCli, AnEmptyGalleryFileAndAFullDiskAreSaidSo) {
  ASSERT_EQ(enrol("Tom").status, 0);
  fs::resize_file(gallery_, 0);
  fs::remove(gallery_.string() + "-wal");
  CliRun r = run("people list" + G());
  EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage));
  EXPECT_NE(r.err.find("empty file (0 bytes)"), std::string::npos) << r.err;

  const fs::path mnt = dir_ / "mnt";
  if (!tmpfs_.mount(mnt, "size=1m")) GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
  gallery_ = mnt / "g.db";
  ASSERT_EQ(enrol("Tom").status, 0);
  {
    std::ofstream fill(mnt / "fill", std::ios::binary);
    const std::string block(4096, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  r = enrol("Other");
  EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << r.err;
  EXPECT_NE(r.err.find("full"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("not a facekit gallery"), std::string::npos) << r.err;
  fs::remove(mnt / "fill");
  EXPECT_EQ(run("gallery check" + G()).status, 0);
}

// 5. Imports of 1e30 / zero templates and of a file missing its last line.
TEST_F(HardeningCli, BadImportsAreRefusedWhole) {
  ASSERT_EQ(enrol("Tom").status, 0);
  ASSERT_EQ(enrol("Tommy").status, 0);
  ASSERT_EQ(run("gallery export " + q(dir_ / "x.jsonl") + G()).status, 0);
  const std::string text = read_all(dir_ / "x.jsonl");
  write("cut.jsonl", text.substr(0, text.rfind('\n', text.size() - 2) + 1));
  CliRun r = run("gallery import " + q(dir_ / "cut.jsonl") + " --gallery " + q(dir_ / "h.db"));
  EXPECT_EQ(r.status, status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_NE(r.err.find("says 2 people"), std::string::npos) << r.err;
  std::string big = text;
  const auto at = big.find("\"embedding\":\"") + 13;
  for (auto i = at; big[i] != '"' && big[i] != '='; ++i) big[i] = 'A';  // every float zero: no longer unit length
  write("big.jsonl", big);
  r = run("gallery import " + q(dir_ / "big.jsonl") + " --gallery " + q(dir_ / "h.db"));
  EXPECT_EQ(r.status, status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_NE(r.err.find("not 1"), std::string::npos) << r.err;
  EXPECT_EQ(json::parse(run("people list --json --gallery " + q(dir_ / "h.db")).out).size(), 0u);  // nothing imported
}

// 6. reindex with a cache folder it cannot write.
TEST_F(HardeningCli, ReindexFailsWhenItCannotWriteTheCache) {
  ASSERT_EQ(enrol("Tom").status, 0);
  fs::remove_all(gallery_.string() + ".cache");
  write("g.db.cache", "a file where the cache folder should be");
  const CliRun r = run("gallery reindex" + G());
  EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << r.out << r.err;
  EXPECT_EQ(r.out.find("reindexed"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("cache"), std::string::npos) << r.err;
}

// 7, 8, 9. Names: not UTF-8, blank, control characters, digits; one person named twice is removed once.
TEST_F(HardeningCli, NamesAreCheckedAndRemovalIsOneAnswer) {
  for (const std::string name : {std::string("Bad\xff name"), std::string("   "), std::string("a\x1b[31mred"),
                                 std::string("1")}) {
    const CliRun r = enrol(name);
    EXPECT_EQ(r.status, status(fk::ErrorCode::kInvalidArgument)) << name << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(gallery_));  // refused before the gallery was even created
  ASSERT_EQ(enrol("Powell").status, 0);
  CliRun r = run("people remove Powell Powell" + G());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("removed Powell"), std::string::npos);
  EXPECT_EQ(json::parse(run("people list --json" + G()).out).size(), 0u);
}

// 10, 11. Arguments outside their range, unknown models, a folder given as a video.
TEST_F(HardeningCli, HostileArgumentsAreExitThreeWithTheRange) {
  const std::string tom = q(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  const int invalid = status(fk::ErrorCode::kInvalidArgument);
  for (const std::string t : {"-1", "0", "nan", "inf", "2"}) {
    const CliRun r = run("verify " + tom + " " + tom + " --threshold " + t);
    EXPECT_EQ(r.status, invalid) << t << "\n" << r.err;
    EXPECT_NE(r.err.find("(0, 2)"), std::string::npos) << r.err;
  }
  for (const std::string a : {"--threshold nan", "--threshold inf", "--ef-search -1", "--ef-search 0"}) {
    const CliRun r = run("identify " + a + G() + " " + tom);
    EXPECT_EQ(r.status, invalid) << a << "\n" << r.err;
  }
  for (const std::string s : {"0", "33", "-32", "1048576"}) {
    const CliRun r = run("--detector blazeface-back --detect-size " + s + " detect " + tom);
    EXPECT_EQ(r.status, invalid) << s << "\n" << r.err;
    EXPECT_NE(r.err.find("[64, 2048]"), std::string::npos) << r.err;
  }
  CliRun r = run("people list --gallery ''");
  EXPECT_EQ(r.status, invalid) << r.err;
  r = run("--model no_such_model embed " + tom);
  EXPECT_EQ(r.status, invalid) << r.err;
  EXPECT_NE(r.err.find("dlib_resnet"), std::string::npos) << r.err;  // the known names are listed
  r = run("--detector no_such_detector detect " + tom);
  EXPECT_EQ(r.status, invalid) << r.err;
  r = run("--detector dlib_resnet detect " + tom);  // a model, but not a detector
  EXPECT_EQ(r.status, invalid) << r.err;
  r = run("liveness --video " + q(dir_));
  EXPECT_EQ(r.status, invalid) << r.err;
  EXPECT_NE(r.err.find("is a folder"), std::string::npos) << r.err;
  EXPECT_EQ(run("verify " + tom + " " + tom + " --threshold 0.6").status, 0);  // in range still works
}

// Encryption through the CLI: keygen, enrol, identify, no key = exit 11 with nothing overwritten, rekey.
TEST_F(HardeningCli, AnEncryptedGalleryWorksWithItsKeyAndFailsClearlyWithoutIt) {
  const fs::path key = dir_ / "gallery.key", key2 = dir_ / "new.key";
  ASSERT_EQ(run("gallery keygen " + q(key)).status, 0);
  ASSERT_EQ(run("gallery keygen " + q(key2)).status, 0);
  EXPECT_EQ(run("gallery keygen " + q(key)).status, status(fk::ErrorCode::kInvalidArgument));  // never overwritten
  ASSERT_EQ(enrol("Tom", "--key-file " + q(key)).status, 0);
  const std::string tom = q(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  CliRun r = run("identify --json --key-file " + q(key) + G() + " " + tom);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"][0]["faces"][0]["identity"], "Tom");
  r = run("identify --json" + G() + " " + tom, "FACEKIT_GALLERY_KEY_FILE=" + q(key));
  EXPECT_EQ(r.status, 0) << r.err;
  const std::string before = read_all(gallery_);
  for (const std::string cmd : {"identify" + G() + " " + tom, "people list" + G(), "gallery export " + q(dir_ / "x.jsonl") + G(),
                                "enroll --no-augment --name Other" + G() + " " + tom, "gallery stats" + G()}) {
    r = run(cmd);
    EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find("encrypted"), std::string::npos) << r.err;
  }
  r = run("people list --key-file " + q(key2) + G());
  EXPECT_EQ(r.status, status(fk::ErrorCode::kStorage)) << r.err;
  EXPECT_NE(r.err.find("wrong key"), std::string::npos) << r.err;
  EXPECT_EQ(read_all(gallery_), before);
  EXPECT_FALSE(fs::exists(dir_ / "x.jsonl"));
  fs::permissions(key, fs::perms::others_read, fs::perm_options::add);
  EXPECT_EQ(run("people list --key-file " + q(key) + G()).status, status(fk::ErrorCode::kInvalidArgument));
  fs::permissions(key, fs::perms::others_read, fs::perm_options::remove);
  r = run("gallery rekey --key-file " + q(key) + " --new-key-file " + q(key2) + G());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(run("people list --key-file " + q(key) + G()).status, status(fk::ErrorCode::kStorage));
  r = run("identify --json --key-file " + q(key2) + G() + " " + tom);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["images"][0]["faces"][0]["identity"], "Tom");
  r = run("gallery export " + q(dir_ / "sealed.jsonl") + " --key-file " + q(key2) + G());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(read_all(dir_ / "sealed.jsonl").find("\"embedding\":"), std::string::npos);  // only sealed ones
  EXPECT_NE(run("gallery import " + q(dir_ / "sealed.jsonl") + " --gallery " + q(dir_ / "h.db")).status, 0);
  EXPECT_EQ(run("gallery import " + q(dir_ / "sealed.jsonl") + " --export-key-file " + q(key2) + " --gallery " +
                q(dir_ / "h.db")).status, 0);
}
