#pragma once
// Loader for face-api's "weights manifest" format: a JSON list of groups, each naming binary shards and the
// tensors packed in them, in order. Quantised tensors are stored as uint8 and dequantised as q*scale+min.
#include <filesystem>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "facekit/model.hpp"

namespace facekit::detail {

using WeightMap = std::map<std::string, at::Tensor>;

/// Reads manifest + shards (shards are looked up beside the manifest). Tensors keep their TF layout.
WeightMap load_faceapi_weights(const std::filesystem::path& manifest_json);

/// The weights of a model from its manifest: verifies the files first (clear errors), then loads.
WeightMap load_model_weights(const ModelManifest& m);

/// Fetches a tensor, checking its shape; throws Error(kModelCorrupt) naming the tensor otherwise.
at::Tensor take(const WeightMap& w, const std::string& name, at::IntArrayRef shape);

}  // namespace facekit::detail
