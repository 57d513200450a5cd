#pragma once
// Embedding: aligned face chip -> L2-normalised vector; same person = small Euclidean distance.
#include <memory>
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
};

/// Thread safety: const methods are safe to call concurrently.
class Embedder {
 public:
  virtual ~Embedder() = default;
  /// One embedding per face of a photo, each aligned from its landmarks as this embedder needs (a fusion of
  /// embedders aligns once per member). The default aligns with alignment() and calls embed().
  virtual std::vector<Embedding> embed_faces(const Image& rgb, const std::vector<Landmarks68>& faces) const;
  /// One embedding per aligned chip (chips must be alignment().size square, RGB). A fusion embedder has no
  /// single chip and throws Error(kInvalidArgument): use embed_faces().
  virtual std::vector<Embedding> embed(const std::vector<Image>& chips) const = 0;
  virtual const ModelManifest& manifest() const = 0;
  /// The alignment this embedder expects; it belongs to the model.
  virtual const AlignmentTemplate& alignment() const = 0;
  int dim() const { return manifest().embedding_dim; }
  float threshold() const { return manifest().threshold; }
};

/// By manifest name: "dlib_resnet" (128-D dlib ResNet-29), "mobilefacenet" (192-D), "mobileface" (256-D),
/// "faceres" (1024-D), or a fusion manifest combining several; or the path of a model directory that
/// `facekit train` wrote (see facekit/train.hpp).
std::unique_ptr<Embedder> create_embedder(const std::string& name = defaults::kEmbedder,
                                          const EmbedderOptions& options = {});

}  // namespace facekit
