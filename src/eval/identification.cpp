// LFW identification protocols (closed-set rank-k, open-set DIR at FPIR) and the embedding cache they share
// with the scale benchmark.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <unordered_map>

#include "core/parallel.hpp"
#include "facekit/error.hpp"
#include "facekit/identification_eval.hpp"
#include "facekit/image.hpp"
#include "gallery/atomic_file.hpp"
#include "gallery/open_set.hpp"

namespace facekit {
namespace fs = std::filesystem;

using Clock = std::chrono::steady_clock;

double rank_k(const std::vector<ProbeOutcome>& probes, int k) {
  std::int64_t mated = 0, hit = 0;
  for (const auto& p : probes) {
    if (!p.mated) continue;
    ++mated;
    hit += p.rank >= 1 && p.rank <= k;
  }
  return mated ? static_cast<double>(hit) / mated : 0;
}

OpenSetPoint dir_at_fpir(const std::vector<ProbeOutcome>& probes, double fpir) {
  std::vector<float> nonmated;
  std::int64_t mated = 0;
  for (const auto& p : probes) {
    if (p.mated) {
      ++mated;
    } else {
      // A non-mated probe without a candidate (no face, empty gallery) can never be a false positive.
      nonmated.push_back(p.has_candidate ? p.top_score : -std::numeric_limits<float>::infinity());
    }
  }
  if (!mated || nonmated.empty())
    throw Error(ErrorCode::kInvalidArgument, "DIR at FPIR needs mated and non-mated probes");
  std::sort(nonmated.begin(), nonmated.end(), std::greater<>());
  // Accept scores >= t. With `allowed` false positives permitted, t must sit just above the (allowed+1)-th
  // highest non-mated score; ties at that score are all rejected so FPIR never exceeds the target.
  const auto allowed = static_cast<size_t>(std::floor(fpir * static_cast<double>(nonmated.size()) + 1e-9));
  OpenSetPoint r;
  r.threshold = allowed < nonmated.size() ? std::nextafter(nonmated[allowed], std::numeric_limits<float>::infinity())
                                          : -std::numeric_limits<float>::infinity();
  size_t fp = 0;
  for (float s : nonmated) fp += s >= r.threshold;
  std::int64_t hits = 0;
  for (const auto& p : probes)
    if (p.mated && p.rank == 1 && p.has_candidate && p.top_score >= r.threshold) ++hits;
  r.fpir = static_cast<double>(fp) / nonmated.size();
  r.dir = static_cast<double>(hits) / mated;
  return r;
}

OpenSetPoint open_set_at(const std::vector<ProbeOutcome>& probes, float threshold) {
  OpenSetPoint r;
  r.threshold = threshold;
  std::int64_t mated = 0, nonmated = 0, fp = 0, hits = 0;
  for (const auto& p : probes) {
    const bool accepted = p.has_candidate && p.top_score >= (std::isnan(p.threshold) ? threshold : p.threshold);
    if (p.mated) {
      ++mated;
      hits += accepted && p.rank == 1;
    } else {
      ++nonmated;
      fp += accepted;
    }
  }
  r.fpir = nonmated ? static_cast<double>(fp) / nonmated : 0;
  r.dir = mated ? static_cast<double>(hits) / mated : 0;
  return r;
}

std::vector<LfwPerson> lfw_people(const fs::path& root, int min_photos) {
  const fs::path list = root / "lfw-names.txt";
  std::ifstream in(list);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open " + list.string() + " (is --root an LFW folder?)");
  std::vector<LfwPerson> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    std::istringstream s(line);
    std::string name;
    int count = 0;
    if (!(s >> name >> count) || count < 1)
      throw Error(ErrorCode::kInvalidArgument, list.string() + ":" + std::to_string(lineno) + ": not 'Name count'");
    if (count < min_photos) continue;
    LfwPerson p;
    p.name = name;
    for (int i = 1; i <= count; ++i) {
      char num[16];
      std::snprintf(num, sizeof num, "%04d", i);
      p.photos.push_back(name + "/" + name + "_" + num + ".jpg");
    }
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(), [](const LfwPerson& a, const LfwPerson& b) { return a.name < b.name; });
  return out;
}

// ---- embedding cache ----------------------------------------------------------------------------------------

namespace {

constexpr const char* kCacheMagic = "facekit-embedding-cache";
constexpr int kCacheVersion = 4;  // 2: the quality score and yaw of each face; 3: eyes by GeometryMeter; 4: XNNPACK in the graph runtime

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string file_safe(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') c = '_';
  return s;
}

fs::path cache_dir(const EmbeddingCacheOptions& o) {
  if (!o.dir.empty()) return o.dir;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "facekit";
  if (const char* h = std::getenv("HOME"); h && *h) return fs::path(h) / ".cache" / "facekit";
  return fs::temp_directory_path() / "facekit-cache";
}

using CacheMap = std::unordered_map<std::string, PhotoEmbeddings>;

void load_cache(const fs::path& file, const std::string& recipe, int dim, CacheMap& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return;
  std::string header;
  std::getline(in, header);
  if (header != std::string(kCacheMagic) + " " + std::to_string(kCacheVersion) + " " + std::to_string(dim) + " " +
                    recipe)
    return;  // another recipe or a damaged file: recompute
  while (in.peek() != EOF) {
    std::uint16_t n = 0;
    if (!in.read(reinterpret_cast<char*>(&n), sizeof n)) break;
    std::string path(n, '\0');
    std::uint8_t ok = 0, nv = 0;
    PhotoEmbeddings pe;
    in.read(path.data(), n);
    in.read(reinterpret_cast<char*>(&ok), 1);
    in.read(reinterpret_cast<char*>(&pe.quality), sizeof pe.quality);
    in.read(reinterpret_cast<char*>(&pe.yaw), sizeof pe.yaw);
    in.read(reinterpret_cast<char*>(&nv), 1);
    pe.ok = ok != 0;
    pe.variants.assign(nv, Embedding(dim));
    for (auto& v : pe.variants) in.read(reinterpret_cast<char*>(v.data()), dim * sizeof(float));
    if (!in) break;  // a truncated tail: keep what was whole
    out[path] = std::move(pe);
  }
}

void save_cache(const fs::path& file, const std::string& recipe, int dim, const CacheMap& map) {
  fs::create_directories(file.parent_path());
  write_file_atomically(file, [&](std::ostream& f) {
    f << kCacheMagic << " " << kCacheVersion << " " << dim << " " << recipe << "\n";
    for (const auto& [path, pe] : map) {
      const auto n = static_cast<std::uint16_t>(path.size());
      const std::uint8_t ok = pe.ok, nv = static_cast<std::uint8_t>(pe.variants.size());
      f.write(reinterpret_cast<const char*>(&n), sizeof n);
      f.write(path.data(), n);
      f.write(reinterpret_cast<const char*>(&ok), 1);
      f.write(reinterpret_cast<const char*>(&pe.quality), sizeof pe.quality);
      f.write(reinterpret_cast<const char*>(&pe.yaw), sizeof pe.yaw);
      f.write(reinterpret_cast<const char*>(&nv), 1);
      for (const auto& v : pe.variants) f.write(reinterpret_cast<const char*>(v.data()), dim * sizeof(float));
    }
  });
}

std::string augment_key(const AugmentOptions& a) {
  std::ostringstream s;
  s << "rot";
  for (float v : a.rotations_deg) s << "," << v;
  s << " scale";
  for (float v : a.scales) s << "," << v;
  s << " gamma";
  for (float v : a.gammas) s << "," << v;
  return s.str();
}

}  // namespace

std::vector<PhotoEmbeddings> embed_lfw_photos(const FacePipeline& pipeline, const fs::path& root,
                                              const std::vector<std::string>& photos,
                                              const std::vector<bool>& augmented, const AugmentOptions& augment,
                                              const EmbeddingCacheOptions& cache, int workers,
                                              const std::function<void(int, int)>& progress, int* computed_out) {
  const int dim = pipeline.embedder().dim();
  const auto& det = pipeline.detector().options();
  const EmbedderId eid = embedder_id(pipeline);
  const std::string recipe = eid.str() + " detector=" + pipeline.detector().name() +
                             " landmarker=" + pipeline.landmarker().name() + " size=" +
                             std::to_string(det.input_size) + " min=" + std::to_string(det.min_score) + " " +
                             cache.recipe + " aug " + augment_key(augment) +
                             // Which photos (two face sets may share relative paths) and how faces were found
                             // (a cache from before a detection change must not be reused).
                             " nms=" + std::to_string(det.nms_iou) + "," + std::to_string(det.nms_containment) +
                             " large=" + std::to_string(det.large_face_fraction) + "," +
                             std::to_string(det.large_face_containment) + "," + std::to_string(det.large_face_input) +
                             " root=" + fs::weakly_canonical(root).string();
  const fs::path file = cache_dir(cache) / ("lfw-" + file_safe(eid.str()) + "-" + std::to_string(fnv1a(recipe) % 1000000007ull) + ".bin");
  CacheMap map;
  if (cache.enabled) load_cache(file, recipe, dim, map);
  const int want_variants = augment.variants();

  std::vector<PhotoEmbeddings> out(photos.size());
  std::vector<size_t> todo;
  for (size_t i = 0; i < photos.size(); ++i) {
    auto it = map.find(photos[i]);
    const bool need_aug = i < augmented.size() && augmented[i];
    if (it != map.end() && (!it->second.ok || !need_aug || static_cast<int>(it->second.variants.size()) >= want_variants))
      out[i] = it->second;
    else
      todo.push_back(i);
  }
  const auto quality = create_quality_assessor();  // enrolment's default: the score a template stores
  std::mutex mu;  // out, map, the periodic save and progress
  int done = static_cast<int>(photos.size() - todo.size()), since_save = 0;
  detail::parallel_for(todo.size(), workers, [&](size_t k) {
    const size_t i = todo[k];
    PhotoEmbeddings pe;
    const Image img = load_image(root / photos[i]);
    try {
      AnalyzedFace a = pipeline.analyze_one(img, FacePick::kNearestCenter);
      pe.ok = true;
      const FaceQuality q = quality->assess(img, a.face);
      pe.quality = q.score;
      pe.yaw = q.pose.yaw;
      if (augmented[i]) {
        pe.variants = augmented_embeddings(pipeline, img, *a.face.landmarks, augment);
        pe.variants[0] = std::move(a.embedding);  // exactly what identification of this photo would see
      } else {
        pe.variants = {std::move(a.embedding)};
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNoFace) throw;
    }
    std::lock_guard lock(mu);
    out[i] = pe;
    map[photos[i]] = std::move(pe);
    if (cache.enabled && ++since_save >= 500) {  // an interrupted run resumes from here
      since_save = 0;
      save_cache(file, recipe, dim, map);
    }
    ++done;
    if (progress) progress(done, static_cast<int>(photos.size()));
  });
  if (cache.enabled && !todo.empty()) save_cache(file, recipe, dim, map);
  if (computed_out) *computed_out = static_cast<int>(todo.size());
  return out;
}

// ---- protocols ----------------------------------------------------------------------------------------------

namespace {

struct Photo {
  int person = 0, position = 0;
  const PhotoEmbeddings* emb = nullptr;
};

struct Split {
  std::vector<int> gallery;  // photo indices
  std::vector<int> probes;   // photo indices
  std::vector<char> enrolled;  // per person
};

ProtocolResult evaluate(const std::string& protocol, const std::string& clf_name, const std::string& enrolment,
                        Aggregation agg, const Split& split, const std::vector<Photo>& photos,
                        const LfwIdentificationOptions& opt, int dim, const EmbedderId& embedder) {
  ProtocolResult r;
  r.protocol = protocol;
  r.classifier = clf_name;
  r.enrolment = enrolment;
  r.aggregation = to_string(agg);
  // Rows: per template, then optionally averaged per person.
  std::map<int, std::vector<Embedding>> rows_by_person;
  std::map<int, std::vector<float>> quality_by_person;  // of each photo's rows (enrolment stores it per template)
  for (int i : split.gallery) {
    const auto& pe = *photos[i].emb;
    if (!pe.ok) continue;
    auto& dst = rows_by_person[photos[i].person];
    if (enrolment == "plain" || pe.variants.size() == 1)
      dst.push_back(pe.variants[0]);
    else if (enrolment == "aug-mean")
      dst.push_back(mean_embedding(pe.variants));
    else
      for (const auto& v : pe.variants) dst.push_back(v);
    quality_by_person[photos[i].person].resize(dst.size(), pe.quality);
  }
  std::vector<float> data;
  std::vector<std::int64_t> keys, labels;
  // Mean rows are one value longer (mean_row); probes get a 0 there, as Identifier does.
  const bool mean_rows = agg == Aggregation::kMean;
  const int row_dim = dim + (mean_rows ? 1 : 0);
  auto probe_of = [&](const Embedding& e) {
    Embedding p = e;
    if (mean_rows) p.push_back(0.f);
    return p;
  };
  for (auto& [person, rows] : rows_by_person) {
    if (mean_rows) rows = {mean_row(rows, quality_by_person[person], opt.template_min_quality, opt.mean_norm_power)};
    for (const auto& v : rows) {
      data.insert(data.end(), v.begin(), v.end());
      keys.push_back(static_cast<std::int64_t>(keys.size()));
      labels.push_back(person);
    }
  }
  r.gallery_people = static_cast<int>(rows_by_person.size());
  r.gallery_rows = static_cast<int>(keys.size());
  LabelledIndex index(row_dim, opt.index, static_cast<std::int64_t>(keys.size()));
  index.add(data.data(), keys.data(), labels.data(), static_cast<std::int64_t>(keys.size()));
  auto clf = create_classifier(clf_name, opt.classifier);
  auto t0 = Clock::now();
  clf->train(index);
  r.train_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.classifier_state = clf->describe();

  std::vector<ProbeOutcome> outcomes;
  std::vector<std::pair<size_t, float>> yaws;  // of the turned probes
  std::vector<double> ms;
  for (int i : split.probes) {
    ProbeOutcome o;
    const int person = photos[i].person;
    o.mated = split.enrolled[person] != 0;
    const auto& pe = *photos[i].emb;
    o.turned = pe.ok && std::abs(pe.yaw) >= opt.turned_yaw;
    if (o.turned) yaws.emplace_back(outcomes.size(), pe.yaw);
    if (pe.ok) {
      t0 = Clock::now();
      const auto cands = clf->classify(index, probe_of(pe.variants[0]).data(), 5);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (!cands.empty()) {
        o.has_candidate = true;
        o.top_score = cands[0].score;
        for (size_t k = 0; k < cands.size(); ++k)
          if (cands[k].label == person) {
            o.rank = static_cast<int>(k) + 1;
            break;
          }
      }
    }
    outcomes.push_back(o);
  }
  if (protocol == "open-set" && enrolment == "plain" && (clf_name == "knn" || agg == Aggregation::kNone)) {
    // Every stranger (a non-enrolled person's photo) against every enrolled person: the score distribution
    // the open-set threshold must reject. (Enrolled people scored against each other are no substitute for
    // the SVM: their templates were its negatives, which pushes their scores down.)
    // A kNN over every template is measured per template (open_set_comparisons()): a person's score is their
    // nearest template's, so their chance of passing grows with their number of templates.
    const auto labels = index.labels();
    const int all = static_cast<int>(labels.size());
    const bool per_row = clf_name == "knn" && agg == Aggregation::kNone;
    std::vector<float> impostor;
    impostor.reserve(split.probes.size() * (per_row ? keys.size() : labels.size()));
    for (int i : split.probes) {
      const auto& pe = *photos[i].emb;
      if (!pe.ok || split.enrolled[photos[i].person]) continue;
      const Embedding x = probe_of(pe.variants[0]);
      if (per_row) {
        for (size_t k = 0; k < keys.size(); ++k) {
          float dot = 0;
          for (int j = 0; j < row_dim; ++j) dot += x[j] * data[k * row_dim + j];
          impostor.push_back(dot);  // the kNN's score: 1 - d^2/2 of unit vectors
        }
      } else {
        for (const auto& c : clf->classify(index, x.data(), all)) impostor.push_back(c.score);
      }
    }
    std::sort(impostor.begin(), impostor.end(), std::greater<>());
    r.impostor_comparisons = static_cast<std::int64_t>(impostor.size());
    for (double far : {1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6}) {
      const auto k = static_cast<size_t>(far * static_cast<double>(impostor.size()));
      if (k < 10 || k >= impostor.size()) continue;  // fewer than 10 impostors above: not measured
      r.far_table.emplace_back(far, impostor[k]);
    }
  }
  for (const auto& o : outcomes) (o.mated ? r.mated_probes : r.nonmated_probes)++;
  r.rank1 = rank_k(outcomes, 1);
  r.rank5 = rank_k(outcomes, 5);
  if (r.nonmated_probes > 0 && r.mated_probes > 0) {
    r.open_set = dir_at_fpir(outcomes, opt.fpir);
    // As Identifier does: turned faces meet the calibration's threshold for their share of the FPIR.
    IdentifyOptions io;
    io.fpir = opt.fpir;
    io.turned_yaw = opt.turned_yaw;
    io.turned_yaw_full = opt.turned_yaw_full;
    const std::string key = open_set_key(clf_name, agg);
    const std::int64_t comparisons = open_set_comparisons(clf_name, agg, r.gallery_people, r.gallery_rows);
    const auto cal = load_open_set_calibration(embedder, key);
    io.turned_fpir_factor = resolve_turned_fpir_factor(opt.turned_fpir_factor, cal);
    r.turned_fpir_factor = io.turned_fpir_factor;
    if (cal)
      for (const auto& [k, yaw] : yaws)
        outcomes[k].threshold = cal->threshold_for(opt.fpir * turned_fpir_scale(yaw, io), comparisons);
    r.calibrated = open_set_at(
        outcomes, detail::open_set_threshold(cal, embedder, key, comparisons, opt.fpir, &r.calibrated_source));
    std::vector<ProbeOutcome> turned;
    for (const auto& o : outcomes)
      if (o.turned) turned.push_back(o), ++(o.mated ? r.turned_mated : r.turned_nonmated);
    r.calibrated_turned = open_set_at(
        turned,
        detail::open_set_threshold(cal, embedder, key, comparisons, opt.fpir * io.turned_fpir_factor));
  }
  if (!ms.empty()) {
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    r.median_search_ms = ms[ms.size() / 2];
  }
  return r;
}

}  // namespace

LfwIdentificationReport run_lfw_identification(const FacePipeline& pipeline, const LfwIdentificationOptions& opt,
                                               const std::function<void(const std::string&, int, int)>& progress) {
  const auto t_start = Clock::now();
  auto people = lfw_people(opt.root, 2);
  if (opt.limit_people > 0 && static_cast<size_t>(opt.limit_people) < people.size()) people.resize(opt.limit_people);
  if (people.size() < 4) throw Error(ErrorCode::kInvalidArgument, "need at least 4 LFW people with 2+ photos");
  std::vector<std::string> paths;
  std::vector<bool> augmented;
  std::vector<Photo> photos;
  for (size_t p = 0; p < people.size(); ++p)
    for (size_t j = 0; j < people[p].photos.size(); ++j) {
      paths.push_back(people[p].photos[j]);
      // Only photos that some protocol enrols need augmented copies.
      augmented.push_back(opt.measure_augmentation && j % 2 == 0);
      photos.push_back({static_cast<int>(p), static_cast<int>(j), nullptr});
    }
  LfwIdentificationReport rep;
  rep.embedder = embedder_id(pipeline).str();
  rep.people = static_cast<int>(people.size());
  rep.photos = static_cast<int>(paths.size());
  auto t0 = Clock::now();
  const auto embs = embed_lfw_photos(
      pipeline, opt.root, paths, augmented, opt.augment, opt.cache, opt.workers,
      [&](int d, int n) {
        if (progress) progress("embed", d, n);
      },
      &rep.computed);
  rep.embed_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (size_t i = 0; i < photos.size(); ++i) {
    photos[i].emb = &embs[i];
    if (!embs[i].ok) {
      ++rep.no_face;
      rep.no_face_photos.push_back(paths[i]);
    }
  }
  const int dim = pipeline.embedder().dim();

  // The three splits.
  const size_t np = people.size();
  std::vector<std::vector<int>> by_person(np);
  for (size_t i = 0; i < photos.size(); ++i) by_person[photos[i].person].push_back(static_cast<int>(i));
  Split one_shot, half, open;
  one_shot.enrolled.assign(np, 1);
  half.enrolled.assign(np, 1);
  open.enrolled.assign(np, 0);
  std::vector<size_t> order(np);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(opt.seed);
  std::shuffle(order.begin(), order.end(), rng);
  for (size_t k = 0; k < np / 2; ++k) open.enrolled[order[k]] = 1;
  for (size_t p = 0; p < np; ++p) {
    const auto& ph = by_person[p];
    int first = -1;
    for (int i : ph)
      if (embs[i].ok) {
        first = i;
        break;
      }
    for (int i : ph) {
      if (i == first) one_shot.gallery.push_back(i);
      else one_shot.probes.push_back(i);
      (photos[i].position % 2 == 0 ? half.gallery : half.probes).push_back(i);
      if (open.enrolled[p])
        (photos[i].position % 2 == 0 ? open.gallery : open.probes).push_back(i);
      else
        open.probes.push_back(i);
    }
  }

  LfwIdentificationOptions eval_opt = opt;  // as Identifier resolves it
  eval_opt.mean_norm_power =
      resolve_mean_norm_power(opt.mean_norm_power, load_open_set_calibration(embedder_id(pipeline), "knn"));
  rep.mean_norm_power = eval_opt.mean_norm_power;

  struct Config {
    std::string protocol;
    const Split* split;
    std::string clf, enrolment;
    Aggregation agg;
  };
  std::vector<Config> configs;
  for (const auto& [name, split] : std::vector<std::pair<std::string, const Split*>>{
           {"one-shot", &one_shot}, {"50/50", &half}, {"open-set", &open}})
    for (const auto& clf : opt.classifiers)
      for (const std::string enrol : {"plain", "aug-mean", "aug-each"})
        for (Aggregation agg : {Aggregation::kNone, Aggregation::kMean}) {
          if (!opt.measure_augmentation && enrol != "plain") continue;
          if (agg == Aggregation::kMean && (name == "one-shot" || clf != "knn")) continue;
          configs.push_back({name, split, clf, enrol, agg});
        }
  for (size_t k = 0; k < configs.size(); ++k) {
    const auto& c = configs[k];
    if (progress) progress(c.protocol + " " + c.clf + " " + c.enrolment + " " + to_string(c.agg), static_cast<int>(k), static_cast<int>(configs.size()));
    rep.results.push_back(evaluate(c.protocol, c.clf, c.enrolment, c.agg, *c.split, photos, eval_opt, dim, embedder_id(pipeline)));
  }
  rep.wall_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return rep;
}

}  // namespace facekit
