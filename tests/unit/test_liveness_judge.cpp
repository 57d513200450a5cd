// Unit tier for active liveness and the quality geometry: the verdict logic on made-up per-frame signals,
// challenge parsing, the eye aspect ratio by hand, and head pose against points projected with a known pose.
#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/calib3d.hpp>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/liveness.hpp"
#include "facekit/quality.hpp"

namespace fk = facekit;

namespace {

// `n` frames at 30 fps of one face, eyes open (EAR 0.30), looking straight (yaw 2).
std::vector<fk::FrameObservation> still(int n) {
  std::vector<fk::FrameObservation> f(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto& o = f[static_cast<size_t>(i)];
    o.index = i, o.time_s = i / 30.0, o.faces = 1, o.track = 0, o.ear = 0.30f, o.pose.yaw = 2.f;
  }
  return f;
}

void close_eyes(std::vector<fk::FrameObservation>& f, int from, int to, float ear = 0.12f) {
  for (int i = from; i <= to; ++i) f[static_cast<size_t>(i)].ear = ear;
}

void turn(std::vector<fk::FrameObservation>& f, int from, int to, float yaw) {
  for (int i = from; i <= to; ++i) f[static_cast<size_t>(i)].pose.yaw = yaw;
}

fk::ActiveLivenessOptions with(const std::string& challenges) {
  fk::ActiveLivenessOptions o;
  if (!challenges.empty()) o.challenges = fk::parse_challenges(challenges);
  return o;
}

}  // namespace

TEST(LivenessJudge, AStillFaceFailsEveryChallengeAndIsASpoofAfterFiveSeconds) {
  const auto f = still(180);  // 6 s
  for (const char* c : {"blink", "left", "right"}) {
    const auto r = fk::judge_liveness(f, with(c));
    EXPECT_EQ(r.state, fk::LivenessState::kSpoof) << c;
    ASSERT_EQ(r.challenges.size(), 1u);
    EXPECT_FALSE(r.challenges[0].passed);
    EXPECT_TRUE(r.events.empty());
  }
  EXPECT_EQ(fk::judge_liveness(f, with("")).state, fk::LivenessState::kSpoof);
  EXPECT_EQ(fk::judge_liveness(still(60), with("")).state, fk::LivenessState::kUncertain);  // 2 s: too short to say
}

TEST(LivenessJudge, ABlinkIsFoundWithItsFramesAndPassesTheBlinkChallenge) {
  auto f = still(90);
  close_eyes(f, 40, 42);
  const auto r = fk::judge_liveness(f, with("blink"));
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, "blink");
  EXPECT_EQ(r.events[0].first_frame, 40);
  EXPECT_EQ(r.events[0].last_frame, 42);
  EXPECT_NEAR(r.events[0].magnitude, 0.4f, 1e-5);  // 0.12 / 0.30
  EXPECT_FLOAT_EQ(r.ear_baseline, 0.30f);
  EXPECT_EQ(r.state, fk::LivenessState::kLive);
  EXPECT_TRUE(r.challenges[0].passed);
  EXPECT_EQ(r.challenges[0].first_frame, 40);
}

TEST(LivenessJudge, EyesHeldShutOrClosedAtTheEndOrLostFaceAreNoBlink) {
  auto shut = still(150);
  close_eyes(shut, 30, 89);  // 2 s closed: longer than blink_max_closed_s
  EXPECT_TRUE(fk::judge_liveness(shut, with("")).events.empty());
  auto end = still(90);
  close_eyes(end, 85, 89);  // never reopened
  EXPECT_TRUE(fk::judge_liveness(end, with("")).events.empty());
  auto lost = still(90);
  close_eyes(lost, 40, 42);
  lost[41].track = -1;  // the face was not seen mid-blink: the run cannot be trusted
  lost[41].ear = fk::kNoValue;
  EXPECT_TRUE(fk::judge_liveness(lost, with("")).events.empty());
  auto shallow = still(90);
  close_eyes(shallow, 40, 42, 0.24f);  // 0.8 x baseline: above the 0.7 close ratio
  EXPECT_TRUE(fk::judge_liveness(shallow, with("")).events.empty());
}

TEST(LivenessJudge, TurnsHaveASideAndChallengesMustComeInOrderWithinTheirWindow) {
  auto f = still(240);  // 8 s
  close_eyes(f, 30, 32);
  turn(f, 60, 75, 25.f);    // +23 from the baseline: the subject's left
  turn(f, 100, 110, -20.f);  // -22: right
  auto r = fk::judge_liveness(f, with("blink,left,right"));
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_EQ(r.events[1].kind, "turn_left");
  EXPECT_EQ(r.events[1].first_frame, 60);
  EXPECT_EQ(r.events[1].last_frame, 75);
  EXPECT_NEAR(r.events[1].magnitude, 23.f, 1e-4);
  EXPECT_EQ(r.events[2].kind, "turn_right");
  EXPECT_EQ(r.state, fk::LivenessState::kLive);
  for (const auto& c : r.challenges) EXPECT_TRUE(c.passed);

  r = fk::judge_liveness(f, with("left,blink"));  // the only blink came before the turn
  EXPECT_EQ(r.state, fk::LivenessState::kSpoof);
  EXPECT_TRUE(r.challenges[0].passed);
  EXPECT_FALSE(r.challenges[1].passed);

  auto o = with("blink,right");
  o.challenge_window_s = 2.0;  // the right turn ends 2.3 s after the blink
  EXPECT_EQ(fk::judge_liveness(f, o).state, fk::LivenessState::kSpoof);
  o.challenge_window_s = 3.0;
  EXPECT_EQ(fk::judge_liveness(f, o).state, fk::LivenessState::kLive);

  auto one_frame = still(90);
  turn(one_frame, 50, 50, 30.f);  // a single-frame jump is a landmark glitch, not a turn
  EXPECT_TRUE(fk::judge_liveness(one_frame, with("")).events.empty());
}

TEST(LivenessJudge, WideEyesOfATurnedFaceDoNotMakeTheFrontalFramesBetweenTurnsABlink) {
  // face-api's landmarks open the eyes wide on a turned face: EAR 0.40 while turned, 0.25 frontal. Over the
  // whole clip the 75th percentile would be 0.40, and the 5 frontal frames between the turns (0.25 < 0.7 x
  // 0.40) would read as a 0.3 s blink.
  auto f = still(120);
  for (auto& o : f) o.ear = 0.25f;
  for (int i = 20; i <= 60; ++i) f[static_cast<size_t>(i)].pose.yaw = 27.f, f[static_cast<size_t>(i)].ear = 0.40f;
  for (int i = 66; i <= 100; ++i) f[static_cast<size_t>(i)].pose.yaw = 27.f, f[static_cast<size_t>(i)].ear = 0.40f;
  const auto r = fk::judge_liveness(f, with(""));
  EXPECT_NEAR(r.ear_baseline, 0.25f, 1e-6);  // from the frontal frames only
  for (const auto& e : r.events) EXPECT_NE(e.kind, "blink") << e.first_frame << "-" << e.last_frame;
  EXPECT_EQ(r.events.size(), 2u);  // the two turns
  // A blink while facing the camera is still found.
  close_eyes(f, 110, 111);
  bool blink = false;
  for (const auto& e : fk::judge_liveness(f, with("")).events) blink |= e.kind == "blink" && e.first_frame == 110;
  EXPECT_TRUE(blink);
}

TEST(LivenessJudge, APassiveSpoofScoreOverridesPassedChallenges) {
  auto f = still(90);
  close_eyes(f, 40, 42);
  for (auto& o : f) o.passive = 0.2f;
  auto r = fk::judge_liveness(f, with("blink"));
  EXPECT_TRUE(r.challenges[0].passed);
  EXPECT_EQ(r.state, fk::LivenessState::kSpoof);
  EXPECT_NEAR(r.passive_mean, 0.2f, 1e-6);
  for (auto& o : f) o.passive = 0.9f;
  EXPECT_EQ(fk::judge_liveness(f, with("blink")).state, fk::LivenessState::kLive);
}

TEST(LivenessJudge, TooFewFramesOrAChangedFaceIsUncertain) {
  auto f = still(90);
  for (auto& o : f)
    if (o.index >= 3) o.track = -1;
  EXPECT_EQ(fk::judge_liveness(f, with("blink")).state, fk::LivenessState::kUncertain);
  auto two = still(120);
  close_eyes(two, 20, 22);
  for (int i = 60; i < 120; ++i) two[static_cast<size_t>(i)].track = 1;  // another face for the second half
  const auto r = fk::judge_liveness(two, with(""));
  EXPECT_EQ(r.tracks, 2);
  EXPECT_EQ(r.state, fk::LivenessState::kUncertain);
}

TEST(LivenessJudge, ChallengeListsParse) {
  const auto c = fk::parse_challenges("blink, left,right,turn_left");
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0], fk::Challenge::kBlink);
  EXPECT_EQ(c[1], fk::Challenge::kTurnLeft);
  EXPECT_EQ(c[2], fk::Challenge::kTurnRight);
  EXPECT_EQ(c[3], fk::Challenge::kTurnLeft);
  EXPECT_THROW(fk::parse_challenges("blink,nod"), fk::Error);
  EXPECT_THROW(fk::parse_challenges(""), fk::Error);
}

TEST(QualityGeometry, EyeAspectRatioByHand) {
  fk::Landmarks68 p{};
  // Image-left eye: corners 10 apart, lids 4 and 2 apart -> (4 + 2) / (2 * 10) = 0.3.
  p[36] = {0, 0}, p[37] = {3, -2}, p[38] = {7, -1}, p[39] = {10, 0}, p[40] = {7, 1}, p[41] = {3, 2};
  // The other eye: corners 8 apart, lids 2 and 2 apart -> 0.25.
  p[42] = {20, 0}, p[43] = {22, -1}, p[44] = {26, -1}, p[45] = {28, 0}, p[46] = {26, 1}, p[47] = {22, 1};
  EXPECT_NEAR(fk::eye_aspect_ratio(p, true), 0.3f, 1e-6);
  EXPECT_NEAR(fk::eye_aspect_ratio(p, false), 0.25f, 1e-6);
  EXPECT_NEAR(fk::eye_aspect_ratio(p), 0.275f, 1e-6);
}

TEST(QualityGeometry, HeadPoseRecoversTheRotationOfProjectedModelPoints) {
  // The six model points seen by the same camera under a known yaw / pitch: the estimate must give them back.
  const std::vector<cv::Point3d> model = {{0, 0, 0}, {0, 330, 65}, {-225, -170, 135}, {225, -170, 135},
                                          {-150, 150, 125}, {150, 150, 125}};
  const int idx[6] = {30, 8, 36, 45, 48, 54};
  const cv::Size size(640, 480);
  const cv::Matx33d k(640, 0, 320, 0, 640, 240, 0, 0, 1);
  for (double yaw : {-30.0, -10.0, 0.0, 20.0}) {
    for (double pitch : {-10.0, 15.0}) {
      // Face direction (0,0,-1) rotated: yaw about the camera's y axis (towards +x), then pitch (towards -y).
      const double a = yaw * CV_PI / 180, b = pitch * CV_PI / 180;
      const cv::Matx33d ry(std::cos(a), 0, -std::sin(a), 0, 1, 0, std::sin(a), 0, std::cos(a));
      const cv::Matx33d rx(1, 0, 0, 0, std::cos(b), std::sin(b), 0, -std::sin(b), std::cos(b));
      cv::Mat rvec;
      cv::Rodrigues(cv::Mat(ry * rx), rvec);
      std::vector<cv::Point2d> img;
      cv::projectPoints(model, rvec, cv::Vec3d(0, 0, 3000), k, cv::noArray(), img);
      fk::Landmarks68 p{};
      for (int i = 0; i < 6; ++i) p[static_cast<size_t>(idx[i])] = cv::Point2f(img[static_cast<size_t>(i)]);
      const fk::HeadPose h = fk::estimate_head_pose(p, size);
      EXPECT_NEAR(h.yaw, yaw, 1.0) << yaw << " " << pitch;
      EXPECT_NEAR(h.pitch, pitch, 1.0) << yaw << " " << pitch;
    }
  }
}

TEST(QualityGeometry, RollIsTheInPlaneAngleOfTheLandmarksAndPositiveClockwise) {
  // dlib's upright mean face, turned about its centre by a known angle (y down: positive is clockwise).
  const fk::AlignmentTemplate tpl = fk::dlib68_template(150, 0.25f);
  for (double deg : {-25.0, 0.0, 10.0, 15.0}) {
    const double a = deg * CV_PI / 180;
    fk::Landmarks68 p{};
    for (size_t i = 0; i < tpl.landmark_indices.size(); ++i) {
      const cv::Point2f q = tpl.points[i] - cv::Point2f(75, 75);
      p[static_cast<size_t>(tpl.landmark_indices[i])] =
          cv::Point2f(300 + static_cast<float>(q.x * std::cos(a) - q.y * std::sin(a)),
                      200 + static_cast<float>(q.x * std::sin(a) + q.y * std::cos(a)));
    }
    EXPECT_NEAR(fk::estimate_head_pose(p, cv::Size(640, 480)).roll, deg, 0.01) << deg;
  }
}

TEST(QualityGeometry, AMeterWithoutLandmarkerMeasuresTheFacesOwnPointsAndAnUnknownOneIsNotFound) {
  fk::Face face;
  face.box = {0, 0, 40, 40};
  const fk::Image img(48, 64, CV_8UC3, cv::Scalar::all(0));
  const fk::GeometryMeter own("");
  try {
    own.measure(img, face);
    ADD_FAILURE() << "a face without landmarks was measured";
  } catch (const fk::Error& e) {
    EXPECT_EQ(e.code(), fk::ErrorCode::kInvalidArgument) << e.what();
  }
  fk::Landmarks68 p{};
  p[36] = {0, 0}, p[37] = {3, -2}, p[38] = {7, -1}, p[39] = {10, 0}, p[40] = {7, 1}, p[41] = {3, 2};
  p[42] = {20, 0}, p[43] = {22, -1}, p[44] = {26, -1}, p[45] = {28, 0}, p[46] = {26, 1}, p[47] = {22, 1};
  face.landmarks = p;
  EXPECT_NEAR(own.measure(img, face).eye_aspect_ratio, 0.275f, 1e-6);
  EXPECT_EQ(fk::GeometryMeter().landmarker(), "face_landmark_68");
  // The network is made at first use: an unknown name fails there, each time, with the registry's error.
  const fk::GeometryMeter unknown("no_such_landmarker");
  for (int i = 0; i < 2; ++i) {
    try {
      unknown.measure(img, face);
      ADD_FAILURE() << "an unknown landmarker measured";
    } catch (const fk::Error& e) {
      EXPECT_EQ(e.code(), fk::ErrorCode::kNotFound) << e.what();
    }
  }
}
