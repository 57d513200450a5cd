// FaceTracker on made-up boxes and embeddings (no model): constant-velocity prediction, crossings that keep
// their ids (by motion, and by embedding where the boxes mislead), a track lost and re-found by embedding,
// which embeddings a track keeps and when it asks for one.
#include <algorithm>
#include <cmath>
#include <map>

#include <gtest/gtest.h>

#include "facekit/error.hpp"
#include "facekit/video.hpp"

namespace fk = facekit;

namespace {

fk::Box box(float x, float y, float s = 60) { return {x, y, s, s}; }

// A unit embedding along axis `k` (people far apart), optionally nudged towards axis k+1.
fk::Embedding axis(int k, float nudge = 0) {
  fk::Embedding e(8, 0.f);
  e[static_cast<size_t>(k)] = 1;
  e[static_cast<size_t>(k + 1)] = nudge;
  const float n = std::sqrt(1 + nudge * nudge);
  for (float& v : e) v /= n;
  return e;
}

fk::TrackerOptions with_reassociation() {
  fk::TrackerOptions o;
  o.reassociate_distance = 0.6f;
  return o;
}

// The track id given to each detection of the frame.
std::map<int, int> ids(const std::vector<fk::TrackedBox>& out) {
  std::map<int, int> m;
  for (const auto& b : out) m[b.detection] = b.track;
  return m;
}

TEST(FaceTracker, PredictsWithConstantVelocityBetweenDetections) {
  fk::FaceTracker t;
  for (int f = 0; f < 5; ++f) t.update(f, f / 25.0, {{box(100 + 4.f * f, 50 - 2.f * f), 1}}, {});
  // Detected at x = 116, y = 42 in frame 4; moving +4, -2 px a frame.
  const auto p = t.predict(7, 7 / 25.0);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_FALSE(p[0].detected);
  EXPECT_NEAR(p[0].box.x, 128, 1e-3);
  EXPECT_NEAR(p[0].box.y, 36, 1e-3);
  EXPECT_EQ(p[0].box.width, 60);
}

TEST(FaceTracker, CrossingWithOcclusionKeepsIdsByMotion) {
  // A moves right, B left along the same line; while they overlap (frames 8-12) B is hidden behind A. A
  // model that kept B where it was last seen (x = 130 at frame 7) would hand it A's box at frame 13.
  fk::FaceTracker t;
  int id_a = -1, id_b = -1;
  for (int f = 0; f <= 20; ++f) {
    const float xa = 10.f * f, xb = 200 - 10.f * f;
    std::vector<fk::TrackerDetection> d{{box(xa, 100), 1}};
    const bool hidden = f >= 8 && f <= 12;
    if (!hidden) d.push_back({box(xb, 100), 1});
    const auto m = ids(t.update(f, f / 25.0, d, {}));
    if (f == 0) {
      id_a = m.at(0), id_b = m.at(1);
      continue;
    }
    EXPECT_EQ(m.at(0), id_a) << "frame " << f;
    if (!hidden) EXPECT_EQ(m.at(1), id_b) << "frame " << f;
  }
  EXPECT_EQ(t.finish().size(), 2u);
}

TEST(FaceTracker, AmbiguousOverlapIsDecidedByEmbedding) {
  // Two people side by side swap places within one detection interval: by overlap each new box fits the
  // other's track better, by embedding each fits its own.
  fk::FaceTracker t(with_reassociation());
  const auto embed = [](const std::vector<int>& who) {
    return [who](size_t d) { return axis(who[d]); };
  };
  auto m = ids(t.update(0, 0, {{box(100, 100), 1}, {box(130, 100), 1}}, embed({0, 2})));
  const int id_a = m.at(0), id_b = m.at(1);
  t.update(1, 0.04, {{box(100, 100), 1}, {box(130, 100), 1}}, embed({0, 2}));
  // Now A is at 125 (closer to B's old place) and B at 105.
  m = ids(t.update(2, 0.08, {{box(125, 100), 1}, {box(105, 100), 1}}, embed({0, 2})));
  EXPECT_EQ(m.at(0), id_a);
  EXPECT_EQ(m.at(1), id_b);
  // Without embeddings the same frames go by overlap: swapped (the test above can tell the two apart).
  fk::FaceTracker plain(with_reassociation());
  m = ids(plain.update(0, 0, {{box(100, 100), 1}, {box(130, 100), 1}}, {}));
  const int pa = m.at(0);
  plain.update(1, 0.04, {{box(100, 100), 1}, {box(130, 100), 1}}, {});
  m = ids(plain.update(2, 0.08, {{box(125, 100), 1}, {box(105, 100), 1}}, {}));
  EXPECT_NE(m.at(0), pa);
}

TEST(FaceTracker, LostTrackIsRefoundByEmbedding) {
  fk::FaceTracker t(with_reassociation());
  int calls = 0;
  const auto person = [&](int k) {
    return [&calls, k](size_t) {
      ++calls;
      return axis(k, 0.1f);
    };
  };
  int id_a = -1;
  for (int f = 0; f < 5; ++f) id_a = ids(t.update(f, f / 25.0, {{box(50, 50), 1}}, person(0))).at(0);
  // Gone for 20 frames (longer than boxes are predicted, shorter than max_lost_frames), then back elsewhere.
  for (int f = 5; f < 25; ++f) EXPECT_TRUE(t.update(f, f / 25.0, {}, person(0)).empty());
  auto m = ids(t.update(25, 1.0, {{box(400, 300), 1}}, person(0)));
  EXPECT_EQ(m.at(0), id_a);
  ASSERT_NE(t.track(id_a), nullptr);
  EXPECT_EQ(t.track(id_a)->reassociations, 1);
  // Someone else appearing where nobody is tracked starts a new track.
  m = ids(t.update(26, 1.04, {{box(400, 300), 1}, {box(100, 300), 1}}, [&](size_t d) { return axis(d == 0 ? 0 : 4); }));
  EXPECT_EQ(m.at(0), id_a);
  EXPECT_NE(m.at(1), id_a);
  // After max_lost_frames unseen the track has ended: the same face starts a new one.
  fk::TrackerOptions o = with_reassociation();
  o.max_lost_frames = 10;
  fk::FaceTracker short_memory(o);
  const int first = ids(short_memory.update(0, 0, {{box(50, 50), 1}}, person(0))).at(0);
  short_memory.update(12, 0.48, {}, person(0));
  EXPECT_EQ(short_memory.track(first), nullptr);
  EXPECT_NE(ids(short_memory.update(13, 0.52, {{box(400, 300), 1}}, person(0))).at(0), first);
}

TEST(FaceTracker, ATrackThatTurnsOutToBeALostOneIsMergedIntoIt) {
  // A comes back half hidden: its first embedding is too far to re-join at once (a new track starts); once
  // the new track has better ones, its mean matches A's and it is merged into A.
  fk::FaceTracker t(with_reassociation(), 3);
  int id_a = -1;
  for (int f = 0; f < 3; ++f) id_a = ids(t.update(f, f / 25.0, {{box(50, 50), 0.9f}}, [](size_t) { return axis(0); })).at(0);
  for (int f = 3; f < 20; ++f) t.update(f, f / 25.0, {}, {});
  const int id_new = ids(t.update(20, 0.8, {{box(400, 300), 0.1f}}, [](size_t) { return axis(0, 1.5f); })).at(0);
  EXPECT_NE(id_new, id_a);
  EXPECT_TRUE(t.merges().empty());
  // A clearer view of A: the new track's mean moves within 0.6 of A's (0.49).
  const auto m = ids(t.update(21, 0.84, {{box(402, 300), 0.8f}}, [](size_t) { return axis(0); }));
  ASSERT_EQ(t.merges().size(), 1u);
  EXPECT_EQ(t.merges()[0], std::make_pair(id_new, id_a));
  EXPECT_EQ(m.at(0), id_new);  // this frame's box was given before the merge...
  EXPECT_EQ(ids(t.update(22, 0.88, {{box(404, 300), 0.8f}}, {})).at(0), id_a);  // ...the next ones go to A
  EXPECT_TRUE(t.merges().empty());
  const auto all = t.finish();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id, id_a);
  EXPECT_EQ(all[0].detections, 6);
  EXPECT_EQ(all[0].box_frames.back(), 22);
  for (const auto& b : all[0].boxes) EXPECT_EQ(b.track, id_a);
}

TEST(FaceTracker, TracksSeenTogetherAreNeverMerged) {
  // Two faces with the same embedding (twins, or one photo shown twice) seen in the same frames stay apart.
  fk::FaceTracker t(with_reassociation());
  for (int f = 0; f < 5; ++f)
    t.update(f, f / 25.0, {{box(50, 50), 1}, {box(300, 50), 1}}, [](size_t) { return axis(0); });
  EXPECT_EQ(t.finish().size(), 2u);
}

TEST(FaceTracker, KeepsTheBestQualityEmbeddingsAndEmbedsOnlyWhenUseful) {
  fk::FaceTracker t({}, 2);
  int calls = 0;
  const float q[] = {0.1f, 0.5f, 0.3f, 0.9f, 0.2f};
  for (int f = 0; f < 5; ++f) {
    t.update(f, f / 25.0, {{box(50 + f, 50), q[f]}}, [&](size_t) {
      ++calls;
      return axis(0, q[f]);  // the quality is readable back from the embedding
    });
  }
  // Embedded: 0.1 and 0.5 (fewer than 2 kept), 0.3 (beats 0.1), 0.9 (beats 0.3); not 0.2 (beats neither
  // 0.5 nor 0.9).
  EXPECT_EQ(calls, 4);
  const fk::TrackerTrack* tr = t.track(0);
  ASSERT_NE(tr, nullptr);
  std::vector<float> kept = tr->qualities;
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<float>{0.5f, 0.9f}));
  // The mean of the kept embeddings, renormalised.
  const fk::Embedding mean = fk::FaceTracker::mean_embedding(*tr);
  double n = 0;
  for (float v : mean) n += v * v;
  EXPECT_NEAR(n, 1.0, 1e-5);
  EXPECT_GT(mean[1], axis(0, 0.5f)[1]);
  EXPECT_LT(mean[1], axis(0, 0.9f)[1]);
}

TEST(FaceTracker, PredictedBoxesOnlyForTracksSeenAtTheLastDetection) {
  fk::FaceTracker t;
  t.update(0, 0, {{box(0, 0), 1}, {box(300, 0), 1}}, {});
  t.update(2, 0.08, {{box(2, 0), 1}}, {});  // the second face missed
  const auto p = t.predict(3, 0.12);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_NEAR(p[0].box.x, 3, 1e-3);
  EXPECT_THROW(t.predict(3, 0.12), fk::Error);  // frames must increase
}

TEST(FaceTracker, RefusesOptionsOutOfRange) {
  fk::TrackerOptions o;
  o.iou_threshold = 0;
  EXPECT_THROW(fk::FaceTracker{o}, fk::Error);
  EXPECT_THROW(fk::FaceTracker({}, 0), fk::Error);
  o = {};
  o.velocity_smoothing = 1.5f;
  EXPECT_THROW(fk::FaceTracker{o}, fk::Error);
}

}  // namespace
