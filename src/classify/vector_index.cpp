// FAISS behind VectorIndex: IndexFlatL2 (exact) or IndexHNSWFlat; removed rows filtered by an IDSelector.
#include "facekit/vector_index.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>

#include <omp.h>

#include <algorithm>
#include <thread>
#include <cmath>
#include <cstring>
#include <map>

#include "classify/fast_flat.hpp"
#include "facekit/error.hpp"

namespace facekit {
using fidx = faiss::Index::idx_t;  // faiss 1.7.3 declares idx_t inside Index

namespace {

constexpr char kIndexMagic[8] = {'F', 'K', 'V', 'I', 'D', 'X', '0', '1'};
constexpr char kLabelledMagic[8] = {'F', 'K', 'L', 'I', 'D', 'X', '0', '1'};

// Rows whose tombstone is set are not members.
struct LiveSelector final : faiss::IDSelector {
  const std::vector<std::uint8_t>* tomb = nullptr;
  bool is_member(fidx id) const override {
    return id < 0 || static_cast<size_t>(id) >= tomb->size() || !(*tomb)[id];
  }
};

void write_raw(std::FILE* f, const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f) != n) throw Error(ErrorCode::kStorage, "cannot write index (disk full?)");
}
void read_raw(std::FILE* f, void* p, size_t n) {
  if (n && std::fread(p, 1, n, f) != n) throw Error(ErrorCode::kStorage, "index file is truncated");
}
template <class T>
void write_pod(std::FILE* f, const T& v) {
  write_raw(f, &v, sizeof v);
}
template <class T>
T read_pod(std::FILE* f) {
  T v;
  read_raw(f, &v, sizeof v);
  return v;
}
template <class T>
void write_vec(std::FILE* f, const std::vector<T>& v) {
  write_pod<std::uint64_t>(f, v.size());
  write_raw(f, v.data(), v.size() * sizeof(T));
}
template <class T>
std::vector<T> read_vec(std::FILE* f, std::uint64_t max_items) {
  const auto n = read_pod<std::uint64_t>(f);
  if (n > max_items) throw Error(ErrorCode::kStorage, "index file is damaged (implausible length)");
  std::vector<T> v(n);
  read_raw(f, v.data(), n * sizeof(T));
  return v;
}
void write_string(std::FILE* f, const std::string& s) {
  write_pod<std::uint32_t>(f, static_cast<std::uint32_t>(s.size()));
  write_raw(f, s.data(), s.size());
}
std::string read_string(std::FILE* f) {
  const auto n = read_pod<std::uint32_t>(f);
  if (n > (1u << 20)) throw Error(ErrorCode::kStorage, "index file is damaged (implausible string)");
  std::string s(n, '\0');
  read_raw(f, s.data(), n);
  return s;
}

// faiss's own flat storage with the vectorised kernel swapped in (fast_flat.hpp says why); used as the exact
// index and as HNSW's storage, also after loading from a file.
std::unique_ptr<FastFlatL2> fast_copy(faiss::IndexFlat&& from) {
  if (from.metric_type != faiss::METRIC_L2) throw Error(ErrorCode::kStorage, "flat storage is not L2");
  auto f = std::make_unique<FastFlatL2>(from.d);
  f->codes = std::move(from.codes);
  f->ntotal = from.ntotal;
  return f;
}

void use_fast_storage(faiss::IndexHNSWFlat& h) {
  auto* old = dynamic_cast<faiss::IndexFlat*>(h.storage);
  if (!old) throw Error(ErrorCode::kStorage, "HNSW storage is not a flat index");
  auto fast = fast_copy(std::move(*old));
  if (h.own_fields) delete old;
  h.storage = fast.release();
  h.own_fields = true;
}

}  // namespace

struct VectorIndex::Impl {
  std::unique_ptr<FastFlatL2> flat;             // exact kind
  std::unique_ptr<faiss::IndexHNSWFlat> hnsw;  // approximate kind
  faiss::Index* index() const { return flat ? static_cast<faiss::Index*>(flat.get()) : hnsw.get(); }
};

VectorIndex::VectorIndex(int dim, const IndexOptions& options, std::int64_t expected_rows)
    : impl_(std::make_unique<Impl>()), dim_(dim), options_(options) {
  if (dim <= 0) throw Error(ErrorCode::kInvalidArgument, "index dimension must be positive");
  if (options.kind == "hnsw") {
    hnsw_ = true;
  } else if (options.kind == "flat") {
    hnsw_ = false;
  } else if (options.kind == "auto") {
    hnsw_ = expected_rows >= options.hnsw_min_size;
  } else {
    throw Error(ErrorCode::kInvalidArgument, "unknown index kind '" + options.kind + "' (auto, flat, hnsw)");
  }
  if (hnsw_) {
    if (options.hnsw_m < 2 || options.ef_construction < 1 || options.ef_search < 1)
      throw Error(ErrorCode::kInvalidArgument, "HNSW needs M >= 2, efConstruction >= 1, efSearch >= 1");
    impl_->hnsw = std::make_unique<faiss::IndexHNSWFlat>(dim, options.hnsw_m);
    use_fast_storage(*impl_->hnsw);
    impl_->hnsw->hnsw.efConstruction = options.ef_construction;
    impl_->hnsw->hnsw.efSearch = options.ef_search;
  } else {
    impl_->flat = std::make_unique<FastFlatL2>(dim);
  }
}

VectorIndex::VectorIndex() = default;
VectorIndex::~VectorIndex() = default;
VectorIndex::VectorIndex(VectorIndex&&) noexcept = default;
VectorIndex& VectorIndex::operator=(VectorIndex&&) noexcept = default;

std::int64_t VectorIndex::rows() const { return impl_->index()->ntotal; }

void VectorIndex::add(const float* x, std::int64_t n) {
  if (n <= 0) return;
  // faiss builds HNSW with OpenMP. The process may have pinned OpenMP to one thread for the networks
  // (libtorch's set_num_threads does), so widen it for this call only.
  const int saved = omp_get_max_threads();
  const int want = options_.build_threads > 0 ? options_.build_threads
                                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (hnsw_) omp_set_num_threads(want);
  try {
    impl_->index()->add(n, x);
  } catch (const faiss::FaissException& e) {
    omp_set_num_threads(saved);
    throw Error(ErrorCode::kInternal, std::string("faiss add: ") + e.what());
  }
  omp_set_num_threads(saved);
  tomb_.resize(static_cast<size_t>(rows()), 0);
}

bool VectorIndex::remove(std::int64_t row) {
  if (row < 0 || row >= rows() || tomb_[row]) return false;
  tomb_[row] = 1;
  ++removed_count_;
  return true;
}

void VectorIndex::set_ef_search(int ef) {
  if (ef < 1) throw Error(ErrorCode::kInvalidArgument, "efSearch must be at least 1");
  options_.ef_search = ef;
  if (hnsw_) impl_->hnsw->hnsw.efSearch = ef;
}

std::vector<Neighbor> VectorIndex::search(const float* query, int k) const {
  k = static_cast<int>(std::min<std::int64_t>(k, live()));
  if (k <= 0) return {};
  std::vector<float> d(k);
  std::vector<fidx> id(k);
  LiveSelector sel;
  sel.tomb = &tomb_;
  try {
    if (hnsw_) {
      faiss::SearchParametersHNSW p;
      p.efSearch = std::max(options_.ef_search, k);
      if (removed_count_) p.sel = &sel;
      impl_->hnsw->search(1, query, k, d.data(), id.data(), &p);
    } else {
      faiss::SearchParameters p;
      if (removed_count_) p.sel = &sel;
      impl_->flat->search(1, query, k, d.data(), id.data(), removed_count_ ? &p : nullptr);
    }
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::kInternal, std::string("faiss search: ") + e.what());
  }
  std::vector<Neighbor> out;
  out.reserve(k);
  for (int i = 0; i < k; ++i)
    if (id[i] >= 0 && !is_removed(id[i])) out.push_back({id[i], std::sqrt(std::max(0.f, d[i]))});
  return out;
}

std::string VectorIndex::description() const {
  if (!hnsw_) return "flat (exact)";
  return "hnsw (M=" + std::to_string(options_.hnsw_m) + ", efConstruction=" + std::to_string(options_.ef_construction) +
         ", efSearch=" + std::to_string(options_.ef_search) + ")";
}

const float* VectorIndex::vector(std::int64_t row) const {
  if (row < 0 || row >= rows()) throw Error(ErrorCode::kInvalidArgument, "row out of range");
  const faiss::IndexFlat* storage =
      hnsw_ ? dynamic_cast<const faiss::IndexFlat*>(impl_->hnsw->storage) : impl_->flat.get();
  if (!storage) throw Error(ErrorCode::kInternal, "HNSW storage is not flat");
  return storage->get_xb() + row * dim_;
}

void VectorIndex::save(std::FILE* f) const {
  write_raw(f, kIndexMagic, sizeof kIndexMagic);
  write_pod<std::int32_t>(f, dim_);
  write_pod<std::uint8_t>(f, hnsw_);
  write_string(f, options_.kind);
  write_pod<std::int64_t>(f, options_.hnsw_min_size);
  write_pod<std::int32_t>(f, options_.hnsw_m);
  write_pod<std::int32_t>(f, options_.ef_construction);
  write_pod<std::int32_t>(f, options_.ef_search);
  write_vec(f, tomb_);
  try {
    faiss::write_index(impl_->index(), f);
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::kStorage, std::string("faiss write_index: ") + e.what());
  }
}

VectorIndex VectorIndex::load(std::FILE* f) {
  char magic[8];
  read_raw(f, magic, sizeof magic);
  if (std::memcmp(magic, kIndexMagic, sizeof magic) != 0) throw Error(ErrorCode::kStorage, "not a facekit index");
  VectorIndex v;
  v.impl_ = std::make_unique<Impl>();
  v.dim_ = read_pod<std::int32_t>(f);
  v.hnsw_ = read_pod<std::uint8_t>(f);
  v.options_.kind = read_string(f);
  v.options_.hnsw_min_size = read_pod<std::int64_t>(f);
  v.options_.hnsw_m = read_pod<std::int32_t>(f);
  v.options_.ef_construction = read_pod<std::int32_t>(f);
  v.options_.ef_search = read_pod<std::int32_t>(f);
  v.tomb_ = read_vec<std::uint8_t>(f, 1ull << 34);
  for (auto t : v.tomb_) v.removed_count_ += t != 0;
  std::unique_ptr<faiss::Index> idx;
  try {
    idx.reset(faiss::read_index(f));
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::kStorage, std::string("damaged index: ") + e.what());
  }
  if (v.hnsw_) {
    auto* h = dynamic_cast<faiss::IndexHNSWFlat*>(idx.get());
    if (!h) throw Error(ErrorCode::kStorage, "index file holds no HNSW index");
    idx.release();
    v.impl_->hnsw.reset(h);
    use_fast_storage(*h);
    h->hnsw.efSearch = v.options_.ef_search;
  } else {
    auto* fl = dynamic_cast<faiss::IndexFlat*>(idx.get());
    if (!fl) throw Error(ErrorCode::kStorage, "index file holds no flat index");
    v.impl_->flat = fast_copy(std::move(*fl));
  }
  if (v.impl_->index()->d != v.dim_ || static_cast<std::int64_t>(v.tomb_.size()) != v.rows())
    throw Error(ErrorCode::kStorage, "index file is inconsistent");
  return v;
}

// ---------------------------------------------------------------------------------------------------------

LabelledIndex::LabelledIndex(int dim, const IndexOptions& options, std::int64_t expected_rows)
    : index_(dim, options, expected_rows) {}

void LabelledIndex::add(const float* x, const std::int64_t* keys, const std::int64_t* labels, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    if (row_of_key_.count(keys[i]))
      throw Error(ErrorCode::kInvalidArgument, "key " + std::to_string(keys[i]) + " is already in the index");
  const std::int64_t first = index_.rows();
  index_.add(x, n);
  for (std::int64_t i = 0; i < n; ++i) {
    keys_.push_back(keys[i]);
    labels_.push_back(labels[i]);
    row_of_key_[keys[i]] = first + i;
    rows_of_label_[labels[i]].push_back(first + i);
    max_key_ = std::max(max_key_, keys[i]);
  }
}

bool LabelledIndex::remove_key(std::int64_t key) {
  auto it = row_of_key_.find(key);
  if (it == row_of_key_.end()) return false;
  const std::int64_t row = it->second;
  index_.remove(row);
  row_of_key_.erase(it);
  auto& rows = rows_of_label_[labels_[row]];
  rows.erase(std::remove(rows.begin(), rows.end(), row), rows.end());
  if (rows.empty()) rows_of_label_.erase(labels_[row]);
  return true;
}

const std::vector<std::int64_t>& LabelledIndex::rows_of(std::int64_t label) const {
  static const std::vector<std::int64_t> kNone;
  auto it = rows_of_label_.find(label);
  return it == rows_of_label_.end() ? kNone : it->second;
}

std::vector<std::int64_t> LabelledIndex::labels() const {
  std::vector<std::int64_t> out;
  out.reserve(rows_of_label_.size());
  for (const auto& [l, rows] : rows_of_label_) out.push_back(l);
  std::sort(out.begin(), out.end());
  return out;
}

void LabelledIndex::save(std::FILE* f) const {
  write_raw(f, kLabelledMagic, sizeof kLabelledMagic);
  write_vec(f, keys_);
  write_vec(f, labels_);
  index_.save(f);
}

LabelledIndex LabelledIndex::load(std::FILE* f) {
  char magic[8];
  read_raw(f, magic, sizeof magic);
  if (std::memcmp(magic, kLabelledMagic, sizeof magic) != 0)
    throw Error(ErrorCode::kStorage, "not a facekit labelled index");
  auto keys = read_vec<std::int64_t>(f, 1ull << 34);
  auto labels = read_vec<std::int64_t>(f, 1ull << 34);
  LabelledIndex li(VectorIndex::load(f));
  if (keys.size() != labels.size() || static_cast<std::int64_t>(keys.size()) != li.index_.rows())
    throw Error(ErrorCode::kStorage, "labelled index is inconsistent");
  li.keys_ = std::move(keys);
  li.labels_ = std::move(labels);
  for (std::int64_t r = 0; r < static_cast<std::int64_t>(li.keys_.size()); ++r) {
    li.max_key_ = std::max(li.max_key_, li.keys_[r]);
    if (li.index_.is_removed(r)) continue;
    li.row_of_key_[li.keys_[r]] = r;
    li.rows_of_label_[li.labels_[r]].push_back(r);
  }
  return li;
}

}  // namespace facekit
