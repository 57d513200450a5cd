// Precompiled header for the translation units that run networks. ATen, not <torch/torch.h>: inference needs
// only tensors and functional ops, and ATen alone compiles several times faster.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
