#pragma once
// The classifier implementations behind create_classifier, and the sigmoid fit they share with the benchmarks.
#include <memory>
#include <vector>

#include "facekit/classifier.hpp"

namespace facekit {

std::unique_ptr<Classifier> make_knn_classifier(const ClassifierOptions& o);
std::unique_ptr<Classifier> make_svm_classifier(const ClassifierOptions& o);

/// Platt's sigmoid P(y=1|f) = 1 / (1 + exp(A f + B)) fitted by Newton's method with backtracking on
/// regularised targets (Lin, Lin and Weng, "A note on Platt's probabilistic outputs for support vector
/// machines", 2007). `positive[i]` says whether decision value f[i] came from the class.
void fit_platt(const std::vector<double>& f, const std::vector<bool>& positive, double& A, double& B);

}  // namespace facekit
