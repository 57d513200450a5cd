// End-to-end tier for `facekit train`: a tiny training run on real photos (faces cut from the face-api demo
// photos, each person at three framings, one folder per person), the exported model through
// `verify --model` and `embed --model`, resume after kill -9, the NaN guard, --device cuda without a GPU,
// a fine-tune of the dlib ResNet, and (when LFW is present) `bench lfw --model`.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"
#include "cli_run.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

using fk_test::CliRun;
using fk_test::run_cli;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

// --keep best: the manifest names the epoch with the highest validation accuracy, the model before training
// (baseline.json, epoch 0) included and ties going to the earlier epoch, and ships that epoch's threshold.
void expect_best_epoch_exported(const fs::path& out) {
  std::ifstream bf(out / "baseline.json");
  auto best = nlohmann::json::parse(bf);
  std::ifstream metrics(out / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("validation_accuracy").get<double>() > best.at("validation_accuracy").get<double>()) best = j;
  }
  std::ifstream mf(out / "manifest.json");
  const auto m = nlohmann::json::parse(mf);
  EXPECT_EQ(m.at("training").at("exported_epoch"), best.at("epoch"));
  EXPECT_FLOAT_EQ(m.at("embedding").at("threshold").get<float>(), best.at("validation_threshold").get<float>());
}

const fs::path kDemo = fs::path(FACEKIT_TEST_DATA) / ".." / ".." / "models" / "face-api" / "demo";
const fs::path kLfw = FACEKIT_LFW_DIR;

// Identity folders made once for the suite: every face of three demo photos, cut out at two framings and a
// mirrored third; plus a photo with no face and one with four faces (both must be listed and skipped).
class TrainCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("fk_train_" + std::to_string(::getpid()));
    data_ = root_ / "people";
    fs::create_directories(data_);
    fk::FacePipeline pipe;
    int person = 0;
    for (const char* name : {"sample1.jpg", "sample2.jpg", "sample3.jpg"}) {
      const fk::Image img = fk::load_image(kDemo / name);
      for (const auto& f : pipe.detect(img)) {
        const fs::path dir = data_ / ("person" + std::to_string(person++));
        fs::create_directories(dir);
        int k = 0;
        for (float grow : {1.5f, 1.9f, 1.7f}) {
          const float side = std::max(f.box.width, f.box.height) * grow;
          const cv::Point2f c = f.box.center();
          cv::Rect r(int(c.x - side / 2), int(c.y - side / 2), int(side), int(side));
          r &= cv::Rect(0, 0, img.cols, img.rows);
          fk::Image crop = img(r).clone();
          if (k == 2) cv::flip(crop, crop, 1);
          fk::save_image(dir / ("photo" + std::to_string(k++) + ".jpg"), crop);
        }
      }
    }
    fs::create_directories(data_ / "zz_unusable");
    fs::copy_file(kDemo / "sample4.jpg", data_ / "zz_unusable" / "group.jpg");
    fk::save_image(data_ / "zz_unusable" / "blank.jpg", fk::Image(200, 200, CV_8UC3, cv::Scalar(120, 130, 140)));
    persons_ = person;
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // The options every tiny run shares: a small CNN at 32 px, a few steps, the suite's face cache.
  static std::string tiny(const fs::path& out, const std::string& extra = "") {
    return "train --data " + data_.string() + " --out " + out.string() + " --face-cache " +
           (root_ / "faces.cache").string() + " --chip-size 32 --width 4 --dim 16 --p 4 --k 2 --val-fraction 0.25 " +
           extra;
  }

  static fs::path root_, data_;
  static int persons_;
};
fs::path TrainCli::root_, TrainCli::data_;
int TrainCli::persons_ = 0;

TEST_F(TrainCli, TrainsExportsAndTheModelWorksThroughDashDashModel) {
  ASSERT_GE(persons_, 6) << "the demo photos should give at least six faces";
  const fs::path out = root_ / "model";
  const CliRun r = run_cli(tiny(out, "--epochs 2 --steps-per-epoch 3"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("epoch 2:"), std::string::npos) << r.out;
  // Skipped photos are listed with their reason.
  const std::string skipped = read_text(out / "skipped.txt");
  EXPECT_NE(skipped.find("blank.jpg: no face"), std::string::npos) << skipped;
  EXPECT_NE(skipped.find("group.jpg: 4 faces"), std::string::npos) << skipped;
  EXPECT_NE(r.err.find("skipped"), std::string::npos);
  // Metrics (one JSON line per epoch), plot, manifest with a threshold from validation identities.
  std::ifstream metrics(out / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("epoch"), lines + 1);
    EXPECT_GT(j.at("triplets_per_second").get<double>(), 0);
    EXPECT_GE(j.at("active").get<double>(), 0);
  }
  EXPECT_EQ(lines, 2);
  EXPECT_GT(fs::file_size(out / "training.png"), 1000u);
  std::ifstream mf(out / "manifest.json");
  const auto m = nlohmann::json::parse(mf);
  EXPECT_EQ(m.at("arch"), "facekit_small_cnn");
  EXPECT_GT(m.at("embedding").at("threshold").get<float>(), 0);
  EXPECT_NE(m.at("embedding").at("threshold_source").get<std::string>().find("validation identities"), std::string::npos);
  expect_best_epoch_exported(out);

  // The model directory is an embedder for every command.
  const std::string a = (data_ / "person0" / "photo0.jpg").string(), b = (data_ / "person0" / "photo1.jpg").string();
  const CliRun v = run_cli("--model " + out.string() + " verify " + a + " " + b + " --json");
  ASSERT_EQ(v.status, 0) << v.err;
  const auto vj = nlohmann::json::parse(v.out);
  EXPECT_EQ(vj.at("model"), "model");
  EXPECT_FLOAT_EQ(vj.at("threshold").get<float>(), m.at("embedding").at("threshold").get<float>());
  EXPECT_GE(vj.at("distance").get<float>(), 0);
  const CliRun e = run_cli("--model " + out.string() + " embed " + a + " --json");
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_EQ(nlohmann::json::parse(e.out)[0]["faces"][0]["embedding"].size(), 16u);

  // A damaged weights file is refused with the model-corrupt status, not run.
  const fs::path broken = root_ / "broken";
  fs::copy(out, broken, fs::copy_options::recursive);
  std::ofstream(broken / "weights.fkt", std::ios::app) << "x";
  const CliRun c = run_cli("--model " + broken.string() + " verify " + a + " " + b);
  EXPECT_EQ(c.status, fk::exit_status(fk::ErrorCode::kModelCorrupt)) << c.err;

  if (!fs::exists(kLfw / "pairsDevTest.txt")) GTEST_SKIP() << "LFW absent: bench lfw --model not checked";
  const CliRun l = run_cli("--model " + out.string() + " bench lfw --root " + kLfw.string() + " --pairs " +
                           (kLfw / "pairsDevTest.txt").string() + " --limit 20");
  ASSERT_EQ(l.status, 0) << l.err;
  EXPECT_NE(l.out.find("model model"), std::string::npos) << l.out;
}

TEST_F(TrainCli, ResumesFromTheLastCheckpointAfterKillNine) {
  const fs::path out = root_ / "resume";
  const std::string cmd = tiny(out, "--epochs 40 --steps-per-epoch 4 --seed 3");
  // Start, wait for the first checkpoint, then kill -9.
  std::vector<std::string> args;
  {
    std::istringstream ss(cmd);
    for (std::string t; ss >> t;) args.push_back(t);
  }
  const pid_t pid = fk_test::spawn_cli(args);
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  int status = 0;
  bool exited = false;
  while (!fs::exists(out / "checkpoint" / "state.json") && std::chrono::steady_clock::now() < deadline)
    if (::waitpid(pid, &status, WNOHANG) != 0) {
      exited = true;
      break;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  ASSERT_FALSE(exited) << "training ended before its first checkpoint";
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "training finished before the kill: make it longer";
  EXPECT_FALSE(fs::exists(out / "manifest.json"));

  std::ifstream sf(out / "checkpoint" / "state.json");
  const auto state = nlohmann::json::parse(sf);
  const int epoch = state.at("epoch");
  ASSERT_GE(epoch, 1);
  ASSERT_LT(epoch, 40);
  EXPECT_EQ(state.at("step"), epoch * 4);

  const CliRun r = run_cli(cmd + " --resume");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("resumed from the checkpoint of epoch " + std::to_string(epoch)), std::string::npos) << r.out;
  // The run went on from there: no epoch repeated, none missing, the steps continue, the earlier epochs'
  // metrics are those of the checkpoint.
  std::ifstream metrics(out / "metrics.jsonl");
  int n = 0;
  for (std::string line; std::getline(metrics, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("epoch"), n + 1);
    EXPECT_EQ(j.at("step"), (n + 1) * 4);
    if (n < epoch) EXPECT_EQ(j.at("loss"), state.at("metrics")[n].at("loss"));
  }
  EXPECT_EQ(n, 40);
  EXPECT_TRUE(fs::exists(out / "manifest.json"));
  expect_best_epoch_exported(out);  // the best of the epochs before the kill is remembered
  EXPECT_EQ(r.out.find("epoch 1:"), std::string::npos) << "epoch 1 was trained again";
}

TEST_F(TrainCli, DivergenceStopsWithAClearErrorAndWritesNoWeights) {
  const fs::path out = root_ / "nan";
  const CliRun r = run_cli(tiny(out, "--epochs 2 --steps-per-epoch 5 --lr 1e30 --clip 0"));
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
  EXPECT_NE(r.err.find("training diverged"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "weights.fkt"));
  EXPECT_FALSE(fs::exists(out / "manifest.json"));
  EXPECT_FALSE(fs::exists(out / "checkpoint"));
}

TEST_F(TrainCli, BadOptionsAndMissingDataAreClearErrors) {
  const CliRun cuda = run_cli("--device cuda " + tiny(root_ / "cuda", "--epochs 1"));
  EXPECT_EQ(cuda.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << cuda.err;
  EXPECT_NE(cuda.err.find("cuda"), std::string::npos) << cuda.err;
  const CliRun missing = run_cli("train --data " + (root_ / "nope").string() + " --out " + (root_ / "x").string());
  EXPECT_EQ(missing.status, fk::exit_status(fk::ErrorCode::kNotFound)) << missing.err;
  const CliRun mining = run_cli(tiny(root_ / "m", "--mining hardest"));
  EXPECT_EQ(mining.status, fk::exit_status(fk::ErrorCode::kInvalidArgument));
  EXPECT_NE(mining.err.find("semi-hard"), std::string::npos);
  const CliRun graph = run_cli(tiny(root_ / "g", "--base mobileface"));
  EXPECT_EQ(graph.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << graph.err;
}

TEST_F(TrainCli, FineTunesTheDlibResNetLastBlockAndHead) {
  const fs::path out = root_ / "tuned";
  const CliRun r = run_cli("train --data " + data_.string() + " --out " + out.string() + " --face-cache " +
                           (root_ / "faces.cache").string() +
                           " --base dlib_resnet --train-blocks 1 --p 3 --k 2 --epochs 1 --steps-per-epoch 2 --lr 1e-5"
                           " --val-fraction 0.25 --keep last");
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream mf(out / "manifest.json");
  const auto m = nlohmann::json::parse(mf);
  EXPECT_EQ(m.at("arch"), "dlib_resnet29_tuned");
  EXPECT_EQ(m.at("alignment").at("size"), 150);
  EXPECT_EQ(m.at("training").at("exported_epoch"), 1);  // --keep last: the tuned weights, even if no better
  const std::string a = (data_ / "person1" / "photo0.jpg").string(), b = (data_ / "person1" / "photo2.jpg").string();
  const CliRun tuned = run_cli("--model " + out.string() + " verify " + a + " " + b + " --json");
  const CliRun base = run_cli("verify " + a + " " + b + " --json");
  ASSERT_EQ(tuned.status, 0) << tuned.err;
  ASSERT_EQ(base.status, 0);
  // Two small steps from the pretrained weights (projection starting at the identity): the distance moves
  // a little, not a lot.
  const float dt = nlohmann::json::parse(tuned.out).at("distance"), db = nlohmann::json::parse(base.out).at("distance");
  EXPECT_NEAR(dt, db, 0.1f);
}

}  // namespace

// Batch-hard mining from scratch collapses the embedding onto one point (docs/training.md); the trainer must say
// so, in its metrics and on stderr, and must not say it of a semi-hard run that learns.
TEST_F(TrainCli, ReportsACollapsedEmbedding) {
  if (!fs::exists(kLfw / "peopleDevTrain.txt")) GTEST_SKIP() << "LFW absent";
  // 120 identities with 4+ photos from peopleDevTrain.txt.
  std::ifstream in(kLfw / "peopleDevTrain.txt");
  std::string line, name;
  int count = 0, kept = 0;
  std::getline(in, line);
  std::string people;
  while (kept < 120 && in >> name >> count)
    if (count >= 4) people += name + "\t" + std::to_string(count) + "\n", ++kept;
  const fs::path list = root_ / "people_collapse.txt";
  std::ofstream(list) << kept << "\n" << people;
  auto run_mining = [&](const std::string& mining) {
    const fs::path out = root_ / ("collapse_" + mining);
    const CliRun r = run_cli("--threads 1 train --data " + kLfw.string() + " --people " + list.string() +
                             " --pick-center --face-cache " + (root_ / "lfw.faces").string() + " --out " +
                             out.string() + " --mining " + mining + " --epochs 2 --steps-per-epoch 40");
    EXPECT_EQ(r.status, 0) << r.err;
    return std::make_pair(r.err, read_text(out / "metrics.jsonl"));
  };
  const auto [hard_err, hard_metrics] = run_mining("batch-hard");
  EXPECT_NE(hard_err.find("embedding has collapsed"), std::string::npos) << hard_err;
  EXPECT_NE(hard_metrics.find("\"collapsed\":true"), std::string::npos) << hard_metrics;
  const auto [semi_err, semi_metrics] = run_mining("semi-hard");
  EXPECT_EQ(semi_err.find("embedding has collapsed"), std::string::npos) << semi_err;
  EXPECT_EQ(semi_metrics.find("\"collapsed\":true"), std::string::npos) << semi_metrics;
}
