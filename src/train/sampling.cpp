// Mining names, the identity split and the P x K sampler: plain C++, no tensors.
#include <algorithm>
#include <numeric>

#include "facekit/error.hpp"
#include "facekit/train.hpp"

namespace facekit {

Mining parse_mining(const std::string& name) {
  if (name == "random") return Mining::kRandom;
  if (name == "semi-hard") return Mining::kSemiHard;
  if (name == "batch-hard") return Mining::kBatchHard;
  if (name == "batch-all") return Mining::kBatchAll;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown mining '" + name + "' (use random, semi-hard, batch-hard or batch-all)");
}

const char* to_string(Mining m) {
  switch (m) {
    case Mining::kRandom: return "random";
    case Mining::kSemiHard: return "semi-hard";
    case Mining::kBatchHard: return "batch-hard";
    case Mining::kBatchAll: return "batch-all";
  }
  return "?";
}

IdentitySplit split_by_identity(int identities, double validation_fraction, uint64_t seed) {
  if (identities < 0 || validation_fraction < 0 || validation_fraction >= 1)
    throw Error(ErrorCode::kInvalidArgument, "validation fraction must be in [0, 1)");
  std::vector<int> ids(identities);
  std::iota(ids.begin(), ids.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(ids.begin(), ids.end(), rng);
  int nval = static_cast<int>(validation_fraction * identities + 0.5);
  if (validation_fraction > 0 && identities >= 2) nval = std::clamp(nval, 1, identities - 1);
  IdentitySplit s;
  s.validation.assign(ids.begin(), ids.begin() + nval);
  s.train.assign(ids.begin() + nval, ids.end());
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.validation.begin(), s.validation.end());
  return s;
}

PKSampler::PKSampler(std::vector<int> labels, int p, int k, uint64_t seed)
    : labels_(std::move(labels)), p_(p), k_(k), rng_(seed) {
  if (p < 2 || k < 2) throw Error(ErrorCode::kInvalidArgument, "P x K sampling needs P >= 2 and K >= 2");
  std::vector<std::vector<int>> all;
  for (size_t i = 0; i < labels_.size(); ++i) {
    const int l = labels_[i];
    if (l < 0) continue;
    if (static_cast<size_t>(l) >= all.size()) all.resize(l + 1);
    all[l].push_back(static_cast<int>(i));
  }
  for (auto& v : all)
    if (v.size() >= 2) by_id_.push_back(std::move(v));
  if (by_id_.size() < 2)
    throw Error(ErrorCode::kInvalidArgument, "P x K sampling needs at least two identities with two photos each; got " +
                                                 std::to_string(by_id_.size()));
}

std::vector<int> PKSampler::next() {
  // P distinct identities (all of them, repeated, when there are fewer than P).
  std::vector<int> ids(by_id_.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng_);
  std::vector<int> out;
  for (int i = 0; i < p_; ++i) {
    auto photos = by_id_[ids[i % ids.size()]];
    std::shuffle(photos.begin(), photos.end(), rng_);
    for (int j = 0; j < k_; ++j) {
      if (j < static_cast<int>(photos.size())) {
        out.push_back(photos[j]);
      } else {
        std::uniform_int_distribution<size_t> pick(0, photos.size() - 1);
        out.push_back(photos[pick(rng_)]);
      }
    }
  }
  return out;
}

}  // namespace facekit
