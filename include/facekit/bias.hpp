#pragma once
// Demographic differentials in verification (what NIST's FRVT part 3 reports): false match and false
// non-match rates per group at one global threshold, with bootstrap confidence intervals, impostor pairs within
// and across groups, the spread between groups, and what per-group thresholds would change.
//
// Terms (ISO/IEC 19795-1): a pair "matches" when its distance <= the threshold. FMR = matched impostor pairs /
// impostor pairs; FNMR = unmatched genuine pairs / genuine pairs. A pair whose face was not found (no
// embedding) is a failure to acquire: counted apart, in neither rate.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "facekit/attributes.hpp"
#include "facekit/eval.hpp"

namespace facekit {

/// One compared pair with the groups of its two images (indices into BiasOptions' group names).
struct GroupedPair {
  float distance = 0;
  bool same = false;
  bool valid = true;  ///< false: a face was missing (failure to acquire)
  int group_a = 0, group_b = 0;
  /// The people (subjects) of the two images, any ids >= 0 (e.g. folder indices); -1: unknown. When every
  /// valid pair names both, the intervals resample people instead of pairs.
  int subject_a = -1, subject_b = -1;
};

/// What the bootstrap resamples.
enum class Resample {
  /// People, with replacement: a pair counts once per drawn copy of each of its people (m_a x m_b times for
  /// an impostor pair, m_a for a genuine one). Pairs that share a person move together, as they do when a
  /// different population is sampled. Used when every valid pair names its subjects, else pairs.
  kSubjects,
  kPairs,  ///< pairs, as if independent (narrower: one person is in many impostor pairs)
};

struct BiasOptions {
  /// The global threshold is set where the FMR over every impostor pair is at most this.
  double target_fmr = 1e-3;
  int bootstrap = 1000;       ///< resamples behind each interval; 0: no intervals
  double confidence = 0.95;   ///< of the intervals
  std::uint64_t seed = 1;     ///< the bootstrap's; the same seed gives the same intervals
  Resample resample = Resample::kSubjects;
  int threads = 2;            ///< for the subject bootstrap (the intervals do not depend on it)
};

/// A rate with its interval: percentile bootstrap (over people or pairs; the threshold held fixed), and Wilson's
/// score interval, which stays informative when no error was seen (the bootstrap then gives [0, 0]).
struct Rate {
  std::int64_t errors = 0, pairs = 0;
  double value = 0;  ///< errors / pairs; NaN without pairs
  double boot_low = 0, boot_high = 0;
  double wilson_low = 0, wilson_high = 0;
};

struct GroupRates {
  std::string group;
  Rate fmr;   ///< impostor pairs with both images in the group
  Rate fnmr;  ///< genuine pairs with both images in the group
  std::int64_t failures_to_acquire = 0;  ///< pairs of this group with a face missing
  /// Per-group threshold: set on this group's own impostor pairs at the target FMR, and the rates at it (NaN
  /// and no pairs when the group has no impostor pairs of its own).
  float own_threshold = std::numeric_limits<float>::quiet_NaN();
  Rate own_fmr, own_fnmr;
};

/// Impostor pairs whose images fall in two different groups (a < b, by index).
struct CrossGroupRate {
  std::string group_a, group_b;
  Rate fmr;
};

/// max/min of a rate over the groups that have pairs: NIST's demographic differential. When the smallest rate
/// is 0 the ratio is infinite; `ratio_nonzero` is then over the groups with errors, and `zero_groups` says how
/// many have none.
struct Spread {
  double max = 0, min = 0, ratio = 0, ratio_nonzero = 0;
  std::string max_group, min_group;
  int zero_groups = 0, groups = 0;
};

struct BiasReport {
  std::string attribute;
  double target_fmr = 0;
  Resample resampled = Resample::kPairs;  ///< what the bootstrap intervals resampled
  int subjects = 0;                       ///< people behind the pairs (0: not named)
  float threshold = 0;  ///< the global one
  Rate fmr, fnmr;       ///< over every valid pair
  std::int64_t mixed_genuine = 0;  ///< genuine pairs whose two images were put in different groups
  std::vector<GroupRates> groups;
  std::vector<CrossGroupRate> cross;
  Spread fmr_spread, fnmr_spread;          ///< at the global threshold
  Spread own_fmr_spread, own_fnmr_spread;  ///< at the per-group thresholds
};

/// The largest threshold at which at most floor(target_fmr x impostors) of the impostor distances are <= it
/// (just below the smallest one when none may pass). Throws Error(kInvalidArgument) for no impostors.
float threshold_at_fmr(std::vector<float> impostor_distances, double target_fmr);

/// Wilson's score interval for errors/pairs at `confidence`.
void wilson_interval(std::int64_t errors, std::int64_t pairs, double confidence, double& low, double& high);

/// The report for one attribute (`groups` names the group indices the pairs use). Throws
/// Error(kInvalidArgument) for a group index outside `groups`, no impostor pairs, or options out of range.
BiasReport bias_report(const std::vector<GroupedPair>& pairs, const std::vector<std::string>& groups,
                       const std::string& attribute, const BiasOptions& options = {});

/// Group labels of images, one per attribute (column): from a user's CSV or estimated by an attribute model.
struct GroupTable {
  std::vector<std::string> attributes;  ///< column names, e.g. "gender", "group", "age"
  /// image path (as the pair list names it) -> one label per attribute; "" = unknown
  std::map<std::string, std::vector<std::string>> by_image;
  /// person (the image's folder name) -> labels, used for images without their own row
  std::map<std::string, std::vector<std::string>> by_person;
  bool estimated = false;  ///< labels are a model's guesses, not facts
  /// The label of `image` for attribute k: its own row, else its folder's; "" when neither exists.
  std::string label(const std::string& image, size_t k) const;
};

/// How far estimated labels can be trusted, measured without ground truth.
struct AttributeReliability {
  std::string attribute;
  double mean_top_probability = 0;  ///< the model's mean confidence in the label it gave an image
  /// Over people with several photos: the share of photos whose own estimate equals the person's label (the
  /// same person cannot change gender or group between photos, so disagreement is the model's error).
  double photo_agreement = 0;
  int people = 0, photos = 0;  ///< behind photo_agreement
  std::map<std::string, int> people_per_label;
};

/// Reads `image,ATTR1,ATTR2,...` (a header naming the attributes, then one row per image path or per person
/// folder name; `#` comments). Throws Error(kNotFound) or Error(kInvalidArgument) with the line number.
GroupTable read_group_csv(const std::filesystem::path& file);
/// Writes the table as such a CSV (one row per image, then one per person without image rows).
void write_group_csv(const std::filesystem::path& file, const GroupTable& t);

/// Age in years -> the band bias reports use: "<30", "30-49", "50+".
std::string age_band(float years);

struct GroupEstimateOptions {
  /// Labels per person (the image's folder): the photos' probabilities averaged, so one person is in one group
  /// (as demographic reports count subjects). false: each photo its own label.
  bool by_person = true;
  int threads = 2;
  int batch = 16;  ///< faces per forward pass
};

/// Estimates gender, group and age band for the face picked in every image of `report` (images without a face
/// get their person's label when by_person, else ""). `progress(done, total)` as images complete.
GroupTable estimate_groups(const LfwReport& report, const std::filesystem::path& root, const AttributeEstimator& model,
                           const GroupEstimateOptions& options, std::vector<AttributeReliability>* reliability = nullptr,
                           const std::function<void(int, int)>& progress = {});

/// Pairs with their groups for attribute k. all_pairs = false: the report's pairs (a pair with an unlabelled
/// image is left out); true: every pair of the report's images, same when both are in one folder. `groups`
/// receives the group names (sorted). `left_out` counts pairs without a label.
std::vector<GroupedPair> grouped_pairs(const LfwReport& report, const GroupTable& t, size_t k, bool all_pairs,
                                       std::vector<std::string>& groups, std::int64_t* left_out = nullptr);

/// FMR (log scale) and FNMR per group with their bootstrap intervals, at the global threshold (filled) and at
/// per-group thresholds (hollow), as one PNG. Throws Error(kInvalidArgument) when it cannot be written.
void write_bias_plot(const std::filesystem::path& png, const BiasReport& r);

}  // namespace facekit
