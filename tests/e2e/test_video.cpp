// End-to-end tier for video analysis: a clip built from two actors' real photos (Debian libdlib19.1's
// bald_guys cut-outs, actors.hpp) moving across a 640x480 canvas, one actor enrolled from other photos of
// him; the library's VideoAnalyzer and `facekit video` on it; unreadable videos refused with a clear error.
#include <fstream>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/video.hpp"
#include "actors.hpp"
#include "cli_run.hpp"
#include "synthetic_video.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kFrames = 40;
constexpr double kFps = 25;

// A photo scaled to `width` pixels wide, pasted with its top-left at (x, y) (clipped at the canvas edges).
void paste(fk::Image& canvas, const fk::Image& photo, int width, int x, int y) {
  fk::Image s;
  cv::resize(photo, s, cv::Size(width, photo.rows * width / photo.cols), 0, 0, cv::INTER_AREA);
  const cv::Rect dst = cv::Rect(x, y, s.cols, s.rows) & cv::Rect(0, 0, canvas.cols, canvas.rows);
  if (dst.area() > 0) s(cv::Rect(dst.x - x, dst.y - y, dst.width, dst.height)).copyTo(canvas(dst));
}

// Actor A walks left to right in the top half, actor B right to left in the bottom half.
std::vector<fk::Image> clip(const fk::Image& a, const fk::Image& b) {
  std::vector<fk::Image> frames;
  for (int f = 0; f < kFrames; ++f) {
    fk::Image canvas(480, 640, CV_8UC3, cv::Scalar(90, 100, 110));
    paste(canvas, a, 150, 20 + 8 * f, 20);
    paste(canvas, b, 150, 470 - 8 * f, 260);
    frames.push_back(canvas);
  }
  return frames;
}

class Video : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_video");
    const auto& groups = fk_test::actors().groups;
    ASSERT_GE(groups.size(), 2u);
    ASSERT_GE(groups[0].size(), 3u);
    // The clip shows photo 0 of actor A; A is enrolled from his other photos.
    a_ = fk::load_image(groups[0][0]);
    b_ = fk::load_image(groups[1][0]);
    gallery_ = dir_ / "gallery.db";
    fk::EngineOptions o;
    o.gallery = gallery_;
    fk::Engine engine(o);
    std::vector<fk::EnrollPhoto> photos;
    for (size_t i = 1; i < groups[0].size(); ++i) photos.push_back({groups[0][i], {}, {}, {}});
    engine.enroll("actor_a", photos);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_, gallery_;
  fk::Image a_, b_;
};

TEST_F(Video, EnrolledActorIsNamedAndTheOtherIsUnknown) {
  fk::EngineOptions o;
  o.gallery = gallery_;
  o.gallery_options.create = false;
  fk::Engine engine(o);
  fk::VideoAnalyzer video(engine);
  int with_two = 0;
  const auto frames = clip(a_, b_);
  for (size_t i = 0; i < frames.size(); ++i)
    with_two += video.push(frames[i], static_cast<double>(i) / kFps).tracks.size() == 2;
  EXPECT_GE(with_two, kFrames - 2) << "both faces should be followed in (nearly) every frame";
  const std::vector<fk::Track> tracks = video.finish();
  ASSERT_EQ(tracks.size(), 2u);
  for (const auto& t : tracks) {
    const bool top = t.boxes.front().y < 240;  // A is in the top half
    EXPECT_EQ(t.first_frame, 0);
    EXPECT_GE(t.last_frame, kFrames - 2);
    EXPECT_GE(t.faces_aggregated, 1);
    EXPECT_FALSE(t.best_crop.empty());
    if (top) {
      EXPECT_TRUE(t.known) << "best candidate " << t.best_candidate << " score " << t.score;
      EXPECT_EQ(t.name, "actor_a");
    } else {
      EXPECT_FALSE(t.known) << "B was named " << t.name;
      EXPECT_EQ(t.name, "");
    }
  }
  const fk::VideoTimes& tm = video.times();
  EXPECT_EQ(tm.frames, kFrames);
  EXPECT_EQ(tm.detection_frames, (kFrames + video.options().detect_every - 1) / video.options().detect_every);
  // Embeddings on detection frames only, and at most best_faces a track plus the ones replaced: far fewer
  // than one per face per frame.
  EXPECT_LT(tm.embeddings, kFrames);
}

TEST_F(Video, LivenessPerTrackWhenAsked) {
  fk::EngineOptions o;
  o.gallery = gallery_;
  o.gallery_options.create = false;
  fk::Engine engine(o);
  fk::VideoOptions vo;
  vo.liveness = true;
  fk::VideoAnalyzer video(engine, vo);
  const auto frames = clip(a_, b_);
  for (size_t i = 0; i < frames.size(); ++i) video.push(frames[i], static_cast<double>(i) / kFps);
  const auto tracks = video.finish();
  ASSERT_EQ(tracks.size(), 2u);
  for (const auto& t : tracks) {
    ASSERT_TRUE(t.liveness.has_value());
    EXPECT_GE(*t.liveness, 0.f);
    EXPECT_LE(*t.liveness, 1.f);
    ASSERT_TRUE(t.liveness_state.has_value());
  }
  EXPECT_GT(video.times().liveness_ms, 0);
}

TEST_F(Video, CliWritesTracksAnnotatedVideoAndCrops) {
  const fs::path in = dir_ / "clip.avi", out = dir_ / "annotated.mp4", js = dir_ / "tracks.json",
                 crops = dir_ / "crops";
  fk_test::write_video(in, clip(a_, b_), kFps);
  const auto r = fk_test::run_cli("video " + fk_test::quoted(in) + " --gallery " + fk_test::quoted(gallery_) +
                                  " --out " + fk_test::quoted(out) + " --json " + fk_test::quoted(js) + " --crops " +
                                  fk_test::quoted(crops));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("frames/s"), std::string::npos) << r.err;
  const json j = json::parse(fk_test::slurp(js));
  EXPECT_EQ(j["frames"], kFrames);
  ASSERT_EQ(j["tracks"].size(), 2u);
  std::vector<std::string> names;
  for (const auto& t : j["tracks"]) {
    names.push_back(t["identity"]);
    EXPECT_TRUE(fs::exists(t["best_crop"].get<std::string>()));
    EXPECT_GE(t["boxes"].size(), static_cast<size_t>(kFrames - 2));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"actor_a", "unknown"}));
  EXPECT_NE(r.out.find("actor_a"), std::string::npos);
  // The annotated video reads back with every frame.
  auto src = fk::open_video(out);
  fk::Image f;
  double t = 0;
  int n = 0;
  while (src->next(f, t)) ++n;
  EXPECT_EQ(n, kFrames);
  EXPECT_EQ(f.cols, 640);
}

TEST_F(Video, CliRefusesUnreadableVideosWithAClearError) {
  const fs::path good = dir_ / "good.avi";
  fk_test::write_video(good, clip(a_, b_), kFps);
  const std::string bytes = fk_test::slurp(good);
  const auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return dir_ / name;
  };
  std::mt19937 rng(7);
  std::string noise(200000, '\0');
  for (auto& ch : noise) ch = static_cast<char>(rng());
  const struct {
    fs::path file;
    const char* says;
  } cases[] = {
      {write("empty.avi", ""), "empty"},
      {write("noise.mp4", noise), "not a video"},
      {write("truncated.avi", bytes.substr(0, bytes.size() / 2)), "truncated"},
      {dir_ / "missing.avi", "no such"},
  };
  for (const auto& c : cases) {
    const auto r = fk_test::run_cli("video " + fk_test::quoted(c.file) + " --quiet");
    EXPECT_NE(r.status, 0) << c.file;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.file << ": " << r.err;
    EXPECT_NE(r.err.find(c.file.filename().string()), std::string::npos) << r.err;
  }
  // A stream that does not answer, a camera that is not there (exit 6, not_found).
  for (const std::string src : {"rtsp://127.0.0.1:9/none", "--camera 999"}) {
    const auto r = fk_test::run_cli("video " + src + " --quiet");
    EXPECT_EQ(r.status, 6) << src << ": " << r.err;
    EXPECT_NE(r.err.find("does not open"), std::string::npos) << r.err;
  }
  // No source, or two.
  EXPECT_NE(fk_test::run_cli("video --quiet").status, 0);
  EXPECT_NE(fk_test::run_cli("video " + fk_test::quoted(good) + " --camera 0 --quiet").status, 0);
}

}  // namespace
