#pragma once
// facekit's small CNN for training from scratch (the siamese network: one set of weights embeds anchor,
// positive and negative). Functional, on ATen: the weights are a name -> tensor map, so the trainer runs
// the very forward that the exported embedder runs, with autograd on.
//
// Four stages of two 3x3 conv + batch-norm + ReLU, with widths w, 2w, 4w, 8w and a 2x2 max-pool between
// stages; global average pooling; a linear layer to `dim`. Input: [N, 3, S, S] normalised, any S >= 16.
#include <cstdint>

#include "model/tensor_file.hpp"

namespace facekit::detail {

/// Fresh weights: He-normal convolutions, unit batch-norm scales, seeded (same seed, same weights).
TensorMap small_cnn_init(int width, int dim, uint64_t seed);

/// [N, dim], not normalised. training = true uses batch statistics and updates the running ones in `w`;
/// false uses the running statistics (inference).
at::Tensor small_cnn_forward(const TensorMap& w, const at::Tensor& x, bool training);

/// Whether a weight is trained by the optimizer (batch-norm running statistics are not).
bool small_cnn_trainable(const std::string& name);

/// Throws Error(kModelCorrupt) when `w` lacks a tensor the forward needs.
void small_cnn_check(const TensorMap& w);

}  // namespace facekit::detail
