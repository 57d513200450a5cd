// `facekit bench spoof`: every signal on a folder of bona fide and a folder of attack images, optionally
// calibrated first on another pair of folders (split by set, not by image: frames of one video are
// near-duplicates, so an image-level split would leak).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "facekit/detector.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/spoof_eval.hpp"
#include "spoof/spoof_models.hpp"

namespace facekit {
namespace fs = std::filesystem;
namespace {

constexpr int kTextureFolds = 5;

struct Sample {
  fs::path path;
  bool live = false;
  bool has_face = true;
  int set = 0;  // which fitting set (folder pair) it came from
  float antispoof = 0, liveness = 0;
  std::vector<float> texture;
};

// Natural order (frame 2 before frame 10), so that contiguous folds hold contiguous frames.
bool natural_less(const fs::path& a, const fs::path& b) {
  const std::string x = a.stem().string(), y = b.stem().string();
  const bool nx = !x.empty() && std::all_of(x.begin(), x.end(), ::isdigit);
  const bool ny = !y.empty() && std::all_of(y.begin(), y.end(), ::isdigit);
  if (nx && ny && x.size() != y.size()) return x.size() < y.size();
  return x < y;
}

void list_images(const fs::path& dir, bool live, std::vector<Sample>& out, int set = 0) {
  if (!fs::is_directory(dir)) throw Error(ErrorCode::kNotFound, "not a folder: " + dir.string());
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".webp"))
      files.push_back(e.path());
  }
  if (files.empty()) throw Error(ErrorCode::kNotFound, "no images in " + dir.string());
  std::sort(files.begin(), files.end(), natural_less);
  for (auto& f : files) {
    Sample s;
    s.path = std::move(f);
    s.live = live;
    s.set = set;
    out.push_back(std::move(s));
  }
}

class Scorer {
 public:
  explicit Scorer(const SpoofBenchOptions& o)
      : o_(o),
        antispoof_(create_spoof_checker("antispoof", o.spoof)),
        liveness_(create_spoof_checker("liveness", o.spoof)),
        texture_(load(o, "spoof-texture")) {
    if (o.detect) {
      DetectorOptions d;
      d.device = o.spoof.device;
      detector_ = create_detector(o.detector, d);
    }
  }
  void score(Sample& s) const {
    const Image img = load_image(s.path);
    Face face;
    face.box = {0, 0, float(img.cols), float(img.rows)};
    if (detector_) {
      const auto faces = detector_->detect(img);
      if (faces.empty()) {
        s.has_face = false;
        return;
      }
      face = *std::max_element(faces.begin(), faces.end(),
                               [](const Face& a, const Face& b) { return a.box.area() < b.box.area(); });
    }
    s.antispoof = antispoof_->check(img, face).score;
    s.liveness = liveness_->check(img, face).score;
    s.texture = texture_features(spoof_crop(img, face.box, texture_.spoof.crop_scale, 0));
  }
  static ModelManifest load(const SpoofBenchOptions& o, const std::string& name) {
    return o.spoof.manifests.empty() ? load_manifest(name) : load_manifest(name, o.spoof.manifests);
  }

 private:
  const SpoofBenchOptions& o_;
  std::unique_ptr<SpoofChecker> antispoof_, liveness_;
  ModelManifest texture_;
  std::unique_ptr<Detector> detector_;
};

void score_all(const Scorer& scorer, std::vector<Sample>& samples, int workers, const std::function<void(int, int)>& progress) {
  std::atomic<size_t> next{0};
  std::atomic<int> done{0};
  std::mutex mu;
  std::exception_ptr failure;
  auto work = [&] {
    for (size_t i; (i = next++) < samples.size();) {
      try {
        scorer.score(samples[i]);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!failure) failure = std::current_exception();
        next = samples.size();
      }
      const int d = ++done;
      if (progress) {
        std::lock_guard lock(mu);
        progress(d, static_cast<int>(samples.size()));
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, workers); ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

// Texture model: features standardised on the given rows, then a balanced logistic regression.
ModelManifest::Spoof fit_texture(const std::vector<const Sample*>& rows, double c) {
  const size_t d = rows.front()->texture.size();
  ModelManifest::Spoof s;
  s.feature_mean.assign(d, 0.f);
  s.feature_std.assign(d, 0.f);
  for (const auto* r : rows)
    for (size_t j = 0; j < d; ++j) s.feature_mean[j] += r->texture[j] / rows.size();
  for (const auto* r : rows)
    for (size_t j = 0; j < d; ++j) s.feature_std[j] += std::pow(r->texture[j] - s.feature_mean[j], 2.f) / rows.size();
  for (auto& v : s.feature_std) v = v > 1e-12f ? std::sqrt(v) : 1.f;  // constant features (unused LBP bins)
  std::vector<std::vector<float>> x;
  std::vector<bool> y;
  for (const auto* r : rows) {
    std::vector<float> z(d);
    for (size_t j = 0; j < d; ++j) z[j] = (r->texture[j] - s.feature_mean[j]) / s.feature_std[j];
    x.push_back(std::move(z));
    y.push_back(r->live);
  }
  auto w = fit_logistic(x, y, c);
  s.bias = w.back();
  w.pop_back();
  s.weights = std::move(w);
  return s;
}

struct Scores {
  std::vector<float> live, attack;
  void add(bool is_live, float s) { (is_live ? live : attack).push_back(s); }
};

// The four score lists of a set of samples under one calibration.
std::array<Scores, 4> score_lists(const std::vector<Sample>& samples, const std::vector<float>& texture,
                                  const ModelManifest& fusion) {
  std::array<Scores, 4> out;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    if (!s.has_face) continue;
    const float v[3] = {s.antispoof, s.liveness, texture[i]};
    for (int k = 0; k < 3; ++k) out[k].add(s.live, v[k]);
    out[3].add(s.live, detail::fusion_score(fusion, {v[0], v[1], v[2]}));
  }
  return out;
}

void write_manifest(const SpoofBenchOptions& o, const std::string& name, const ModelManifest::Spoof& s,
                    const std::vector<std::pair<std::string, float>>* members, const std::string& source) {
  const fs::path src = (o.spoof.manifests.empty() ? manifests_dir() : o.spoof.manifests) / (name + ".json");
  std::ifstream in(src);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read " + src.string());
  nlohmann::json j = nlohmann::json::parse(in);
  auto& sp = j["spoof"];
  if (!s.weights.empty()) {
    sp["feature_mean"] = s.feature_mean;
    sp["feature_std"] = s.feature_std;
    sp["weights"] = s.weights;
    sp["bias"] = s.bias;
  }
  if (members) {
    nlohmann::json m = nlohmann::json::array();
    for (const auto& [n, w] : *members) m.push_back({{"name", n}, {"weight", w}});
    j["members"] = m;
    sp["bias"] = s.bias;
  }
  sp["thresholds"] = {{"decision", s.threshold}, {"live", s.live_threshold}, {"spoof", s.spoof_threshold}, {"source", source}};
  fs::create_directories(o.save_manifests);
  std::ofstream out(o.save_manifests / (name + ".json"));
  if (!(out << j.dump(2) << "\n")) throw Error(ErrorCode::kInvalidArgument, "cannot write " + (o.save_manifests / name).string());
}

void set_thresholds(ModelManifest::Spoof& s, const SpoofThresholds& t) {
  s.threshold = t.decision;
  s.live_threshold = t.live;
  s.spoof_threshold = t.spoof;
}

}  // namespace

SpoofBenchReport run_spoof_bench(const SpoofBenchOptions& o, const std::function<void(int, int)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  const bool fit = !o.fit_live_dirs.empty() || !o.fit_spoof_dirs.empty();
  if (fit && (o.fit_live_dirs.empty() || o.fit_spoof_dirs.empty()))
    throw Error(ErrorCode::kInvalidArgument, "fitting needs bona fide and attack folders");
  const bool by_set = o.fit_live_dirs.size() > 1 && o.fit_live_dirs.size() == o.fit_spoof_dirs.size();
  std::vector<Sample> test, train;
  list_images(o.live_dir, true, test);
  list_images(o.spoof_dir, false, test);
  for (size_t i = 0; i < o.fit_live_dirs.size(); ++i) list_images(o.fit_live_dirs[i], true, train, int(i));
  for (size_t i = 0; i < o.fit_spoof_dirs.size(); ++i) list_images(o.fit_spoof_dirs[i], false, train, int(i));
  const Scorer scorer(o);
  std::vector<Sample*> all;
  for (auto& s : train) all.push_back(&s);
  for (auto& s : test) all.push_back(&s);
  {
    // One pool over both sets: the progress bar counts every image once.
    std::vector<Sample> joined;
    for (auto* s : all) joined.push_back(std::move(*s));
    score_all(scorer, joined, o.workers, progress);
    for (size_t i = 0; i < all.size(); ++i) *all[i] = std::move(joined[i]);
  }

  SpoofBenchReport r;
  ModelManifest texture = Scorer::load(o, "spoof-texture"), fusion = Scorer::load(o, "spoof-combined");
  ModelManifest antispoof = Scorer::load(o, "antispoof"), liveness = Scorer::load(o, "liveness");
  if (fit) {
    r.fitted = true;
    std::vector<const Sample*> rows;
    for (const auto& s : train)
      if (s.has_face) rows.push_back(&s);
    // Out-of-fold texture scores on the fitting set: the fusion weights and the texture thresholds must see
    // scores like those of unseen images, not the model's own training fit. With several sets a fold is a set
    // (what the fusion learns then is how far each signal carries over to another capture setup); with one,
    // contiguous blocks of frames per class.
    const size_t n_live = std::count_if(rows.begin(), rows.end(), [](auto* s) { return s->live; });
    const size_t n_attack = rows.size() - n_live;
    std::vector<int> fold(train.size(), -1);
    size_t seen_live = 0, seen_attack = 0;
    for (size_t i = 0; i < train.size(); ++i) {
      if (!train[i].has_face) continue;
      const bool live = train[i].live;
      const size_t pos = live ? seen_live++ : seen_attack++;
      fold[i] = by_set ? train[i].set : int(pos * kTextureFolds / (live ? n_live : n_attack));
    }
    const int folds = by_set ? int(o.fit_live_dirs.size()) : kTextureFolds;
    std::vector<float> oof(train.size(), 0.5f);
    for (int k = 0; k < folds; ++k) {
      std::vector<const Sample*> fold_train;
      for (size_t i = 0; i < train.size(); ++i)
        if (fold[i] >= 0 && fold[i] != k) fold_train.push_back(&train[i]);
      const auto spec = fit_texture(fold_train, o.texture_c);
      for (size_t i = 0; i < train.size(); ++i)
        if (fold[i] == k) oof[i] = detail::texture_score(spec, train[i].texture);
    }
    texture.spoof = [&] {
      auto s = fit_texture(rows, o.texture_c);
      s.crop_scale = texture.spoof.crop_scale;
      return s;
    }();
    // Fusion: balanced logistic regression on the members' logits, weights kept >= 0 (a member whose "live"
    // evidence points the wrong way on the fitting data is left out rather than turned upside down).
    std::vector<std::vector<float>> x;
    std::vector<bool> y;
    for (size_t i = 0; i < train.size(); ++i) {
      if (!train[i].has_face) continue;
      x.push_back({detail::safe_logit(train[i].antispoof), detail::safe_logit(train[i].liveness), detail::safe_logit(oof[i])});
      y.push_back(train[i].live);
      (train[i].live ? r.fit_bona_fide : r.fit_attacks)++;
    }
    const auto w = fit_monotone_logistic(x, y, o.fusion_c);
    fusion.members = {{"antispoof", w[0]}, {"liveness", w[1]}, {"spoof-texture", w[2]}};
    fusion.spoof.bias = w[3];
    const auto fit_lists = score_lists(train, oof, fusion);
    set_thresholds(antispoof.spoof, calibrate_spoof_thresholds(fit_lists[0].live, fit_lists[0].attack, o.band_rate));
    set_thresholds(liveness.spoof, calibrate_spoof_thresholds(fit_lists[1].live, fit_lists[1].attack, o.band_rate));
    set_thresholds(texture.spoof, calibrate_spoof_thresholds(fit_lists[2].live, fit_lists[2].attack, o.band_rate));
    set_thresholds(fusion.spoof, calibrate_spoof_thresholds(fit_lists[3].live, fit_lists[3].attack, o.band_rate));
    if (!o.save_manifests.empty()) {
      std::string dirs;
      for (const auto* v : {&o.fit_live_dirs, &o.fit_spoof_dirs})
        for (const auto& d : *v) dirs += (dirs.empty() ? "" : ", ") + d.parent_path().filename().string() + "/" + d.filename().string();
      const std::string source = "fitted by `facekit bench spoof` on " + dirs + " (" + std::to_string(r.fit_bona_fide) +
                                 " bona fide, " + std::to_string(r.fit_attacks) + " attacks); decision at the equal-error point, " +
                                 "uncertain band at " + std::to_string(int(std::lround(100 * o.band_rate))) +
                                 "% APCER / BPCER" + (o.detect ? ", faces from " + o.detector : ", images as face crops") +
                                 "; fusion weights and texture thresholds from out-of-fold texture scores (" +
                                 (by_set ? "leave one set out" : "5 contiguous folds") + ")";
      write_manifest(o, "antispoof", antispoof.spoof, nullptr, source);
      write_manifest(o, "liveness", liveness.spoof, nullptr, source);
      write_manifest(o, "spoof-texture", texture.spoof, nullptr, source);
      write_manifest(o, "spoof-combined", fusion.spoof, &fusion.members, source);
    }
  }

  std::vector<float> tex(test.size(), 0.5f);
  for (size_t i = 0; i < test.size(); ++i)
    if (test[i].has_face) tex[i] = detail::texture_score(texture.spoof, test[i].texture);
  const auto lists = score_lists(test, tex, fusion);
  const ModelManifest* manifests[4] = {&antispoof, &liveness, &texture, &fusion};
  for (int k = 0; k < 4; ++k) {
    SpoofSignalReport s;
    s.name = manifests[k]->name;
    s.thresholds = detail::thresholds_of(*manifests[k]);
    const auto& b = lists[k].live;
    const auto& a = lists[k].attack;
    s.at_threshold = pad_metrics(b, a, s.thresholds.decision);
    s.at_apcer5 = pad_at_apcer(b, a, 0.05);
    s.at_apcer1 = pad_at_apcer(b, a, 0.01);
    s.auc = pad_auc(b, a);
    auto uncertain = [&](const std::vector<float>& v) {
      return double(std::count_if(v.begin(), v.end(), [&](float x) { return s.thresholds.state(x) == SpoofState::kUncertain; })) / v.size();
    };
    s.uncertain_bona_fide = uncertain(b);
    s.uncertain_attacks = uncertain(a);
    s.roc = pad_roc(b, a);
    r.signals.push_back(std::move(s));
  }
  r.bona_fide = static_cast<int>(lists[0].live.size());
  r.attacks = static_cast<int>(lists[0].attack.size());
  r.no_face = static_cast<int>(std::count_if(test.begin(), test.end(), [](const Sample& s) { return !s.has_face; }));
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace facekit
