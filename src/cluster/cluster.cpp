#include "facekit/cluster.hpp"

#include <faiss/IndexFlat.h>
#include <faiss/impl/AuxIndexStructures.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <queue>
#include <random>
#include <unordered_map>
#include <unordered_set>

#include "facekit/error.hpp"

namespace facekit {

std::string to_string(ClusterMethod m) {
  switch (m) {
    case ClusterMethod::kAgglomerative: return "agglomerative";
    case ClusterMethod::kDbscan: return "dbscan";
    case ClusterMethod::kChineseWhispers: return "chinese-whispers";
  }
  return "?";
}

std::optional<ClusterMethod> parse_cluster_method(const std::string& name) {
  for (auto m : {ClusterMethod::kAgglomerative, ClusterMethod::kDbscan, ClusterMethod::kChineseWhispers})
    if (to_string(m) == name) return m;
  return std::nullopt;
}

float l2_at_cosine_distance(float cosine_distance) { return std::sqrt(2.f * std::max(0.f, cosine_distance)); }

namespace {

// The faces with an embedding, packed for faiss.
struct Packed {
  std::vector<int> face;     // row -> face index
  std::vector<float> data;   // rows x d
  size_t d = 0;
  size_t rows() const { return face.size(); }
  const float* row(size_t r) const { return data.data() + r * d; }
};

Packed pack(const std::vector<Embedding>& e) {
  Packed p;
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i].empty()) continue;
    if (p.d == 0) p.d = e[i].size();
    if (e[i].size() != p.d) throw Error(ErrorCode::kInvalidArgument, "embeddings of different sizes cannot be clustered together");
    p.face.push_back(static_cast<int>(i));
    p.data.insert(p.data.end(), e[i].begin(), e[i].end());
  }
  return p;
}

// Every row's neighbours within `radius` (L2), itself excluded, as adjacency lists of rows.
std::vector<std::vector<int>> within(const Packed& p, float radius) {
  std::vector<std::vector<int>> adj(p.rows());
  if (p.rows() == 0) return adj;
  faiss::IndexFlatL2 index(static_cast<faiss::Index::idx_t>(p.d));
  index.add(static_cast<faiss::Index::idx_t>(p.rows()), p.data.data());
  // faiss's flat range search compares squared distances; strictly under the radius as the methods define it.
  const float r2 = std::nextafter(radius * radius, 0.f);
  constexpr size_t kBlock = 4096;  // queries per call: bounds the result buffers
  for (size_t b = 0; b < p.rows(); b += kBlock) {
    const size_t n = std::min(kBlock, p.rows() - b);
    faiss::RangeSearchResult res(static_cast<faiss::Index::idx_t>(n));
    index.range_search(static_cast<faiss::Index::idx_t>(n), p.row(b), r2, &res);
    for (size_t q = 0; q < n; ++q)
      for (size_t k = res.lims[q]; k < res.lims[q + 1]; ++k)
        if (static_cast<size_t>(res.labels[k]) != b + q) adj[b + q].push_back(static_cast<int>(res.labels[k]));
  }
  return adj;
}

// Labels from union-find roots / arbitrary ids to 0..k-1 by decreasing size; groups under min_size -> -1.
std::vector<int> relabel(const std::vector<int>& raw, int min_size, int& clusters) {
  std::unordered_map<int, int> size;
  for (int l : raw)
    if (l >= 0) size[l]++;
  std::vector<std::pair<int, int>> order;  // (label, first appearance)
  std::unordered_map<int, int> first;
  for (size_t i = 0; i < raw.size(); ++i)
    if (raw[i] >= 0 && first.emplace(raw[i], static_cast<int>(i)).second) order.push_back({raw[i], static_cast<int>(i)});
  std::sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    return size[a.first] != size[b.first] ? size[a.first] > size[b.first] : a.second < b.second;
  });
  std::unordered_map<int, int> to;
  clusters = 0;
  for (const auto& [l, at] : order)
    if (size[l] >= min_size) to[l] = clusters++;
  std::vector<int> out(raw.size(), -1);
  for (size_t i = 0; i < raw.size(); ++i)
    if (const auto it = to.find(raw[i]); raw[i] >= 0 && it != to.end()) out[i] = it->second;
  return out;
}

std::vector<int> dbscan(const Packed& p, float eps, int min_pts) {
  const auto adj = within(p, eps);
  const size_t n = p.rows();
  std::vector<int> label(n, -1);
  const auto core = [&](size_t i) { return static_cast<int>(adj[i].size()) + 1 >= min_pts; };
  int next = 0;
  std::vector<int> stack;
  for (size_t i = 0; i < n; ++i) {
    if (label[i] >= 0 || !core(i)) continue;
    label[i] = next;
    stack.assign(1, static_cast<int>(i));
    while (!stack.empty()) {
      const int u = stack.back();
      stack.pop_back();
      if (!core(static_cast<size_t>(u))) continue;  // a border face joins but does not extend the cluster
      for (const int v : adj[static_cast<size_t>(u)])
        if (label[static_cast<size_t>(v)] < 0) label[static_cast<size_t>(v)] = next, stack.push_back(v);
    }
    ++next;
  }
  return label;
}

std::vector<int> chinese_whispers(const Packed& p, float threshold, int iterations, std::uint64_t seed) {
  const auto adj = within(p, threshold);
  const size_t n = p.rows();
  std::vector<int> label(n);
  std::iota(label.begin(), label.end(), 0);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, n == 0 ? 0 : n - 1);
  std::unordered_map<int, int> votes;
  // dlib's chinese_whispers: iterations x faces visits of a random face; each takes its neighbours' most common
  // label (edges weigh 1, as in its face clustering example).
  for (size_t it = 0; n > 0 && it < static_cast<size_t>(iterations) * n; ++it) {
    const size_t u = pick(rng);
    if (adj[u].empty()) continue;
    votes.clear();
    int best = label[u], best_n = 0;
    for (const int v : adj[u]) {
      const int c = ++votes[label[static_cast<size_t>(v)]];
      if (c > best_n || (c == best_n && label[static_cast<size_t>(v)] < best)) best = label[static_cast<size_t>(v)], best_n = c;
    }
    label[u] = best;
  }
  return label;
}

// Average linkage through cluster means: for unit vectors the mean squared distance between the faces of two
// clusters is 2 - 2 mean_a . mean_b, so a merge costs O(d) however large the clusters are. Candidate pairs are
// clusters joined by a nearest-neighbour edge; a priority queue with versions drops stale entries.
// The size allowance makes the bar depend on the clusters' sizes: a merge is taken while
//   mean squared distance - allowance * (2 - 1/n_a - 1/n_b) < threshold^2,
// so two single faces need a distance under the threshold, and clusters, whose average over many faces is surer,
// may lie up to sqrt(threshold^2 + 2 allowance) apart. Merges go in order of that adjusted distance.
// `tok[row]`: a face's cannot-link tokens (its photo, the caller's `apart` ones), kept sorted per cluster as clusters
// merge; `start[row]`: its start group.
std::vector<int> agglomerative(const Packed& p, std::vector<std::vector<std::int64_t>> tok, const std::vector<int>& start,
                               const ClusterOptions& o) {
  const size_t n = p.rows(), d = p.d;
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  if (n == 0) return parent;
  const float t2 = o.threshold * o.threshold;
  std::vector<std::vector<float>> mean(n);
  std::vector<int> size(n, 1), version(n, 0);
  std::vector<std::unordered_set<int>> nbr(n);
  for (size_t i = 0; i < n; ++i) {
    mean[i].assign(p.row(i), p.row(i) + d);
    std::sort(tok[i].begin(), tok[i].end());
    tok[i].erase(std::unique(tok[i].begin(), tok[i].end()), tok[i].end());
  }
  // k nearest neighbours under the threshold: the edges along which clusters may merge (two single faces
  // further apart can only be joined through others).
  {
    faiss::IndexFlatL2 index(static_cast<faiss::Index::idx_t>(d));
    index.add(static_cast<faiss::Index::idx_t>(n), p.data.data());
    const auto k = static_cast<faiss::Index::idx_t>(std::min<size_t>(static_cast<size_t>(o.neighbours) + 1, n));
    constexpr size_t kBlock = 4096;
    std::vector<float> dist;
    std::vector<faiss::Index::idx_t> lab;
    for (size_t b = 0; b < n; b += kBlock) {
      const size_t m = std::min(kBlock, n - b);
      dist.resize(m * static_cast<size_t>(k));
      lab.resize(m * static_cast<size_t>(k));
      index.search(static_cast<faiss::Index::idx_t>(m), p.row(b), k, dist.data(), lab.data());
      for (size_t q = 0; q < m; ++q)
        for (faiss::Index::idx_t j = 0; j < k; ++j) {
          const auto v = lab[q * static_cast<size_t>(k) + static_cast<size_t>(j)];
          if (v < 0 || static_cast<size_t>(v) == b + q || !(dist[q * static_cast<size_t>(k) + static_cast<size_t>(j)] < t2)) continue;
          nbr[b + q].insert(static_cast<int>(v));
          nbr[static_cast<size_t>(v)].insert(static_cast<int>(b + q));
        }
    }
  }
  const auto avg_sq = [&](int a, int b) {
    double dot = 0;
    const float* x = mean[static_cast<size_t>(a)].data();
    const float* y = mean[static_cast<size_t>(b)].data();
    for (size_t k = 0; k < d; ++k) dot += static_cast<double>(x[k]) * y[k];
    const double na = size[static_cast<size_t>(a)], nb = size[static_cast<size_t>(b)];
    return static_cast<float>(2 - 2 * dot - o.size_allowance * (2 - 1 / na - 1 / nb));
  };
  const auto shares_token = [&](int a, int b) {
    const auto& x = tok[static_cast<size_t>(a)];
    const auto& y = tok[static_cast<size_t>(b)];
    for (size_t i = 0, j = 0; i < x.size() && j < y.size();) {
      if (x[i] == y[j]) return true;
      x[i] < y[j] ? ++i : ++j;
    }
    return false;
  };
  struct Cand {
    float d;
    int a, b, va, vb;
    bool operator>(const Cand& o) const { return d != o.d ? d > o.d : (a != o.a ? a > o.a : b > o.b); }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  // Merges clusters a and b (roots); returns the root kept.
  const auto join = [&](int a, int b) {
    // Keep the larger cluster's id; the smaller one's faces and neighbours move into it.
    int keep = a, gone = b;
    if (size[static_cast<size_t>(keep)] < size[static_cast<size_t>(gone)]) std::swap(keep, gone);
    const auto K = static_cast<size_t>(keep), G = static_cast<size_t>(gone);
    const float wk = static_cast<float>(size[K]), wg = static_cast<float>(size[G]);
    for (size_t k = 0; k < d; ++k) mean[K][k] = (wk * mean[K][k] + wg * mean[G][k]) / (wk + wg);
    size[K] += size[G];
    parent[G] = keep;
    version[K]++;
    std::vector<std::int64_t> merged;
    std::merge(tok[K].begin(), tok[K].end(), tok[G].begin(), tok[G].end(), std::back_inserter(merged));
    tok[K] = std::move(merged);
    tok[G].clear();
    mean[G].clear();
    for (const int v : nbr[G])
      if (v != keep) {
        nbr[static_cast<size_t>(v)].erase(gone);
        nbr[static_cast<size_t>(v)].insert(keep);
        nbr[K].insert(v);
      }
    nbr[K].erase(gone);
    nbr[K].erase(keep);
    nbr[G].clear();
    return keep;
  };
  const auto push = [&](int a, int b) {
    const float s = avg_sq(a, b);
    if (s < t2) heap.push({s, std::min(a, b), std::max(a, b), version[static_cast<size_t>(std::min(a, b))],
                           version[static_cast<size_t>(std::max(a, b))]});
  };
  // Start groups are joined first, whatever their distances and tokens: the caller says they are one person.
  {
    std::unordered_map<int, int> root_of_group;
    for (size_t i = 0; i < n; ++i) {
      if (start[i] < 0) continue;
      const auto [it, fresh] = root_of_group.emplace(start[i], static_cast<int>(i));
      if (!fresh) it->second = join(it->second, static_cast<int>(i));
    }
  }
  for (size_t a = 0; a < n; ++a)
    if (parent[a] == static_cast<int>(a))
      for (const int b : nbr[a])
        if (static_cast<int>(a) < b) push(static_cast<int>(a), b);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (parent[static_cast<size_t>(c.a)] != c.a || parent[static_cast<size_t>(c.b)] != c.b ||
        version[static_cast<size_t>(c.a)] != c.va || version[static_cast<size_t>(c.b)] != c.vb)
      continue;  // stale: one side merged or changed since
    if (shares_token(c.a, c.b)) continue;  // never mergeable: their token sets only grow
    const int keep = join(c.a, c.b);
    for (const int v : nbr[static_cast<size_t>(keep)]) push(keep, v);
  }
  // Faces point at their final cluster through chains of merges.
  std::vector<int> root(n);
  for (size_t i = 0; i < n; ++i) {
    int r = static_cast<int>(i);
    while (parent[static_cast<size_t>(r)] != r) r = parent[static_cast<size_t>(r)];
    root[i] = r;
  }
  return root;
}

}  // namespace

ClusterResult cluster_faces(const std::vector<Embedding>& embeddings, const std::vector<int>& photo,
                            const ClusterOptions& o) {
  return cluster_faces(embeddings, photo, o, {});
}

ClusterResult cluster_faces(const std::vector<Embedding>& embeddings, const std::vector<int>& photo,
                            const ClusterOptions& o, const ClusterConstraints& constraints) {
  if (!photo.empty() && photo.size() != embeddings.size())
    throw Error(ErrorCode::kInvalidArgument, "one photo id per face is needed");
  if ((!constraints.start.empty() && constraints.start.size() != embeddings.size()) ||
      (!constraints.apart.empty() && constraints.apart.size() != embeddings.size()))
    throw Error(ErrorCode::kInvalidArgument, "constraints must give one entry per face");
  if ((!constraints.start.empty() || !constraints.apart.empty()) && o.method != ClusterMethod::kAgglomerative)
    throw Error(ErrorCode::kInvalidArgument, "only agglomerative clustering takes constraints");
  if (!(o.threshold > 0 && o.threshold <= 2)) throw Error(ErrorCode::kInvalidArgument, "the clustering threshold must lie in (0, 2]");
  if (!(o.size_allowance >= 0 && o.size_allowance <= 1))
    throw Error(ErrorCode::kInvalidArgument, "the size allowance must lie in [0, 1]");
  if (o.min_faces < 1 || o.min_cluster_size < 1 || o.neighbours < 1 || o.iterations < 1)
    throw Error(ErrorCode::kInvalidArgument, "min_faces, min_cluster_size, neighbours and iterations must be at least 1");
  const auto t0 = std::chrono::steady_clock::now();
  const Packed p = pack(embeddings);
  std::vector<int> raw;
  switch (o.method) {
    case ClusterMethod::kDbscan: raw = dbscan(p, o.threshold, o.min_faces); break;
    case ClusterMethod::kChineseWhispers: raw = chinese_whispers(p, o.threshold, o.iterations, o.seed); break;
    case ClusterMethod::kAgglomerative: {
      // Photo ids and the caller's tokens share one space: even and odd.
      std::vector<std::vector<std::int64_t>> tokens(p.rows());
      std::vector<int> start(p.rows(), -1);
      for (size_t r = 0; r < p.rows(); ++r) {
        const auto f = static_cast<size_t>(p.face[r]);
        if (o.one_face_per_photo) tokens[r].push_back(2 * static_cast<std::int64_t>(photo.empty() ? p.face[r] : photo[f]));
        if (!constraints.apart.empty())
          for (const int t : constraints.apart[f]) tokens[r].push_back(2 * static_cast<std::int64_t>(t) + 1);
        if (!constraints.start.empty()) start[r] = constraints.start[f];
      }
      raw = agglomerative(p, std::move(tokens), start, o);
      break;
    }
  }
  ClusterResult res;
  // DBSCAN's clusters are what its core rule made them; the others drop groups under min_cluster_size.
  const auto rows = relabel(raw, o.method == ClusterMethod::kDbscan ? 1 : o.min_cluster_size, res.clusters);
  res.label.assign(embeddings.size(), -1);
  for (size_t r = 0; r < p.rows(); ++r) res.label[static_cast<size_t>(p.face[r])] = rows[r];
  res.unclustered = static_cast<int>(std::count(res.label.begin(), res.label.end(), -1));
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

ClusterMetrics cluster_metrics(const std::vector<int>& predicted, const std::vector<int>& truth) {
  if (predicted.size() != truth.size()) throw Error(ErrorCode::kInvalidArgument, "one truth label per face is needed");
  ClusterMetrics m;
  // Unclustered faces become clusters of their own: ids below -1 that no real cluster uses.
  std::vector<std::pair<int, int>> items;  // (cluster, person)
  int solo = -2;
  for (size_t i = 0; i < predicted.size(); ++i) {
    if (truth[i] < 0) continue;
    const int c = predicted[i] >= 0 ? predicted[i] : solo--;
    if (predicted[i] < 0) m.unclustered++;
    items.push_back({c, truth[i]});
  }
  m.faces = static_cast<int>(items.size());
  if (items.empty()) return m;
  std::map<std::pair<int, int>, std::int64_t> joint;
  std::map<int, std::int64_t> csize, psize;
  for (const auto& [c, t] : items) joint[{c, t}]++, csize[c]++, psize[t]++;
  m.people = static_cast<int>(psize.size());
  for (const auto& [c, n] : csize) {
    if (c >= 0) m.clusters++;
    if (n == 1) m.singletons++;
  }
  const auto pairs = [](std::int64_t n) { return static_cast<double>(n) * static_cast<double>(n - 1) / 2; };
  double tp = 0, pred_pairs = 0, true_pairs = 0, bp = 0, br = 0;
  for (const auto& [key, n] : joint) {
    tp += pairs(n);
    const double nn = static_cast<double>(n) * static_cast<double>(n);
    bp += nn / static_cast<double>(csize[key.first]);
    br += nn / static_cast<double>(psize[key.second]);
  }
  for (const auto& [c, n] : csize) pred_pairs += pairs(n);
  for (const auto& [t, n] : psize) true_pairs += pairs(n);
  const auto f = [](double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; };
  m.pairwise_precision = pred_pairs > 0 ? tp / pred_pairs : 1.0;
  m.pairwise_recall = true_pairs > 0 ? tp / true_pairs : 1.0;
  m.pairwise_f = f(m.pairwise_precision, m.pairwise_recall);
  m.bcubed_precision = bp / m.faces;
  m.bcubed_recall = br / m.faces;
  m.bcubed_f = f(m.bcubed_precision, m.bcubed_recall);
  return m;
}

}  // namespace facekit
