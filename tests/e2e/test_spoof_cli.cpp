// End-to-end tier for passive anti-spoofing: `facekit liveness` on real photos shipped by packages (valid JSON,
// states, every signal), bad input and its exit statuses, the liveness checker against its graph run by hand,
// and `facekit bench spoof` across the two spoof-dev sets (skipped when ../shared/data/spoof-dev is absent).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/spoof.hpp"
#include "graph/graph_model.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kFaces = "/usr/share/doc/libdlib19.1/examples/faces";
const fs::path kDemo = fs::path(FACEKIT_CLI).parent_path() / ".." / "models" / "face-api" / "demo";
const fs::path kSpoofDev = FACEKIT_SPOOF_DIR;

struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("facekit_spoof_e2e_" + std::to_string(::getpid()));
  Scratch() { fs::create_directories(dir); }
  ~Scratch() { fs::remove_all(dir); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

struct Outcome {
  int status = -1;
  std::string out, err;
};

// Runs the binary with stdout and stderr sent to files of the scratch folder.
Outcome run_facekit(const Scratch& s, const std::string& args) {
  const fs::path out = s.dir / "stdout", err = s.dir / "stderr";
  const int rc = std::system((std::string(FACEKIT_CLI) + " " + args + " >" + out.string() + " 2>" + err.string()).c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, slurp(out), slurp(err)};
}

void expect_valid_result(const json& f) {
  static const std::set<std::string> states = {"live", "spoof", "uncertain"};
  EXPECT_GE(f.at("score").get<float>(), 0.f);
  EXPECT_LE(f.at("score").get<float>(), 1.f);
  EXPECT_TRUE(states.count(f.at("state").get<std::string>())) << f.dump();
  const auto& t = f.at("thresholds");
  EXPECT_LE(t.at("spoof").get<float>(), t.at("decision").get<float>());
  EXPECT_LE(t.at("decision").get<float>(), t.at("live").get<float>());
  // The state follows from the score and the thresholds.
  const float s = f["score"];
  const std::string want = s >= t["live"].get<float>() ? "live" : s < t["spoof"].get<float>() ? "spoof" : "uncertain";
  EXPECT_EQ(f["state"], want);
}

}  // namespace

TEST(LivenessCli, JsonOnRealPhotos) {
  const fs::path a = kFaces / "Tom_Cruise_avp_2014_4.jpg", b = kDemo / "sample1.jpg";
  ASSERT_TRUE(fs::exists(a) && fs::exists(b)) << "run scripts/setup";
  Scratch s;
  const auto r = run_facekit(s, "liveness --json " + a.string() + " " + b.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["faces"].size(), 1u);  // one face in the Tom Cruise photo
  EXPECT_GE(j[1]["faces"].size(), 2u);  // several in the face-api demo photo
  for (const auto& img : j) {
    EXPECT_EQ(img["checker"], "spoof-combined");
    for (const auto& f : img["faces"]) {
      expect_valid_result(f);
      for (const auto& n : fk::spoof_signal_names()) {
        ASSERT_TRUE(f["signals"].contains(n)) << n;
        EXPECT_GE(f["signals"][n]["score"].get<float>(), 0.f);
        EXPECT_LE(f["signals"][n]["score"].get<float>(), 1.f);
      }
      // The crop lies on the detected face.
      EXPECT_NEAR(f["crop"]["x"].get<float>(), f["box"]["x"].get<float>(), 1.f);
    }
  }
}

TEST(LivenessCli, SingleSignalWholeImageAndText) {
  const fs::path a = kFaces / "Tom_Cruise_avp_2014_4.jpg";
  Scratch s;
  auto r = run_facekit(s, "liveness --json --whole-image --checker liveness " + a.string());
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  const auto img = fk::load_image(a);
  ASSERT_EQ(j[0]["faces"].size(), 1u);
  const auto& f = j[0]["faces"][0];
  expect_valid_result(f);
  EXPECT_EQ(f["box"]["width"].get<float>(), float(img.cols));
  EXPECT_EQ(f["signals"].size(), 1u);
  EXPECT_TRUE(f["signals"].contains("liveness"));

  r = run_facekit(s, "liveness " + a.string());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("1 face"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("live score"), std::string::npos) << r.out;
}

TEST(LivenessCli, BadInputHasStableExitStatuses) {
  Scratch s;
  const fs::path grey = s.dir / "grey.png", corrupt = s.dir / "corrupt.jpg";
  fk::save_image(grey, cv::Mat(240, 320, CV_8UC3, cv::Scalar(128, 128, 128)));
  std::ofstream(corrupt) << "not an image";
  auto r = run_facekit(s, "liveness " + grey.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNoFace)) << r.err;
  EXPECT_NE(r.err.find("no face"), std::string::npos) << r.err;
  r = run_facekit(s, "liveness " + corrupt.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kBadImage)) << r.err;
  r = run_facekit(s, "liveness " + (s.dir / "missing.jpg").string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNotFound)) << r.err;
  r = run_facekit(s, "liveness --checker no_such " + (kFaces / "Tom_Cruise_avp_2014_4.jpg").string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kNotFound)) << r.err;
  r = run_facekit(s, "bench spoof --live " + s.dir.string() + " --spoof " + s.dir.string() + " --fit-live " + s.dir.string());
  EXPECT_EQ(r.status, fk::exit_status(fk::ErrorCode::kInvalidArgument)) << r.err;
}

// Runs a human-models graph by hand on a face crop resized to `size` (0..1, in the given channel order) and
// returns its flattened output.
at::Tensor graph_by_hand(const char* model, const fk::Image& rgb, const cv::Rect& box, int size, bool bgr) {
  cv::Mat crop, ordered, f;
  cv::resize(rgb(box), crop, {size, size}, 0, 0, cv::INTER_LINEAR);
  if (bgr) cv::cvtColor(crop, ordered, cv::COLOR_RGB2BGR);
  else ordered = crop;
  ordered.convertTo(f, CV_32FC3, 1 / 255.0);
  const at::Tensor x = at::from_blob(f.data, {1, size, size, 3}, at::kFloat).clone();
  fk::graph::GraphModel g(fk::models_dir() / "human-models" / (std::string(model) + ".json"));
  return g.run(x).at(0).reshape({-1});
}

// The liveness checker feeds the network as the model was trained (PyImageSearch train_liveness.py: cv2.imread,
// so BGR; cv2.resize to 32x32 ignoring the aspect ratio; /255) and reads "real" at index 1 (LabelEncoder
// order: fake, real); antispoof gets RGB 0..1 at 128 and has one sigmoid output. Both checked against the
// graphs run by hand on a face crop.
TEST(SpoofCheckers, NetworksMatchTheirGraphsRunByHand) {
  const auto img = fk::load_image(kFaces / "Tom_Cruise_avp_2014_4.jpg");
  fk::Face face;
  face.box = {70, 143, 444, 542};
  const cv::Rect box(70, 143, 444, 542);

  const at::Tensor live = graph_by_hand("liveness", img, box, 32, true);
  ASSERT_EQ(live.size(0), 2);
  EXPECT_NEAR(live[0].item<float>() + live[1].item<float>(), 1.f, 1e-5);  // softmax
  EXPECT_NEAR(fk::create_spoof_checker("liveness")->check(img, face).score, live[1].item<float>(), 1e-5);

  const at::Tensor real = graph_by_hand("antispoof", img, box, 128, false);
  ASSERT_EQ(real.size(0), 1);
  EXPECT_NEAR(fk::create_spoof_checker("antispoof")->check(img, face).score, real[0].item<float>(), 1e-5);
}

// Calibrated on one set, measured on the other, both ways round. Only what must hold is asserted: the report
// is complete and consistent, and the combined score is better than chance on the held-out set.
TEST(BenchSpoof, CrossSetOnSpoofDev) {
  const fs::path a = kSpoofDev / "set2_apfol_head", b = kSpoofDev / "set4_trickyf0x";
  if (!fs::exists(a / "real") || !fs::exists(b / "real")) GTEST_SKIP() << "no spoof-dev data at " << kSpoofDev;
  Scratch s;
  for (const auto& [fit, test] : {std::pair{a, b}, std::pair{b, a}}) {
    const fs::path report = s.dir / "report.json", roc = s.dir / "roc.png";
    const auto r = run_facekit(s, "bench spoof --live " + (test / "real").string() + " --spoof " + (test / "fake").string() +
                                  " --fit-live " + (fit / "real").string() + " --fit-spoof " + (fit / "fake").string() +
                                  " --json " + report.string() + " --roc " + roc.string());
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(slurp(report));
    EXPECT_TRUE(j["fitted"].get<bool>());
    EXPECT_GT(j["bona_fide"].get<int>(), 0);
    EXPECT_GT(j["attacks"].get<int>(), 0);
    ASSERT_EQ(j["signals"].size(), fk::spoof_signal_names().size() + 1);
    for (const auto& sig : j["signals"]) {
      const auto& m = sig["at_threshold"];
      EXPECT_NEAR(m["acer"].get<double>(), (m["apcer"].get<double>() + m["bpcer"].get<double>()) / 2, 1e-9);
      EXPECT_LE(sig["bpcer_at_apcer_5"]["apcer"].get<double>(), 0.05);
      EXPECT_LE(sig["bpcer_at_apcer_1"]["apcer"].get<double>(), 0.01);
      EXPECT_GE(sig["bpcer_at_apcer_1"]["bpcer"].get<double>(), sig["bpcer_at_apcer_5"]["bpcer"].get<double>());
    }
    const auto& combined = j["signals"].back();
    EXPECT_EQ(combined["name"], "spoof-combined");
    EXPECT_GT(combined["auc"].get<double>(), 0.5) << fit << " -> " << test;
    EXPECT_LT(combined["at_threshold"]["acer"].get<double>(), 0.5) << fit << " -> " << test;
    const auto png = fk::load_image(roc);
    EXPECT_EQ(png.cols, 640);
  }
}
