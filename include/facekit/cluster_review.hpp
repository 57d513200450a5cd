#pragma once
// The review workflow of a clustered photo library: clusters kept in a state file between runs; a person names
// them (and enrols them in a gallery), merges two, splits one, and says "this face is not X"; later runs keep all
// of it, and new photos join the existing clusters without the others being clustered again.
//
// A face is named by its key, "PHOTO#K": the K-th face (from 0, in detection order) found in PHOTO.
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "facekit/cluster.hpp"
#include "facekit/gallery.hpp"
#include "facekit/types.hpp"

namespace facekit {

/// A face of the library as the state records it.
struct ReviewFace {
  std::string photo;
  int index = 0;  ///< among the photo's faces, in detection order
  Box box;
  float score = 0;
  bool main = false;  ///< the photo's main face
  std::string key() const { return photo + "#" + std::to_string(index); }
};

struct ReviewCluster {
  int id = 0;        ///< stable across runs and commands
  std::string name;  ///< "" until a person names it
  std::vector<ReviewFace> faces;
};

/// "This face is not that person", kept across runs.
struct NotSame {
  std::string face;    ///< a face key
  std::string person;  ///< a cluster's name, or "#ID" for a cluster not named
};

/// What ClusterReview::update did.
struct ReviewUpdate {
  int faces = 0;         ///< faces in the library now
  int new_faces = 0;     ///< faces the state had not seen before
  int joined = 0;        ///< of those, faces that joined a cluster the state already had (or a gallery person's)
  int new_clusters = 0;  ///< clusters made of faces only
  int dropped = 0;       ///< faces of the state whose photo is no longer in the library
  std::map<std::string, int> joined_named;  ///< cluster name -> new faces that joined it
  double seconds = 0;    ///< the clustering alone
};

/// A person of a gallery: their templates seed the cluster of their name (or start one).
struct SeedPerson {
  std::string name;
  std::vector<Embedding> embeddings;
};

/// The people of `gallery` with templates of `embedder`, as seeds.
std::vector<SeedPerson> gallery_seeds(const Gallery& gallery, const EmbedderId& embedder);

/// The clusters of a library and what a person said about them. A value type; not thread-safe (one command at
/// a time edits one state file).
class ClusterReview {
 public:
  /// The state in `file`, or an empty one when there is no such file. Throws Error(kInvalidArgument) for a file
  /// that is not a facekit cluster state (an output of an older facekit included: cluster again into a new file).
  static ClusterReview load(const std::filesystem::path& file);
  /// Writes the state whole or not at all (Error(kStorage) when it cannot; the old file is then untouched).
  void save(const std::filesystem::path& file) const;

  /// Clusters the faces of `scan`. Clusters of the state keep their faces and ids and never merge with one
  /// another; faces new to the state join them or form new clusters, never against a "not" constraint and never
  /// two faces of one photo in a cluster. Faces whose photo is no longer in the scan are dropped. `seeds` join the
  /// cluster of their name or start one (a new face near a gallery person joins that person's cluster).
  /// `recluster`: clusters not named are dissolved first and their faces clustered afresh with the new ones.
  /// Throws Error(kInvalidArgument) for a scan of another embedder, or for a method other than agglomerative
  /// when there is anything to keep (clusters, constraints, seeds).
  ReviewUpdate update(const LibraryScan& scan, const ClusterOptions& options, const std::vector<SeedPerson>& seeds = {},
                      bool recluster = false);

  /// Names cluster `id` (check_person_name's rules). Another cluster of that name is merged into it: one name,
  /// one person. Error(kNotFound) for an unknown id.
  void name(int id, const std::string& name);
  /// Moves cluster `from`'s faces into `into` and removes `from`; `into` takes `from`'s name when it has none.
  /// Error(kInvalidArgument) for one cluster, or two named as different people.
  void merge(int into, int from);
  /// Moves the faces `keys` of cluster `id` into a new cluster; returns its id. With no keys, splits the cluster by
  /// its own average linkage at lower thresholds until it falls apart (embeddings from `scan`, which must hold
  /// its faces): the largest part keeps the id, each other part of two or more faces becomes a new cluster and
  /// single faces become unclustered; returns the new clusters' ids. Error(kInvalidArgument) for a cluster of one
  /// face, or for keys not in it.
  std::vector<int> split(int id, const std::vector<std::string>& keys, const LibraryScan* scan,
                         const ClusterOptions& options);
  /// Records that face `key` is not `person` (a cluster id, "#ID", or a name) and takes the face out of that
  /// person's cluster. Error(kNotFound) for an unknown face or cluster id.
  void not_same(const std::string& key, const std::string& person);

  /// Largest first.
  std::vector<const ReviewCluster*> by_size() const;
  const std::vector<ReviewFace>& unclustered() const { return unclustered_; }
  const std::vector<NotSame>& constraints() const { return not_; }
  /// A cluster by id ("12" or "#12") or by name; Error(kNotFound) when there is none.
  const ReviewCluster& find(const std::string& ref) const;
  const ReviewCluster& cluster(int id) const;

  std::string embedder;  ///< of the faces' embeddings ("" before the first update)
  ClusterOptions options;            ///< of the last update
  std::filesystem::path cache;       ///< the face cache the library was scanned into ("" if none)
  std::vector<std::string> unreadable;  ///< "path: reason", from the last scan
  int photos = 0;                    ///< photos in the last scan

 private:
  ReviewCluster& mutable_cluster(int id);
  void rename_constraints(const std::string& from, const std::string& to);
  std::vector<ReviewCluster> clusters_;
  std::vector<ReviewFace> unclustered_;
  std::vector<NotSame> not_;
  int next_id_ = 1;
};

/// Enrols cluster `c` in `gallery` as the person `c.name` (added to them when they exist): one template per
/// face, its embedding taken from `scan` (which must hold the faces), quality the detection score, source the
/// photo's SHA-256 (a face already enrolled from that photo is skipped). Error(kInvalidArgument) for a cluster
/// without a name.
AddResult enrol_cluster(Gallery& gallery, const EmbedderId& embedder, const ReviewCluster& c, const LibraryScan& scan);

/// Removes from `person`'s templates in `gallery` the one made from face `key` (the same embedding in `scan`), if
/// any; returns whether one was removed.
bool unenrol_face(Gallery& gallery, const std::string& person, const std::string& key, const LibraryScan& scan);

/// The faces of `photos` as a scan, from a face cache alone (no network). Error(kNotFound) for a photo the cache
/// lacks; Error(kInvalidArgument) as scan_photos for a cache of another embedder or a corrupt one.
LibraryScan load_scan(const std::filesystem::path& cache, const std::vector<std::string>& photos,
                      const std::string& embedder);

/// Per face of `scan`, its key.
std::vector<std::string> face_keys(const LibraryScan& scan);

}  // namespace facekit
