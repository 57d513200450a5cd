// facekit train: triplet-loss training and fine-tuning (facekit/train.hpp).
#include <cstdio>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "facekit/train.hpp"
#include "progress.hpp"

namespace facekit::cli {
namespace {

std::string hms(double s) {
  const int t = static_cast<int>(s + 0.5);
  return t >= 3600 ? cv::format("%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : cv::format("%d:%02d", t / 60, t % 60);
}

int cmd_train(const Common& c, TrainOptions o, const std::string& mining, const std::string& keep, bool no_augment,
              int log_every) {
  o.device = c.device;
  o.mining = parse_mining(mining);
  if (keep != "best" && keep != "last") throw Error(ErrorCode::kInvalidArgument, "--keep must be best or last");
  o.keep_best = keep == "best";
  o.detector = c.detector;
  if (no_augment) o.augment.enabled = false;
  std::unique_ptr<ProgressBar> bar;
  TrainCallbacks cb;
  cb.caching = [&](int done, int total) {
    if (!bar) bar = std::make_unique<ProgressBar>("faces", total);
    bar->update(done);
    if (done == total) bar->finish();
  };
  cb.step = [&](const TrainProgress& p) {
    if (p.step % log_every == 0 || p.step == p.steps)
      std::fprintf(stderr, "epoch %d/%d step %lld/%lld  loss %.4f  active %.1f%%  ETA %s\n", p.epoch, p.epochs,
                   static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, 100 * p.active,
                   hms(p.eta_seconds).c_str());
  };
  cb.baseline = [&](const EpochMetrics& m) {
    std::printf("before training: validation %.2f%% (threshold %.3f)", 100 * m.validation_accuracy,
                m.validation_threshold);
    if (m.eval_accuracy >= 0)
      std::printf(", eval %.2f%% (%.2f%% at the validation threshold)", 100 * m.eval_accuracy,
                  100 * m.eval_accuracy_calibrated);
    std::printf("\n");
    std::fflush(stdout);
  };
  cb.epoch = [&](const EpochMetrics& m) {
    std::printf("epoch %d: loss %.4f, active %.1f%%, validation %.2f%% (threshold %.3f)", m.epoch, m.loss,
                100 * m.active, 100 * m.validation_accuracy, m.validation_threshold);
    if (m.eval_accuracy >= 0)
      std::printf(", eval %.2f%% (%.2f%% at the validation threshold)", 100 * m.eval_accuracy,
                  100 * m.eval_accuracy_calibrated);
    std::printf(", %.1f triplets/s, %.1f photos/s, %s trained\n", m.triplets_per_second, m.images_per_second,
                hms(m.train_seconds).c_str());
    std::fflush(stdout);
    if (m.collapsed)
      std::fprintf(stderr,
                   "warning: the embedding has collapsed (different people %.3f apart on average, every triplet at "
                   "the margin): lower --lr or use --mining semi-hard\n",
                   m.impostor_distance);
  };
  const TrainReport r = train_embedder(o, cb);
  if (!r.skipped.empty()) {
    std::fprintf(stderr, "skipped %zu photo%s (listed in %s):\n", r.skipped.size(), r.skipped.size() == 1 ? "" : "s",
                 (o.out / "skipped.txt").c_str());
    for (size_t i = 0; i < r.skipped.size() && i < 20; ++i) std::fprintf(stderr, "  %s\n", r.skipped[i].c_str());
    if (r.skipped.size() > 20) std::fprintf(stderr, "  ...\n");
  }
  if (r.resumed_from_epoch > 0) std::printf("resumed from the checkpoint of epoch %d\n", r.resumed_from_epoch);
  std::printf("trained on %d photos of %d identities, validated on %d photos of %d identities\n", r.train_photos,
              r.train_identities, r.validation_photos, r.validation_identities);
  const EpochMetrics& last = r.epochs.back();
  if (r.exported_epoch == 0)
    std::printf("no epoch beat the model before training on the validation identities: exporting that model\n");
  else if (r.exported_epoch != last.epoch)
    std::printf("exporting epoch %d, the best on the validation identities (--keep last exports epoch %d)\n",
                r.exported_epoch, last.epoch);
  std::printf("model written to %s (threshold %.4f); use it with --model %s\n", o.out.c_str(), r.threshold,
              o.out.c_str());
  return 0;
}

}  // namespace

void add_train_commands(CLI::App& app, Common& c, Commands& out) {
  struct State {
    TrainOptions o;
    std::string mining = "semi-hard";
    std::string keep = "best";
    bool no_augment = false;
    int log_every = 20;
  };
  auto st = std::make_shared<State>();
  TrainOptions& o = st->o;
  auto* t = app.add_subcommand("train", "train an embedder with the triplet loss on folders of photos (one per person)");
  t->add_option("--data", o.data, "folder with one sub-folder of photos per identity")->required();
  t->add_option("--out", o.out, "model directory to write (weights, manifest, checkpoints, metrics)")->required();
  t->add_option("--people", o.people, "only the identities listed in this file (LFW peopleDev*.txt format)");
  t->add_option("--face-cache", o.face_cache, "detections cache (default OUT/faces.cache)");
  t->add_flag("--pick-center", o.pick_center, "photos with several faces: use the face nearest the centre (default: skip)");
  t->add_option("--base", o.base, "small_cnn (from scratch) or a registered embedder to fine-tune (dlib_resnet)")
      ->capture_default_str();
  t->add_option("--train-blocks", o.train_blocks,
                "fine-tuning: train only the last N residual blocks plus a new projection head (0: all layers)")
      ->capture_default_str();
  t->add_option("--chip-size", o.chip_size, "small CNN input side (aligned chip)")->capture_default_str();
  t->add_option("--width", o.width, "small CNN first-stage channels")->capture_default_str()->check(CLI::Range(1, 512));
  t->add_option("--dim", o.dim, "small CNN embedding size")->capture_default_str()->check(CLI::Range(1, 4096));
  t->add_option("--mining", st->mining, "random, semi-hard, batch-hard or batch-all")->capture_default_str();
  t->add_option("--margin", o.margin, "triplet margin alpha (squared distances of unit vectors)")->capture_default_str();
  t->add_option("--p", o.p, "identities per batch")->capture_default_str();
  t->add_option("--k", o.k, "photos per identity in a batch")->capture_default_str();
  t->add_option("--epochs", o.epochs, "epochs")->capture_default_str();
  t->add_option("--steps-per-epoch", o.steps_per_epoch, "steps per epoch (0: photos / (P*K))")->capture_default_str();
  t->add_option("--max-minutes", o.max_minutes, "stop after this much training time (0: none)")->capture_default_str();
  t->add_option("--optimizer", o.optimizer, "adam (AdamW) or sgd (Nesterov momentum 0.9)")->capture_default_str();
  t->add_option("--lr", o.lr, "learning rate")->capture_default_str();
  t->add_option("--schedule", o.schedule, "cosine, step or constant")->capture_default_str();
  t->add_option("--warmup", o.warmup_steps, "linear warm-up steps")->capture_default_str();
  t->add_option("--weight-decay", o.weight_decay, "weight decay")->capture_default_str();
  t->add_option("--clip", o.clip_norm, "gradient-norm clipping (0: off)")->capture_default_str();
  t->add_option("--seed", o.seed, "seed (split, init, batches, augmentation)")->capture_default_str();
  t->add_option("--val-fraction", o.validation_fraction, "identities held out for validation and the threshold")
      ->capture_default_str();
  t->add_flag("--no-augment", st->no_augment, "no augmentation");
  t->add_option("--aug-crop", o.augment.crop_jitter, "crop jitter (fraction of the chip)")->capture_default_str();
  t->add_option("--aug-rotate", o.augment.rotate_deg, "rotation jitter, degrees")->capture_default_str();
  t->add_option("--aug-colour", o.augment.colour, "brightness/contrast/saturation jitter")->capture_default_str();
  t->add_option("--aug-blur", o.augment.blur, "probability of a blur")->capture_default_str();
  t->add_flag("--resume", o.resume, "continue from OUT/checkpoint");
  t->add_option("--keep", st->keep,
                "best: export the epoch best on the validation identities (the model before training included); "
                "last: the last epoch")
      ->capture_default_str();
  t->add_option("--eval-root", o.eval_root, "LFW folder, to score --eval-pairs each epoch (reporting only)");
  t->add_option("--eval-pairs", o.eval_pairs, "LFW pairs file scored each epoch, e.g. pairsDevTest.txt");
  t->add_option("--log-every", st->log_every, "progress line every N steps")->capture_default_str()->check(CLI::Range(1, 1000000));
  out.emplace_back(t, [&c, st] { return cmd_train(c, st->o, st->mining, st->keep, st->no_augment, st->log_every); });
}

}  // namespace facekit::cli
