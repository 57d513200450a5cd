// End-to-end tier for facekit::Engine on real photos (the bald_guys cut-outs, actors.hpp): what the CLI, the
// service and Python call. The concurrency test runs identify() from several threads while enrolments,
// renames and removals go on, and checks every answer against the gallery states the writer committed.
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <cmath>

#include <gtest/gtest.h>

#include "actors.hpp"
#include "facekit/detector.hpp"
#include "facekit/embedder.hpp"
#include "facekit/engine.hpp"
#include "facekit/model.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/error.hpp"
#include "facekit/json.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using fk_test::actors;

namespace {

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fk_test::fresh_test_dir("fk_engine");
    const auto& a = actors();
    ASSERT_GE(a.groups.size(), 4u);
    for (size_t g = 0; g < 4; ++g) ASSERT_GE(a.groups[g].size(), 3u) << "actor " << g;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fk::EngineOptions options() const {
    fk::EngineOptions o;
    o.gallery = dir_ / "people.db";
    o.enroll.augment.enabled = false;  // 7x less work per photo; augmentation has its own tests
    return o;
  }
  static std::vector<fk::EnrollPhoto> photos(size_t actor, size_t from, size_t to) {
    std::vector<fk::EnrollPhoto> out;
    for (size_t i = from; i < to; ++i) out.push_back({actors().groups[actor][i], {}, {}, {}});
    return out;
  }
  fs::path dir_;
};

TEST_F(EngineTest, VerifyEnrolIdentifyRenameRemove) {
  fk::Engine e(options());
  const auto& g = actors().groups;
  const fk::Image a0 = e.load(g[0][0]), a1 = e.load(g[0][1]), b0 = e.load(g[1][0]);
  EXPECT_TRUE(e.verify(a0, a1).same);
  EXPECT_FALSE(e.verify(a0, b0).same);
  const auto forced = e.verify(a0, b0, 1.99f);  // a caller's threshold wins
  EXPECT_TRUE(forced.same);
  EXPECT_FLOAT_EQ(forced.threshold, 1.99f);

  const auto r = e.enroll("first", photos(0, 0, 2));
  EXPECT_TRUE(r.stored.created);
  EXPECT_EQ(r.stored.added, 2);
  e.enroll("second", photos(1, 0, 2));
  auto who = e.identify(e.load(g[0][2]));
  ASSERT_EQ(who.faces.size(), 1u);
  ASSERT_TRUE(who.faces[0].identification.known);
  EXPECT_EQ(who.faces[0].identification.candidates[0].name, "first");
  EXPECT_EQ(who.people, 2);
  // The embedder's score calibration (the default's: fitted on LFW View 1): P(same) for each candidate's distance,
  // high for the enrolled person, and verify() carries the same map.
  const auto& best = who.faces[0].identification.candidates[0];
  ASSERT_TRUE(best.match_probability.has_value());
  EXPECT_GT(*best.match_probability, 0.5);
  const auto v = e.verify(a0, a1);
  ASSERT_TRUE(v.probability.has_value());
  EXPECT_NEAR(*v.probability, fk::load_manifest(fk::defaults::kEmbedder).calibration.probability_at(v.distance), 1e-12);

  // A rename is seen by the next identify (a new snapshot), and so is a removal.
  e.rename("first", "renamed");
  who = e.identify(e.load(g[0][2]));
  EXPECT_EQ(who.faces[0].identification.candidates.at(0).name, "renamed");
  const auto removed = e.remove({"renamed", std::to_string(r.stored.person.id)});  // one person named twice
  ASSERT_EQ(removed.size(), 1u);
  who = e.identify(e.load(g[0][2]));
  for (const auto& c : who.faces[0].identification.candidates) EXPECT_NE(c.name, "renamed");
  EXPECT_EQ(e.people().size(), 1u);
  try {
    e.person("renamed");
    FAIL() << "a removed person was found";
  } catch (const fk::Error& err) {
    EXPECT_EQ(err.code(), fk::ErrorCode::kNotFound);
  }
}

// Faces turned away (face-api's sample2.jpg: two profiles among frontal faces) meet a stricter threshold, the
// calibration's for a tenth of the FPIR from 45 degrees of yaw on (docs/gallery.md, Open set).
TEST_F(EngineTest, TurnedFacesMeetAStricterThreshold) {
  fk::Engine e(options());
  e.enroll("first", photos(0, 0, 2));
  const fs::path demo = fs::path(FACEKIT_TEST_DATA) / ".." / ".." / "models" / "face-api" / "demo";
  const fk::Image img = e.load(demo / "sample2.jpg");
  const auto r = e.identify(img);
  int profiles = 0, frontal = 0;
  for (const auto& f : r.faces) {
    ASSERT_TRUE(f.face.landmarks);
    const float yaw = std::abs(fk::estimate_head_pose(*f.face.landmarks, img.size()).yaw);
    const auto& id = f.identification;
    EXPECT_EQ(id.turned, yaw >= 25.f) << "yaw " << yaw;
    if (yaw >= 45.f) {
      ++profiles;  // one person enrolled: FAR 1e-3 against 1e-2, 0.935 against 0.917
      EXPECT_GT(id.threshold, r.threshold + 0.005f) << "yaw " << yaw;
    } else if (yaw < 25.f) {
      ++frontal;
      EXPECT_FLOAT_EQ(id.threshold, r.threshold);
    } else {
      EXPECT_GE(id.threshold, r.threshold);
    }
  }
  EXPECT_GE(profiles, 1);
  EXPECT_GE(frontal, 1);
}

// Another engine (as another process would) writes to the same gallery: this engine sees it once its
// revision poll comes round (EngineOptions::revision_poll_ms), and its own writes at once.
TEST_F(EngineTest, AnotherEnginesWriteIsSeenAfterThePollInterval) {
  fk::EngineOptions o = options();
  o.revision_poll_ms = 200;
  fk::Engine reader(o), writer(options());
  const auto& g = actors().groups;
  const auto probe = reader.embed(reader.load(g[0][2])).at(0).embedding;
  reader.enroll("mine", photos(1, 0, 1));
  EXPECT_EQ(reader.identify(probe).people, 1);  // its own write: seen at once
  writer.enroll("theirs", photos(0, 0, 2));
  const auto t0 = std::chrono::steady_clock::now();
  fk::IdentifyResult r = reader.identify(probe);
  while (r.people < 2 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = reader.identify(probe);
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.people, 2);
  EXPECT_LT(waited, 1.0);
  EXPECT_EQ(r.faces.at(0).identification.candidates.at(0).name, "theirs");
}

TEST_F(EngineTest, AnalyzeReportsQualitySpoofAndEmbedding) {
  const fk::Engine e(options());
  fk::AnalyzeOptions ao;
  ao.spoof = ao.embedding = true;
  const auto faces = e.analyze(e.load(fk_test::kDlibFaces / "bald_guys.jpg"), ao);
  ASSERT_EQ(faces.size(), 24u);
  for (const auto& f : faces) {
    ASSERT_TRUE(f.face.landmarks);
    ASSERT_TRUE(f.spoof);
    ASSERT_TRUE(f.embedding);
    EXPECT_EQ(f.embedding->size(), static_cast<size_t>(e.pipeline().embedder().dim()));
    EXPECT_GT(f.quality.score, 0.f);
    EXPECT_GE(f.spoof->score, 0.f);
    EXPECT_LE(f.spoof->score, 1.f);
  }
  const auto j = fk::json_view::quality_report("bald_guys.jpg", e.load(fk_test::kDlibFaces / "bald_guys.jpg"), faces);
  EXPECT_EQ(j["schema_version"], fk::json_view::kSchemaVersion);
  EXPECT_EQ(j["faces"].size(), 24u);
}

TEST_F(EngineTest, RunsOverAPipelineMadeFromTheCallersStages) {
  fk::DetectorOptions d;
  d.min_score = 0.5f;
  fk::FacePipeline pipe(fk::create_detector("ssd_mobilenetv1", d), fk::create_landmarker(), fk::create_embedder());
  const fk::Engine e(options(), std::move(pipe));
  EXPECT_EQ(e.pipeline().detector().name(), "ssd_mobilenetv1");
  EXPECT_EQ(e.embedder_id().name, fk::defaults::kEmbedder);
  const auto& g = actors().groups;
  EXPECT_TRUE(e.verify(e.load(g[0][0]), e.load(g[0][1])).same);
  EXPECT_GE(e.detect(e.load(fk_test::kDlibFaces / "bald_guys.jpg")).size(), 20u);
}

TEST_F(EngineTest, UnknownModelIsAClearErrorBeforeAnythingLoads) {
  fk::EngineOptions o = options();
  o.pipeline.embedder = "no_such_model";
  try {
    fk::Engine e(o);
    FAIL() << "an unknown embedder was accepted";
  } catch (const fk::Error& err) {
    EXPECT_EQ(err.code(), fk::ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(err.what()).find("dlib_resnet"), std::string::npos) << err.what();  // the known ones
  }
  EXPECT_FALSE(fs::exists(dir_ / "people.db"));  // nothing was created
}

// Several threads identify while one thread enrols, renames and removes. The writer records the gallery's
// people after each of its writes, by revision; every answer names the revision of the snapshot that gave it,
// and must agree with the people of that revision: only people who existed then, under the name they had
// then, as many candidates as there were people (kNN over per-person means, top_k 5 > 4 people), and an
// actor enrolled at that revision is the first candidate for their own probe photo.
TEST_F(EngineTest, IdentifyIsConsistentWhileEnrolmentsAndRemovalsRun) {
  fk::Engine e(options());
  const auto& g = actors().groups;
  std::vector<fk::Embedding> probes;  // the last photo of each actor, never enrolled
  for (size_t k = 0; k < 4; ++k) {
    const auto faces = e.embed(e.load(g[k].back()));
    ASSERT_EQ(faces.size(), 1u);
    probes.push_back(faces[0].embedding);
  }
  const fk::Image probe_image = e.load(g[0].back());

  struct State {
    std::map<std::int64_t, std::string> people;  // id -> name
    std::map<std::int64_t, size_t> actor_of;     // id -> actor
  };
  std::mutex mu;
  std::map<std::int64_t, State> states;  // by revision
  State now;
  const auto record = [&] {
    const auto rev = e.gallery_stats().revision;
    std::lock_guard lock(mu);
    states[rev] = now;
  };
  record();

  struct Answer {
    std::int64_t revision;
    size_t actor;
    std::vector<std::pair<std::int64_t, std::string>> candidates;
    bool known;
  };
  std::atomic<bool> done{false};
  std::vector<std::vector<Answer>> answers(3);
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (!done.load()) {
        const size_t k = rng() % 4;
        // One thread goes through the whole pipeline (detect, landmarks, embed) on a photo of actor 0.
        const fk::IdentifyResult r = t == 0 ? e.identify(probe_image) : e.identify(probes[k]);
        Answer a{r.revision, t == 0 ? 0 : k, {}, false};
        if (!r.faces.empty()) {
          for (const auto& c : r.faces[0].identification.candidates) a.candidates.emplace_back(c.person_id, c.name);
          a.known = r.faces[0].identification.known;
        }
        answers[t].push_back(std::move(a));
      }
    });

  std::thread writer([&] {
    std::map<size_t, std::int64_t> id_of;  // actor -> person id
    const auto enrol = [&](size_t k, const std::string& name) {
      const auto r = e.enroll(name, photos(k, 0, 2));
      id_of[k] = r.stored.person.id;
      now.people[r.stored.person.id] = name;
      now.actor_of[r.stored.person.id] = k;
      record();
    };
    const auto remove = [&](size_t k) {
      e.remove({std::to_string(id_of.at(k))});
      now.people.erase(id_of[k]);
      now.actor_of.erase(id_of[k]);
      record();
    };
    const auto rename = [&](size_t k, const std::string& name) {
      e.rename(std::to_string(id_of.at(k)), name);
      now.people[id_of[k]] = name;
      record();
    };
    enrol(0, "actor A");
    enrol(1, "actor B");
    enrol(2, "actor C");
    remove(0);
    rename(1, "actor B renamed");
    enrol(3, "actor D");
    enrol(0, "actor A again");
    remove(2);
    rename(3, "actor D renamed");
    remove(1);
    done = true;
  });
  writer.join();
  for (auto& r : readers) r.join();

  size_t total = 0, checked_mated = 0;
  std::set<std::int64_t> revisions_seen;
  for (const auto& list : answers)
    for (const auto& a : list) {
      ++total;
      revisions_seen.insert(a.revision);
      const auto it = states.find(a.revision);
      ASSERT_NE(it, states.end()) << "an answer from revision " << a.revision << ", which no write committed";
      const State& s = it->second;
      EXPECT_EQ(a.candidates.size(), std::min<size_t>(5, s.people.size())) << "revision " << a.revision;
      for (const auto& [id, name] : a.candidates) {
        const auto p = s.people.find(id);
        ASSERT_NE(p, s.people.end()) << "person " << id << " did not exist at revision " << a.revision;
        EXPECT_EQ(p->second, name) << "person " << id << " at revision " << a.revision;
      }
      for (const auto& [id, actor] : s.actor_of)
        if (actor == a.actor) {
          ASSERT_FALSE(a.candidates.empty());
          EXPECT_EQ(a.candidates[0].first, id) << "actor " << actor << " at revision " << a.revision;
          ++checked_mated;
        }
    }
  EXPECT_GT(total, 20u);
  EXPECT_GT(checked_mated, 0u);
  EXPECT_GE(revisions_seen.size(), 3u) << "the readers should have seen several states of the gallery";
  RecordProperty("answers", static_cast<int>(total));
  RecordProperty("revisions_seen", static_cast<int>(revisions_seen.size()));
}

}  // namespace

// Dynamic batching (EmbedderOptions::batch_across_calls): chips from concurrent callers share forward passes,
// and every caller gets the embedding the plain embedder gives for its own faces.
TEST(BatchingEmbedder, ConcurrentCallersGetTheirOwnEmbeddings) {
  const auto& groups = fk_test::actors().groups;
  std::vector<facekit::Image> photos;
  for (const auto& g : groups)
    for (const auto& p : g) photos.push_back(facekit::load_image(p));
  photos.push_back(facekit::load_image(fk_test::kDlibFaces / "bald_guys.jpg"));  // many faces in one call
  facekit::PipelineOptions po;
  po.embedding.batch_across_calls = true;
  po.embedding.batch_window_us = 5000;
  const facekit::FacePipeline batched(po);
  const auto& plain = fk_test::shared_pipeline();
  std::vector<std::vector<facekit::AnalyzedFace>> want(photos.size()), got(photos.size());
  size_t faces = 0;
  for (size_t i = 0; i < photos.size(); ++i) faces += (want[i] = plain.analyze(photos[i])).size();
  std::vector<std::thread> ts;
  std::atomic<size_t> next{0};
  for (int t = 0; t < 6; ++t)
    ts.emplace_back([&] {
      for (size_t i; (i = next++) < photos.size();) got[i] = batched.analyze(photos[i]);
    });
  for (auto& t : ts) t.join();
  for (size_t i = 0; i < photos.size(); ++i) {
    ASSERT_EQ(got[i].size(), want[i].size()) << i;
    for (size_t k = 0; k < got[i].size(); ++k) EXPECT_LT(facekit::l2_distance(got[i][k].embedding, want[i][k].embedding), 1e-3f);
  }
  const auto st = facekit::batching_stats(batched.embedder());
  ASSERT_TRUE(st.has_value());
  EXPECT_FALSE(facekit::batching_stats(plain.embedder()).has_value());
  EXPECT_EQ(st->chips, faces);
  EXPECT_LE(st->batches, st->calls);
  std::uint64_t counted = 0;
  for (auto n : st->batch_sizes) counted += n;
  EXPECT_EQ(counted, st->batches);
}
