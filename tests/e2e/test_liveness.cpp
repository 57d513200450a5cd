// End-to-end tier for active liveness: synthetic videos built from a real photo (Debian libdlib19.1's Tom
// Cruise), written as MJPG .avi files or folders of JPEGs and read back through OpenCV, the real detector
// and landmarker; the `facekit liveness` command on them; unreadable input.
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/liveness.hpp"
#include "facekit/pipeline.hpp"
#include "cli_run.hpp"
#include "synthetic_video.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kFaces = fk_test::kDlibFaces, kLfw = fk_test::kLfwDir;
constexpr double kFps = 15;
using fk_test::run_cli;

const fk::FacePipeline& pipeline() { return fk_test::shared_pipeline(); }

// Tom Cruise at half size (280x400, the face about 220 px wide) and its landmarks.
struct Base {
  fk::Image img;
  fk::Landmarks68 pts;
};
const Base& tom() {
  static const Base b = [] {
    Base out;
    fk::Image full = fk::load_image(kFaces / "Tom_Cruise_avp_2014_4.jpg"), half;
    cv::resize(full, half, cv::Size(), 0.5, 0.5, cv::INTER_AREA);
    out.img = half(cv::Rect(0, 0, 280, 400)).clone();
    out.pts = *pipeline().detect_one(out.img, fk::FacePick::kLargest).landmarks;
    return out;
  }();
  return b;
}

std::vector<fk::Image> repeat(const fk::Image& img, int n) { return std::vector<fk::Image>(static_cast<size_t>(n), img); }

void append(std::vector<fk::Image>& a, const std::vector<fk::Image>& b) { a.insert(a.end(), b.begin(), b.end()); }

// A turn out to `shift` px and back: ramp up over 4 frames, hold 6, ramp down over 4.
std::vector<fk::Image> turn(float shift) {
  std::vector<fk::Image> f;
  for (int i = 1; i <= 4; ++i) f.push_back(fk_test::turn_head(tom().img, tom().pts, shift * i / 4));
  append(f, repeat(fk_test::turn_head(tom().img, tom().pts, shift), 6));
  for (int i = 3; i >= 1; --i) f.push_back(fk_test::turn_head(tom().img, tom().pts, shift * i / 4));
  f.push_back(tom().img);
  return f;
}

std::string timeline(const fk::ActiveLivenessResult& r) {
  std::ostringstream s;
  s << "state " << fk::to_string(r.state) << ", EAR baseline " << r.ear_baseline << ", yaw baseline "
    << r.yaw_baseline << "\n";
  for (const auto& x : r.reasons) s << "  " << x << "\n";
  for (const auto& f : r.frames)
    s << "  #" << f.index << " track " << f.track << " ear " << f.ear << " yaw " << f.pose.yaw << "\n";
  return s.str();
}

class ActiveLiveness : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_live");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes the frames as a video and checks it with `challenges` ("" for none).
  fk::ActiveLivenessResult check(const std::vector<fk::Image>& frames, const std::string& challenges) {
    const fs::path v = dir_ / "clip.avi";
    if (!fs::exists(v) || frames.size() != written_) {
      fk_test::write_video(v, frames, kFps);
      written_ = frames.size();
    }
    fk::ActiveLivenessOptions o;
    if (!challenges.empty()) o.challenges = fk::parse_challenges(challenges);
    auto src = fk::open_video(v);
    EXPECT_NEAR(src->fps(), kFps, 1e-6);
    return fk::check_active_liveness(*src, pipeline(), o);
  }
  fs::path dir_;
  size_t written_ = 0;
};

}  // namespace

TEST_F(ActiveLiveness, AStillPhotoPassesNoChallenge) {
  // 6 s of one photo, held perfectly still, then as a hand would hold a print: moved by up to 3 px and
  // scaled by up to 2% from frame to frame (the landmarks then jitter as they would on a real print).
  std::vector<fk::Image> held = repeat(tom().img, 90);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> dx(-3, 3), ds(0.98, 1.02);
  std::vector<fk::Image> shaken;
  for (int i = 0; i < 90; ++i) {
    cv::Mat m = cv::getRotationMatrix2D(cv::Point2f(140, 200), 0, ds(rng));
    m.at<double>(0, 2) += dx(rng), m.at<double>(1, 2) += dx(rng);
    fk::Image f;
    cv::warpAffine(tom().img, f, m, tom().img.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT);
    shaken.push_back(f);
  }
  for (const auto* frames : {&held, &shaken}) {
    written_ = 0;
    for (const char* c : {"blink", "left", "right"}) {
      const auto r = check(*frames, c);
      EXPECT_NE(r.state, fk::LivenessState::kLive) << c << "\n" << timeline(r);
      ASSERT_EQ(r.challenges.size(), 1u);
      EXPECT_FALSE(r.challenges[0].passed) << c;
      EXPECT_EQ(r.frames_with_face, 90);
    }
    const auto r = check(*frames, "");
    EXPECT_TRUE(r.events.empty()) << timeline(r);
    EXPECT_EQ(r.state, fk::LivenessState::kSpoof) << timeline(r);
  }
}

TEST_F(ActiveLiveness, ASyntheticHeadTurnPassesTheChallengeOfItsSideInOrder) {
  std::vector<fk::Image> f = repeat(tom().img, 10);
  append(f, turn(90));  // frames 10-23: the middle of the face pushed 90 px towards the image's right
  append(f, repeat(tom().img, 6));
  append(f, turn(-90));  // frames 30-43
  append(f, repeat(tom().img, 6));
  auto r = check(f, "left,right");
  EXPECT_EQ(r.state, fk::LivenessState::kLive) << timeline(r);
  ASSERT_EQ(r.challenges.size(), 2u);
  EXPECT_TRUE(r.challenges[0].passed);
  EXPECT_GE(r.challenges[0].first_frame, 10);
  EXPECT_LE(r.challenges[0].last_frame, 23);
  EXPECT_TRUE(r.challenges[1].passed);
  EXPECT_GE(r.challenges[1].first_frame, 30);
  r = check(f, "right,left");  // the left turn came first
  EXPECT_EQ(r.state, fk::LivenessState::kSpoof) << timeline(r);
  EXPECT_TRUE(r.challenges[0].passed);
  EXPECT_FALSE(r.challenges[1].passed);
  r = check(f, "blink");
  EXPECT_EQ(r.state, fk::LivenessState::kSpoof) << timeline(r);
}

// Real closed eyes and real head turns: LFW photos of Atal Bihari Vajpayee (0005: eyes open, about frontal;
// 0007: eyes shut, the lowest eye aspect ratio of 2,000 LFW faces; 0002 and 0013: turned about 20 and 38
// degrees either way), each moved onto 0005's face so that they follow one another as frames of one video.
TEST_F(ActiveLiveness, RealClosedEyeAndTurnedPhotosSplicedIntoAVideoPassBlinkLeftRight) {
  const fs::path d = kLfw / "Atal_Bihari_Vajpayee";
  if (!fs::exists(d / "Atal_Bihari_Vajpayee_0005.jpg")) GTEST_SKIP() << "LFW not present at " << kLfw;
  auto face = [&](int k) {
    char name[64];
    std::snprintf(name, sizeof name, "Atal_Bihari_Vajpayee_%04d.jpg", k);
    const fk::Image img = fk::load_image(d / name);
    return std::make_pair(img, *pipeline().detect_one(img, fk::FacePick::kNearestCenter).landmarks);
  };
  const auto open = face(5), shut = face(7), right = face(2), left = face(13);
  auto like_open = [&](const std::pair<fk::Image, fk::Landmarks68>& p) {
    return fk_test::place_like(p.first, p.second, open.second, open.first.size());
  };
  std::vector<fk::Image> f = repeat(open.first, 12);
  append(f, repeat(like_open(shut), 2));    // frames 12-13: a blink
  append(f, repeat(open.first, 10));
  append(f, repeat(like_open(left), 4));    // frames 24-27: turned to the subject's left
  append(f, repeat(open.first, 8));
  append(f, repeat(like_open(right), 4));   // frames 36-39: to the right
  append(f, repeat(open.first, 8));
  const auto r = check(f, "blink,left,right");
  EXPECT_EQ(r.state, fk::LivenessState::kLive) << timeline(r);
  ASSERT_EQ(r.challenges.size(), 3u);
  EXPECT_EQ(r.challenges[0].first_frame, 12);
  EXPECT_EQ(r.challenges[0].last_frame, 13);
  EXPECT_EQ(r.challenges[1].first_frame, 24);
  EXPECT_EQ(r.challenges[2].first_frame, 36);
  EXPECT_EQ(check(f, "right,left").state, fk::LivenessState::kSpoof);
}

// The CLI on a folder of frames and on a video; unreadable input is a clear error with its exit status.

TEST_F(ActiveLiveness, CliReadsAFolderOfFramesAndAVideoAndGivesTheEvidence) {
  std::vector<fk::Image> f = repeat(tom().img, 8);
  append(f, turn(90));  // frames 8-21
  append(f, repeat(tom().img, 4));
  const fs::path frames = dir_ / "frames";
  fs::create_directories(frames);
  for (size_t i = 0; i < f.size(); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "f%03zu.jpg", i);
    fk::save_image(frames / name, f[i]);
  }
  // --no-passive: the passive checker rightly scores the warped frames as fakes (checked below); this part is
  // about the challenge.
  fk_test::CliRun r =
      run_cli("liveness --frames '" + frames.string() + "' --fps 15 --challenge left --json --timeline --no-passive");
  ASSERT_EQ(r.status, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["state"], "live") << r.out;
  EXPECT_EQ(j["frames"], f.size());
  EXPECT_EQ(j["timeline"].size(), f.size());
  ASSERT_EQ(j["challenges"].size(), 1u);
  EXPECT_EQ(j["challenges"][0]["challenge"], "left");
  EXPECT_TRUE(j["challenges"][0]["passed"].get<bool>());
  EXPECT_GE(j["challenges"][0]["first_frame"].get<int>(), 8);

  // The same clip as a video, asked for the other side: not done.
  fk_test::write_video(dir_ / "clip.avi", f, kFps);
  r = run_cli("liveness --video '" + (dir_ / "clip.avi").string() + "' --challenge right --json --no-passive");
  ASSERT_EQ(r.status, 0) << r.err;
  j = json::parse(r.out);
  EXPECT_EQ(j["state"], "spoof") << r.out;
  EXPECT_FALSE(j["challenges"][0]["passed"].get<bool>());
  EXPECT_NEAR(j["fps"].get<double>(), kFps, 1e-6);
  EXPECT_TRUE(j["passive"].is_null());

  // With the passive checker (the default): every frame is scored, and a mean below the checker's threshold
  // makes the verdict spoof whatever the challenge says.
  r = run_cli("liveness --video '" + (dir_ / "clip.avi").string() + "' --challenge left --json --timeline");
  ASSERT_EQ(r.status, 0) << r.err;
  j = json::parse(r.out);
  ASSERT_TRUE(j["passive"].is_object()) << r.out;
  EXPECT_EQ(j["passive"]["checker"], "spoof-combined");
  double sum = 0;
  for (const auto& fr : j["timeline"]) {
    ASSERT_TRUE(fr["passive"].is_number()) << fr;
    EXPECT_GE(fr["passive"].get<double>(), 0.0);
    EXPECT_LE(fr["passive"].get<double>(), 1.0);
    sum += fr["passive"].get<double>();
  }
  const double mean = sum / static_cast<double>(j["timeline"].size());
  EXPECT_NEAR(j["passive_mean"].get<double>(), mean, 1e-4);
  EXPECT_TRUE(j["challenges"][0]["passed"].get<bool>());
  EXPECT_EQ(j["state"], mean >= j["passive"]["threshold"].get<double>() ? "live" : "spoof") << r.out;
}

TEST_F(ActiveLiveness, OtherContainersAndCodecsRead) {
  // MPEG-4 part 2 in .mp4 and in .mkv (OpenCV's FFmpeg back end writes both): every frame comes back, with
  // the face, at the written rate.
  for (const char* name : {"clip.mp4", "clip.mkv"}) {
    const fs::path v = dir_ / name;
    try {
      fk_test::write_video(v, repeat(tom().img, 12), kFps, cv::VideoWriter::fourcc('m', 'p', '4', 'v'));
    } catch (const fk::Error&) {
      GTEST_SKIP() << "this OpenCV cannot write " << name;
    }
    auto src = fk::open_video(v);
    EXPECT_NEAR(src->fps(), kFps, 0.01) << name;
    const auto r = fk::check_active_liveness(*src, pipeline(), {});
    EXPECT_EQ(r.frames.size(), 12u) << name;
    EXPECT_EQ(r.frames_with_face, 12) << name;
  }
}

TEST_F(ActiveLiveness, UnreadableVideoOrFramesAreClearErrors) {
  std::ofstream(dir_ / "junk.avi") << "RIFF....AVI this is not a video at all";
  try {
    fk::open_video(dir_ / "junk.avi");
    ADD_FAILURE() << "a junk file opened as a video";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kBadImage);
    EXPECT_NE(std::string(e.what()).find("junk.avi"), std::string::npos) << e.what();
  }
  // A real video cut short after its header: opens, but no frame decodes (or fewer frames; never a crash).
  fk_test::write_video(dir_ / "ok.avi", repeat(tom().img, 10), kFps);
  {
    std::ifstream in(dir_ / "ok.avi", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(dir_ / "cut.avi", std::ios::binary) << bytes.substr(0, 300);
  }
  EXPECT_THROW(fk::open_video(dir_ / "cut.avi"), fk::Error);
  EXPECT_THROW(fk::open_video(dir_ / "missing.avi"), fk::Error);
  fs::create_directories(dir_ / "empty");
  EXPECT_THROW(fk::open_frames(dir_ / "empty"), fk::Error);
  fs::create_directories(dir_ / "bad");
  std::ofstream(dir_ / "bad" / "f000.jpg") << "\xff\xd8\xff\xe0 not really a jpeg";

  fk_test::CliRun r = run_cli("liveness --video '" + (dir_ / "junk.avi").string() + "'");
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage)) << r.err;
  EXPECT_NE(r.err.find("not a video"), std::string::npos) << r.err;
  r = run_cli("liveness --video '" + (dir_ / "missing.avi").string() + "'");
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNotFound)) << r.err;
  r = run_cli("liveness --frames '" + (dir_ / "bad").string() + "'");
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage)) << r.err;
  EXPECT_NE(r.err.find("f000.jpg"), std::string::npos) << r.err;
  r = run_cli("liveness --frames '" + (dir_ / "empty").string() + "'");
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage)) << r.err;
  r = run_cli("liveness --video '" + (dir_ / "ok.avi").string() + "' --challenge blink,nod");
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
  r = run_cli("liveness");
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
}
