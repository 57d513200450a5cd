// End-to-end tier: the whole pipeline on real photos (Debian libdlib19.1's examples/faces, face-api's demo
// photos, and LFW when ../shared/data/lfw is there).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include <unistd.h>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "facekit/cluster.hpp"
#include "facekit/crop_eval.hpp"
#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/identification_eval.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"
#include "facekit/aligner.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/model.hpp"
#include "facekit/registry.hpp"
#include "facekit/pipeline.hpp"
#include "cli_run.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {
const fs::path kFaces = "/usr/share/doc/libdlib19.1/examples/faces";
const fs::path kDemo = fs::path(FACEKIT_TEST_DATA) / ".." / ".." / "models" / "face-api" / "demo";
const fs::path kLfw = FACEKIT_LFW_DIR;

const fk::FacePipeline& pipeline() { return fk_test::shared_pipeline(); }

// The cluster sizes, smallest first.
std::vector<size_t> cluster_sizes(const std::vector<fk::AnalyzedFace>& faces, float threshold) {
  std::vector<fk::Embedding> embs;
  for (const auto& f : faces) embs.push_back(f.embedding);
  std::vector<size_t> sizes;
  for (const auto& c : fk_test::cluster_faces(embs, threshold)) sizes.push_back(c.size());
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}
}  // namespace

TEST(Pipeline, BaldGuysClusterIntoFourActors) {
  // A collage of 4 bald actors, about 6 photos each; dlib's dnn_face_recognition_ex finds 4 clusters.
  const auto faces = pipeline().analyze(fk::load_image(kFaces / "bald_guys.jpg"));
  EXPECT_GE(faces.size(), 20u);
  const auto sizes = cluster_sizes(faces, pipeline().embedder().threshold());
  ASSERT_EQ(sizes.size(), 4u);
  EXPECT_GE(sizes.front(), 5u);
}

TEST(Pipeline, TheLibrarysClusteringFindsTheFourActorsButNeverJoinsFacesOfOnePhoto) {
  const auto faces = pipeline().analyze(fk::load_image(kFaces / "bald_guys.jpg"));
  std::vector<fk::Embedding> embs;
  for (const auto& f : faces) embs.push_back(f.embedding);
  fk::ClusterOptions o;
  o.threshold = pipeline().embedder().threshold();
  o.min_cluster_size = 1;
  // A collage: every face is its own photo here (no photo ids), as if the faces had been cut out.
  const auto r = fk::cluster_faces(embs, {}, o);
  EXPECT_EQ(r.clusters, 4);
  // Taken as one photo, its faces are different people by rule: nothing merges.
  const auto one = fk::cluster_faces(embs, std::vector<int>(embs.size(), 0), o);
  EXPECT_EQ(one.clusters, static_cast<int>(embs.size()));
}

TEST(Pipeline, ThreeStrangersAreDifferentPeople) {
  const auto faces = pipeline().analyze(fk::load_image(kDemo / "sample1.jpg"));
  ASSERT_EQ(faces.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = i + 1; j < 3; ++j)
      EXPECT_GT(fk::l2_distance(faces[i].embedding, faces[j].embedding), pipeline().embedder().threshold());
}

TEST(Pipeline, RotatedPhotoIsStillTheSamePerson) {
  // Real rotation alignment: a photo turned by 25 degrees embeds close to the upright one.
  const fk::Image img = fk::load_image(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  cv::Mat rot = cv::getRotationMatrix2D({img.cols / 2.f, img.rows / 2.f}, 25, 1.0), turned;
  cv::warpAffine(img, turned, rot, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  const auto a = pipeline().analyze_one(img, fk::FacePick::kLargest);
  const auto b = pipeline().analyze_one(turned, fk::FacePick::kLargest);
  const float d = fk::l2_distance(a.embedding, b.embedding);
  EXPECT_LT(d, pipeline().embedder().threshold() * 0.6f) << "distance " << d;
  // The landmarks turned with the photo: the eye line is tilted by about 25 degrees more.
  auto tilt = [](const fk::Face& f) {
    const auto p = fk::reduce_to_5(*f.landmarks);
    return std::atan2(p[1].y - p[0].y, p[1].x - p[0].x) * 180 / M_PI;
  };
  EXPECT_NEAR(tilt(a.face) - tilt(b.face), 25.0, 4.0);
}

TEST(Pipeline, LandmarksLieInsideTheFaceBox) {
  const auto faces = pipeline().detect(fk::load_image(kDemo / "sample1.jpg"));
  ASSERT_FALSE(faces.empty());
  for (const auto& f : faces) {
    const auto five = fk::reduce_to_5(*f.landmarks);
    // FaceMesh fits a whole face to the crop: the far eye of a turned face may sit on the box's edge
    // (one of sample1's faces: 0.4 px outside), so within 5% of the box.
    const float mx = 0.05f * f.box.width, my = 0.05f * f.box.height;
    for (const auto& p : five) {
      EXPECT_GT(p.x, f.box.x - mx);
      EXPECT_LT(p.x, f.box.x + f.box.width + mx);
      EXPECT_GT(p.y, f.box.y - my);
      EXPECT_LT(p.y, f.box.y + f.box.height + my);
    }
    EXPECT_LT(five[0].x, five[1].x);  // image-left eye first
    EXPECT_LT(five[0].y, five[3].y);  // eyes above the mouth
  }
}

TEST(Pipeline, LfwSameAndDifferent) {
  if (!fs::exists(kLfw / "pairs.txt")) GTEST_SKIP() << "LFW not present at " << kLfw;
  auto emb = [&](const std::string& rel) {
    return pipeline().analyze_one(fk::load_image(kLfw / rel), fk::FacePick::kNearestCenter).embedding;
  };
  const auto a1 = emb("Aaron_Peirsol/Aaron_Peirsol_0001.jpg"), a2 = emb("Aaron_Peirsol/Aaron_Peirsol_0002.jpg");
  const auto b = emb("Aaron_Eckhart/Aaron_Eckhart_0001.jpg");
  const float t = pipeline().embedder().threshold();
  EXPECT_LT(fk::l2_distance(a1, a2), t);
  EXPECT_GT(fk::l2_distance(a1, b), t);
}

TEST(Pipeline, DetectsFacesOnEveryDlibExamplePhoto) {
  int photos = 0;
  for (const auto& e : fs::directory_iterator(kFaces)) {
    if (e.path().extension() != ".jpg" || e.path().filename() == "dogs.jpg") continue;
    ++photos;
    EXPECT_FALSE(pipeline().detect(fk::load_image(e.path())).empty()) << e.path();
  }
  EXPECT_GE(photos, 10);
}

class Embedders : public ::testing::TestWithParam<std::string> {};

TEST_P(Embedders, UnitLengthOfTheManifestDimensionAndSelfDistanceZero) {
  fk::PipelineOptions o;
  o.embedder = GetParam();
  const fk::FacePipeline p(o);
  const auto img = fk::load_image(kDemo / "sample1.jpg");
  const auto faces = p.analyze(img);
  ASSERT_EQ(faces.size(), 3u);
  for (const auto& f : faces) {
    EXPECT_EQ(static_cast<int>(f.embedding.size()), p.embedder().dim());
    double n = 0;
    for (float v : f.embedding) n += double(v) * v;
    EXPECT_NEAR(n, 1.0, 1e-4);
  }
  const auto again = p.analyze(img);
  EXPECT_LT(fk::l2_distance(faces[0].embedding, again[0].embedding), 1e-5);
}

// An embedder at its manifest threshold: strangers apart, a turned photo of one man together.
static void expect_strangers_apart_and_a_turned_photo_together(const std::string& embedder) {
  fk::PipelineOptions o;
  o.embedder = embedder;
  const fk::FacePipeline p(o);
  const float t = p.embedder().threshold();
  const auto faces = p.analyze(fk::load_image(kDemo / "sample1.jpg"));
  ASSERT_EQ(faces.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = i + 1; j < 3; ++j) EXPECT_GT(fk::l2_distance(faces[i].embedding, faces[j].embedding), t);
  const fk::Image img = fk::load_image(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  cv::Mat rot = cv::getRotationMatrix2D({img.cols / 2.f, img.rows / 2.f}, 25, 1.0), turned;
  cv::warpAffine(img, turned, rot, img.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  const auto a = p.analyze_one(img, fk::FacePick::kLargest), b = p.analyze_one(turned, fk::FacePick::kLargest);
  EXPECT_LT(fk::l2_distance(a.embedding, b.embedding), t);
}

// The ONNX embedder (OpenCV DNN).
TEST(OnnxEmbedder, FacepluginSeparatesStrangersAndKeepsARotatedPhoto) {
  expect_strangers_apart_and_a_turned_photo_together("faceplugin");
}

// Enrolment's augmented views (rotations and scales about the chip's centre) made by turning the landmarks
// in the photo: the same chips as turning the alignment template (the single embedder: same embeddings to
// float rounding), and views a fusion can make too (its members align with templates of their own).
TEST(AugmentedEnrolment, LandmarkTurnsMatchTemplateTurnsAndServeAFusion) {
  const fk::Image photo = fk::load_image(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  const fk::Face face = pipeline().detect_one(photo, fk::FacePick::kLargest);
  const fk::AugmentOptions aug;
  {
    // fp32: in bf16 (auto, on a CPU that has it) two batches of different make-up round differently (3e-3 apart).
    fk::EmbedderOptions fp32;
    fp32.precision = "fp32";
    const fk::FacePipeline dlib(fk::create_detector(), fk::create_landmarker(), fk::create_embedder("dlib_resnet", fp32));
    const auto views = fk::augmented_embeddings(dlib, photo, *face.landmarks, aug);
    ASSERT_EQ(views.size(), static_cast<size_t>(aug.variants()));
    const fk::AlignmentTemplate& tpl = dlib.embedder().alignment();
    const cv::Point2f c(tpl.size / 2.f, tpl.size / 2.f);
    auto turned = [&](float deg, float scale) {  // the template turned about the chip centre (the old way)
      fk::AlignmentTemplate t = tpl;
      const float r = deg * static_cast<float>(CV_PI) / 180.f, cs = std::cos(r) * scale, sn = std::sin(r) * scale;
      for (auto& p : t.points) {
        const cv::Point2f d = p - c;
        p = c + cv::Point2f(cs * d.x - sn * d.y, sn * d.x + cs * d.y);
      }
      return t;
    };
    std::vector<fk::Image> chips;
    for (float deg : aug.rotations_deg) chips.push_back(fk::align_face(photo, *face.landmarks, turned(deg, 1.f)));
    for (float s : aug.scales) chips.push_back(fk::align_face(photo, *face.landmarks, turned(0.f, s)));
    const auto old_way = dlib.embedder().embed(chips);
    for (size_t i = 0; i < old_way.size(); ++i) {
      EXPECT_LT(fk::l2_distance(views[1 + i], old_way[i]), 2e-3f) << "view " << 1 + i;
      EXPECT_GT(fk::l2_distance(views[1 + i], views[0]), 1e-3f) << "view " << 1 + i << " is no different";
    }
  }
  const auto fused = fk::augmented_embeddings(pipeline(), photo, *face.landmarks, aug);  // the default: a fusion
  ASSERT_EQ(fused.size(), static_cast<size_t>(aug.variants()));
  for (size_t i = 1; i < fused.size(); ++i) {
    EXPECT_EQ(fused[i].size(), fused[0].size());
    EXPECT_LT(fk::l2_distance(fused[i], fused[0]), pipeline().embedder().threshold()) << "view " << i;
    EXPECT_GT(fk::l2_distance(fused[i], fused[0]), 1e-3f) << "view " << i << " is no different";
  }
}

// The ONNX embedder on its two runtimes: facekit's ONNX reader into the graph runtime (the "auto" default for
// a file it translates) and OpenCV DNN give the same descriptors for the same faces (1e-4: summation order).
TEST(OnnxEmbedder, GraphRuntimeAndOpenCvDnnAgree) {
  fk::ModelManifest m = fk::load_manifest("faceplugin");
  const fs::path file = fk::models_dir() / m.file("onnx").path;
  if (!fs::exists(file)) GTEST_SKIP() << file << " is missing: run scripts/setup";
  ASSERT_EQ(m.onnx_runtime, "auto");
  std::vector<std::unique_ptr<fk::Embedder>> runtimes;
  fk::EmbedderOptions fp32;  // "auto" runs the graph runtime in bf16 where the CPU has it; OpenCV DNN has none
  fp32.precision = "fp32";
  for (const char* r : {"graph", "opencv"}) {
    m.onnx_runtime = r;
    runtimes.push_back(fk::embedder_registry().create(m.arch, m, fp32));
  }
  const fk::Image photo = fk::load_image(kDemo / "sample1.jpg");
  const auto faces = pipeline().detect(photo);
  ASSERT_EQ(faces.size(), 3u);
  std::vector<fk::Landmarks68> pts;
  for (const auto& f : faces) pts.push_back(*f.landmarks);
  const auto g = runtimes[0]->embed_faces(photo, pts), o = runtimes[1]->embed_faces(photo, pts);
  ASSERT_EQ(g.size(), 3u);
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_EQ(g[i].size(), 512u);
    EXPECT_LT(fk::l2_distance(g[i], o[i]), 1e-4f) << "face " << i;
  }
}

// The TFLite embedder (facekit's reader on the graph runtime).
TEST(TfliteEmbedder, MobileFaceNetSeparatesStrangersAndKeepsARotatedPhoto) {
  expect_strangers_apart_and_a_turned_photo_together("mobilefacenet_tflite");
}

INSTANTIATE_TEST_SUITE_P(All, Embedders,
                         ::testing::Values("dlib_resnet", "mobileface", "faceres", "mobilefacenet", "fusion",
                                           "faceplugin", "dlib_faceplugin", "mobilefacenet_tflite"));

// BlazeFace sees a photo at its own aspect ratio (anchors generated for the padded grid, not a square
// letterbox): the same faces must come back, mapped to the same place, however wide or tall the canvas.
TEST(BlazeFace, FindsTheSameFacesOnWideAndTallCanvases) {
  const auto det = fk::create_detector("blazeface-back");
  const fk::Image photo = fk::load_image(kDemo / "sample1.jpg");
  const auto ref = det->detect(photo);
  ASSERT_EQ(ref.size(), 3u);
  for (const auto [sx, sy] : {std::pair{1.6, 1.0}, std::pair{1.0, 1.6}, std::pair{1.3, 1.3}}) {
    const int w = static_cast<int>(photo.cols * sx), h = static_cast<int>(photo.rows * sy);
    const int ox = w - photo.cols, oy = h - photo.rows;  // photo in the bottom-right corner
    fk::Image canvas(h, w, CV_8UC3, cv::Scalar(90, 90, 90));
    photo.copyTo(canvas(cv::Rect(ox, oy, photo.cols, photo.rows)));
    const auto got = det->detect(canvas);
    ASSERT_EQ(got.size(), ref.size()) << w << "x" << h;
    for (const auto& r : ref) {
      const float cx = r.box.x + r.box.width / 2 + ox, cy = r.box.y + r.box.height / 2 + oy;
      float best = 1e9f;
      for (const auto& g : got)
        best = std::min(best, std::hypot(g.box.x + g.box.width / 2 - cx, g.box.y + g.box.height / 2 - cy));
      EXPECT_LT(best, 0.15f * r.box.width) << w << "x" << h;
    }
  }
}

// A face cropped close (ID-photo style: the box of its 68 points grown by a margin, colour and grey) is one
// box, on the face (its centre inside the face's outline, as `bench crops` counts it): no nested or partial
// boxes, no miss. Every face of the dlib and face-api example photos that is at least 80 px wide.
TEST(BlazeFace, OneBoxForAFaceCroppedClose) {
  const fk::FacePipeline& p = pipeline();
  std::vector<fs::path> photos;
  for (const auto& dir : {kFaces, kDemo})
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".jpg") photos.push_back(e.path());
  std::sort(photos.begin(), photos.end());
  int crops = 0, one = 0;
  std::vector<std::string> wrong;
  for (const auto& path : photos) {
    const fk::Image img = fk::load_image(path);
    for (const auto& f : p.detect(img)) {
      if (f.box.width < 80 || !f.landmarks) continue;
      const cv::Rect2f outline = cv::boundingRect(std::vector<cv::Point2f>(f.landmarks->begin(), f.landmarks->end()));
      for (const float margin : {0.f, 0.1f, 0.25f, 0.5f})
        for (const bool grey : {false, true}) {
          const cv::Rect2f grown(outline.x - margin * outline.width, outline.y - margin * outline.height,
                                 outline.width * (1 + 2 * margin), outline.height * (1 + 2 * margin));
          const cv::Rect r = cv::Rect(grown) & cv::Rect(0, 0, img.cols, img.rows);
          fk::Image crop = img(r).clone();
          if (grey) {
            cv::Mat g;
            cv::cvtColor(crop, g, cv::COLOR_RGB2GRAY);
            cv::cvtColor(g, crop, cv::COLOR_GRAY2RGB);
          }
          const auto got = p.detector().detect(crop);
          ++crops;
          const cv::Rect2f face(outline.x - r.x, outline.y - r.y, outline.width, outline.height);
          if (got.size() == 1 && face.contains(got[0].box.center()))
            ++one;
          else
            wrong.push_back(path.filename().string() + " margin " + std::to_string(margin) + (grey ? " grey" : "") +
                            ": " + std::to_string(got.size()) + " boxes");
        }
    }
  }
  ASSERT_GE(crops, 40);
  std::string list;
  for (const auto& w : wrong) list += "\n  " + w;
  // The tight-crop benchmark (docs/results.md) measured 99.5%+ on cfp-dev; here: 98% of these harder faces
  // (looking down, in profile, in group photos).
  EXPECT_GE(one, 0.98 * crops) << one << " of " << crops << " crops gave one box on the face:" << list;
}

// Mean distance between two landmark sets over the nose, eyes and outer lips (points 27-54, most of what the
// dlib template aligns on), in units of the distance between the eyes' outer corners.
double landmark_gap(const fk::Landmarks68& a, const fk::Landmarks68& b) {
  const double iod = cv::norm(a[45] - a[36]);
  double sum = 0;
  int n = 0;
  for (int i = 27; i <= 54; ++i, ++n) sum += cv::norm(a[i] - b[i]);
  return sum / n / iod;
}

std::vector<fk::Box> faces_for_landmarks(const fk::Image& rgb) {
  std::vector<fk::Box> boxes;
  for (const auto& f : fk_test::shared_pipeline().detect(rgb)) boxes.push_back(f.box);
  return boxes;
}

TEST(FaceMesh, AgreesWithTheFrontalNetOnFrontalFaces) {
  // On dlib's example photos (frontal faces) the mesh's 68 points, offsets applied, mean what face-api's
  // points mean: within 6% of the eye distance on average (measured 0.012-0.044 on the 28 faces at least 50
  // pixels wide). Smaller faces are left out: on a 26-pixel face of 2007_007763.jpg face-api's net put the
  // mouth on the nose (gap 0.45) where the mesh was right.
  const auto mesh = fk::create_landmarker("facemesh");
  const auto net = fk::create_landmarker("face_landmark_68");
  int faces = 0;
  for (const char* name : {"2007_007763.jpg", "2008_001009.jpg", "2009_004587.jpg", "bald_guys.jpg"}) {
    const auto rgb = fk::load_image((kFaces / name).string());
    const auto boxes = faces_for_landmarks(rgb);
    const auto a = net->landmarks(rgb, boxes), b = mesh->landmarks(rgb, boxes);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      if (boxes[i].width < 50) continue;
      EXPECT_LT(landmark_gap(a[i], b[i]), 0.06) << name << " face " << i;
      ++faces;
    }
  }
  EXPECT_EQ(faces, 28);
}

TEST(FaceMesh, PointsTurnWithThePhoto) {
  // The second pass crops turned so the eyes lie level; the points found on a photo turned by 30 degrees are
  // the original's points turned with it.
  const auto mesh = fk::create_landmarker("facemesh");
  const auto rgb = fk::load_image((kFaces / "2008_001009.jpg").string());
  const cv::Point2f centre(rgb.cols / 2.f, rgb.rows / 2.f);
  const cv::Mat rot = cv::getRotationMatrix2D(centre, 30, 1.0);
  fk::Image turned;
  cv::warpAffine(rgb, turned, rot, rgb.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  const auto boxes = faces_for_landmarks(rgb);
  ASSERT_FALSE(boxes.empty());
  const auto before = mesh->landmarks(rgb, {boxes[0]});
  const auto turned_boxes = faces_for_landmarks(turned);
  ASSERT_FALSE(turned_boxes.empty());
  // The turned photo's face nearest the turned centre of the first face.
  std::vector<cv::Point2f> c0 = {{boxes[0].x + boxes[0].width / 2, boxes[0].y + boxes[0].height / 2}}, c1;
  cv::transform(c0, c1, rot);
  const auto nearest = *std::min_element(turned_boxes.begin(), turned_boxes.end(), [&](const fk::Box& a, const fk::Box& b) {
    return cv::norm(cv::Point2f(a.x + a.width / 2, a.y + a.height / 2) - c1[0]) <
           cv::norm(cv::Point2f(b.x + b.width / 2, b.y + b.height / 2) - c1[0]);
  });
  const auto after = mesh->landmarks(turned, {nearest});
  std::vector<cv::Point2f> expected;
  cv::transform(std::vector<cv::Point2f>(before[0].begin(), before[0].end()), expected, rot);
  fk::Landmarks68 want;
  std::copy(expected.begin(), expected.end(), want.begin());
  EXPECT_LT(landmark_gap(want, after[0]), 0.1);  // measured 0.077 (about 3 pixels)
  EXPECT_EQ(mesh->name(), "facemesh");
}

// The mirrored last pass (manifest "mesh": {"mirror": "always"}): the points are the mean of the plain crop's
// and the mirrored crop's, so the points found on a photo flipped left-right are, flipped back, the
// original's points, much more nearly than one pass's alone.
TEST(FaceMesh, MirroredPassMakesThePointsSymmetric) {
  auto make = [](const char* mirror) {
    setenv("FACEKIT_FACEMESH_MIRROR", mirror, 1);
    auto m = fk::create_landmarker("facemesh");
    unsetenv("FACEKIT_FACEMESH_MIRROR");
    return m;
  };
  const auto plain = make("never"), mirrored = make("always");
  // Each 68-point index's mirror image (iBUG order).
  const int mirror68[68] = {16, 15, 14, 13, 12, 11, 10, 9,  8,  7,  6,  5,  4,  3,  2,  1,  0,
                            26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 27, 28, 29, 30, 35, 34, 33,
                            32, 31, 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, 54, 53, 52,
                            51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65};
  double gap_plain = 0, gap_mirrored = 0, moved = 0;
  int faces = 0;
  for (const char* name : {"2008_001009.jpg", "bald_guys.jpg"}) {
    const auto rgb = fk::load_image((kFaces / name).string());
    fk::Image flipped;
    cv::flip(rgb, flipped, 1);
    const auto boxes = faces_for_landmarks(rgb);
    std::vector<fk::Box> flipped_boxes;
    for (const auto& b : boxes) flipped_boxes.push_back({rgb.cols - b.x - b.width, b.y, b.width, b.height});
    for (const auto* lm : {plain.get(), mirrored.get()}) {
      const auto a = lm->landmarks(rgb, boxes), b = lm->landmarks(flipped, flipped_boxes);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        if (boxes[i].width < 50) continue;
        fk::Landmarks68 back;
        for (int p = 0; p < 68; ++p)
          back[p] = {float(rgb.cols - 1) - b[i][mirror68[p]].x, b[i][mirror68[p]].y};
        (lm == plain.get() ? gap_plain : gap_mirrored) += landmark_gap(a[i], back);
        if (lm == plain.get()) ++faces;
      }
    }
    const auto a = plain->landmarks(rgb, boxes), b = mirrored->landmarks(rgb, boxes);
    for (size_t i = 0; i < a.size(); ++i)
      if (boxes[i].width >= 50) moved += landmark_gap(a[i], b[i]);
  }
  ASSERT_GT(faces, 10);
  gap_plain /= faces, gap_mirrored /= faces, moved /= faces;
  // measured on these 26 faces: plain 0.026, mirrored 0.0056 of the eye distance; the mean moves 0.013 from
  // the plain points
  EXPECT_LT(gap_mirrored, 0.5 * gap_plain) << "plain " << gap_plain << ", mirrored " << gap_mirrored;
  EXPECT_LT(moved, 0.03) << "the mirrored mean should stay near the plain points";
  std::printf("symmetry gap: plain %.4f, mirrored %.4f; moved %.4f (%d faces)\n", gap_plain, gap_mirrored,
              moved, faces);
}

// The cascade (BlazeFace, then SSD where BlazeFace is unsure) as a manifest would build it.
std::unique_ptr<fk::Detector> cascade(float unsure_below) {
  const std::string text = R"({"name": "test-cascade", "kind": "detector", "arch": "cascade", "files": [],
    "members": [{"name": "blazeface-back", "weight": 1}, {"name": "ssd_mobilenetv1", "weight": 1}],
    "cascade": {"unsure_below": )" + std::to_string(unsure_below) + "}}";
  return fk::detector_registry().create("cascade", fk::parse_manifest(text, "test"), fk::DetectorOptions{});
}

bool same_boxes(const std::vector<fk::Face>& a, const std::vector<fk::Face>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (fk::iou(a[i].box, b[i].box) < 0.999f || a[i].score != b[i].score) return false;
  return true;
}

TEST(CascadeDetector, PhotosBlazeFaceIsSureOfAreLeftAsTheyAre) {
  const auto blaze = fk::create_detector("blazeface-back");
  const auto both = cascade(0.75f);
  for (const auto& photo : {kFaces / "bald_guys.jpg", kDemo / "sample1.jpg", kFaces / "Tom_Cruise_avp_2014_4.jpg"}) {
    const auto img = fk::load_image(photo);
    const auto a = blaze->detect(img);
    ASSERT_FALSE(a.empty());
    ASSERT_GE(a.front().score, 0.75f) << photo;  // else the SSD runs and this test means nothing
    EXPECT_TRUE(same_boxes(a, both->detect(img))) << photo;
  }
}

TEST(CascadeDetector, MergedListsHoldEachFaceOnce) {
  // Always unsure: both detectors run on every photo, and each of the 24 faces must still come back once.
  const auto both = cascade(1.0f);
  const auto faces = both->detect(fk::load_image(kFaces / "bald_guys.jpg"));
  EXPECT_EQ(faces.size(), 24u);
  for (size_t i = 0; i < faces.size(); ++i)
    for (size_t j = i + 1; j < faces.size(); ++j) EXPECT_LE(fk::iou(faces[i].box, faces[j].box), 0.5f);
}

TEST(CascadeDetector, FindsTheProfileWhereBlazeFaceOnlySeesAnEar) {
  // cfp-dev 001_0013: a profile under a cap; BlazeFace-back's only box above 0.5 is on the ear (a fifth of
  // the photo wide, score ~0.52), the SSD finds the face (score ~0.98).
  const fs::path photo = fs::path(FACEKIT_CFP_DIR) / "images" / "001" / "001_0013.jpg";
  if (!fs::exists(photo)) GTEST_SKIP() << "cfp-dev is not there";
  const auto img = fk::load_image(photo);
  const auto blaze = fk::create_detector("blazeface-back")->detect(img);
  ASSERT_FALSE(blaze.empty());
  EXPECT_LT(blaze.front().score, 0.75f);
  EXPECT_LT(blaze.front().box.width, 0.3f * img.cols);
  const auto faces = cascade(0.75f)->detect(img);
  ASSERT_FALSE(faces.empty());
  const auto& main = faces.at(fk::main_face_index(faces, img.size()));
  EXPECT_GT(main.box.width, 0.5f * img.cols);
  EXPECT_GT(main.score, 0.9f);
}

TEST(Pipeline, BaldGuysHasTwentyFourFaces) {
  // dlib's collage of 4 actors: 24 faces, each found once (nested and duplicate boxes suppressed).
  EXPECT_EQ(pipeline().detect(fk::load_image(kFaces / "bald_guys.jpg")).size(), 24u);
}

TEST(BlazeFace, FindsEveryFaceWithKeypointsInside) {
  const auto det = fk::create_detector("blazeface-back");
  const auto faces = det->detect(fk::load_image(kDemo / "sample1.jpg"));
  ASSERT_EQ(faces.size(), 3u);
  for (const auto& f : faces) {
    ASSERT_EQ(f.keypoints.size(), 6u);
    for (int k = 0; k < 4; ++k) {  // eyes, nose, mouth (the ears may stick out of the box)
      EXPECT_GT(f.keypoints[k].x, f.box.x);
      EXPECT_LT(f.keypoints[k].x, f.box.x + f.box.width);
      EXPECT_GT(f.keypoints[k].y, f.box.y);
      EXPECT_LT(f.keypoints[k].y, f.box.y + f.box.height);
    }
  }
  EXPECT_GE(det->detect(fk::load_image(kFaces / "bald_guys.jpg")).size(), 20u);
  // The same photo, in a pipeline: landmarks from BlazeFace's boxes give the same people as SSD's.
  fk::PipelineOptions o;
  o.detector = "blazeface-back";
  const fk::FacePipeline p(o);
  const auto img = fk::load_image(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  const auto a = p.analyze_one(img, fk::FacePick::kLargest), b = pipeline().analyze_one(img, fk::FacePick::kLargest);
  EXPECT_LT(fk::l2_distance(a.embedding, b.embedding), 0.2f);
}

// The benchmarks' embedding cache is keyed by the face set's folder too: two sets laid out alike
// (Person/Person_0001.jpg) must not reuse each other's embeddings.
TEST(EmbeddingCache, TwoFaceSetsWithTheSamePathsDoNotShareEmbeddings) {
  const fs::path tmp = fs::temp_directory_path() / ("facekit_cache_test_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  for (const auto& [set, photo] : {std::pair{"a", kFaces / "Tom_Cruise_avp_2014_4.jpg"},
                                   std::pair{"b", kDemo / "sample1.jpg"}}) {
    fs::create_directories(tmp / set / "P");
    fs::copy_file(photo, tmp / set / "P" / "P_0001.jpg");
  }
  fk::EmbeddingCacheOptions cache;
  cache.dir = tmp / "cache";
  const std::vector<std::string> photos = {"P/P_0001.jpg"};
  int computed = -1;
  const auto a = fk::embed_lfw_photos(pipeline(), tmp / "a", photos, {false}, {}, cache, 1, {}, &computed);
  EXPECT_EQ(computed, 1);
  const auto again = fk::embed_lfw_photos(pipeline(), tmp / "a", photos, {false}, {}, cache, 1, {}, &computed);
  EXPECT_EQ(computed, 0);  // the cache works
  const auto b = fk::embed_lfw_photos(pipeline(), tmp / "b", photos, {false}, {}, cache, 1, {}, &computed);
  EXPECT_EQ(computed, 1);
  ASSERT_TRUE(a[0].ok && again[0].ok && b[0].ok);
  EXPECT_LT(fk::l2_distance(a[0].variants[0], again[0].variants[0]), 1e-6);
  EXPECT_GT(fk::l2_distance(a[0].variants[0], b[0].variants[0]), pipeline().embedder().threshold());
  fs::remove_all(tmp);
}

// Batch-aware stages (issue 18): a batch of photos gives what the photos give one at a time. The package
// photos mix sizes and aspects, and the crops add frame-filling faces (BlazeFace's second look) of one shape,
// so the batch holds shared-shape groups, singletons and both passes.
TEST(Pipeline, BatchedStagesGiveWhatSinglePhotosGive) {
  std::vector<fk::Image> imgs;
  for (const auto& dir : {kFaces, kDemo})
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".jpg") imgs.push_back(fk::load_image(e.path()));
  ASSERT_GE(imgs.size(), 10u);
  const size_t photos = imgs.size();
  for (size_t i = 0; i < photos; ++i) {  // a centred square crop of each photo's main face region
    const auto faces = pipeline().detector().detect(imgs[i]);
    if (faces.empty()) continue;
    const auto& b = faces[0].box;
    const float side = std::max(b.width, b.height) * 1.1f;
    cv::Rect r(static_cast<int>(b.x + b.width / 2 - side / 2), static_cast<int>(b.y + b.height / 2 - side / 2),
               static_cast<int>(side), static_cast<int>(side));
    r &= cv::Rect(0, 0, imgs[i].cols, imgs[i].rows);
    cv::Mat crop;
    cv::resize(imgs[i](r), crop, {160, 160});
    imgs.push_back(crop);
  }
  const auto& det = pipeline().detector();
  const auto batched = det.detect_batch(imgs);
  ASSERT_EQ(batched.size(), imgs.size());
  int faces = 0;
  for (size_t i = 0; i < imgs.size(); ++i) {
    const auto one = det.detect(imgs[i]);
    ASSERT_EQ(batched[i].size(), one.size()) << "photo " << i;
    for (size_t k = 0; k < one.size(); ++k) {
      EXPECT_NEAR(batched[i][k].box.x, one[k].box.x, 0.05f);
      EXPECT_NEAR(batched[i][k].box.width, one[k].box.width, 0.05f);
      EXPECT_NEAR(batched[i][k].score, one[k].score, 1e-4f);
    }
    faces += static_cast<int>(one.size());
  }
  EXPECT_GT(faces, 40);

  std::vector<int> found;
  const auto picked = pipeline().detect_one_batch(imgs, fk::FacePick::kMain, &found);
  std::vector<fk::Image> with;
  std::vector<std::vector<fk::Face>> with_faces;
  for (size_t i = 0; i < imgs.size(); ++i) {
    int n = 0;
    std::optional<fk::Face> one;
    try {
      one = pipeline().detect_one(imgs[i], fk::FacePick::kMain, nullptr, &n);
    } catch (const fk::Error& e) {
      EXPECT_EQ(e.code(), fk::ErrorCode::kNoFace);
    }
    EXPECT_EQ(found[i], n);
    ASSERT_EQ(picked[i].has_value(), one.has_value()) << "photo " << i;
    if (!one) continue;
    for (int p = 0; p < 68; ++p) EXPECT_NEAR((*picked[i]->landmarks)[p].x, (*one->landmarks)[p].x, 0.05f);
    with.push_back(imgs[i]);
    with_faces.push_back({*one});
  }
  const auto embedded = pipeline().embed_batch(with, with_faces);
  for (size_t i = 0; i < with.size(); ++i) {
    const auto single = pipeline().embed(with[i], with_faces[i]);
    double dot = 0;
    for (size_t d = 0; d < single[0].embedding.size(); ++d) dot += single[0].embedding[d] * embedded[i][0].embedding[d];
    EXPECT_GT(dot, 0.9999) << "photo " << i;
  }
}

TEST(CropBench, EnrolsAsEnrollDoesAndCountsEveryProbe) {
  // Three cfp-dev people, photos 1-4: 12 photos, the whole photo and a crop at margin 0.25.
  const fs::path root = fs::path(FACEKIT_CFP_DIR) / "images";
  if (!fs::exists(root / "001" / "001_0001.jpg")) GTEST_SKIP() << "cfp-dev is not there";
  fk::CropBenchOptions o;
  o.root = root;
  o.first_index = 1, o.last_index = 4;
  o.margins = {0.25f};
  o.grey = false;
  o.limit_people = 3;
  for (bool augment : {true, false}) {
    o.augment.enabled = augment;
    const auto r = fk::run_crop_bench(pipeline(), pipeline(), o);
    EXPECT_EQ(r.people, 3);
    EXPECT_EQ(r.photos, 12);
    ASSERT_EQ(r.variants.size(), 2u);
    for (const auto& v : r.variants) {
      SCOPED_TRACE(v.name + (augment ? ", augmented" : ", plain"));
      EXPECT_EQ(v.one, 12);
      EXPECT_EQ(v.probes, 9);  // each person's first photo is enrolled
      EXPECT_GE(v.rank1, 8);
      EXPECT_EQ(v.augmented_enrolments, augment ? 3 : 0);
    }
  }
  o.margins = {5.f};
  EXPECT_THROW(fk::run_crop_bench(pipeline(), pipeline(), o), fk::Error);
}
