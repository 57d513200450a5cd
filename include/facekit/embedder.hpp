#pragma once
// Embedding: aligned face chip -> L2-normalised vector; same person = small Euclidean distance.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facekit/aligner.hpp"
#include "facekit/model.hpp"
#include "facekit/types.hpp"
#include "facekit/registry.hpp"

namespace facekit {

struct EmbedderOptions {
  std::string device = defaults::kDevice;
  /// Average the embedding of each chip with that of its mirror image (test-time augmentation: about 2x the
  /// cost, usually a little more accurate).
  bool flip = true;
  /// Also embed this many slightly rotated, scaled and shifted copies of each chip and average them all
  /// (dlib's "jitter"; at most 8, each costs one more forward pass, two with flip).
  int jitter = 0;
  int max_batch = 32;  ///< chips per forward pass
  /// Arithmetic of the network: "fp32"; "bf16" (weights and activations in bfloat16: on CPUs with AVX512-BF16
  /// or AMX about 1.9x faster at batch 1 and 3.5x at batch 16 for the dlib ResNet, embeddings within cosine
  /// 0.9999 of fp32 on 1,000 LFW faces, LFW and cfp-dev accuracy within 0.11 point; emulated, and slower,
  /// elsewhere); "int8" (the stock dlib ResNet only, CPU only, through oneDNN's quantised kernels: on an
  /// Ice Lake core with VNNI 2.3-2.8x fp32's speed, embeddings within cosine 0.9987 of fp32 on 4,000 LFW
  /// chips, LFW -0.05 and cfp-dev FP -0.25 point; never chosen by "auto"); "auto" (bf16 where the CPU has it
  /// natively, else fp32). Only the dlib ResNet embedders have bf16 so far: the others run fp32 under "auto"
  /// and refuse "bf16" and "int8".
  std::string precision = "auto";
  /// Dynamic batching for callers on many threads (a server's concurrent requests): chips of calls that arrive
  /// while a forward pass runs, or within batch_window_us of the first waiting one, go through the network
  /// together (up to max_batch), which costs less per chip than one pass per call. Off by default: a single
  /// caller gains nothing and would wait out the window.
  bool batch_across_calls = false;
  int batch_window_us = 2000;
};

/// Thread safety: const methods are safe to call concurrently.
class Embedder {
 public:
  virtual ~Embedder() = default;
  /// One embedding per face of a photo, each aligned from its landmarks as this embedder needs (a fusion of
  /// embedders aligns once per member). The default aligns with alignment() and calls embed().
  virtual std::vector<Embedding> embed_faces(const Image& rgb, const std::vector<Landmarks68>& faces) const;
  /// embed_faces() for several photos (faces[i] are the landmarks of the faces in images[i]), their chips
  /// embedded together in batches of up to max_batch: a batch job's photos share the network's passes.
  virtual std::vector<std::vector<Embedding>> embed_faces_batch(const std::vector<Image>& images,
                                                                const std::vector<std::vector<Landmarks68>>& faces) const;
  /// One embedding per aligned chip (chips must be alignment().size square, RGB). A fusion embedder has no
  /// single chip and throws Error(kInvalidArgument): use embed_faces().
  virtual std::vector<Embedding> embed(const std::vector<Image>& chips) const = 0;
  virtual const ModelManifest& manifest() const = 0;
  /// The alignment this embedder expects; it belongs to the model.
  virtual const AlignmentTemplate& alignment() const = 0;
  int dim() const { return manifest().embedding_dim; }
  float threshold() const { return manifest().threshold; }
};

/// What a batching embedder (EmbedderOptions::batch_across_calls) has done so far.
struct BatchingStats {
  std::uint64_t calls = 0;    ///< embed() calls served
  std::uint64_t batches = 0;  ///< forward passes run (each over the chips of one or more calls)
  std::uint64_t chips = 0;
  /// Batches by their number of chips: [1], [2], [3-4], [5-8], [9-16], [17-32], [33+].
  std::array<std::uint64_t, 7> batch_sizes{};
};
/// The stats of `e` when it batches across calls (itself, or for a fusion its first member, which sees every
/// chip a face); nullopt otherwise.
std::optional<BatchingStats> batching_stats(const Embedder& e);

/// By manifest name: "dlib_resnet" (128-D dlib ResNet-29), "mobilefacenet" (192-D), "mobileface" (256-D),
/// "faceres" (1024-D), or a fusion manifest combining several; or the path of a model directory that
/// `facekit train` wrote (see facekit/train.hpp).
std::unique_ptr<Embedder> create_embedder(const std::string& name = defaults::kEmbedder,
                                          const EmbedderOptions& options = {});

}  // namespace facekit
