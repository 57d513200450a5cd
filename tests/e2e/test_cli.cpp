// End-to-end tier: the facekit binary as a user runs it, on real photos and on bad input.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli_run.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

using fk_test::CliRun;
CliRun run(const std::string& args, const std::string& env = "") { return fk_test::run_cli(args, env); }

const fs::path kFaces = "/usr/share/doc/libdlib19.1/examples/faces";
const fs::path kDemo = fs::path(FACEKIT_TEST_DATA) / ".." / ".." / "models" / "face-api" / "demo";

class BadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fk_bad_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return dir_ / name;
  }
  fs::path dir_;
};

std::string valid_jpeg() {
  cv::Mat img(64, 64, CV_8UC3, cv::Scalar(30, 90, 200));
  std::vector<uchar> buf;
  cv::imencode(".jpg", img, buf);
  return {buf.begin(), buf.end()};
}

}  // namespace

TEST_F(BadFiles, CorruptJpegIsAClearErrorNotACrash) {
  std::string j = valid_jpeg();
  const auto f = write("corrupt.jpg", j.substr(0, 180));  // header, then nothing
  const CliRun r = run("detect " + f.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage)) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos);
  EXPECT_NE(r.err.find("corrupt.jpg"), std::string::npos);
}

TEST_F(BadFiles, TextFileIsRejected) {
  const auto f = write("notes.jpg", "this is not an image\n");
  const CliRun r = run("verify " + f.string() + " " + f.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage));
  EXPECT_NE(r.err.find("not a supported image"), std::string::npos) << r.err;
}

TEST_F(BadFiles, EmptyFileIsRejected) {
  const auto f = write("empty.png", "");
  const CliRun r = run("embed " + f.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage));
  EXPECT_NE(r.err.find("empty"), std::string::npos) << r.err;
}

TEST_F(BadFiles, HugeHeaderIsRejectedBeforeDecoding) {
  // A PNG whose IHDR claims 30000 x 30000 and holds no pixel data.
  std::string png = "\x89PNG\r\n\x1a\n";
  png += std::string("\0\0\0\x0dIHDR", 8);
  png += std::string("\0\0\x75\x30\0\0\x75\x30\x08\x02\0\0\0", 13);
  png += std::string("\0\0\0\0", 4);  // CRC is not checked before the size limit
  const auto f = write("bomb.png", png);
  const CliRun r = run("detect " + f.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kImageTooLarge)) << r.err;
  EXPECT_NE(r.err.find("30000"), std::string::npos) << r.err;
}

TEST_F(BadFiles, MissingFileAndUsageErrors) {
  EXPECT_EQ(run("detect " + (dir_ / "nope.jpg").string()).status, fk::exit_status(fk::ErrorCode::kNotFound));
  EXPECT_EQ(run("frobnicate").status, 2);
  EXPECT_EQ(run("verify onlyone.jpg").status, 2);
}

TEST_F(BadFiles, PhotoWithoutAFaceSaysSo) {
  cv::Mat grey(240, 320, CV_8UC3, cv::Scalar::all(128));
  fk::save_image(dir_ / "grey.png", grey);
  const CliRun r = run("verify " + (dir_ / "grey.png").string() + " " + (dir_ / "grey.png").string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNoFace)) << r.err;
  EXPECT_NE(r.err.find("no face"), std::string::npos);
}

TEST_F(BadFiles, MissingModelNamesTheSetupCommand) {
  const CliRun r = run("detect " + (kFaces / "2008_001009.jpg").string(), "FACEKIT_MODELS=" + dir_.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kModelMissing)) << r.err;
  EXPECT_NE(r.err.find("scripts/setup"), std::string::npos) << r.err;
}

TEST(Cli, DetectJsonAndDraw) {
  const fs::path out = fs::temp_directory_path() / ("fk_draw_" + std::to_string(::getpid()) + ".jpg");
  const CliRun r = run("detect --json --draw " + out.string() + " " + (kFaces / "bald_guys.jpg").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_GE(j[0]["faces"].size(), 20u);  // the TF.js reference finds 23
  EXPECT_EQ(j[0]["faces"][0]["landmarks68"].size(), 68u);
  EXPECT_EQ(j[0]["faces"][0]["landmarks5"].size(), 5u);
  const fk::Image drawn = fk::load_image(out);
  EXPECT_EQ(drawn.cols, j[0]["width"].get<int>());
  fs::remove(out);
}

TEST(Cli, VerifyJsonSamePhotoAndDifferentPeople) {
  // sample1.jpg holds three different people; the same photo twice is the same person.
  const auto s1 = (kDemo / "sample1.jpg").string();
  CliRun r = run("verify --json " + s1 + " " + s1);
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["same"].get<bool>());
  EXPECT_LT(j["distance"].get<double>(), 1e-4);
  EXPECT_GT(j["threshold"].get<double>(), 0.0);
  r = run("verify --json " + (kFaces / "Tom_Cruise_avp_2014_4.jpg").string() + " " + s1);
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["same"].get<bool>());
  EXPECT_GT(j["distance"].get<double>(), j["threshold"].get<double>());
}

TEST(Cli, EmbedJsonIsUnitLength) {
  const CliRun r = run("embed --json " + (kFaces / "Tom_Cruise_avp_2014_4.jpg").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j[0]["faces"].size(), 1u);
  const auto e = j[0]["faces"][0]["embedding"].get<std::vector<double>>();
  ASSERT_EQ(e.size(), 128u);
  double n = 0;
  for (double v : e) n += v * v;
  EXPECT_NEAR(n, 1.0, 1e-4);
}

// bench pairs and calibrate on a pair list of the package photos: each photo against a half-size copy of
// itself (same) and against other photos (different).
TEST(Cli, BenchPairsAndCalibrateOnACsvList) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("fk_pairs_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<fs::path> photos;
  for (const char* n : {"Tom_Cruise_avp_2014_4.jpg", "2008_002470.jpg", "2009_004587.jpg", "2008_001009.jpg",
                        "2007_007763.jpg", "2008_007676.jpg"})
    photos.push_back(fk_test::kDlibFaces / n);
  std::ofstream csv(dir / "pairs.csv");
  csv << "a,b,same\n";
  for (size_t i = 0; i < photos.size(); ++i) {
    const cv::Mat img = cv::imread(photos[i].string());
    cv::Mat half;
    cv::resize(img, half, {img.cols / 2, img.rows / 2}, 0, 0, cv::INTER_AREA);
    const std::string copy = "copy" + std::to_string(i) + ".jpg";
    cv::imwrite((dir / copy).string(), half);
    csv << photos[i].string() << "," << copy << ",1\n";
    csv << photos[i].string() << "," << photos[(i + 1) % photos.size()].string() << ",0\n";
  }
  csv.close();
  const auto p = [&](const char* f) { return fk_test::quoted(dir / f); };
  const auto r = fk_test::run_cli("bench pairs --pairs " + p("pairs.csv") + " --folds 2 --json " + p("r.json") +
                                  " --scores " + p("s.csv") + " --plot " + p("roc.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("TAR@FAR=1e-01   -"), std::string::npos) << r.out;  // 6 impostors cannot resolve 1e-1
  const auto j = nlohmann::json::parse(std::ifstream(dir / "r.json"));
  EXPECT_EQ(j["pairs"], 12);
  EXPECT_EQ(j["folds"].size(), 2u);
  EXPECT_GT(j["auc"].get<double>(), 0.9);
  ASSERT_EQ(j["tar_at_far"].size(), 5u);
  EXPECT_EQ(j["tar_at_far"][0]["impostors"], 6);
  EXPECT_FALSE(j["tar_at_far"][0]["supported"].get<bool>());
  EXPECT_TRUE(j.contains("calibration"));  // the dlib ResNet's manifest has a map
  std::ifstream scores(dir / "s.csv");
  int rows = 0;
  for (std::string line; std::getline(scores, line);) ++rows;
  EXPECT_EQ(rows, 13);
  EXPECT_FALSE(cv::imread((dir / "roc.png").string()).empty());
  // An earlier run overlaid on the plot.
  const auto again = fk_test::run_cli("--no-flip bench pairs --pairs " + p("pairs.csv") + " --folds 2 --plot " +
                                      p("roc2.png") + " --compare " + p("s.csv") + "=flip");
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_FALSE(cv::imread((dir / "roc2.png").string()).empty());

  const auto cal = fk_test::run_cli("calibrate --pairs " + p("pairs.csv") + " --out " + p("cal.json"));
  ASSERT_EQ(cal.status, 0) << cal.err;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir / "cal.json"))["calibration"]["method"], "platt");
  const auto v = fk_test::run_cli("--calibration " + p("cal.json") + " verify --json " +
                                  fk_test::quoted(photos[0]) + " " + p("copy0.jpg"));
  ASSERT_EQ(v.status, 0) << v.err;
  const auto vj = nlohmann::json::parse(v.out);
  EXPECT_GT(vj["probability"].get<double>(), 0.5);

  // A malformed line is refused with its number; a bad calibration file too.
  std::ofstream(dir / "bad.csv") << "a.jpg,b.jpg,1\na.jpg,b.jpg,perhaps\n";
  const auto bad = fk_test::run_cli("bench pairs --pairs " + p("bad.csv"));
  EXPECT_EQ(bad.status, 3);
  EXPECT_NE(bad.err.find("bad.csv:2:"), std::string::npos) << bad.err;
  std::ofstream(dir / "badcal.json") << "{\"calibration\": {\"method\": \"platt\", \"a\": 1}}";
  EXPECT_EQ(fk_test::run_cli("--calibration " + p("badcal.json") + " verify " + fk_test::quoted(photos[0]) + " " +
                             fk_test::quoted(photos[0])).status,
            3);
  fs::remove_all(dir);
}
