#pragma once
// Identification benchmarks: closed- and open-set accuracy on LFW identities, and a gallery at scale.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "facekit/classifier.hpp"
#include "facekit/identify.hpp"
#include "facekit/pipeline.hpp"
#include "facekit/vector_index.hpp"

namespace facekit {

// ---- metrics ----------------------------------------------------------------------------------------------

/// One search of the gallery by a probe.
struct ProbeOutcome {
  bool mated = true;       ///< the probe's person is enrolled
  int rank = 0;            ///< 1-based rank of the probe's person among the candidates; 0 = not listed / no face
  float top_score = 0;     ///< the best candidate's score (meaningless when !has_candidate)
  bool has_candidate = false;
  bool turned = false;     ///< the face was turned (IdentifyOptions::turned_yaw)
  /// The threshold this probe must meet when it has its own (a turned face's); NaN: the common one.
  float threshold = std::numeric_limits<float>::quiet_NaN();
};

/// Fraction of mated probes whose person is within the first k candidates.
double rank_k(const std::vector<ProbeOutcome>& probes, int k);

struct OpenSetPoint {
  float threshold = 0;  ///< scores >= threshold are accepted
  double fpir = 0;      ///< non-mated probes whose best candidate is accepted, over all non-mated probes
  double dir = 0;       ///< mated probes whose person is rank 1 and accepted, over all mated probes
};

/// The detection-and-identification rate at the lowest threshold whose false-positive identification rate is
/// at most `fpir` (NIST FRVT's DIR at FPIR). Needs at least one mated and one non-mated probe.
OpenSetPoint dir_at_fpir(const std::vector<ProbeOutcome>& probes, double fpir);
/// FPIR and DIR at a given threshold (a product's calibrated one, not the oracle threshold of dir_at_fpir);
/// a probe with its own threshold (ProbeOutcome::threshold) is held to that one.
OpenSetPoint open_set_at(const std::vector<ProbeOutcome>& probes, float threshold);

// ---- LFW ---------------------------------------------------------------------------------------------------

/// LFW people with at least `min_photos` photos, from lfw-names.txt ("Name<TAB>count"), sorted by name.
struct LfwPerson {
  std::string name;
  std::vector<std::string> photos;  ///< relative paths Name/Name_NNNN.jpg, in number order
};
std::vector<LfwPerson> lfw_people(const std::filesystem::path& root, int min_photos = 2);

/// The embeddings of one photo: variants[0] the plain one (the pipeline's), then augmented copies when asked.
struct PhotoEmbeddings {
  bool ok = false;  ///< a face was found
  float quality = 0;  ///< the face's quality score (the classic assessor's, as enrolment stores it)
  float yaw = 0;      ///< its head pose's yaw, degrees
  std::vector<Embedding> variants;
};

struct EmbeddingCacheOptions {
  std::filesystem::path dir;  ///< "" = $XDG_CACHE_HOME/facekit, else ~/.cache/facekit
  bool enabled = true;
  /// Pipeline settings the cache key must include but cannot read from the pipeline (e.g. "flip=1 jitter=0").
  std::string recipe;
};

/// Embeds LFW photos (the face nearest the centre, as the pair protocol does) with `workers` threads, reusing a
/// binary cache keyed by embedder, pipeline and detection settings, augmentation, the root folder and photo path. Photos listed in
/// `augmented` also get the augmentation variants. `progress(done, total)` is called as photos complete.
std::vector<PhotoEmbeddings> embed_lfw_photos(const FacePipeline& pipeline, const std::filesystem::path& root,
                                              const std::vector<std::string>& photos,
                                              const std::vector<bool>& augmented, const AugmentOptions& augment,
                                              const EmbeddingCacheOptions& cache, int workers,
                                              const std::function<void(int, int)>& progress = {},
                                              int* computed = nullptr);

struct LfwIdentificationOptions {
  std::filesystem::path root;
  EmbeddingCacheOptions cache;
  int workers = 2;
  int limit_people = 0;      ///< quick runs: only the first N people
  AugmentOptions augment;    ///< the variants measured for "augmented" enrolment (`enabled` is ignored)
  bool measure_augmentation = true;  ///< false: plain enrolment only (no augmented copies are embedded)
  ClassifierOptions classifier;
  IndexOptions index;
  double fpir = 0.01;
  /// What identification does with poor templates and turned faces (IdentifyOptions, same defaults).
  float template_min_quality = IdentifyOptions{}.template_min_quality;
  float mean_norm_power = IdentifyOptions{}.mean_norm_power;
  float turned_yaw = IdentifyOptions{}.turned_yaw;
  float turned_yaw_full = IdentifyOptions{}.turned_yaw_full;
  double turned_fpir_factor = IdentifyOptions{}.turned_fpir_factor;
  std::uint64_t seed = 1;    ///< which half of the people is enrolled in the open-set protocol
  std::vector<std::string> classifiers = {"knn", "svm"};
};

/// One protocol x classifier x enrolment x aggregation.
struct ProtocolResult {
  std::string protocol;     ///< "one-shot", "50/50", "open-set"
  std::string classifier;   ///< "knn", "svm"
  std::string enrolment;    ///< "plain", "aug-mean" (one template per photo from its augmented copies), "aug-each"
  std::string aggregation;  ///< "none" (a row per template), "mean" (a row per person)
  int gallery_people = 0, gallery_rows = 0, mated_probes = 0, nonmated_probes = 0;
  double rank1 = 0, rank5 = 0;
  OpenSetPoint open_set;    ///< open-set protocol only
  /// Open-set protocol: the point at the threshold `identify` would use for this gallery (the shipped open-set
  /// calibration for this many people at the target FPIR), and where that threshold came from.
  OpenSetPoint calibrated;
  std::string calibrated_source;
  /// The same over the turned probes alone (each at its yaw's threshold; `threshold` is that of a full
  /// turn), and how many probes were turned (mated, non-mated).
  OpenSetPoint calibrated_turned;
  double turned_fpir_factor = 0;  ///< the factor turned probes were held to (options' NaN resolved)
  int turned_mated = 0, turned_nonmated = 0;
  double train_seconds = 0;
  double median_search_ms = 0;
  std::string classifier_state;  ///< Classifier::describe() after training
  /// Open-set calibration (open-set protocol, plain enrolment, knn over mean templates and svm): (FAR, score
  /// threshold) from every non-mated probe scored against every enrolled person; empty for other rows.
  std::vector<std::pair<double, float>> far_table;
  std::int64_t impostor_comparisons = 0;
};

struct LfwIdentificationReport {
  std::string embedder;
  int people = 0, photos = 0, no_face = 0, computed = 0;
  std::vector<std::string> no_face_photos;
  double embed_seconds = 0, wall_seconds = 0;
  std::vector<ProtocolResult> results;
  float mean_norm_power = 1.f;  ///< the power mean rows were scored with (options' NaN resolved)
};

/// Protocols (photos of a person in number order; people sorted by name):
///  one-shot: each person enrolled with their first photo with a face; every other photo is a probe.
///  50/50:    photos at even positions (0, 2, ...) enrolled, odd positions are probes.
///  open-set: half the people (a seeded shuffle) enrolled as in 50/50 with their odd photos as mated probes;
///            every photo of the other half is a non-mated probe. DIR at FPIR = options.fpir.
/// A probe photo without a face counts as a miss (and, non-mated, as correctly rejected).
LfwIdentificationReport run_lfw_identification(const FacePipeline& pipeline, const LfwIdentificationOptions& options,
                                               const std::function<void(const std::string&, int, int)>& progress = {});

// ---- scale ------------------------------------------------------------------------------------------------

/// A real embedding with its person, the seed of the synthetic distractors.
struct LabelledEmbedding {
  std::string person;
  Embedding embedding;
};

struct GalleryScaleOptions {
  EmbedderId embedder{"dlib_resnet", "1.7.15"};  ///< the embedder the real embeddings came from
  std::filesystem::path dir;            ///< where the gallery goes ("" = a fresh temporary directory, removed after)
  std::int64_t templates = 1'000'000;   ///< gallery size, real plus synthetic
  int queries = 1000;                   ///< real photos held out as probes (one per person with >= 2 photos)
  IndexOptions index;                   ///< the index under test ("auto" is HNSW at 1M)
  std::vector<int> ef_search = {16, 32, 64, 128, 256};
  int durable_people = 500;             ///< enrolled one transaction each with synchronous=FULL (the CLI's way)
  int batch_people = 1000;              ///< the rest in transactions of this many people (bulk import)
  std::int64_t svm_people = 10'000;     ///< the SVM is trained on this many people (0 = skip)
  std::uint64_t seed = 1;
};

struct LatencyStats {
  double p50_ms = 0, p99_ms = 0, mean_ms = 0;
};

struct EfResult {
  int ef_search = 0;
  LatencyStats latency;
  double recall_at_1 = 0;  ///< top-1 row equals exact search's (or ties its distance)
  double rank1 = 0;        ///< queries whose top-1 row is their own person
};

struct GalleryScaleReport {
  std::int64_t templates = 0, people = 0, real_templates = 0, synthetic_templates = 0;
  int queries = 0;
  // distribution check: mean distance of random pairs of different people, and of the same person
  double real_between = 0, synthetic_between = 0, real_within = 0, synthetic_within = 0;
  double durable_people_per_s = 0, durable_templates_per_s = 0;
  double bulk_templates_per_s = 0;
  double enrol_seconds = 0;
  double build_seconds = 0;        ///< Identifier from the store: read templates + build the index + write cache
  double load_seconds = 0;         ///< Identifier from its cache files in a fresh object
  double rss_index_mb = 0;         ///< resident memory the loaded Identifier added
  double peak_rss_mb = 0;
  std::uint64_t gallery_bytes = 0, cache_bytes = 0;
  std::string index_description;
  LatencyStats exact_latency;      ///< faiss IndexFlatL2, one query at a time
  std::vector<EfResult> ef;
  /// Identifier::identify with the default options (kNN over per-person mean templates, names from the store)
  double default_build_seconds = 0;
  std::int64_t default_rows = 0;
  std::string default_index;
  LatencyStats identify_latency;
  double identify_rank1 = 0;
  double svm_train_seconds = 0;
  std::int64_t svm_people = 0, svm_rows = 0;
  double svm_rank1 = 0;            ///< on the held-out real queries whose person is among those people
  double wall_seconds = 0;
};

GalleryScaleReport run_gallery_scale(const std::vector<LabelledEmbedding>& real, const GalleryScaleOptions& options,
                                     const std::function<void(const std::string&)>& log = {});

}  // namespace facekit
