// The trainer: the only translation unit that uses libtorch's C++ frontend (optimizers, gradient clipping,
// optimizer serialisation). Models are functional ATen code (src/embed/), so the exported embedder runs the
// very forward that was trained.
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <unordered_map>
#include <cmath>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "embed/dlib_resnet.hpp"
#include "embed/small_cnn.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/model.hpp"
#include "facekit/train.hpp"
#include "gallery/atomic_file.hpp"
#include "model/tensor_file.hpp"
#include "nn/tf_ops.hpp"
#include "train/dataset.hpp"
#include "train/plot.hpp"
#include "train/triplet.hpp"

namespace facekit {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
using detail::TensorMap;
using Clock = std::chrono::steady_clock;
constexpr int kCheckpointFormat = 1;
constexpr int kModelFormat = 1;

// A network being trained: its forward (raw, not normalised), the tensors the optimizer updates, and
// everything that a checkpoint or an exported model holds.
class Trainable {
 public:
  virtual ~Trainable() = default;
  virtual at::Tensor forward(const at::Tensor& x, bool training) = 0;
  virtual TensorMap state() const = 0;
  std::vector<at::Tensor> parameters;
  std::string arch;
  std::array<float, 3> mean{127.5f, 127.5f, 127.5f};
  float scale = 1.f / 128;
  AlignmentTemplate tpl;
  std::string description;

  void load_state(const TensorMap& saved) {
    at::NoGradGuard g;
    for (auto& [name, t] : state()) {
      auto it = saved.find(name);
      if (it == saved.end() || it->second.sizes() != t.sizes())
        throw Error(ErrorCode::kInvalidArgument, "checkpoint does not fit this model (tensor " + name +
                                                     "): resume with the options it was started with");
      t.copy_(it->second);
    }
  }
};

class SmallCnnModel final : public Trainable {
 public:
  SmallCnnModel(const TrainOptions& o, const at::Device& device) {
    w_ = detail::small_cnn_init(o.width, o.dim, o.seed);
    for (auto& [name, t] : w_) {
      t = t.to(device);
      if (detail::small_cnn_trainable(name)) parameters.push_back(t.requires_grad_(true));
    }
    arch = "facekit_small_cnn";
    tpl = make_template("dlib68", o.chip_size, o.chip_padding);
    description = "facekit small CNN (width " + std::to_string(o.width) + ", " + std::to_string(o.dim) +
                  "-D) trained from scratch";
  }
  at::Tensor forward(const at::Tensor& x, bool training) override { return detail::small_cnn_forward(w_, x, training); }
  TensorMap state() const override { return w_; }

 private:
  TensorMap w_;
};

class DlibFineTune final : public Trainable {
 public:
  DlibFineTune(const ModelManifest& m, int train_blocks, const at::Device& device)
      : net_(detail::load_model_weights(m), device) {
    const int nb = net_.num_blocks();
    if (train_blocks < 0 || train_blocks > nb)
      throw Error(ErrorCode::kInvalidArgument, "--train-blocks must be in [0, " + std::to_string(nb) + "]");
    first_ = train_blocks == 0 ? 0 : nb - train_blocks;
    if (train_blocks > 0) net_.add_projection();
    for (auto& [name, t] : net_.tensors()) {
      bool train = train_blocks == 0 || name == "fc" || name == "proj";
      if (name[0] == 'b') train |= std::stoi(name.substr(1)) >= first_;  // "b<i>.conv1.w"
      if (train) parameters.push_back(t.requires_grad_(true));
    }
    arch = "dlib_resnet29_tuned";
    mean = m.mean;
    scale = m.scale;
    tpl = make_template(m.alignment_template, m.chip_size, m.chip_padding);
    description = "dlib ResNet-29 (" + m.package + ") fine-tuned: " +
                  (train_blocks == 0 ? std::string("all layers")
                                     : "last " + std::to_string(train_blocks) + " residual blocks, fc and a new projection");
  }
  at::Tensor forward(const at::Tensor& x, bool training) override {
    at::Tensor h;
    {
      // The frozen part needs no graph: cheaper in time and memory.
      std::optional<at::NoGradGuard> g;
      if (first_ > 0) g.emplace();
      h = net_.blocks(net_.stem(x), 0, first_);
    }
    return net_.head(net_.blocks(h, first_, net_.num_blocks()));
  }
  TensorMap state() const override { return net_.tensors(); }

 private:
  detail::DlibResNet net_;
  int first_ = 0;
};

std::unique_ptr<Trainable> make_model(const TrainOptions& o, const at::Device& device) {
  if (o.base == "small_cnn") return std::make_unique<SmallCnnModel>(o, device);
  const ModelManifest m = load_manifest(o.base);
  if (m.kind != "embedder") throw Error(ErrorCode::kInvalidArgument, "--base " + o.base + " is not an embedder");
  if (m.arch == "dlib_resnet29") return std::make_unique<DlibFineTune>(m, o.train_blocks, device);
  throw Error(ErrorCode::kInvalidArgument, "--base " + o.base + " (architecture " + m.arch +
                                               ") cannot be fine-tuned: use small_cnn or dlib_resnet");
}

void check_options(const TrainOptions& o) {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::kInvalidArgument, what); };
  if (o.out.empty()) bad("--out is required");
  if (o.p < 2 || o.k < 2) bad("P and K must be >= 2");
  if (o.epochs < 1) bad("--epochs must be >= 1");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) bad("--lr must be a positive number");
  if (o.margin < 0) bad("--margin must be >= 0");
  if (o.optimizer != "adam" && o.optimizer != "sgd") bad("--optimizer must be adam or sgd");
  if (o.schedule != "cosine" && o.schedule != "step" && o.schedule != "constant")
    bad("--schedule must be cosine, step or constant");
  if (o.chip_size < 16 || o.chip_size > 512) bad("--chip-size must be in [16, 512]");
  if (o.weight_decay < 0 || o.clip_norm < 0 || o.max_minutes < 0 || o.steps_per_epoch < 0) bad("negative option");
  if (o.eval_pairs.empty() != o.eval_root.empty()) bad("--eval-pairs and --eval-root go together");
}

double lr_at(const TrainOptions& o, int64_t step, int64_t total) {
  double f = 1;
  const double t = total > 1 ? double(step) / double(total - 1) : 0;
  if (o.schedule == "cosine") f = 0.01 + 0.99 * 0.5 * (1 + std::cos(M_PI * t));
  if (o.schedule == "step") f = t >= 0.85 ? 0.01 : t >= 0.6 ? 0.1 : 1;
  if (o.warmup_steps > 0 && step < o.warmup_steps) f *= double(step + 1) / o.warmup_steps;
  return o.lr * f;
}

// Normalised embeddings of chips (with the mirror image averaged in, as the embedder does): [N, D] on the CPU.
at::Tensor embed_chips(Trainable& model, const std::vector<Image>& chips, const at::Device& device) {
  at::NoGradGuard g;
  std::vector<at::Tensor> out;
  constexpr size_t kBatch = 128;
  for (size_t s = 0; s < chips.size(); s += kBatch) {
    std::vector<cv::Mat> b(chips.begin() + s, chips.begin() + std::min(chips.size(), s + kBatch));
    at::Tensor x = nn::images_to_batch(b, model.mean, model.scale, device);
    const int64_t n = x.size(0);
    at::Tensor e = model.forward(at::cat({x, at::flip(x, {3})}, 0), false).to(at::kFloat);
    e = e.reshape({2, n, e.size(-1)}).mean(0);
    out.push_back((e / e.norm(2, {1}, true).clamp_min(1e-12)).to(at::kCPU));
  }
  return at::cat(out, 0).contiguous();
}

float distance(const at::Tensor& e, int a, int b) { return (e[a] - e[b]).norm().item<float>(); }

// Pairs of the validation identities: every same-person pair (at most kMax) and as many different-person
// pairs, drawn with a fixed seed so every epoch is scored on the same pairs.
struct PairSet {
  std::vector<std::pair<int, int>> pairs;
  std::vector<bool> same;
};
PairSet validation_pairs(const std::vector<int>& labels, uint64_t seed) {
  constexpr size_t kMax = 3000;
  std::mt19937_64 rng(seed);
  PairSet s;
  std::vector<std::pair<int, int>> pos;
  for (size_t i = 0; i < labels.size(); ++i)
    for (size_t j = i + 1; j < labels.size(); ++j)
      if (labels[i] == labels[j]) pos.emplace_back(int(i), int(j));
  std::shuffle(pos.begin(), pos.end(), rng);
  if (pos.size() > kMax) pos.resize(kMax);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(labels.size()) - 1);
  size_t neg = 0;
  for (size_t tries = 0; neg < pos.size() && tries < 100 * pos.size() + 100; ++tries) {
    const int a = pick(rng), b = pick(rng);
    if (labels[a] == labels[b]) continue;
    s.pairs.emplace_back(a, b);
    s.same.push_back(false);
    ++neg;
  }
  for (const auto& p : pos) s.pairs.push_back(p), s.same.push_back(true);
  return s;
}

// What the loop needs of one side (train or validation) of the data.
struct Split {
  std::vector<Image> chips;
  std::vector<int> labels;  // contiguous identity indices
  int identities = 0;
};

// Eval pairs (LFW View 1 test): images aligned once, pairs scored each epoch.
struct EvalSet {
  std::vector<Image> chips;
  std::vector<int> index;  // image -> row in chips, -1 when no face
  std::vector<LfwPair> pairs;
  std::unordered_map<std::string, int> image_of;
};

json metrics_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch}, {"step", m.step}, {"loss", m.loss}, {"active", m.active},
          {"validation_accuracy", m.validation_accuracy}, {"validation_threshold", m.validation_threshold},
          {"eval_accuracy", m.eval_accuracy}, {"eval_accuracy_calibrated", m.eval_accuracy_calibrated},
          {"train_seconds", m.train_seconds}, {"triplets_per_second", m.triplets_per_second},
          {"images_per_second", m.images_per_second}, {"impostor_distance", m.impostor_distance},
          {"collapsed", m.collapsed}};
}
EpochMetrics metrics_from(const json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch");
  m.step = j.at("step");
  m.loss = j.at("loss");
  m.active = j.at("active");
  m.validation_accuracy = j.at("validation_accuracy");
  m.validation_threshold = j.at("validation_threshold");
  m.eval_accuracy = j.at("eval_accuracy");
  m.eval_accuracy_calibrated = j.at("eval_accuracy_calibrated");
  m.train_seconds = j.at("train_seconds");
  m.triplets_per_second = j.at("triplets_per_second");
  m.images_per_second = j.at("images_per_second");
  m.impostor_distance = j.value("impostor_distance", -1.0);  // absent in checkpoints of older versions
  m.collapsed = j.value("collapsed", false);
  return m;
}

void write_text(const fs::path& p, const std::string& text) {
  write_file_atomically(p, [&](std::ostream& out) { out << text; });
}

json options_json(const TrainOptions& o) {
  return {{"data", o.data.string()}, {"people", o.people.string()}, {"base", o.base},
          {"train_blocks", o.train_blocks}, {"chip_size", o.chip_size}, {"width", o.width}, {"dim", o.dim},
          {"mining", to_string(o.mining)}, {"margin", o.margin}, {"p", o.p}, {"k", o.k}, {"epochs", o.epochs},
          {"steps_per_epoch", o.steps_per_epoch}, {"max_minutes", o.max_minutes}, {"optimizer", o.optimizer},
          {"lr", o.lr}, {"schedule", o.schedule}, {"warmup_steps", o.warmup_steps},
          {"weight_decay", o.weight_decay}, {"clip_norm", o.clip_norm}, {"seed", o.seed},
          {"validation_fraction", o.validation_fraction}, {"augment", o.augment.enabled},
          {"pick_center", o.pick_center}, {"detector", o.detector}, {"keep", o.keep_best ? "best" : "last"}};
}

// Scales all gradients together so that their global L2 norm is at most max_norm (0: no clipping).
// Returns the norm before clipping (not finite when a gradient is not).
double clip_gradients(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard g;
  double sq = 0;
  for (const auto& p : params)
    if (p.grad().defined()) sq += p.grad().to(at::kDouble).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm)
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(max_norm / (norm + 1e-6));
  return norm;
}

// A copy that later optimizer steps do not change.
TensorMap clone_state(const TensorMap& state) {
  TensorMap copy;
  for (const auto& [name, t] : state) copy.emplace(name, t.detach().clone());
  return copy;
}

double opt_lr(torch::optim::Optimizer& opt) { return opt.param_groups().at(0).options().get_lr(); }

[[noreturn]] void diverged(const std::string& what, int epoch, int64_t step, double lr) {
  throw Error(ErrorCode::kInvalidArgument,
              "training diverged at epoch " + std::to_string(epoch) + ", step " + std::to_string(step) + ": " + what +
                  " (learning rate " + std::to_string(lr) +
                  "); nothing from this step was saved, the last checkpoint is kept: lower --lr or --clip");
}

}  // namespace

TrainReport train_embedder(const TrainOptions& o, const TrainCallbacks& cb) {
  check_options(o);
  const at::Device device = nn::parse_device(o.device);
  auto model = make_model(o, device);
  fs::create_directories(o.out);
  const fs::path cache = o.face_cache.empty() ? o.out / "faces.cache" : o.face_cache;

  // Photos: identity folders -> split by identity -> detect (cached) and align.
  const auto folders = detail::scan_identity_folders(o.data, o.people);
  const IdentitySplit split = split_by_identity(static_cast<int>(folders.size()), o.validation_fraction, o.seed);
  std::vector<fs::path> photos;
  std::vector<int> photo_id;
  for (size_t i = 0; i < folders.size(); ++i)
    for (const auto& p : folders[i].photos) photos.push_back(p), photo_id.push_back(static_cast<int>(i));

  EvalSet eval;
  if (!o.eval_pairs.empty()) {
    eval.pairs = read_lfw_pairs(o.eval_pairs);
    for (const auto& p : eval.pairs)
      for (const auto* s : {&p.a, &p.b})
        if (eval.image_of.emplace(*s, static_cast<int>(photos.size() - photo_id.size())).second)
          photos.push_back(o.eval_root / *s);
  }
  const auto aligned = detail::detect_and_align(photos, cache, o.detector, o.pick_center, model->tpl, cb.caching);

  TrainReport report;
  report.model_dir = o.out;
  Split train, val;
  std::vector<char> is_val(folders.size(), 0);
  for (int v : split.validation) is_val[v] = 1;
  std::vector<int> remap(folders.size(), -1);
  for (size_t i = 0; i < photo_id.size(); ++i) {
    if (!aligned.chips[i]) {
      report.skipped.push_back(photos[i].string() + ": " + aligned.reasons[i]);
      continue;
    }
    Split& s = is_val[photo_id[i]] ? val : train;
    int& id = remap[photo_id[i]];
    if (id < 0) id = s.identities++;
    s.chips.push_back(*aligned.chips[i]);
    s.labels.push_back(id);
  }
  for (size_t i = photo_id.size(); i < photos.size(); ++i) {
    eval.index.push_back(aligned.chips[i] ? static_cast<int>(eval.chips.size()) : -1);
    if (aligned.chips[i]) eval.chips.push_back(*aligned.chips[i]);
  }
  report.train_identities = train.identities;
  report.validation_identities = val.identities;
  report.train_photos = static_cast<int>(train.chips.size());
  report.validation_photos = static_cast<int>(val.chips.size());
  {
    std::string text;
    for (const auto& s : report.skipped) text += s + "\n";
    write_text(o.out / "skipped.txt", text);
  }

  PKSampler probe(train.labels, o.p, o.k, o.seed);  // throws a clear error when too few usable photos
  // Threshold calibration needs same- and different-person pairs of held-out identities; a tiny data set
  // without them calibrates on the training identities (and the manifest says so).
  PairSet vpairs = validation_pairs(val.labels, o.seed + 7);
  const auto positives = std::count(vpairs.same.begin(), vpairs.same.end(), true);
  const bool val_on_train = positives == 0 || positives == static_cast<long>(vpairs.pairs.size());
  if (val_on_train) vpairs = validation_pairs(train.labels, o.seed + 7);
  const Split& vset = val_on_train ? train : val;

  const int64_t steps_per_epoch =
      o.steps_per_epoch > 0 ? o.steps_per_epoch : std::max<int64_t>(1, report.train_photos / (o.p * o.k));
  const int64_t total_steps = steps_per_epoch * o.epochs;

  std::unique_ptr<torch::optim::Optimizer> opt;
  if (o.optimizer == "adam")
    opt = std::make_unique<torch::optim::AdamW>(model->parameters,
                                                torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  else
    opt = std::make_unique<torch::optim::SGD>(
        model->parameters, torch::optim::SGDOptions(o.lr).momentum(0.9).nesterov(true).weight_decay(o.weight_decay));

  // Resume: the last complete checkpoint (a crash between the two renames leaves checkpoint.old).
  const fs::path ckpt = o.out / "checkpoint", ckpt_old = o.out / "checkpoint.old", ckpt_tmp = o.out / "checkpoint.tmp";
  int start_epoch = 0;
  int64_t step = 0;
  double train_seconds = 0;
  // The best epoch so far on the validation identities (--keep best), and its weights.
  EpochMetrics best{-1};
  TensorMap best_state;
  if (o.resume) {
    const fs::path from = fs::exists(ckpt / "state.json") ? ckpt : ckpt_old;
    if (!fs::exists(from / "state.json"))
      throw Error(ErrorCode::kNotFound, "--resume: no checkpoint in " + o.out.string());
    std::ifstream in(from / "state.json");
    const json st = json::parse(in);
    if (st.at("format").get<int>() > kCheckpointFormat)
      throw Error(ErrorCode::kInvalidArgument, "checkpoint format is newer than this facekit");
    if (st.at("arch") != model->arch)
      throw Error(ErrorCode::kInvalidArgument, "checkpoint is of a " + st.at("arch").get<std::string>() + " model");
    model->load_state(detail::load_tensors(from / "model.fkt"));
    torch::load(*opt, (from / "optimizer.pt").string());
    start_epoch = st.at("epoch");
    step = st.at("step");
    train_seconds = st.at("train_seconds");
    for (const auto& m : st.at("metrics")) report.epochs.push_back(metrics_from(m));
    if (o.keep_best && st.contains("best") && fs::exists(from / "best.fkt")) {
      best = metrics_from(st.at("best"));
      best_state = detail::load_tensors(from / "best.fkt");
    }
    report.resumed_from_epoch = start_epoch;
  }

  // Validation accuracy and threshold, and the eval pairs' accuracies, of the model as it is now.
  auto evaluate = [&](EpochMetrics& m) {
    {
      const at::Tensor ve = embed_chips(*model, vset.chips, device);
      std::vector<ScoredPair> sp;
      double impostor_sum = 0;
      int impostors = 0;
      for (size_t i = 0; i < vpairs.pairs.size(); ++i) {
        sp.push_back({distance(ve, vpairs.pairs[i].first, vpairs.pairs[i].second), vpairs.same[i], true, int(i % 10)});
        if (!sp.back().same) impostor_sum += sp.back().distance, ++impostors;
      }
      if (impostors) m.impostor_distance = impostor_sum / impostors;
      const auto v = evaluate_verification(sp, 10);
      m.validation_accuracy = v.accuracy_mean;
      m.validation_threshold = v.best_threshold;
    }
    if (!eval.pairs.empty()) {
      const at::Tensor ee = eval.chips.empty() ? at::Tensor() : embed_chips(*model, eval.chips, device);
      std::vector<ScoredPair> sp;
      int folds = 0, right = 0;
      for (const auto& p : eval.pairs) {
        const int a = eval.index[eval.image_of[p.a]], b = eval.index[eval.image_of[p.b]];
        ScoredPair s{0, p.same, a >= 0 && b >= 0, p.fold};
        if (s.valid) s.distance = distance(ee, a, b);
        right += s.valid && (s.distance <= m.validation_threshold) == s.same;
        folds = std::max(folds, p.fold + 1);
        sp.push_back(s);
      }
      m.eval_accuracy = evaluate_verification(sp, folds).accuracy_mean;
      m.eval_accuracy_calibrated = double(right) / sp.size();
    }
  };
  // The model before any step (the pretrained one when fine-tuning): the "before" of every comparison.
  if (start_epoch == 0) {
    EpochMetrics b;
    evaluate(b);
    report.baseline = b;
    if (o.keep_best) best = b, best_state = clone_state(model->state());
    write_text(o.out / "baseline.json", metrics_json(b).dump() + "\n");
    if (cb.baseline) cb.baseline(b);
  }

  bool out_of_time = o.max_minutes > 0 && train_seconds >= o.max_minutes * 60;
  for (int epoch = start_epoch; epoch < o.epochs && !out_of_time; ++epoch) {
    // Every epoch's randomness derives from (seed, epoch): a resumed run draws what the first would have.
    PKSampler sampler(train.labels, o.p, o.k, o.seed * 1000003 + epoch);
    std::mt19937_64 rng(o.seed * 7919 + epoch);
    double loss_sum = 0, active_sum = 0;
    int64_t triplets = 0, images = 0, done = 0;
    const auto epoch_start = Clock::now();
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const auto t0 = Clock::now();
      const std::vector<int> idx = sampler.next();
      std::vector<cv::Mat> batch;
      std::vector<int> labels;
      for (int i : idx) {
        batch.push_back(detail::augment_chip(train.chips[i], o.augment, rng));
        labels.push_back(train.labels[i]);
      }
      const double lr = lr_at(o, step, total_steps);
      for (auto& g : opt->param_groups()) g.options().set_lr(lr);
      at::Tensor x = nn::images_to_batch(batch, model->mean, model->scale, device);
      at::Tensor e = model->forward(x, true);
      e = e / e.norm(2, {1}, true).clamp_min(1e-12);
      const auto tl = detail::triplet_loss(e, labels, o.mining, o.margin, rng);
      const double loss = tl.loss.item<double>();
      if (!std::isfinite(loss)) diverged("the loss is " + std::to_string(loss), epoch + 1, step + 1, lr);
      opt->zero_grad();
      tl.loss.backward();
      const double norm = clip_gradients(model->parameters, o.clip_norm);
      if (!std::isfinite(norm)) diverged("the gradient norm is " + std::to_string(norm), epoch + 1, step + 1, lr);
      opt->step();
      {
        at::NoGradGuard g;
        for (const auto& p : model->parameters)
          if (!at::isfinite(p).all().item<bool>()) diverged("a weight is no longer finite", epoch + 1, step + 1, lr);
      }
      ++step;
      ++done;
      loss_sum += loss;
      active_sum += tl.active_fraction();
      triplets += tl.triplets;
      images += static_cast<int64_t>(idx.size());
      train_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      if (cb.step) {
        TrainProgress pr;
        pr.epoch = epoch + 1;
        pr.epochs = o.epochs;
        pr.step = step;
        pr.steps = total_steps;
        pr.loss = loss_sum / done;
        pr.active = active_sum / done;
        const double per_step = std::chrono::duration<double>(Clock::now() - epoch_start).count() / done;
        pr.eta_seconds = per_step * double(total_steps - step);
        if (o.max_minutes > 0) pr.eta_seconds = std::min(pr.eta_seconds, o.max_minutes * 60 - train_seconds);
        cb.step(pr);
      }
      if (o.max_minutes > 0 && train_seconds >= o.max_minutes * 60) {
        out_of_time = true;
        break;
      }
    }
    const double epoch_train_s = std::max(1e-9, std::chrono::duration<double>(Clock::now() - epoch_start).count());

    EpochMetrics m;
    m.epoch = epoch + 1;
    m.step = step;
    m.loss = loss_sum / std::max<int64_t>(done, 1);
    m.active = active_sum / std::max<int64_t>(done, 1);
    m.train_seconds = train_seconds;
    m.triplets_per_second = triplets / epoch_train_s;
    m.images_per_second = images / epoch_train_s;
    evaluate(m);
    m.collapsed = m.impostor_distance >= 0 && m.impostor_distance < 0.1 && m.loss >= 0.95 * o.margin && m.active > 0.99;
    // Batch-norm statistics are not weights the optimizer sees: check everything before it is saved.
    {
      at::NoGradGuard g;
      for (const auto& [name, t] : model->state())
        if (!at::isfinite(t).all().item<bool>()) diverged(name + " is no longer finite", epoch + 1, step, opt_lr(*opt));
    }
    report.epochs.push_back(m);
    if (o.keep_best && (best.epoch < 0 || m.validation_accuracy > best.validation_accuracy))
      best = m, best_state = clone_state(model->state());

    // Checkpoint: written beside, then swapped in, so a kill at any moment leaves a complete one.
    fs::remove_all(ckpt_tmp);
    fs::create_directories(ckpt_tmp);
    detail::save_tensors(ckpt_tmp / "model.fkt", model->state());
    torch::save(*opt, (ckpt_tmp / "optimizer.pt").string());
    if (!best_state.empty()) detail::save_tensors(ckpt_tmp / "best.fkt", best_state);
    json all = json::array();
    std::string lines;
    for (const auto& e : report.epochs) all.push_back(metrics_json(e)), lines += metrics_json(e).dump() + "\n";
    write_text(ckpt_tmp / "state.json", json{{"format", kCheckpointFormat}, {"arch", model->arch},
                                             {"epoch", epoch + 1}, {"step", step}, {"train_seconds", train_seconds},
                                             {"options", options_json(o)}, {"metrics", all},
                                             {"best", best.epoch >= 0 ? metrics_json(best) : json()}}
                                            .dump(2));
    fs::remove_all(ckpt_old);
    if (fs::exists(ckpt)) fs::rename(ckpt, ckpt_old);
    fs::rename(ckpt_tmp, ckpt);
    fs::remove_all(ckpt_old);
    write_text(o.out / "metrics.jsonl", lines);
    detail::write_training_plot(o.out / "training.png", report.epochs);
    if (cb.epoch) cb.epoch(m);
  }
  if (report.epochs.empty()) throw Error(ErrorCode::kInternal, "no epoch was trained");

  // Export: weights + manifest; the exported epoch's threshold on the validation identities.
  const EpochMetrics& last = report.epochs.back();
  const bool use_best = o.keep_best && best.epoch >= 0 && !best_state.empty();
  const EpochMetrics& chosen = use_best ? best : last;
  if (use_best && best.epoch != last.epoch) model->load_state(best_state);
  report.exported_epoch = chosen.epoch;
  report.threshold = chosen.validation_threshold;
  detail::save_tensors(o.out / "weights.fkt", model->state());
  const std::string name = fs::absolute(o.out).lexically_normal().filename().string();
  ModelManifest m;
  m.name = name.empty() ? "trained" : name;
  m.kind = "embedder";
  m.arch = model->arch;
  m.version = std::to_string(kModelFormat);
  m.package = "facekit train";
  m.licence = "that of the training photos and of the base model";
  m.provenance = model->description + "; triplet loss, " + std::string(to_string(o.mining)) + " mining, " +
                 std::to_string(chosen.step) + " steps of " + std::to_string(o.p) + "x" + std::to_string(o.k) + " on " +
                 std::to_string(report.train_identities) + " identities of " + o.data.string() + " (epoch " +
                 std::to_string(chosen.epoch) + " of " + std::to_string(last.epoch) +
                 (use_best ? ", the best on validation)" : ", the last)");
  m.files = {{"weights", "weights.fkt", sha256_file(o.out / "weights.fkt")}};
  m.input_size = model->tpl.size;
  m.mean = model->mean;
  m.scale = model->scale;
  m.alignment_template = model->tpl.name;
  m.chip_size = model->tpl.size;
  m.chip_padding = model->arch == "facekit_small_cnn" ? o.chip_padding : 0.25f;
  m.embedding_dim = model->arch == "facekit_small_cnn" ? o.dim : 128;
  m.metric = "euclidean_l2norm";
  m.threshold = report.threshold;
  m.threshold_source =
      "accuracy-maximising threshold on " + std::to_string(vpairs.pairs.size()) + " pairs of the " +
      (val_on_train ? std::string("TRAINING identities (too few validation photos)")
                    : std::to_string(report.validation_identities) + " validation identities") +
      ", flip on; validation accuracy " + std::to_string(100 * chosen.validation_accuracy) + "% (epoch " +
      std::to_string(chosen.epoch) + ")";
  const json training = {
      {"training", {{"format", kModelFormat}, {"options", options_json(o)}, {"epochs", report.epochs.size()},
                    {"train_identities", report.train_identities}, {"train_photos", report.train_photos},
                    {"validation_identities", report.validation_identities},
                    {"validation_photos", report.validation_photos}, {"exported_epoch", chosen.epoch},
                    {"exported", metrics_json(chosen)}, {"last", metrics_json(last)}}}};
  save_manifest(o.out / "manifest.json", m, training.dump());
  return report;
}

}  // namespace facekit
