// `facekit bench spoof`: every signal on a folder of bona fide and a folder of attack images, optionally
// calibrated first on another pair of folders (split by set, not by image: frames of one video are
// near-duplicates, so an image-level split would leak).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/parallel.hpp"
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
  std::vector<float> net;                   // per graph signal: P(live)
  std::vector<std::vector<float>> texture;  // per texture signal: its features
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

ModelManifest load_spoof_manifest(const SpoofBenchOptions& o, const std::string& name) {
  return o.spoof.manifests.empty() ? load_manifest(name) : load_manifest(name, o.spoof.manifests);
}

// The signals of spoof_signal_names(): graph networks are run through their checkers; texture signals only
// have their features computed, since their models are what calibration fits.
class Scorer {
 public:
  explicit Scorer(const SpoofBenchOptions& o) {
    for (const auto& n : spoof_signal_names()) {
      ModelManifest m = load_spoof_manifest(o, n);
      if (m.arch == "graph") nets_.push_back(create_spoof_checker(n, o.spoof));
      else if (m.arch == "texture") textures_.push_back(std::move(m));
      else throw Error(ErrorCode::kModelCorrupt, "signal " + n + " has architecture " + m.arch);
    }
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
    for (const auto& c : nets_) s.net.push_back(c->check(img, face).score);
    for (const auto& m : textures_)
      s.texture.push_back(texture_features(spoof_crop(img, face.box, m.spoof.crop_scale, 0), m.spoof.feature_groups));
  }

 private:
  std::vector<std::unique_ptr<SpoofChecker>> nets_;
  std::vector<ModelManifest> textures_;
  std::unique_ptr<Detector> detector_;
};

void score_all(const Scorer& scorer, std::vector<Sample>& samples, int workers, const std::function<void(int, int)>& progress) {
  detail::parallel_for(samples.size(), workers, [&](size_t i) { scorer.score(samples[i]); }, progress);
}

// Texture model: features standardised on the given rows, then a balanced logistic regression.
ModelManifest::Spoof fit_texture(const std::vector<const Sample*>& rows, size_t t, double c) {
  const size_t d = rows.front()->texture[t].size();
  ModelManifest::Spoof s;
  s.feature_mean.assign(d, 0.f);
  s.feature_std.assign(d, 0.f);
  for (const auto* r : rows)
    for (size_t j = 0; j < d; ++j) s.feature_mean[j] += r->texture[t][j] / rows.size();
  for (const auto* r : rows)
    for (size_t j = 0; j < d; ++j) s.feature_std[j] += std::pow(r->texture[t][j] - s.feature_mean[j], 2.f) / rows.size();
  for (auto& v : s.feature_std) v = v > 1e-12f ? std::sqrt(v) : 1.f;  // constant features (unused LBP bins)
  std::vector<std::vector<float>> x;
  std::vector<bool> y;
  for (const auto* r : rows) {
    std::vector<float> z(d);
    for (size_t j = 0; j < d; ++j) z[j] = (r->texture[t][j] - s.feature_mean[j]) / s.feature_std[j];
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

// Every signal's P(live) per sample (nets, then texture signals: spoof_signal_names() order), given the
// texture signals' scores.
std::vector<float> signal_scores(const Sample& s, const std::vector<std::vector<float>>& texture, size_t i) {
  std::vector<float> v = s.net;
  for (const auto& t : texture) v.push_back(t[i]);
  return v;
}

// Score lists per signal and, last, for the fusion.
std::vector<Scores> score_lists(const std::vector<Sample>& samples, const std::vector<std::vector<float>>& texture,
                                const ModelManifest& fusion) {
  std::vector<Scores> out(spoof_signal_names().size() + 1);
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!samples[i].has_face) continue;
    const auto v = signal_scores(samples[i], texture, i);
    for (size_t k = 0; k < v.size(); ++k) out[k].add(samples[i].live, v[k]);
    out.back().add(samples[i].live, detail::fusion_score(fusion, v));
  }
  return out;
}

void write_manifest(const SpoofBenchOptions& o, const std::string& name, const ModelManifest::Spoof& s,
                    const std::vector<std::pair<std::string, float>>* members, const std::string& source) {
  ModelManifest m = o.spoof.manifests.empty() ? load_manifest(name) : load_manifest(name, o.spoof.manifests);
  if (!s.weights.empty()) {
    m.spoof.feature_groups = s.feature_groups;
    m.spoof.feature_mean = s.feature_mean;
    m.spoof.feature_std = s.feature_std;
    m.spoof.weights = s.weights;
    m.spoof.bias = s.bias;
  }
  if (members) {
    m.members = *members;
    m.spoof.bias = s.bias;
  }
  m.spoof.threshold = s.threshold;
  m.spoof.live_threshold = s.live_threshold;
  m.spoof.spoof_threshold = s.spoof_threshold;
  m.spoof.threshold_source = source;
  save_manifest(o.save_manifests / (name + ".json"), m);
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
  const auto& names = spoof_signal_names();
  std::vector<ModelManifest> signals;  // nets first, then texture signals, as Sample holds them
  for (const char* arch : {"graph", "texture"})
    for (const auto& n : names) {
      ModelManifest m = load_spoof_manifest(o, n);
      if (m.arch == arch) signals.push_back(std::move(m));
    }
  const size_t n_nets = std::count_if(signals.begin(), signals.end(), [](auto& m) { return m.arch == "graph"; });
  for (size_t k = 0; k < names.size(); ++k)
    if (signals[k].name != names[k])
      throw Error(ErrorCode::kInternal, "spoof_signal_names() must list the networks before the texture signals");
  ModelManifest fusion = load_spoof_manifest(o, "spoof-combined");
  std::vector<std::vector<float>> train_texture(signals.size() - n_nets, std::vector<float>(train.size(), 0.5f));
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
      (live ? r.fit_bona_fide : r.fit_attacks)++;
    }
    const int folds = by_set ? int(o.fit_live_dirs.size()) : kTextureFolds;
    for (size_t t = 0; t < train_texture.size(); ++t) {
      for (int k = 0; k < folds; ++k) {
        std::vector<const Sample*> fold_train;
        for (size_t i = 0; i < train.size(); ++i)
          if (fold[i] >= 0 && fold[i] != k) fold_train.push_back(&train[i]);
        const auto spec = fit_texture(fold_train, t, o.texture_c);
        for (size_t i = 0; i < train.size(); ++i)
          if (fold[i] == k) train_texture[t][i] = detail::texture_score(spec, train[i].texture[t]);
      }
      ModelManifest::Spoof& spec = signals[n_nets + t].spoof;
      auto fitted = fit_texture(rows, t, o.texture_c);
      fitted.crop_scale = spec.crop_scale;
      fitted.feature_groups = spec.feature_groups;
      spec = std::move(fitted);
    }
    // Fusion: balanced logistic regression on the signals' logits, weights kept >= 0 (a signal whose "live"
    // evidence points the wrong way on the fitting data is left out rather than turned upside down).
    std::vector<std::vector<float>> x;
    std::vector<bool> y;
    for (size_t i = 0; i < train.size(); ++i) {
      if (!train[i].has_face) continue;
      std::vector<float> logits;
      for (float p : signal_scores(train[i], train_texture, i)) logits.push_back(detail::safe_logit(p));
      x.push_back(std::move(logits));
      y.push_back(train[i].live);
    }
    const auto w = fit_monotone_logistic(x, y, o.fusion_c);
    fusion.members.clear();
    for (size_t k = 0; k < names.size(); ++k) fusion.members.emplace_back(names[k], w[k]);
    fusion.spoof.bias = w.back();
    const auto fit_lists = score_lists(train, train_texture, fusion);
    for (size_t k = 0; k < signals.size(); ++k)
      set_thresholds(signals[k].spoof, calibrate_spoof_thresholds(fit_lists[k].live, fit_lists[k].attack, o.band_rate));
    set_thresholds(fusion.spoof, calibrate_spoof_thresholds(fit_lists.back().live, fit_lists.back().attack, o.band_rate));
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
      for (const auto& m : signals) write_manifest(o, m.name, m.spoof, nullptr, source);
      write_manifest(o, "spoof-combined", fusion.spoof, &fusion.members, source);
    }
  } else {
    for (size_t k = 0; k < names.size(); ++k)
      if (fusion.members.size() != names.size() || fusion.members[k].first != names[k])
        throw Error(ErrorCode::kModelCorrupt, "spoof-combined must fuse exactly the signals, in this order: antispoof, "
                                              "liveness, then the texture signals");
  }

  std::vector<std::vector<float>> test_texture(signals.size() - n_nets, std::vector<float>(test.size(), 0.5f));
  for (size_t t = 0; t < test_texture.size(); ++t)
    for (size_t i = 0; i < test.size(); ++i)
      if (test[i].has_face) test_texture[t][i] = detail::texture_score(signals[n_nets + t].spoof, test[i].texture[t]);
  const auto lists = score_lists(test, test_texture, fusion);
  std::vector<const ModelManifest*> manifests;
  for (const auto& m : signals) manifests.push_back(&m);
  manifests.push_back(&fusion);
  for (size_t k = 0; k < manifests.size(); ++k) {
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
