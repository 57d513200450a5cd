#pragma once
// A random unit-length embedding, as the gallery tests store them.
#include <cmath>
#include <random>

#include "facekit/types.hpp"

namespace fk_test {

inline facekit::Embedding unit_vector(std::mt19937& rng, int dim) {
  std::normal_distribution<float> n;
  facekit::Embedding e(dim);
  float s = 0;
  for (auto& v : e) v = n(rng), s += v * v;
  for (auto& v : e) v /= std::sqrt(s);
  return e;
}

}  // namespace fk_test
