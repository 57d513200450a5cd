#include "train/triplet.hpp"

#include "facekit/error.hpp"

namespace facekit::detail {

at::Tensor pairwise_squared_distances(const at::Tensor& emb) {
  // Explicit differences rather than |a|^2 + |b|^2 - 2ab: exact (no cancellation) at the tiny distances of
  // near-duplicate photos, and N is a batch (64), so N x N x D is small.
  const at::Tensor diff = emb.unsqueeze(1) - emb.unsqueeze(0);
  return (diff * diff).sum(-1);
}

TripletLoss triplet_loss(const at::Tensor& emb, const std::vector<int>& labels, Mining mining, float margin,
                         std::mt19937_64& rng) {
  const int64_t n = emb.size(0);
  if (static_cast<int64_t>(labels.size()) != n)
    throw Error(ErrorCode::kInvalidArgument, "triplet_loss: one label per embedding needed");
  const at::Tensor d = pairwise_squared_distances(emb);
  const at::Tensor dc = d.detach().to(at::kCPU, at::kFloat).contiguous();
  const auto dist = dc.accessor<float, 2>();

  std::vector<int64_t> a, p, neg;
  auto add = [&](int64_t i, int64_t j, int64_t k) {
    a.push_back(i);
    p.push_back(j);
    neg.push_back(k);
  };
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> pos, negs;
    for (int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      (labels[j] == labels[i] ? pos : negs).push_back(j);
    }
    if (pos.empty() || negs.empty()) continue;
    switch (mining) {
      case Mining::kRandom: {
        std::uniform_int_distribution<size_t> pick(0, negs.size() - 1);
        for (int64_t j : pos) add(i, j, negs[pick(rng)]);
        break;
      }
      case Mining::kSemiHard:
        for (int64_t j : pos) {
          int64_t best = -1, farthest = negs[0];
          for (int64_t k : negs) {
            if (dist[i][k] > dist[i][j] && (best < 0 || dist[i][k] < dist[i][best])) best = k;
            if (dist[i][k] > dist[i][farthest]) farthest = k;
          }
          add(i, j, best >= 0 ? best : farthest);
        }
        break;
      case Mining::kBatchHard: {
        int64_t hp = pos[0], hn = negs[0];
        for (int64_t j : pos)
          if (dist[i][j] > dist[i][hp]) hp = j;
        for (int64_t k : negs)
          if (dist[i][k] < dist[i][hn]) hn = k;
        add(i, hp, hn);
        break;
      }
      case Mining::kBatchAll:
        for (int64_t j : pos)
          for (int64_t k : negs) add(i, j, k);
        break;
    }
  }

  TripletLoss r;
  r.triplets = static_cast<int64_t>(a.size());
  if (a.empty()) {
    r.loss = (emb * 0).sum();
    return r;
  }
  const auto opts = at::TensorOptions().dtype(at::kLong);
  const at::Tensor ia = at::tensor(a, opts).to(emb.device()), ip = at::tensor(p, opts).to(emb.device()),
                   in = at::tensor(neg, opts).to(emb.device());
  const at::Tensor flat = d.reshape({-1});
  const at::Tensor per = at::relu(flat.index_select(0, ia * n + ip) - flat.index_select(0, ia * n + in) + margin);
  r.active = (per > 0).sum().item<int64_t>();
  r.loss = mining == Mining::kBatchAll ? per.sum() / static_cast<double>(std::max<int64_t>(r.active, 1)) : per.mean();
  return r;
}

}  // namespace facekit::detail
