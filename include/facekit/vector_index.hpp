#pragma once
// Nearest-neighbour search over embeddings (FAISS): exact for small galleries, HNSW past a size where exact
// search gets slow, and a labelled layer on top that knows which person each row belongs to.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace facekit {

struct IndexOptions {
  /// "auto": exact search (faiss IndexFlatL2) below hnsw_min_size rows, HNSW (IndexHNSWFlat) from there;
  /// "flat" or "hnsw" to force one.
  std::string kind = "auto";
  /// Where "auto" switches to HNSW. Exact search grows linearly (16.2 ms for 1M x 128 on one core here, so
  /// about 0.8 ms at 50,000); above that HNSW's build cost starts to be worth it (docs/gallery.md).
  std::int64_t hnsw_min_size = 50'000;
  int hnsw_m = 32;            ///< HNSW links per node (faiss M); memory ~ 2*M*4 bytes per row on top of the vectors
  int ef_construction = 40;   ///< build-time beam; larger builds slower and a little better
  /// Search-time beam. At 1M rows (bench gallery-scale, docs/gallery.md) recall@1 against exact search was
  /// 0.959 with 64, 0.991 with 128 and 0.996 with 256 (p50 1.3 ms, one core).
  int ef_search = 256;
  /// Threads building an HNSW index (0 = one per core). Searches are single-threaded: a query is ~1 ms.
  int build_threads = 0;
};

/// One search hit.
struct Neighbor {
  std::int64_t row = -1;
  float distance = 0;  ///< Euclidean (not squared)
};

/// Rows of `dim` floats, appended in order and addressed by row number. Rows can be removed: HNSW cannot
/// delete, so removed rows are tombstoned and filtered out during search (faiss IDSelector).
/// Thread safety: search() and the accessors are const and safe from several threads at once; add(),
/// remove() and save() need the caller to exclude other calls.
class VectorIndex {
 public:
  /// `expected_rows` picks the kind under "auto".
  VectorIndex(int dim, const IndexOptions& options, std::int64_t expected_rows);
  ~VectorIndex();
  VectorIndex(VectorIndex&&) noexcept;
  VectorIndex& operator=(VectorIndex&&) noexcept;

  void add(const float* x, std::int64_t n);
  /// Tombstones a row; false when it was already removed or out of range.
  bool remove(std::int64_t row);
  /// The k nearest live rows, nearest first (fewer when there are fewer live rows).
  std::vector<Neighbor> search(const float* query, int k) const;
  /// Changes HNSW's search beam (exclusive access, like add()). faiss 1.7.3 sizes the candidate queue from
  /// the index's own efSearch, so a larger beam passed per call would be silently capped; it is set here.
  void set_ef_search(int ef);

  int dim() const { return dim_; }
  std::int64_t rows() const;                 ///< including removed rows
  std::int64_t removed() const { return removed_count_; }
  std::int64_t live() const { return rows() - removed_count_; }
  bool is_removed(std::int64_t row) const { return row < static_cast<std::int64_t>(tomb_.size()) && tomb_[row]; }
  bool approximate() const { return hnsw_; }
  std::string description() const;           ///< e.g. "flat", "hnsw(M=32, efSearch=64)"
  /// The stored vector of a row (valid until the next add).
  const float* vector(std::int64_t row) const;
  const IndexOptions& options() const { return options_; }

  void save(std::FILE* f) const;
  /// Throws Error(kStorage) for a damaged stream.
  static VectorIndex load(std::FILE* f);

 private:
  VectorIndex();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int dim_ = 0;
  bool hnsw_ = false;
  IndexOptions options_;
  std::vector<std::uint8_t> tomb_;
  std::int64_t removed_count_ = 0;
};

/// A VectorIndex whose rows carry a key (a template id, or a person id for per-person means) and a label (the
/// person). Thread safety as VectorIndex.
class LabelledIndex {
 public:
  LabelledIndex(int dim, const IndexOptions& options, std::int64_t expected_rows);

  /// Adds n rows. Keys must be new (Error(kInvalidArgument) otherwise).
  void add(const float* x, const std::int64_t* keys, const std::int64_t* labels, std::int64_t n);
  /// Removes the row with this key; false when there is none.
  bool remove_key(std::int64_t key);
  bool has_key(std::int64_t key) const { return row_of_key_.count(key) != 0; }

  /// The k nearest live rows.
  std::vector<Neighbor> search(const float* query, int k) const { return index_.search(query, k); }
  void set_ef_search(int ef) { index_.set_ef_search(ef); }
  const VectorIndex& index() const { return index_; }
  std::int64_t label(std::int64_t row) const { return labels_[row]; }
  std::int64_t key(std::int64_t row) const { return keys_[row]; }
  /// Live rows of a label (empty for an unknown label).
  const std::vector<std::int64_t>& rows_of(std::int64_t label) const;
  /// Live labels, ascending.
  std::vector<std::int64_t> labels() const;
  /// How many labels have live rows.
  std::int64_t label_count() const { return static_cast<std::int64_t>(rows_of_label_.size()); }
  std::int64_t size() const { return index_.live(); }
  int dim() const { return index_.dim(); }
  /// The largest key ever added (0 when none): with never-reused template ids, anything above is new.
  std::int64_t max_key() const { return max_key_; }

  void save(std::FILE* f) const;
  static LabelledIndex load(std::FILE* f);

 private:
  explicit LabelledIndex(VectorIndex&& index) : index_(std::move(index)) {}
  VectorIndex index_;
  std::vector<std::int64_t> keys_, labels_;
  std::unordered_map<std::int64_t, std::int64_t> row_of_key_;
  std::unordered_map<std::int64_t, std::vector<std::int64_t>> rows_of_label_;
  std::int64_t max_key_ = 0;
};

}  // namespace facekit
