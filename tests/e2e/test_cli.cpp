// End-to-end tier: the facekit binary as a user runs it, on real photos and on bad input.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "cli_helpers.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

using facekit::test::CliRun;
using facekit::test::run;

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
