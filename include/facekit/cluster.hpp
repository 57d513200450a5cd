#pragma once
// Face clustering: group the faces of a photo library by person without being told who anyone is.
//
// Three methods on the same embeddings (unit vectors, L2 distance), so they can be compared:
// - agglomerative (the default): average linkage, merging the closest pair of clusters while their mean
//   squared distance is under threshold^2, with a bar that rises with the clusters' sizes (size_allowance);
//   candidate pairs come from each face's nearest neighbours, and two faces of one photo never end up in one
//   cluster (two faces in a photo are two people);
// - DBSCAN, as Immich runs it: faces with at least `min_faces` neighbours within `threshold` (counting
//   themselves) are cores, clusters are cores linked through neighbours plus the faces they reach;
// - Chinese whispers, as dlib's face clustering example runs it: a graph with an edge wherever the distance is
//   under the threshold, and every face repeatedly takes the label most of its neighbours have.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "facekit/types.hpp"

namespace facekit {

enum class ClusterMethod { kAgglomerative, kDbscan, kChineseWhispers };

/// "agglomerative", "dbscan", "chinese-whispers".
std::string to_string(ClusterMethod m);
/// The inverse of to_string; nullopt for an unknown name.
std::optional<ClusterMethod> parse_cluster_method(const std::string& name);

/// L2 distance between unit vectors at a cosine distance (1 - cosine similarity): sqrt(2 x cosine distance).
/// Immich's "max distance 0.5" is a cosine distance: 1.0 in L2.
float l2_at_cosine_distance(float cosine_distance);

struct ClusterOptions {
  ClusterMethod method = ClusterMethod::kAgglomerative;
  /// L2 distance under which faces (agglomerative: clusters, on average) may be one person. The CLI's default is
  /// the embedder's calibrated verification threshold.
  float threshold = 0.42f;
  /// DBSCAN: neighbours (itself included) that make a face a core. Immich: 3.
  int min_faces = 3;
  /// Agglomerative and Chinese whispers: groups smaller than this are reported as unclustered (-1).
  int min_cluster_size = 2;
  /// Agglomerative: how much further apart (in squared L2) large clusters may be than single faces. Clusters of
  /// n_a and n_b faces merge while their mean squared distance is under
  /// threshold^2 + size_allowance x (2 - 1/n_a - 1/n_b): two single faces must lie within `threshold`, while the
  /// average over many faces is surer and may reach sqrt(threshold^2 + 2 size_allowance). 0: plain average
  /// linkage. 0.02 was best on cfp-dev and on LFW's development people (docs/clustering.md).
  float size_allowance = 0.02f;
  /// Agglomerative: candidate merges come from each face's this many nearest neighbours.
  int neighbours = 30;
  /// Chinese whispers: sweeps over the faces (dlib's default 100).
  int iterations = 100;
  std::uint64_t seed = 1;  ///< Chinese whispers' visiting order
  /// Agglomerative: never put two faces of one photo into one cluster (needs `photo` ids).
  bool one_face_per_photo = true;
};

struct ClusterResult {
  /// Per face: its cluster (0..clusters-1, largest cluster first) or -1 (unclustered: in a group under
  /// min_cluster_size, or DBSCAN's noise).
  std::vector<int> label;
  int clusters = 0;
  int unclustered = 0;
  double seconds = 0;  ///< the clustering alone
};

/// What a person reviewing clusters has said, as constraints on agglomerative clustering (the review workflow,
/// cluster_review.hpp). Empty vectors: no constraint; otherwise one entry per face.
struct ClusterConstraints {
  /// Per face: a start group (faces with one value begin as one cluster, kept together), or -1.
  std::vector<int> start;
  /// Per face: cannot-link tokens; two clusters whose faces share a token never merge (as two faces of one photo).
  std::vector<std::vector<int>> apart;
};

/// Clusters `embeddings` (unit vectors of one embedder; empty ones are left unclustered). `photo[i]` is the
/// photo face i was found in (any ids; empty: every face its own photo). Throws Error(kInvalidArgument) for
/// vectors of different sizes, a photo list of another length, or options out of range.
ClusterResult cluster_faces(const std::vector<Embedding>& embeddings, const std::vector<int>& photo,
                            const ClusterOptions& options);
/// The same under constraints (agglomerative only: Error(kInvalidArgument) for the other methods).
ClusterResult cluster_faces(const std::vector<Embedding>& embeddings, const std::vector<int>& photo,
                            const ClusterOptions& options, const ClusterConstraints& constraints);

class FacePipeline;

/// A face of a photo library, as clustering sees it.
struct LibraryFace {
  int photo = 0;        ///< index into LibraryScan::photos
  Face face;            ///< box, score, landmarks
  Embedding embedding;
  bool main = false;    ///< the photo's main face (main_face_index: the one a caller means by "the" face)
};

struct LibraryScan {
  std::string embedder;              ///< the embeddings' model
  std::vector<std::string> photos;   ///< paths as found
  std::vector<LibraryFace> faces;
  std::vector<std::string> failed;   ///< "path: reason" for photos that could not be read (skipped)
  int cached_photos = 0;             ///< photos taken from the cache rather than processed
};

struct ScanOptions {
  int threads = 2;  ///< photos processed in parallel
  int batch = 8;    ///< photos per worker batch (their faces are embedded together)
  /// Faces and embeddings are kept here (written every `checkpoint` photos and at the end) and reused: a run
  /// that stops can be resumed, and clustering again costs no detection or embedding. Empty: no cache.
  std::filesystem::path cache;
  int checkpoint = 1000;
};

/// The photos (jpg, jpeg, png, bmp, webp, any case) under each folder, recursively, sorted; a file given
/// instead of a folder is taken as it is. Throws Error(kNotFound) for a path that does not exist.
std::vector<std::filesystem::path> list_photos(const std::vector<std::filesystem::path>& paths);

/// Detects and embeds every face of every photo. Unreadable photos are listed in `failed`, not thrown.
/// `progress(done, total)` as photos complete. Throws Error(kInvalidArgument) for a cache of another embedder
/// or a corrupt one (delete it), Error(kStorage) when the cache cannot be written (the old one is then kept).
LibraryScan scan_photos(const FacePipeline& pipeline, const std::vector<std::filesystem::path>& photos,
                        const ScanOptions& options = {}, const std::function<void(int, int)>& progress = {});

/// How a clustering agrees with the truth, over the faces whose truth is known (truth >= 0). An unclustered
/// face (-1) counts as a cluster of its own.
struct ClusterMetrics {
  int faces = 0;                 ///< faces evaluated
  int people = 0;                ///< distinct truth labels
  int clusters = 0;              ///< predicted clusters with an evaluated face (unclustered faces not counted)
  int unclustered = 0;           ///< evaluated faces in no cluster
  int singletons = 0;            ///< predicted groups of one evaluated face (unclustered ones included)
  /// Over pairs of faces: precision = pairs put together that are one person / pairs put together; recall =
  /// pairs of one person put together / pairs of one person.
  double pairwise_precision = 0, pairwise_recall = 0, pairwise_f = 0;
  /// BCubed (Amigo et al. 2009): per face, the share of its cluster that is its person (precision) and of its
  /// person that is in its cluster (recall), averaged over faces.
  double bcubed_precision = 0, bcubed_recall = 0, bcubed_f = 0;
};

/// Throws Error(kInvalidArgument) for lists of different lengths.
ClusterMetrics cluster_metrics(const std::vector<int>& predicted, const std::vector<int>& truth);

}  // namespace facekit
