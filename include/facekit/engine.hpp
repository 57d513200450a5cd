#pragma once
// facekit::Engine: the one object an application holds. It owns the pipeline (detector, landmarks, embedder),
// the quality assessor, the spoof checker, the gallery and the identification index, and is what the CLI, the
// HTTP service and the Python bindings call.
//
//   facekit::Engine engine;                                  // defaults: blazeface-ssd, dlib_resnet, cpu
//   auto v = engine.verify(engine.load("a.jpg"), engine.load("b.jpg"));
//   engine.enroll("Ada", {{"ada1.jpg"}, {"ada2.jpg"}});
//   auto who = engine.identify(engine.load("door.jpg"));   // who.faces[i].identification
//
// Thread safety: every method may be called from many threads at once. Writes to the gallery (enroll,
// rename, remove, import) are serialised by the engine; identify() never waits for them: it answers from the
// newest snapshot of the index (index, classifier and people's names of one gallery revision) and moves to a
// newer one once it is built, so every answer is consistent with one committed state of the gallery.
// Model names are checked when the engine is made; the models load on first use (or load_models()), and the
// gallery opens on first use, so that `people list` costs no model loading.
#include <cstdint>
#include <chrono>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facekit/attributes.hpp"
#include "facekit/gallery.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"
#include "facekit/liveness.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/quality.hpp"
#include "facekit/spoof.hpp"
#include "facekit/registry.hpp"

namespace facekit {

struct EngineOptions {
  PipelineOptions pipeline;  ///< detector, landmarker, embedder and device (defaults in pipeline.hpp)
  /// The gallery file; empty: default_gallery_path() ($FACEKIT_GALLERY, else ~/.local/share/facekit/gallery.db).
  std::filesystem::path gallery;
  /// create (default true: enrolment makes the file), read_only, durable, key of an encrypted gallery.
  GalleryOptions gallery_options;
  IdentifyOptions identify;  ///< classifier, aggregation, top_k, threshold or target FPIR, caches
  EnrollOptions enroll;      ///< augmentation, conflict rule, quality gate (its image_limits are image_limits)
  QualityOptions quality;
  /// The passive anti-spoofing checker (a manifest name); it loads on the first spoof() or analyze() that asks.
  std::string spoof_checker = defaults::kSpoofChecker;
  SpoofOptions spoof;        ///< its device follows pipeline.device
  /// Age, gender and group estimates (a manifest name, kind "attributes"); it loads on the first call that
  /// asks (attributes(), analyze() with attributes).
  std::string attribute_estimator = defaults::kAttributeEstimator;
  /// How load() and enrolment read image files and bytes: size limits, damaged files refused.
  ImageLimits image_limits;
  /// identify() asks the gallery for its revision (one query, serialised on the store's connection) at most
  /// this often, to see writes by other processes; the engine's own writes are seen by the next identify()
  /// at once. 0: every call asks.
  int revision_poll_ms = 100;
};

/// What analyze() reports of one face.
struct FaceAnalysis {
  Face face;                          ///< box, score, 68 landmarks
  FaceQuality quality;
  std::optional<SpoofResult> spoof;   ///< when asked for
  std::optional<Embedding> embedding; ///< when asked for
  std::optional<FaceAttributes> attributes; ///< when asked for: estimates, see attributes.hpp
};

struct AnalyzeOptions {
  bool quality = true;
  bool spoof = false;
  bool embedding = false;
  bool attributes = false;
  /// The photo is expected to hold a face: when none reaches the detector's score, search again at the
  /// pipeline's rescue score and keep the best (as quality checks of enrolment photos do).
  bool rescue = false;
};

/// A face passed to spoof(): the box scored, or the whole image when it is a face crop.
struct SpoofedFace {
  Face face;
  SpoofResult result;
};

struct IdentifiedFace {
  Face face;
  Identification identification;  ///< candidates best first; `known` against the threshold
  Embedding embedding;            ///< the face's embedding (what was searched for)
};

/// identify()'s answer for one image: every face, and the gallery state it was judged against.
struct IdentifyResult {
  std::vector<IdentifiedFace> faces;
  std::int64_t revision = 0;     ///< the gallery revision of the snapshot that answered
  std::string embedder;          ///< EmbedderId::str()
  std::string classifier;
  float threshold = 0;
  std::string threshold_source;
  std::string gallery;           ///< its location
  std::int64_t people = 0;       ///< people with templates of this embedder in the snapshot
  std::string cache_error;       ///< why the index cache could not be read or written ("" when fine)
  StageTimes times;              ///< detection, landmarks and embedding of identify(image)
  double search_ms = 0;          ///< the index search and classifier, all faces
};

/// A person and their templates, as people show prints them.
struct PersonRecord {
  Person person;
  std::vector<Template> templates;
};

/// What a snapshot rebuild did (identify() after a write, or refresh_index()).
struct IndexStatus {
  RefreshReport refresh;
  std::int64_t rows = 0;
  std::string index;       ///< the index kind ("Flat", "HNSW32", ...) or "none"
  std::string classifier;  ///< describe() of the classifier
};

/// How an engine that follows its gallery (Engine::watch_gallery) stands.
struct SyncStatus {
  bool watching = false;
  /// The last look at the gallery succeeded and the index holds its revision then. False before the first
  /// look and while the gallery cannot be reached (error says why).
  bool caught_up = false;
  std::int64_t revision = -1;  ///< the revision the index held after the last look
  std::int64_t checks = 0;     ///< looks so far
  std::string error;
};

/// Throws Error(kInvalidArgument) unless `name` is a registered model of `kind` ("detector", "embedder", ...)
/// or a model directory; the message starts with `what` and lists the known models of that kind.
void check_model_name(const std::string& name, const std::string& kind, const std::string& what);

class Engine {
 public:
  /// Checks the model names. Throws Error(kInvalidArgument) for a detector or embedder name that names
  /// no registered model of that kind (the message lists the known ones), and what loading throws.
  explicit Engine(EngineOptions options = {});
  /// Over a pipeline the caller built (e.g. from its own stage objects); options.pipeline is then unused.
  Engine(EngineOptions options, FacePipeline pipeline);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineOptions& options() const;
  /// Loads the pipeline's models now instead of on the first call that needs them.
  void load_models() const;
  const FacePipeline& pipeline() const;
  EmbedderId embedder_id() const;

  // ---- images -----------------------------------------------------------------------------------------
  /// Reads an image file with the engine's limits (a damaged one throws, or warns through
  /// image_limits.on_damage when accept_damaged is set).
  Image load(const std::filesystem::path& path) const;
  /// Decodes encoded image bytes (JPEG, PNG, ...) with the engine's limits.
  Image decode(const std::string& bytes, const std::string& name = "<memory>") const;

  // ---- faces ------------------------------------------------------------------------------------------
  /// Every face with 68 landmarks.
  std::vector<Face> detect(const Image& rgb) const;
  /// Every face with its embedding.
  std::vector<AnalyzedFace> embed(const Image& rgb) const;
  /// Every face with quality, and liveness and embedding when asked.
  std::vector<FaceAnalysis> analyze(const Image& rgb, const AnalyzeOptions& options = {}) const;
  /// The same for faces found earlier by detect() (no second detection; landmarks required for embeddings).
  std::vector<FaceAnalysis> analyze(const Image& rgb, const std::vector<Face>& faces,
                                    const AnalyzeOptions& options) const;
  /// Same person? The main face of each photo; `threshold` NaN: the embedder's calibrated threshold.
  VerifyResult verify(const Image& a, const Image& b,
                      float threshold = std::numeric_limits<float>::quiet_NaN()) const;
  /// Passive anti-spoofing of every face (or of the whole image taken as one face crop).
  std::vector<SpoofedFace> spoof(const Image& rgb, bool whole_image = false) const;
  const SpoofChecker& spoof_checker() const;
  /// Estimated age, gender and group of faces found by detect() (one forward pass for all of them).
  std::vector<FaceAttributes> attributes(const Image& rgb, const std::vector<Face>& faces) const;
  const AttributeEstimator& attribute_estimator() const;
  /// Active liveness of a video or frame folder, with the spoof checker's score on every frame unless
  /// `passive` is false.
  ActiveLivenessResult liveness(FrameSource& source, ActiveLivenessOptions options = {}, bool passive = true,
                                int max_frames = 0) const;

  // ---- gallery ----------------------------------------------------------------------------------------
  /// Enrols one person (see facekit::enroll): every photo processed first, then one transaction.
  EnrollResult enroll(const std::string& name, const std::vector<EnrollPhoto>& photos);
  /// As above with other options (augmentation, conflict rule, quality gate, metadata) for this call; its
  /// image_limits are replaced by the engine's.
  EnrollResult enroll(const std::string& name, const std::vector<EnrollPhoto>& photos, const EnrollOptions& options);
  /// Every face of the image against the newest snapshot of the gallery.
  IdentifyResult identify(const Image& rgb) const;
  /// The faces of `rgb` found earlier by detect() (landmarks required), e.g. after the caller dropped some.
  IdentifyResult identify(const Image& rgb, const std::vector<Face>& faces) const;
  /// One embedding (of this engine's embedder) against the newest snapshot.
  IdentifyResult identify(const Embedding& embedding) const;

  std::vector<Person> people() const;
  /// A person by id (all digits) or name; a reference that is one person's id and another's name is refused.
  /// Throws Error(kNotFound).
  Person find(const std::string& ref) const;
  PersonRecord person(const std::string& ref) const;
  Person rename(const std::string& ref, const std::string& new_name);
  /// Removes people (every reference resolved before any removal; one named twice is removed once), each in
  /// its own transaction. Returns them as they were.
  std::vector<Person> remove(const std::vector<std::string>& refs);
  /// Removes one template by id; removing a person's last one removes the person too. Throws Error(kNotFound).
  TemplateRemoval remove_template(std::int64_t template_id);
  GalleryStats gallery_stats() const;
  /// Rebuilds the index snapshot now (identify() does it on demand) and reports it.
  IndexStatus refresh_index() const;
  /// The gallery itself, opened on first use, for what the engine does not wrap (export, import, check).
  /// Writes through it are not serialised with the engine's.
  Gallery& gallery();
  /// Follows the gallery from a background thread, so that other processes' writes reach identify() without
  /// waiting for a request to poll: it wakes on the store's notifications (PostgreSQL's NOTIFY) and looks at
  /// least every `interval` regardless, applying what changed. A lost notification costs at most `interval`.
  /// Idempotent; the thread stops with the engine.
  void watch_gallery(std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  SyncStatus sync_status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace facekit
