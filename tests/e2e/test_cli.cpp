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
  ASSERT_EQ(e.size(), static_cast<size_t>(fk_test::shared_pipeline().embedder().dim()));  // the default embedder's
  double n = 0;
  for (double v : e) n += v * v;
  EXPECT_NEAR(n, 1.0, 1e-4);
}

// bench pairs and calibrate on a pair list of the package photos: each photo against a half-size copy of
// itself (same) and against other photos (different).
TEST(Cli, BenchBiasWithGivenAndEstimatedGroups) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("fk_bias_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // Six people in LFW's layout (Pn/Pn_0001.jpg the photo, Pn_0002.jpg a half-size copy); P0-P2 in one group,
  // P3-P5 in the other.
  std::ofstream csv((fs::create_directories(dir), dir / "pairs.csv"));
  std::ofstream groups(dir / "groups.csv");
  csv << "a,b,same\n";
  groups << "image,team\n";
  const char* names[] = {"Tom_Cruise_avp_2014_4.jpg", "2008_002470.jpg", "2009_004587.jpg", "2008_001009.jpg",
                         "2007_007763.jpg", "2008_007676.jpg"};
  for (int i = 0; i < 6; ++i) {
    const std::string who = "P" + std::to_string(i);
    fs::create_directories(dir / who);
    const cv::Mat img = cv::imread((fk_test::kDlibFaces / names[i]).string());
    cv::Mat half;
    cv::resize(img, half, {img.cols / 2, img.rows / 2}, 0, 0, cv::INTER_AREA);
    cv::imwrite((dir / who / (who + "_0001.jpg")).string(), img);
    cv::imwrite((dir / who / (who + "_0002.jpg")).string(), half);
    csv << who << "/" << who << "_0001.jpg," << who << "/" << who << "_0002.jpg,1\n";
    const std::string next = "P" + std::to_string((i + 1) % 6);
    csv << who << "/" << who << "_0001.jpg," << next << "/" << next << "_0002.jpg,0\n";
    groups << who << "," << (i < 3 ? "red" : "blue") << "\n";
  }
  csv.close();
  groups.close();
  const auto p = [&](const char* f) { return fk_test::quoted(dir / f); };
  const auto r = fk_test::run_cli("bench bias --pairs " + p("pairs.csv") + " --groups " + p("groups.csv") +
                                  " --all-pairs --target-fmr 0.05 --json " + p("r.json") + " --html " + p("report"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(std::ifstream(dir / "r.json"));
  EXPECT_FALSE(j["groups_estimated"].get<bool>());
  ASSERT_EQ(j["attributes"].size(), 1u);
  const auto& a = j["attributes"][0];
  EXPECT_EQ(a["attribute"], "team");
  // 12 photos: 66 pairs, 6 genuine; within a group 15 pairs, 3 genuine, 12 impostors; 36 across.
  EXPECT_EQ(a["fmr"]["pairs"], 60);
  EXPECT_EQ(a["fnmr"]["pairs"], 6);
  ASSERT_EQ(a["groups"].size(), 2u);
  for (const auto& g : a["groups"]) {
    EXPECT_EQ(g["fmr"]["pairs"], 12);
    EXPECT_EQ(g["fnmr"]["pairs"], 3);
  }
  EXPECT_EQ(a["cross_group_impostors"][0]["fmr"]["pairs"], 36);
  EXPECT_FALSE(cv::imread((dir / "report" / "team.png").string()).empty());
  std::ifstream html(dir / "report" / "index.html");
  const std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  EXPECT_NE(page.find("team.png"), std::string::npos);
  EXPECT_EQ(page.find("are estimates"), std::string::npos);  // given groups are not called estimates

  // Estimated groups: said to be estimates, with the model's reliability, and written out for correction.
  const auto e = fk_test::run_cli("bench bias --pairs " + p("pairs.csv") + " --estimate-groups --json " + p("e.json") +
                                  " --html " + p("est") + " --write-groups " + p("est.csv"));
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.out.find("ESTIMATED"), std::string::npos) << e.out;
  const auto ej = nlohmann::json::parse(std::ifstream(dir / "e.json"));
  EXPECT_TRUE(ej["groups_estimated"].get<bool>());
  ASSERT_EQ(ej["reliability"].size(), 3u);
  ASSERT_EQ(ej["attributes"].size(), 3u);  // gender, group, age
  for (const auto& r : ej["reliability"]) EXPECT_EQ(r["photos"], 12);  // every person has two photos
  std::ifstream est_page(dir / "est" / "index.html");
  const std::string page2((std::istreambuf_iterator<char>(est_page)), std::istreambuf_iterator<char>());
  EXPECT_NE(page2.find("are estimates"), std::string::npos);
  const auto back = fk_test::run_cli("bench bias --pairs " + p("pairs.csv") + " --groups " + p("est.csv"));
  EXPECT_EQ(back.status, 0) << back.err;

  // Both or neither source of groups is refused; a malformed groups file names its line.
  EXPECT_EQ(fk_test::run_cli("bench bias --pairs " + p("pairs.csv")).status, 3);
  std::ofstream(dir / "bad.csv") << "image,team\nP0,red,extra\n";
  const auto bad = fk_test::run_cli("bench bias --pairs " + p("pairs.csv") + " --groups " + p("bad.csv"));
  EXPECT_EQ(bad.status, 3);
  EXPECT_NE(bad.err.find("bad.csv:2:"), std::string::npos) << bad.err;
  fs::remove_all(dir);
}

TEST(Cli, DetectEstimatesAttributesWhenAsked) {
  const auto r = fk_test::run_cli("detect --attributes --json " + fk_test::quoted(fk_test::kDlibFaces / "Tom_Cruise_avp_2014_4.jpg"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j[0]["faces"].size(), 1u);
  const auto& a = j[0]["faces"][0]["attributes"];
  EXPECT_EQ(a["model"], "attributes");
  EXPECT_TRUE(a["estimated"].get<bool>());
  EXPECT_EQ(a["gender"], "male");
  EXPECT_GT(a["probabilities"]["gender"]["male"].get<double>(), 0.5);
  double sum = 0;
  for (const auto& [k, v] : a["probabilities"]["group"].items()) sum += v.get<double>();
  EXPECT_NEAR(sum, 1.0, 1e-3);
  EXPECT_GT(a["age"].get<double>(), 15);
  EXPECT_LT(a["age"].get<double>(), 65);
  // Without the flag there are none; an unknown model is refused.
  const auto plain = nlohmann::json::parse(fk_test::run_cli("detect --json " + fk_test::quoted(fk_test::kDlibFaces / "Tom_Cruise_avp_2014_4.jpg")).out);
  EXPECT_FALSE(plain[0]["faces"][0].contains("attributes"));
  EXPECT_NE(fk_test::run_cli("detect --attributes --attribute-model nosuch " +
                             fk_test::quoted(fk_test::kDlibFaces / "Tom_Cruise_avp_2014_4.jpg")).status, 0);
}

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
