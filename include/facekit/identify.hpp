#pragma once
// Enrolment (photos -> templates in a gallery) and identification (a face -> the enrolled people it may be,
// or unknown).
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facekit/classifier.hpp"
#include "facekit/gallery.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/quality.hpp"
#include "facekit/vector_index.hpp"
#include "facekit/registry.hpp"

namespace facekit {

/// The EmbedderId of a pipeline's embedder (manifest name and version).
EmbedderId embedder_id(const FacePipeline& pipeline);

// ---- enrolment --------------------------------------------------------------------------------------------

/// One-to-many augmentation of an enrolment photo: the aligned face is re-cut slightly rotated and scaled and
/// re-lit, each copy is embedded (with the embedder's own mirror TTA) and the embeddings are averaged into
/// one template. Each copy costs one more embedder pass (two with flip).
struct AugmentOptions {
  /// On LFW (bench identify, kNN) it raised one-shot rank-1 from 93.75% to 94.13%, moved 50/50 rank-1 by +0.1
  /// and DIR at FPIR=1% by -0.1 points, for 7x the embedding work at enrolment only (docs/gallery.md). It helps
  /// where a person has one photo and costs nothing at identification, so it is on.
  bool enabled = true;
  std::vector<float> rotations_deg = {-7.f, 7.f};  ///< about the chip centre
  std::vector<float> scales = {0.93f, 1.07f};      ///< zoom about the chip centre
  std::vector<float> gammas = {0.6f, 1.6f};        ///< lighting: pixel^gamma (darker > 1, brighter < 1)
  int variants() const {
    return 1 + static_cast<int>(rotations_deg.size() + scales.size() + gammas.size());
  }
};

/// Embeddings of one face: [0] is the plain aligned chip (what FacePipeline::analyze gives), then one per
/// augmentation in the order rotations, scales, gammas. `landmarks` are the face's 68 points in `rgb`.
std::vector<Embedding> augmented_embeddings(const FacePipeline& pipeline, const Image& rgb,
                                            const Landmarks68& landmarks, const AugmentOptions& options);

/// The L2-normalised mean of embeddings (many-to-one aggregation).
Embedding mean_embedding(const std::vector<Embedding>& embeddings);
/// The mean of a person's good templates: those whose quality (Template::quality) is below `min_quality` are
/// left out when at least one reaches it; with none reaching it, all are used. A profile or a blurred photo
/// enrolled beside good ones pulls the mean towards everyone (docs/results.md, open-set on cfp-dev).
Embedding mean_of_good_templates(const std::vector<Embedding>& embeddings, const std::vector<float>& quality,
                                 float min_quality);
/// A person's index row under Aggregation::kMean: the mean m of their good templates (mean_of_good_templates'
/// choice, each template L2-normalised first) as a unit vector one value longer than an embedding,
/// [m / |m|^power, sqrt(1 - |m|^(2 - 2 power))], so that a probe x padded with a 0 scores x.m / |m|^power as the
/// similarity 1 - d^2/2 of an L2 index. power 1 is the cosine to the normalised mean; the mean of k templates
/// then lies nearer everyone than one photo does, the more so the larger k (LFW: strangers' similarity at FAR
/// 1e-3 0.865 for k = 1, 0.888 for k = 7), so one threshold cannot hold for people enrolled with one photo and
/// with seven. power 0.5 keeps that tail within 0.008 from k = 1 to 15 (IdentifyOptions::mean_norm_power).
Embedding mean_row(const std::vector<Embedding>& embeddings, const std::vector<float>& quality, float min_quality,
                   float power);

struct EnrollOptions {
  AugmentOptions augment;
  /// Adding photos under a name that is already enrolled adds templates to that person (kMerge), or is an
  /// error (kFail).
  OnConflict on_conflict = OnConflict::kMerge;
  std::string metadata = "{}";  ///< JSON object stored with the person (merged into an existing one's)
  /// Each photo's face is assessed (quality.hpp) and its score stored as the template's quality. A photo
  /// whose face is poor (blurred, dark, turned away, tiny, eyes closed, cut off) is refused with
  /// Error(kPoorQuality) naming the reasons, unless `allow_poor` is set.
  QualityOptions quality;
  bool allow_poor = false;
  /// How photos given by path are read (size limits, damaged files).
  ImageLimits image_limits;
};

/// A photo to enrol: a file, or an image already in memory (then `sha256` identifies it; may be empty).
struct EnrollPhoto {
  std::filesystem::path path;  ///< read when `image` is empty
  Image image;
  std::string sha256;
  std::string label;           ///< shown in messages; defaults to the path
};

/// What enrolment found in one photo.
struct EnrolledPhoto {
  std::string label;
  std::string sha256;
  Face face;
  FaceQuality quality;
};

struct EnrollResult {
  AddResult stored;
  std::vector<EnrolledPhoto> photos;
};

/// Enrols one person from one or more photos. Every photo must hold exactly one face: no face is
/// Error(kNoFace), several faces Error(kInvalidArgument), a poor face Error(kPoorQuality) (see
/// EnrollOptions::allow_poor), each naming the photo; an unreadable photo throws as load_image does. All photos are processed before anything is written, then the person and all
/// templates are stored in one transaction, so any error leaves the gallery untouched.
EnrollResult enroll(Gallery& gallery, const FacePipeline& pipeline, const std::string& name,
                    const std::vector<EnrollPhoto>& photos, const EnrollOptions& options = {});

// ---- identification ---------------------------------------------------------------------------------------

/// How a person's templates become index rows.
enum class Aggregation {
  kAuto,  ///< kMean for knn, kNone for svm (each measured best for its classifier on LFW)
  kNone,  ///< every template is a row (the kNN votes over photos; the SVM learns from every photo)
  kMean,  ///< one row per person: the normalised mean of their templates (many-to-one)
};
const char* to_string(Aggregation a);
/// "auto", "none" or "mean"; throws Error(kInvalidArgument).
Aggregation parse_aggregation(const std::string& s);
/// kAuto resolved for a classifier.
Aggregation resolve_aggregation(Aggregation a, const std::string& classifier);

/// How often an impostor's score reaches each threshold, measured for one embedder and classifier (facekit
/// bench identify: LFW, 50/50 split, every probe against every other enrolled person).
struct OpenSetCalibration {
  std::vector<double> far;       ///< false-accept rates per comparison, descending
  std::vector<float> threshold;  ///< the score reached by that fraction of impostor comparisons
  std::string source;
  /// The kNN's mean rows were scored with this power (IdentifyOptions::mean_norm_power) when the table was
  /// measured; a table without one was measured with 1 (the cosine to the normalised mean).
  float mean_norm_power = 1.f;
  /// The turned-face factor (IdentifyOptions::turned_fpir_factor) this table's rules were checked with; a table
  /// without one was checked with 0.1.
  double turned_fpir_factor = 0.1;
  /// The threshold that gives a false-positive identification rate of about `fpir` in a gallery of `people`:
  /// a stranger is compared with every person, so each comparison may pass with FAR = fpir / people.
  /// Interpolated in log FAR; clamped to the table's range.
  float threshold_for(double fpir, std::int64_t people) const;
};

/// The calibration of an embedder and classifier from share/gallery/open_set.json (or the file $FACEKIT_OPEN_SET
/// names); nullopt when it has none. Throws Error(kModelCorrupt) for a malformed file.
std::optional<OpenSetCalibration> load_open_set_calibration(const EmbedderId& embedder, const std::string& classifier);

/// The open_set.json entry for a classifier and aggregation: the classifier's name for its default aggregation
/// (knn over means, svm over every template), "<classifier>/<aggregation>" otherwise ("knn/none": a kNN over
/// every template scores each person by their nearest one, a different distribution from a mean's).
std::string open_set_key(const std::string& classifier, Aggregation aggregation);

/// How many comparisons a stranger's FPIR spreads over (OpenSetCalibration::threshold_for's `people`): one per
/// person, or one per template for a kNN over every template (a person scores their nearest template, so each
/// template is a chance to pass; its calibration is measured per template).
std::int64_t open_set_comparisons(const std::string& classifier, Aggregation aggregation, std::int64_t people,
                                  std::int64_t rows);

/// IdentifyOptions::mean_norm_power resolved: `power` when it is a number, else the one the embedder's kNN
/// calibration (load_open_set_calibration(embedder, "knn")) records, else 1.
float resolve_mean_norm_power(float power, const std::optional<OpenSetCalibration>& knn_calibration);
/// IdentifyOptions::turned_fpir_factor resolved: `factor` when it is a number, else the one the calibration in
/// use (its open_set_key()'s) records, else 0.5.
double resolve_turned_fpir_factor(double factor, const std::optional<OpenSetCalibration>& calibration);

/// Writes the calibration of an embedder and classifier into `file` (the format load_open_set_calibration
/// reads: {embedder: {classifier: {far_table: [[far, threshold], ...], source}}}), keeping the other entries of
/// an existing file; the file is replaced atomically. Throws Error(kInvalidArgument) for a table that does not
/// descend in FAR, or an existing file that is not such JSON.
void save_open_set_calibration(const std::filesystem::path& file, const EmbedderId& embedder,
                               const std::string& classifier, const OpenSetCalibration& calibration);

/// The default open-set threshold for a gallery of `people` at the target `fpir`: from the calibration when
/// there is one; otherwise the embedder's verification threshold as a similarity (kNN) or 0.5 (SVM).
/// `source` receives how it was chosen.
float default_open_set_threshold(const EmbedderId& embedder, const std::string& classifier, std::int64_t people,
                                 double fpir, std::string* source = nullptr);

struct IdentifyOptions {
  std::string classifier = defaults::kClassifier;  ///< "knn" or "svm" (classifier_registry())
  ClassifierOptions classifier_options;
  IndexOptions index;
  /// kAuto. On LFW (50/50) the kNN over per-person means gave 97.6% rank-1 against 93.5% for a 5-NN vote over
  /// every template (people with many photos out-vote the right one) and 97.2% for the nearest template; the
  /// SVM needs the individual templates (its Platt fit holds some out).
  Aggregation aggregation = Aggregation::kAuto;
  /// kMean: a person's templates of quality below this are left out of their mean when they have one at or
  /// above it (mean_of_good_templates). 0.5 is where quality's score says "poor" (one measure past its poor
  /// bound, or several past their fair ones). 0 keeps every template.
  float template_min_quality = 0.5f;
  /// kMean: a person's row scores x.m / |m|^mean_norm_power against their unnormalised mean m (mean_row()).
  /// NaN: the power the embedder's kNN open-set calibration was measured with (OpenSetCalibration), 1 without
  /// one. 1 is the cosine to the normalised mean, which lets people enrolled with many photos attract
  /// strangers: with it the default embedder's LFW-calibrated threshold let 2.9% of cfp-dev's strangers through
  /// for a nominal 1% (7 photos per person there, 1-2 for most of LFW's people); its calibration is now
  /// measured with 0.5, which holds the nominal rate on both (docs/results.md). dlib_resnet keeps 1: 0.5 cost
  /// it 4.6 points of DIR on LFW.
  float mean_norm_power = std::numeric_limits<float>::quiet_NaN();
  /// Turned faces meet a stricter default threshold: a stranger's profile may lie closer to everyone's template
  /// than a frontal face does. With mean templates scored by cosine, profiles were named as someone 5-8x as
  /// often as frontal faces on cfp-dev, and the factor was 0.1; with mean_row's scoring 1.3x on cfp-dev and
  /// 0.6x on LFW, so 0.5 (cfp-dev FPIR at a nominal 1% 0.78 -> 0.91%, DIR 83.5 -> 86.5%; docs/results.md).
  /// NaN: the factor the embedder's open-set calibration records (OpenSetCalibration): 0.5 for the default
  /// embedder, 0.1 for dlib_resnet, whose cosine-scored means still need it.
  /// The FPIR a face's threshold is set for is `fpir` up to a yaw of
  /// `turned_yaw` degrees (estimate_head_pose from its landmarks; quality's `yaw_fair`), falls log-linearly
  /// beyond, and is `fpir * turned_fpir_factor` from `turned_yaw_full` on (quality's `yaw_poor`); see
  /// turned_fpir_scale(). 1 = no difference. A threshold given in `threshold` applies to every face.
  float turned_yaw = 25.f, turned_yaw_full = 45.f;
  double turned_fpir_factor = std::numeric_limits<double>::quiet_NaN();
  int top_k = 5;  ///< candidates returned per face
  /// Open-set threshold on the best candidate's score (see classifier.hpp): below it the face is unknown.
  /// NaN: default_open_set_threshold() for the gallery's current number of people and `fpir`.
  float threshold = std::numeric_limits<float>::quiet_NaN();
  /// The false-positive identification rate the default threshold aims at: the share of strangers who would
  /// be named as someone enrolled.
  double fpir = 0.01;
  /// Keep the index and trained classifier in files (Gallery::cache_dir(): <gallery>.cache/ beside an SQLite
  /// file), stamped with the gallery's uuid and revision, so that the next process loads them and applies only
  /// the changes since instead of rebuilding. An index updated in place is saved at most every 30 s.
  bool use_cache = true;
  std::filesystem::path cache_dir;  ///< "" = Gallery::cache_dir() (<gallery path>.cache for SQLite)
};

/// The share of IdentifyOptions::fpir that the threshold of a face turned by `yaw` degrees allows: 1 up to
/// turned_yaw, turned_fpir_factor from turned_yaw_full on, log-linear between.
double turned_fpir_scale(float yaw, const IdentifyOptions& options);

struct Candidate {
  std::int64_t person_id = 0;
  std::string name;
  float distance = 0;     ///< Euclidean distance to the person's nearest template (kMean: their mean_row)
  /// 1 - distance^2 / 2: the cosine similarity of that template; kMean: x.m / |m|^mean_norm_power (mean_row)
  float similarity = 0;
  float score = 0;        ///< the classifier's confidence (the open-set decision uses it)
  float probability = 0;  ///< share among the enrolled identities
  /// P(same person) for `distance` from the embedder's score calibration (verification's map, fitted on
  /// pairs): how likely this face and that template show one person, whoever else is enrolled. Absent
  /// without a calibration.
  std::optional<double> match_probability;
};

struct Identification {
  std::vector<Candidate> candidates;  ///< best first
  bool known = false;                 ///< candidates[0].score >= threshold
  float threshold = 0;                ///< the one this face was held to
  bool turned = false;                ///< the face was turned (IdentifyOptions::turned_yaw): a stricter threshold
};

/// What refresh() did.
struct RefreshReport {
  std::int64_t revision = 0;
  bool index_from_cache = false, classifier_from_cache = false;
  bool index_from_shared = false;  ///< the cache came from the gallery's shared copy (Gallery::shared_index)
  bool rebuilt = false;       ///< the index was built from scratch
  bool retrained = false;
  std::int64_t added = 0, removed = 0;  ///< rows applied incrementally
  double seconds = 0;
  std::string cache_error;    ///< why a cache could not be read or written ("" when fine)
};

/// Identifies faces against one embedder's templates of a gallery.
/// Thread safety: identify() is const and safe from several threads at once; refresh() needs exclusive use.
class Identifier {
 public:
  /// Loads (or builds) the index and classifier; see refresh().
  Identifier(const Gallery& gallery, EmbedderId embedder, IdentifyOptions options = {});
  ~Identifier();
  Identifier(Identifier&&) noexcept;

  /// Brings index and classifier up to date with the gallery: nothing when its revision has not moved;
  /// otherwise the templates added and removed since are applied to the index (a rebuild when removals pile
  /// up or the index kind should change), and a trainable classifier is retrained.
  RefreshReport refresh();
  const RefreshReport& last_refresh() const;

  /// `pose`: the face's head pose when known (a turned face meets a stricter threshold, see IdentifyOptions).
  Identification identify(const Embedding& embedding, const HeadPose* pose = nullptr) const;

  std::int64_t revision() const;
  const LabelledIndex& index() const;
  const Classifier& classifier() const;
  const IdentifyOptions& options() const;
  /// Changes the HNSW search beam of the loaded index (needs exclusive use, like refresh()).
  void set_ef_search(int ef);
  float threshold() const;
  /// The threshold for a face of this yaw (degrees); threshold() when one was given.
  float threshold_at_yaw(float yaw) const;
  std::string threshold_source() const;
  /// Deletes this embedder's cache files (the next refresh rebuilds).
  static void clear_cache(const Gallery& gallery, const IdentifyOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// How two galleries compare (after copy_gallery): the same people and templates, and the same answers.
struct GalleryComparison {
  std::int64_t people_a = 0, people_b = 0, templates_a = 0, templates_b = 0;
  std::int64_t probes = 0;      ///< stored templates of `a` identified against both
  std::int64_t different = 0;   ///< probes whose candidates (names, order, scores within 1e-5) differ
  std::vector<std::string> problems;  ///< one line per difference found (counts, names, answers)
  bool same() const { return problems.empty(); }
};
/// Compares people (names, metadata), template counts per embedder, and, for every embedder, the answers of a
/// kNN Identifier (no cache) on both to up to `probes` of `a`'s templates spread over its people.
GalleryComparison compare_galleries(const Gallery& a, const Gallery& b, int probes = 1000);

}  // namespace facekit
