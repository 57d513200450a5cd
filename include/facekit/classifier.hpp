#pragma once
// Classifiers over gallery embeddings: who is this face, with a probability per enrolled identity.
//
// Both classifiers read their training data from a LabelledIndex (the gallery's templates of one embedder,
// each row labelled with its person) and answer with the best candidates. Each candidate carries a `score`
// on which the open-set decision is taken (higher = more likely to be this person), so "unknown" is one
// threshold whatever the classifier:
//   knn: score = cosine similarity of the candidate's nearest template, 1 - d^2/2 (unit vectors);
//   svm: score = the Platt-calibrated probability of the candidate's one-vs-rest SVM.
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "facekit/vector_index.hpp"

namespace facekit {

struct ClassScore {
  std::int64_t label = 0;  ///< person id
  float distance = 0;      ///< Euclidean distance to the candidate's nearest template
  float score = 0;         ///< the classifier's confidence, compared with the open-set threshold (see above)
  float probability = 0;   ///< the candidate's share among the enrolled identities (sums to <= 1)
};

struct ClassifierOptions {
  // --- knn ---
  /// Templates that vote. 1 is the nearest neighbour; more let a person with several close templates
  /// out-vote a single close one (measured on LFW: docs/gallery.md).
  int knn_k = 5;
  /// Vote weight exp(-d^2 / (2 sigma^2)) of a template at distance d: nearer templates count for much more.
  float knn_sigma = 0.2f;

  // --- svm ---
  /// liblinear's C (L2-regularised L2-loss linear SVM, one-vs-rest, dual solver). Unit-length embeddings need
  /// little regularisation: on LFW 50/50, C=1 gave 71.5% rank-1, C=10 94.4%, C=100 96.1% (docs/gallery.md).
  double svm_c = 100.0;
  /// Negatives of each person's SVM: every template of this many nearest other people (hard negatives) ...
  int svm_hard_negative_people = 200;
  /// ... plus this many templates drawn at random from everyone else. Bounding the negatives keeps a model's
  /// training cost independent of the gallery's size. With 200 and 1000, LFW 50/50 rank-1 equals training on
  /// all negatives (97.1% against 97.0%). 0 and 0 = all negatives.
  int svm_random_negatives = 1000;
  /// Platt sigmoid P = 1 / (1 + exp(A f + B)) of a decision value f. When the gallery has enough people with
  /// two or more templates, A and B are fitted at training on held-out templates (as libsvm's -b 1 does);
  /// otherwise these are used (the fit on LFW's 50/50 split with the defaults above).
  double svm_platt_a = -9.01, svm_platt_b = -7.48;
  /// Fit A and B from held-out templates when possible (needs >= 20 people with two or more templates).
  bool svm_fit_platt = true;
  /// Threads training the per-person SVMs (0 = hardware concurrency).
  int threads = 0;
  std::uint64_t seed = 1;  ///< random negatives and held-out choice
};

/// Thread safety: classify() is const and safe from several threads at once; train() and load() are not.
class Classifier {
 public:
  virtual ~Classifier() = default;
  virtual std::string name() const = 0;
  /// Learns from every live row of `data`. kNN learns nothing (it searches `data` at classify time).
  virtual void train(const LabelledIndex& data) = 0;
  /// The best `top_k` candidates, best first, for one embedding of data.dim() floats. `data` must be the
  /// index the classifier was trained on (or, for kNN, any index).
  virtual std::vector<ClassScore> classify(const LabelledIndex& data, const float* embedding, int top_k) const = 0;
  /// The trained state (empty for kNN), with a version; load() throws Error(kStorage) for a damaged stream.
  virtual void save(std::ostream& out) const = 0;
  virtual void load(std::istream& in) = 0;
  /// Whether train() does any work (kNN: false), i.e. whether the trained state is worth caching.
  virtual bool trainable() const = 0;
  /// A short description of the trained state, e.g. "svm: 1680 models, Platt A=-4.1 B=1.9 (fitted)".
  virtual std::string describe() const = 0;
};

/// "knn" or "svm". Throws Error(kInvalidArgument) for other names.
std::unique_ptr<Classifier> create_classifier(const std::string& name, const ClassifierOptions& options = {});
/// The names create_classifier accepts.
std::vector<std::string> classifier_names();

}  // namespace facekit
