// Unit tier: alignment geometry, box overlap, NMS.
#include <cmath>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "facekit/aligner.hpp"
#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/pipeline.hpp"

namespace fk = facekit;

namespace {
// Centre of the bright blob in a chip.
cv::Point2d bright_centroid(const fk::Image& chip) {
  cv::Mat grey;
  cv::cvtColor(chip, grey, cv::COLOR_RGB2GRAY);
  const cv::Moments m = cv::moments(grey > 128, true);
  return {m.m10 / m.m00, m.m01 / m.m00};
}
}  // namespace

TEST(Similarity, RecoversAKnownTransform) {
  // Rotate 30 degrees, scale 1.7, translate (12, -5).
  const double a = 1.7 * std::cos(M_PI / 6), b = 1.7 * std::sin(M_PI / 6);
  std::vector<cv::Point2f> from = {{0, 0}, {10, 0}, {0, 10}, {7, 3}, {-4, 8}}, to;
  for (const auto& p : from) to.emplace_back(a * p.x - b * p.y + 12, b * p.x + a * p.y - 5);
  const cv::Mat m = fk::similarity_transform(from, to);
  EXPECT_NEAR(m.at<double>(0, 0), a, 1e-5);
  EXPECT_NEAR(m.at<double>(0, 1), -b, 1e-5);
  EXPECT_NEAR(m.at<double>(1, 0), b, 1e-5);
  EXPECT_NEAR(m.at<double>(0, 2), 12, 1e-4);
  EXPECT_NEAR(m.at<double>(1, 2), -5, 1e-4);
}

TEST(Similarity, IsTheLeastSquaresFitForNoisyPoints) {
  std::vector<cv::Point2f> from = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
  std::vector<cv::Point2f> to = {{0.1f, 0}, {2, 0.1f}, {0, 2}, {2.1f, 1.9f}};
  const cv::Mat m = fk::similarity_transform(from, to);
  auto cost = [&](double a, double b, double tx, double ty) {
    double c = 0;
    for (size_t i = 0; i < from.size(); ++i) {
      const double x = a * from[i].x - b * from[i].y + tx - to[i].x, y = b * from[i].x + a * from[i].y + ty - to[i].y;
      c += x * x + y * y;
    }
    return c;
  };
  const double a = m.at<double>(0, 0), b = m.at<double>(1, 0), tx = m.at<double>(0, 2), ty = m.at<double>(1, 2);
  const double best = cost(a, b, tx, ty);
  for (double d : {-1e-3, 1e-3}) {  // any nudge of any parameter costs more
    EXPECT_GT(cost(a + d, b, tx, ty), best);
    EXPECT_GT(cost(a, b + d, tx, ty), best);
    EXPECT_GT(cost(a, b, tx + d, ty), best);
    EXPECT_GT(cost(a, b, tx, ty + d), best);
  }
}

TEST(Similarity, RejectsDegenerateInput) {
  EXPECT_THROW(fk::similarity_transform({{1, 1}, {1, 1}}, {{0, 0}, {1, 1}}), fk::Error);
  EXPECT_THROW(fk::similarity_transform({{1, 1}}, {{0, 0}}), fk::Error);
}

TEST(Templates, Dlib68MatchesDlibsPadding) {
  const auto t = fk::dlib68_template(150, 0.25f);
  ASSERT_EQ(t.points.size(), t.landmark_indices.size());
  EXPECT_EQ(t.points.size(), 33u);  // 51 points minus 10 brow and 8 lower-lip points
  // Point 30 (nose tip) of dlib's mean face: (0.490127, 0.515625) in face units.
  auto it = std::find(t.landmark_indices.begin(), t.landmark_indices.end(), 30);
  ASSERT_NE(it, t.landmark_indices.end());
  const auto& p = t.points[it - t.landmark_indices.begin()];
  EXPECT_NEAR(p.x, (0.25 + 0.490127) / 1.5 * 150, 1e-3);
  EXPECT_NEAR(p.y, (0.25 + 0.515625) / 1.5 * 150, 1e-3);
}

TEST(Align, RotatedLandmarksGiveAnUprightChip) {
  // Put the template itself, rotated by 20 degrees and scaled, into an image; alignment must undo it exactly.
  const auto tpl = fk::dlib68_template(150, 0.25f);
  fk::Landmarks68 lm{};
  const double ang = 20 * M_PI / 180, s = 1.3;
  auto place = [&](cv::Point2f p) {
    return cv::Point2f(static_cast<float>(s * (std::cos(ang) * p.x - std::sin(ang) * p.y) + 60),
                       static_cast<float>(s * (std::sin(ang) * p.x + std::cos(ang) * p.y) + 20));
  };
  for (size_t i = 0; i < tpl.points.size(); ++i) lm[tpl.landmark_indices[i]] = place(tpl.points[i]);
  const cv::Mat m = fk::alignment_matrix(lm, tpl);
  for (size_t i = 0; i < tpl.points.size(); ++i) {
    const auto& q = lm[tpl.landmark_indices[i]];
    const double x = m.at<double>(0, 0) * q.x + m.at<double>(0, 1) * q.y + m.at<double>(0, 2);
    const double y = m.at<double>(1, 0) * q.x + m.at<double>(1, 1) * q.y + m.at<double>(1, 2);
    EXPECT_NEAR(x, tpl.points[i].x, 1e-3);
    EXPECT_NEAR(y, tpl.points[i].y, 1e-3);
  }
  // And the warped chip shows a marker drawn at a template point where the template says.
  fk::Image img(400, 400, CV_8UC3, cv::Scalar::all(0));
  const cv::Point2f nose = place(tpl.points[0]);
  cv::circle(img, nose, 4, cv::Scalar(255, 255, 255), cv::FILLED);
  const fk::Image chip = fk::align_face(img, lm, tpl);
  ASSERT_EQ(chip.rows, 150);
  const auto c = bright_centroid(chip);
  EXPECT_NEAR(c.x, tpl.points[0].x, 0.5);
  EXPECT_NEAR(c.y, tpl.points[0].y, 0.5);
}

TEST(Align, LargeFacesAreShrunkWithoutLosingPlacement) {
  // A face 10x larger than the chip: the area-averaging path must keep the geometry.
  const auto tpl = fk::dlib68_template(150, 0.25f);
  fk::Landmarks68 lm{};
  for (size_t i = 0; i < tpl.points.size(); ++i)
    lm[tpl.landmark_indices[i]] = tpl.points[i] * 10.f + cv::Point2f(100, 50);
  fk::Image img(1700, 1700, CV_8UC3, cv::Scalar::all(0));
  cv::circle(img, tpl.points[5] * 10.f + cv::Point2f(100, 50), 30, cv::Scalar(255, 255, 255), cv::FILLED);
  const fk::Image chip = fk::align_face(img, lm, tpl);
  const auto c = bright_centroid(chip);
  EXPECT_NEAR(c.x, tpl.points[5].x, 0.5);
  EXPECT_NEAR(c.y, tpl.points[5].y, 0.5);
}

TEST(Landmarks, FivePointReduction) {
  fk::Landmarks68 lm{};
  for (int i = 0; i < 68; ++i) lm[i] = {static_cast<float>(i), static_cast<float>(2 * i)};
  const auto five = fk::reduce_to_5(lm);
  EXPECT_FLOAT_EQ(five[0].x, (36 + 37 + 38 + 39 + 40 + 41) / 6.f);
  EXPECT_FLOAT_EQ(five[1].x, (42 + 43 + 44 + 45 + 46 + 47) / 6.f);
  EXPECT_FLOAT_EQ(five[2].x, 30);
  EXPECT_FLOAT_EQ(five[3].x, 48);
  EXPECT_FLOAT_EQ(five[4].y, 108);
}

TEST(Boxes, IoU) {
  EXPECT_FLOAT_EQ(fk::iou({0, 0, 10, 10}, {0, 0, 10, 10}), 1.f);
  EXPECT_FLOAT_EQ(fk::iou({0, 0, 10, 10}, {20, 20, 5, 5}), 0.f);
  EXPECT_NEAR(fk::iou({0, 0, 10, 10}, {5, 0, 10, 10}), 50.f / 150.f, 1e-6);
}

TEST(Nms, KeepsTheBestOfOverlappingBoxesAndRespectsMax) {
  std::vector<fk::Face> faces = {
      {{0, 0, 10, 10}, 0.9f, {}, {}}, {{1, 1, 10, 10}, 0.8f, {}, {}}, {{50, 50, 10, 10}, 0.7f, {}, {}},
      {{100, 0, 10, 10}, 0.6f, {}, {}}};
  auto kept = fk::non_max_suppression(faces, 0.5f, 10);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.7f);
  EXPECT_EQ(fk::non_max_suppression(faces, 0.5f, 2).size(), 2u);
  // A looser IoU threshold keeps the overlapping box too.
  EXPECT_EQ(fk::non_max_suppression(faces, 0.9f, 10).size(), 4u);
}

TEST(Boxes, Containment) {
  EXPECT_FLOAT_EQ(fk::containment({0, 0, 100, 100}, {10, 10, 20, 20}), 1.f);  // inside: 1 whatever the sizes
  EXPECT_FLOAT_EQ(fk::containment({10, 10, 20, 20}, {0, 0, 100, 100}), 1.f);
  EXPECT_NEAR(fk::containment({0, 0, 10, 10}, {5, 0, 20, 10}), 50.f / 100.f, 1e-6);
  EXPECT_FLOAT_EQ(fk::containment({0, 0, 10, 10}, {20, 20, 5, 5}), 0.f);
}

TEST(Nms, ContainmentDropsABoxInsideABetterOne) {
  // An eye box inside a face box: IoU 0.04, so plain NMS keeps both.
  std::vector<fk::Face> faces = {{{0, 0, 100, 100}, 0.9f, {}, {}}, {{20, 20, 20, 20}, 0.8f, {}, {}},
                                 {{200, 0, 100, 100}, 0.7f, {}, {}}};
  EXPECT_EQ(fk::non_max_suppression(faces, 0.5f, 10).size(), 3u);
  fk::NmsOptions o;
  o.containment = 0.6f;
  const auto kept = fk::non_max_suppression(faces, o);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.7f);
  // The nested box is dropped whichever of the two scores higher.
  std::swap(faces[0].score, faces[1].score);
  const auto kept2 = fk::non_max_suppression(faces, o);
  ASSERT_EQ(kept2.size(), 2u);
  EXPECT_FLOAT_EQ(kept2[0].box.width, 20.f);
}

TEST(Nms, WeightedMergesThenSuppressesAgainstTheMergedBox) {
  // A (0.9) and B (0.8) merge into their score-weighted mean. C overlaps the merged box by IoU > 0.5 but the
  // seed A by less: merge-then-suppress must drop it too, where suppressing against the seed alone keeps it.
  const fk::Box a{0, 0, 100, 100}, b{30, 0, 100, 100}, c{45, 0, 100, 100};
  ASSERT_LE(fk::iou(a, c), 0.5f);
  ASSERT_GT(fk::iou(b, a), 0.5f);
  std::vector<fk::Face> faces = {{a, 0.9f, {{10, 10}}, {}}, {b, 0.8f, {{40, 10}}, {}}, {c, 0.3f, {{55, 10}}, {}}};
  fk::NmsOptions o;
  o.weighted = true;
  const auto kept = fk::non_max_suppression(faces, o);
  ASSERT_EQ(kept.size(), 1u);
  const float wx = (0.9f * 0 + 0.8f * 30) / 1.7f;
  EXPECT_NEAR(kept[0].box.x, wx, 1e-4);
  EXPECT_NEAR(kept[0].keypoints[0].x, (0.9f * 10 + 0.8f * 40) / 1.7f, 1e-4);
  EXPECT_GT(fk::iou(kept[0].box, c), 0.5f);
}

TEST(MainFace, PrefersTheLargeCentralConfidentFace) {
  const cv::Size size(250, 250);
  // LFW-like: the subject in the centre, a smaller face at the edge.
  std::vector<fk::Face> lfw = {{{180, 20, 60, 60}, 0.95f, {}, {}}, {{75, 70, 100, 110}, 0.9f, {}, {}}};
  EXPECT_EQ(fk::main_face_index(lfw, size), 1);
  // A large face at the edge beats a much smaller one in the middle.
  std::vector<fk::Face> big = {{{110, 115, 30, 30}, 0.9f, {}, {}}, {{0, 40, 150, 170}, 0.9f, {}, {}}};
  EXPECT_EQ(fk::main_face_index(big, size), 1);
  // Same size and place: the better score wins.
  std::vector<fk::Face> tie = {{{75, 70, 100, 110}, 0.6f, {}, {}}, {{76, 70, 100, 110}, 0.9f, {}, {}}};
  EXPECT_EQ(fk::main_face_index(tie, size), 1);
  EXPECT_EQ(fk::main_face_index({}, size), -1);
}
