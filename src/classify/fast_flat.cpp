// Vectorised L2 kernel (one clone per instruction set, picked by the loader) and the FastFlatL2 storage.
#pragma GCC optimize("O3")
#include "classify/fast_flat.hpp"

#include <faiss/impl/IDSelector.h>

#include <algorithm>
#include <limits>
#include <queue>
#include <vector>

namespace facekit {

// 16 independent partial sums: the inner loop vectorises without reassociating any one sum.
__attribute__((target_clones("avx512f", "avx2", "default"))) float l2_squared(const float* a, const float* b,
                                                                                size_t d) {
  float acc[16] = {0};
  size_t i = 0;
  for (; i + 16 <= d; i += 16)
    for (int k = 0; k < 16; ++k) {
      const float e = a[i + k] - b[i + k];
      acc[k] += e * e;
    }
  float s = 0;
  for (; i < d; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  for (float v : acc) s += v;
  return s;
}

namespace {

struct FastDis final : faiss::FlatCodesDistanceComputer {
  size_t d;
  const float* xb;
  const float* q = nullptr;
  FastDis(const FastFlatL2& s)
      : faiss::FlatCodesDistanceComputer(s.codes.data(), s.code_size), d(s.d), xb(s.get_xb()) {}
  void set_query(const float* x) override { q = x; }
  float distance_to_code(const uint8_t* code) override {
    return l2_squared(q, reinterpret_cast<const float*>(code), d);
  }
  float symmetric_dis(idx_t i, idx_t j) override { return l2_squared(xb + i * d, xb + j * d, d); }
};

}  // namespace

faiss::FlatCodesDistanceComputer* FastFlatL2::get_FlatCodesDistanceComputer() const { return new FastDis(*this); }

void FastFlatL2::search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
                        const faiss::SearchParameters* params) const {
  if (n >= 20) return faiss::IndexFlatL2::search(n, x, k, distances, labels, params);
  const faiss::IDSelector* sel = params ? params->sel : nullptr;
  const float* xb = get_xb();
  for (idx_t q = 0; q < n; ++q) {
    std::priority_queue<std::pair<float, idx_t>> heap;  // the k best so far, worst on top
    for (idx_t i = 0; i < ntotal; ++i) {
      if (sel && !sel->is_member(i)) continue;
      const float dist = l2_squared(x + q * d, xb + i * d, d);
      if (static_cast<idx_t>(heap.size()) < k) {
        heap.emplace(dist, i);
      } else if (dist < heap.top().first) {
        heap.pop();
        heap.emplace(dist, i);
      }
    }
    const auto found = static_cast<idx_t>(heap.size());
    for (idx_t j = found; j < k; ++j) {  // fewer than k members: faiss's convention for the empty slots
      distances[q * k + j] = std::numeric_limits<float>::infinity();
      labels[q * k + j] = -1;
    }
    for (idx_t j = found - 1; j >= 0; --j) {
      distances[q * k + j] = heap.top().first;
      labels[q * k + j] = heap.top().second;
      heap.pop();
    }
  }
}

}  // namespace facekit
