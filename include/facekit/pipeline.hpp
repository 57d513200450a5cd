#pragma once
// The recognition pipeline: detect -> 68 landmarks -> align -> embed, with verification on top.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facekit/detector.hpp"
#include "facekit/embedder.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/registry.hpp"

namespace facekit {

struct PipelineOptions {
  std::string detector = defaults::kDetector;
  std::string landmarker = defaults::kLandmarker;
  std::string embedder = defaults::kEmbedder;
  DetectorOptions detection;
  /// analyze_one() and verify() are told the photo holds a face. When no face reaches detection.min_score,
  /// they search again down to this score (and at more zoom-out factors) and take the best; 0 disables.
  float rescue_min_score = 0.3f;
  EmbedderOptions embedding;
  std::string device = defaults::kDevice;  ///< applied to every stage
  /// distance -> P(same): this map instead of the embedder manifest's (a user's own, `facekit calibrate`).
  std::optional<ScoreCalibration> calibration;
};

/// The distance -> P(same) map a pipeline with these options uses for this embedder: options.calibration when
/// given, else the embedder manifest's (empty when it has none).
const ScoreCalibration& calibration_for(const PipelineOptions& options, const ModelManifest& embedder);

/// Milliseconds spent in each stage by one call (wall clock).
struct StageTimes {
  double detect_ms = 0, landmarks_ms = 0;
  double embed_ms = 0;  ///< alignment plus embedding
  int faces = 0;
};

struct AnalyzedFace {
  Face face;  ///< with landmarks filled in
  Embedding embedding;
};

struct VerifyResult {
  float distance = 0;
  float threshold = 0;
  bool same = false;
  /// P(same person) from the score calibration (PipelineOptions::calibration or the embedder's manifest);
  /// absent when there is none.
  std::optional<double> probability;
  AnalyzedFace a, b;
  int faces_in_a = 0, faces_in_b = 0;
};

/// Which face of a photo a caller means when a photo holds several.
/// kMain: "the" face of the photo (verify, enrol, the benchmarks): see main_face_index().
enum class FacePick { kMain, kLargest, kNearestCenter };
const char* to_string(FacePick p);

/// The face a caller means when it asks for "the" face of a photo of `image_size`: the one that best combines
/// detection score, size and nearness to the centre (a subject is framed large and central; a background face
/// is smaller or off-centre, and a spurious box scores lower). -1 when `faces` is empty.
int main_face_index(const std::vector<Face>& faces, cv::Size image_size);

/// Thread safety: all methods are const and may be called from several threads at once.
class FacePipeline {
 public:
  explicit FacePipeline(const PipelineOptions& options = {});
  /// From stage objects the caller made (its own implementations, or ones shared with other code);
  /// `options` gives only the rescue score (the stages were configured when made). Throws
  /// Error(kInvalidArgument) for a null stage.
  FacePipeline(std::unique_ptr<Detector> detector, std::unique_ptr<Landmarker> landmarker,
               std::unique_ptr<Embedder> embedder, const PipelineOptions& options = {});
  ~FacePipeline();
  FacePipeline(FacePipeline&&) noexcept;
  FacePipeline& operator=(FacePipeline&&) noexcept;

  /// Faces with 68 landmarks, no embeddings.
  std::vector<Face> detect(const Image& rgb, StageTimes* times = nullptr) const;
  /// Every face with its embedding.
  std::vector<AnalyzedFace> analyze(const Image& rgb, StageTimes* times = nullptr) const;
  /// One chosen face with landmarks, no embedding; throws Error(kNoFace) when there is none.
  Face detect_one(const Image& rgb, FacePick pick, StageTimes* times = nullptr, int* faces_found = nullptr) const;
  /// detect_one() for several photos, with detection, landmarks and their network passes batched across the
  /// photos (a batch job's: a benchmark, an enrolment of many photos): the face of each photo, or none where
  /// it has none; `faces_found` receives each photo's count. Times are the batch's totals.
  std::vector<std::optional<Face>> detect_one_batch(const std::vector<Image>& images, FacePick pick,
                                                    std::vector<int>* faces_found = nullptr,
                                                    StageTimes* times = nullptr) const;
  /// embed() for several photos (faces[i] found in images[i]), their chips embedded together.
  std::vector<std::vector<AnalyzedFace>> embed_batch(const std::vector<Image>& images,
                                                     std::vector<std::vector<Face>> faces,
                                                     StageTimes* times = nullptr) const;
  /// Embeddings of faces found earlier (landmarks required).
  std::vector<AnalyzedFace> embed(const Image& rgb, std::vector<Face> faces, StageTimes* times = nullptr) const;
  /// Embedding of one chosen face; throws Error(kNoFace) when there is none.
  AnalyzedFace analyze_one(const Image& rgb, FacePick pick, StageTimes* times = nullptr,
                           int* faces_found = nullptr) const;
  /// Same person? Uses the largest face of each photo.
  VerifyResult verify(const Image& a, const Image& b) const;

  const Detector& detector() const;
  const Landmarker& landmarker() const;
  const Embedder& embedder() const;
  /// The distance -> P(same) map in use (empty when neither the options nor the manifest give one).
  const ScoreCalibration& calibration() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace facekit
