#pragma once
// A faiss IndexFlatL2 whose distances run on a vectorised kernel.
//
// Why: Debian's faiss 1.7.3 is built for baseline x86-64 and computes every L2 distance with its scalar
// reference loop (fvec_L2sqr_ref: ~40 ns for 128 floats on this machine). HNSW construction spends ~90% of
// its time there (perf), so building 1M rows took ~30 minutes. This storage keeps faiss's layout and file
// format (it is written as a plain IndexFlatL2) but hands HNSW and single-query search a kernel compiled for
// the CPU it runs on (AVX-512 / AVX2 / baseline, chosen at load time).
#include <faiss/IndexFlat.h>

namespace facekit {

/// Squared L2 distance of two float vectors.
float l2_squared(const float* a, const float* b, size_t d);

struct FastFlatL2 final : faiss::IndexFlatL2 {
  explicit FastFlatL2(faiss::Index::idx_t d) : faiss::IndexFlatL2(d) {}
  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override;
  /// Batches of 20+ queries go to faiss (BLAS); smaller ones are scanned with l2_squared. Honours
  /// params->sel (IDSelector) either way.
  void search(idx_t n, const float* x, idx_t k, float* distances, idx_t* labels,
              const faiss::SearchParameters* params = nullptr) const override;
};

}  // namespace facekit
