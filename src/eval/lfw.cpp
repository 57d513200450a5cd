#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "core/parallel.hpp"
#include "eval/face_cache.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/image.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {
std::string lfw_path(const std::string& name, int idx) {
  char num[8];
  std::snprintf(num, sizeof num, "%04d", idx);
  return name + "/" + name + "_" + num + ".jpg";
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}
}  // namespace

std::vector<LfwPair> read_lfw_pairs(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open pairs file " + file.string());
  std::string line;
  std::getline(in, line);
  std::istringstream head(line);
  int folds = 0, per = 0;
  head >> folds;
  if (!(head >> per)) {  // pairsDev*.txt: one number, "N same then N different"
    per = folds;
    folds = 1;
  }
  if (folds < 1 || per < 1) throw Error(ErrorCode::kInvalidArgument, "bad header in " + file.string());
  std::vector<LfwPair> pairs;
  int lineno = 1;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    std::istringstream ss(line);
    std::vector<std::string> tok;
    for (std::string t; ss >> t;) tok.push_back(t);
    LfwPair p;
    try {
      if (tok.size() == 3) {
        p = {lfw_path(tok[0], std::stoi(tok[1])), lfw_path(tok[0], std::stoi(tok[2])), true, 0};
      } else if (tok.size() == 4) {
        p = {lfw_path(tok[0], std::stoi(tok[1])), lfw_path(tok[2], std::stoi(tok[3])), false, 0};
      } else {
        throw std::invalid_argument("fields");
      }
    } catch (const std::exception&) {
      throw Error(ErrorCode::kInvalidArgument, file.string() + ":" + std::to_string(lineno) + ": not a pair line");
    }
    p.fold = static_cast<int>(pairs.size()) / (2 * per);
    pairs.push_back(p);
  }
  if (pairs.size() != static_cast<size_t>(folds * 2 * per))
    throw Error(ErrorCode::kInvalidArgument, file.string() + " has " + std::to_string(pairs.size()) +
                                                 " pairs, its header promises " + std::to_string(folds * 2 * per));
  return pairs;
}

LfwReport run_lfw(const FacePipeline& pipeline, const LfwOptions& options,
                  const std::function<void(int, int)>& progress) {
  const auto t_start = std::chrono::steady_clock::now();
  const fs::path pairs_file = options.pairs.empty() ? options.root / "pairs.txt" : options.pairs;
  auto pairs = read_pairs(pairs_file, options.folds > 0 ? options.folds : 10);
  int folds = 0;
  for (const auto& p : pairs) folds = std::max(folds, p.fold + 1);
  if (options.limit_pairs > 0 && static_cast<size_t>(options.limit_pairs) < pairs.size()) {
    // Keep whole folds balanced: take the first pairs of each fold's same and different halves.
    std::vector<LfwPair> kept;
    const int per_fold = std::max(2, options.limit_pairs / folds);
    std::unordered_map<int, int> same_n, diff_n;
    for (const auto& p : pairs) {
      int& n = p.same ? same_n[p.fold] : diff_n[p.fold];
      if (n < per_fold / 2) kept.push_back(p), ++n;
    }
    pairs = std::move(kept);
  }

  std::vector<std::string> images;
  std::unordered_map<std::string, int> index;
  for (const auto& p : pairs)
    for (const auto* s : {&p.a, &p.b})
      if (index.emplace(*s, static_cast<int>(images.size())).second) images.push_back(*s);

  // Faces from an earlier run (same detector settings), keyed by image path; absent = not cached.
  detail::FaceCache cached;
  if (!options.face_cache.empty() && fs::exists(options.face_cache)) cached = detail::read_face_cache(options.face_cache);

  std::vector<Embedding> emb(images.size());
  std::vector<std::optional<Face>> faces(images.size());
  std::vector<int> found(images.size(), 0);
  std::vector<StageTimes> times(images.size());
  std::vector<char> ok(images.size(), 0);
  // Photos go through the networks in batches of options.batch (BlazeFace batches photos of one input shape,
  // the embedder their chips); the workers take whole batches.
  const size_t per = static_cast<size_t>(std::max(1, options.batch));
  const size_t chunks = (images.size() + per - 1) / per;
  detail::parallel_for(
      chunks, options.threads,
      [&](size_t c) {
        const size_t begin = c * per, end = std::min(images.size(), begin + per);
        std::vector<Image> imgs;
        for (size_t i = begin; i < end; ++i) {
          try {
            imgs.push_back(load_image(options.root / images[i]));
          } catch (const Error& e) {
            throw Error(e.code(), images[i] + ": " + e.what());
          }
        }
        StageTimes t;
        std::vector<Image> todo;
        std::vector<size_t> todo_at;
        for (size_t i = begin; i < end; ++i) {
          auto hit = cached.find(images[i]);
          if (hit != cached.end()) {
            faces[i] = hit->second.face;
            found[i] = hit->second.faces;
          } else {
            todo.push_back(imgs[i - begin]);
            todo_at.push_back(i);
          }
        }
        if (!todo.empty()) {
          std::vector<int> n;
          auto picked = pipeline.detect_one_batch(todo, options.pick, &n, &t);
          for (size_t k = 0; k < todo.size(); ++k) faces[todo_at[k]] = std::move(picked[k]), found[todo_at[k]] = n[k];
        }
        std::vector<Image> with;
        std::vector<std::vector<Face>> with_faces;
        std::vector<size_t> with_at;
        for (size_t i = begin; i < end; ++i)
          if (faces[i]) with.push_back(imgs[i - begin]), with_faces.push_back({*faces[i]}), with_at.push_back(i);
        if (!with.empty()) {
          auto e = pipeline.embed_batch(with, std::move(with_faces), &t);
          for (size_t k = 0; k < with.size(); ++k) emb[with_at[k]] = std::move(e[k].at(0).embedding), ok[with_at[k]] = 1;
        }
        // Per-photo times: the batch's stage times shared out over the photos that went through each stage.
        for (size_t i : todo_at) {  // detected in this run
          times[i].faces = found[i] > 0 ? 1 : 0;
          times[i].detect_ms = t.detect_ms / todo.size();
          times[i].landmarks_ms = t.landmarks_ms / todo.size();
        }
        for (size_t i : with_at) times[i].embed_ms = t.embed_ms / with.size();
      },
      [&](int chunks_done, int) {
        if (progress) progress(static_cast<int>(std::min(images.size(), chunks_done * per)), static_cast<int>(images.size()));
      });
  if (!options.face_cache.empty() && cached.size() < images.size()) {
    for (size_t i = 0; i < images.size(); ++i) cached[images[i]] = {faces[i], std::max(found[i], faces[i] ? 1 : 0)};
    detail::write_face_cache(options.face_cache, cached);
  }

  LfwReport r;
  r.images = static_cast<int>(images.size());
  for (size_t i = 0; i < images.size(); ++i) r.image_faces.push_back({images[i], found[i], faces[i], ok[i] ? emb[i] : Embedding{}});
  std::vector<double> det, lm, em;
  for (size_t i = 0; i < images.size(); ++i) {
    if (!ok[i]) {
      r.no_face++;
      r.no_face_images.push_back(images[i]);
      continue;
    }
    if (times[i].faces > 0) {  // detected in this run, not taken from the cache
      det.push_back(times[i].detect_ms);
      lm.push_back(times[i].landmarks_ms);
    }
    em.push_back(times[i].embed_ms);
  }
  r.median_detect_ms = median(det);
  r.median_landmarks_ms = median(lm);
  r.median_embed_ms = median(em);

  std::vector<ScoredPair> scored;
  for (const auto& p : pairs) {
    const int a = index[p.a], b = index[p.b];
    ScoredPair s;
    s.same = p.same;
    s.fold = p.fold;
    s.valid = ok[a] && ok[b];
    s.distance = s.valid ? l2_distance(emb[a], emb[b]) : 0.f;
    scored.push_back(s);
  }
  r.verification = evaluate_verification(scored, folds);
  r.scored = scored;
  r.pairs = pairs;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& s = scored[i];
    const float t = r.verification.folds[s.fold].threshold;
    if (!s.valid || (s.distance <= t) != s.same) r.errors.push_back({pairs[i], s.distance, t, s.valid});
  }
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return r;
}

}  // namespace facekit
