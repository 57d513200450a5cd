#include "facekit/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "facekit/error.hpp"

namespace facekit {
namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
}  // namespace

const ScoreCalibration& calibration_for(const PipelineOptions& options, const ModelManifest& embedder) {
  return options.calibration ? *options.calibration : embedder.calibration;
}

struct FacePipeline::Impl {
  float rescue_min_score = 0;
  ScoreCalibration calibration;
  std::unique_ptr<Detector> detector;
  std::unique_ptr<Landmarker> landmarker;
  std::unique_ptr<Embedder> embedder;
};

FacePipeline::FacePipeline(const PipelineOptions& options) : impl_(std::make_unique<Impl>()) {
  DetectorOptions d = options.detection;
  d.device = options.device;
  EmbedderOptions e = options.embedding;
  e.device = options.device;
  LandmarkerOptions l;
  l.device = options.device;
  impl_->rescue_min_score = options.rescue_min_score;
  impl_->detector = create_detector(options.detector, d);
  impl_->landmarker = create_landmarker(options.landmarker, l);
  impl_->embedder = create_embedder(options.embedder, e);
  impl_->calibration = calibration_for(options, impl_->embedder->manifest());
}

FacePipeline::FacePipeline(std::unique_ptr<Detector> detector, std::unique_ptr<Landmarker> landmarker,
                           std::unique_ptr<Embedder> embedder, const PipelineOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (!detector || !landmarker || !embedder)
    throw Error(ErrorCode::kInvalidArgument, "a pipeline needs a detector, a landmarker and an embedder");
  impl_->rescue_min_score = options.rescue_min_score;
  impl_->detector = std::move(detector);
  impl_->landmarker = std::move(landmarker);
  impl_->embedder = std::move(embedder);
  impl_->calibration = calibration_for(options, impl_->embedder->manifest());
}

FacePipeline::~FacePipeline() = default;
FacePipeline::FacePipeline(FacePipeline&&) noexcept = default;
FacePipeline& FacePipeline::operator=(FacePipeline&&) noexcept = default;

const Detector& FacePipeline::detector() const { return *impl_->detector; }
const Landmarker& FacePipeline::landmarker() const { return *impl_->landmarker; }
const Embedder& FacePipeline::embedder() const { return *impl_->embedder; }
const ScoreCalibration& FacePipeline::calibration() const { return impl_->calibration; }

std::vector<Face> FacePipeline::detect(const Image& rgb, StageTimes* times) const {
  auto t0 = Clock::now();
  auto faces = impl_->detector->detect(rgb);
  if (times) times->detect_ms += ms_since(t0);
  t0 = Clock::now();
  std::vector<Box> boxes;
  for (const auto& f : faces) boxes.push_back(f.box);
  auto lms = impl_->landmarker->landmarks(rgb, boxes);
  for (size_t i = 0; i < faces.size(); ++i) faces[i].landmarks = lms[i];
  if (times) {
    times->landmarks_ms += ms_since(t0);
    times->faces += static_cast<int>(faces.size());
  }
  return faces;
}

namespace {
std::vector<AnalyzedFace> embed_faces(const Embedder& embedder, const Image& rgb, std::vector<Face> faces,
                                      StageTimes* times) {
  // Alignment happens inside embed_faces (each member of a fusion aligns its own way), so its time counts
  // as embedding here.
  auto t0 = Clock::now();
  std::vector<Landmarks68> lms;
  for (const auto& f : faces) lms.push_back(*f.landmarks);
  auto embs = embedder.embed_faces(rgb, lms);
  if (times) times->embed_ms += ms_since(t0);
  std::vector<AnalyzedFace> out;
  for (size_t i = 0; i < faces.size(); ++i) out.push_back({std::move(faces[i]), std::move(embs[i])});
  return out;
}
}  // namespace

std::vector<AnalyzedFace> FacePipeline::analyze(const Image& rgb, StageTimes* times) const {
  return embed_faces(*impl_->embedder, rgb, detect(rgb, times), times);
}

const char* to_string(FacePick p) {
  switch (p) {
    case FacePick::kMain: return "main";
    case FacePick::kLargest: return "largest";
    case FacePick::kNearestCenter: return "center";
  }
  return "?";
}

int main_face_index(const std::vector<Face>& faces, cv::Size size) {
  if (faces.empty()) return -1;
  float max_side = 0;
  for (const auto& f : faces) max_side = std::max(max_side, std::sqrt(f.box.area()));
  const cv::Point2f c(size.width / 2.f, size.height / 2.f);
  const float half_diag = 0.5f * std::hypot(float(size.width), float(size.height));
  int best = 0;
  float best_value = -1;
  for (size_t i = 0; i < faces.size(); ++i) {
    const auto& f = faces[i];
    const cv::Point2f d = f.box.center() - c;
    const float r = std::min(1.f, std::hypot(d.x, d.y) / half_diag);
    const float value = f.score * (max_side > 0 ? std::sqrt(f.box.area()) / max_side : 1.f) * (1.f - 0.75f * r * r);
    if (value > best_value) best_value = value, best = static_cast<int>(i);
  }
  return best;
}

namespace {
Face pick_face(const std::vector<Face>& faces, const Image& rgb, FacePick pick) {
  const cv::Point2f c(rgb.cols / 2.f, rgb.rows / 2.f);
  auto better = [&](const Face& a, const Face& b) {
    if (pick == FacePick::kLargest) return a.box.area() > b.box.area();
    const auto da = a.box.center() - c, db = b.box.center() - c;
    return da.dot(da) < db.dot(db);
  };
  return pick == FacePick::kMain ? faces[main_face_index(faces, rgb.size())]
                                 : *std::min_element(faces.begin(), faces.end(), better);
}
}  // namespace

Face FacePipeline::detect_one(const Image& rgb, FacePick pick, StageTimes* times, int* faces_found) const {
  std::vector<int> found;
  auto one = detect_one_batch({rgb}, pick, &found, times);
  if (faces_found) *faces_found = found.at(0);
  if (!one.at(0)) throw Error(ErrorCode::kNoFace, "no face found");
  return std::move(*one[0]);
}

std::vector<std::optional<Face>> FacePipeline::detect_one_batch(const std::vector<Image>& images, FacePick pick,
                                                                std::vector<int>* faces_found, StageTimes* times) const {
  auto t0 = Clock::now();
  auto all = impl_->detector->detect_batch(images);
  const float rescue = impl_->rescue_min_score;
  for (size_t i = 0; i < images.size(); ++i)
    if (all[i].empty() && rescue > 0 && rescue < impl_->detector->options().min_score) {
      DetectorOptions relaxed = impl_->detector->options();
      relaxed.min_score = rescue;
      relaxed.zoom_out_retries = {1.5f, 2.f, 3.f, 4.f};
      all[i] = impl_->detector->detect(images[i], relaxed);
    }
  if (times) times->detect_ms += ms_since(t0);
  if (faces_found) {
    faces_found->clear();
    for (const auto& f : all) faces_found->push_back(static_cast<int>(f.size()));
  }
  std::vector<std::optional<Face>> out(images.size());
  std::vector<std::vector<Box>> boxes(images.size());
  for (size_t i = 0; i < images.size(); ++i)
    if (!all[i].empty()) {
      out[i] = pick_face(all[i], images[i], pick);
      boxes[i] = {out[i]->box};
    }
  t0 = Clock::now();
  const auto lms = impl_->landmarker->landmarks_batch(images, boxes);
  for (size_t i = 0; i < images.size(); ++i)
    if (out[i]) out[i]->landmarks = lms[i].at(0);
  if (times) {
    times->landmarks_ms += ms_since(t0);
    times->faces += static_cast<int>(std::count_if(out.begin(), out.end(), [](auto& f) { return f.has_value(); }));
  }
  return out;
}

std::vector<std::vector<AnalyzedFace>> FacePipeline::embed_batch(const std::vector<Image>& images,
                                                                 std::vector<std::vector<Face>> faces,
                                                                 StageTimes* times) const {
  if (images.size() != faces.size()) throw Error(ErrorCode::kInvalidArgument, "embed_batch: one face list per image");
  std::vector<std::vector<Landmarks68>> lms(images.size());
  for (size_t i = 0; i < images.size(); ++i)
    for (const auto& f : faces[i]) {
      if (!f.landmarks) throw Error(ErrorCode::kInvalidArgument, "embed() needs faces with landmarks");
      lms[i].push_back(*f.landmarks);
    }
  const auto t0 = Clock::now();
  auto embs = impl_->embedder->embed_faces_batch(images, lms);
  if (times) times->embed_ms += ms_since(t0);
  std::vector<std::vector<AnalyzedFace>> out(images.size());
  for (size_t i = 0; i < images.size(); ++i)
    for (size_t j = 0; j < faces[i].size(); ++j) out[i].push_back({std::move(faces[i][j]), std::move(embs[i][j])});
  return out;
}

std::vector<AnalyzedFace> FacePipeline::embed(const Image& rgb, std::vector<Face> faces, StageTimes* times) const {
  for (const auto& f : faces)
    if (!f.landmarks) throw Error(ErrorCode::kInvalidArgument, "embed() needs faces with landmarks");
  return embed_faces(*impl_->embedder, rgb, std::move(faces), times);
}

AnalyzedFace FacePipeline::analyze_one(const Image& rgb, FacePick pick, StageTimes* times, int* faces_found) const {
  return std::move(embed_faces(*impl_->embedder, rgb, {detect_one(rgb, pick, times, faces_found)}, times).at(0));
}

VerifyResult FacePipeline::verify(const Image& a, const Image& b) const {
  VerifyResult r;
  try {
    r.a = analyze_one(a, FacePick::kLargest, nullptr, &r.faces_in_a);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNoFace) throw Error(ErrorCode::kNoFace, "no face found in the first photo");
    throw;
  }
  try {
    r.b = analyze_one(b, FacePick::kLargest, nullptr, &r.faces_in_b);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNoFace) throw Error(ErrorCode::kNoFace, "no face found in the second photo");
    throw;
  }
  r.distance = l2_distance(r.a.embedding, r.b.embedding);
  r.threshold = impl_->embedder->threshold();
  r.same = r.distance <= r.threshold;
  if (!impl_->calibration.empty()) r.probability = impl_->calibration.probability_at(r.distance);
  return r;
}

}  // namespace facekit
