#pragma once
// The triplet loss with batch mining (internal; the tests check it against hand-computed values).
#include <random>
#include <vector>

#include <ATen/ATen.h>

#include "facekit/train.hpp"

namespace facekit::detail {

struct TripletLoss {
  at::Tensor loss;       ///< scalar, differentiable w.r.t. the embeddings
  int64_t triplets = 0;  ///< triplets the loss was computed over
  int64_t active = 0;    ///< of those, with non-zero loss
  double active_fraction() const { return triplets ? double(active) / triplets : 0.0; }
};

/// Squared Euclidean distances between all rows: [N, N].
at::Tensor pairwise_squared_distances(const at::Tensor& emb);

/// emb: [N, D], already L2-normalised; labels: N identities. Mining chooses the triplets from the detached
/// distances; the loss is then max(0, d(a,p) - d(a,n) + margin) over them, averaged (over the active ones for
/// batch-all). `rng` draws the negatives of random mining only. A batch without any valid triplet gives a
/// zero loss (still differentiable) and triplets = 0.
TripletLoss triplet_loss(const at::Tensor& emb, const std::vector<int>& labels, Mining mining, float margin,
                         std::mt19937_64& rng);

}  // namespace facekit::detail
