// The whole path of a photo, stage by stage: decode, detect, landmarks, align, embed, gallery search. Each
// stage of each photo is run --reps times on one thread and its median kept; photos are grouped by size.
//
//   build/bench/facekit_profile_path [--precision fp32|bf16|auto] [--large-face-input 192] [--reps 5] [--lfw N]
//                                    [--gallery 10000]
//
// Photos: N LFW images (250x250, ../shared/data/lfw, when present), dlib's example photos (~500x375) and
// face-api's demo photos (1920 wide), all from the packages scripts/setup installs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "facekit/aligner.hpp"
#include "facekit/detector.hpp"
#include "facekit/embedder.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/landmarker.hpp"
#include "facekit/runtime.hpp"
#include "facekit/vector_index.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Median wall time of `f` over `reps` runs, in ms.
double time_ms(int reps, const std::function<void()>& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return median(t);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Group {
  std::string name;
  std::vector<fs::path> photos;
};

constexpr const char* kStages[] = {"decode", "detect", "landmarks", "align", "embed", "search"};

}  // namespace

int main(int argc, char** argv) {
  std::string precision = "auto";
  int reps = 5, lfw_n = 40, gallery_rows = 10'000;
  fk::DetectorOptions det;
  fs::path lfw = fs::path(FACEKIT_SOURCE_ROOT) / ".." / "shared" / "data" / "lfw";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--precision") precision = next();
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--lfw") lfw_n = std::stoi(next());
    else if (a == "--lfw-root") lfw = next();
    else if (a == "--gallery") gallery_rows = std::stoi(next());
    else if (a == "--large-face-input") det.large_face_input = std::stoi(next());
    else {
      std::fprintf(stderr, "usage: %s [--precision fp32|bf16|auto] [--large-face-input N] [--reps N] [--lfw N] [--lfw-root DIR] [--gallery ROWS]\n", argv[0]);
      return 2;
    }
  }
  fk::set_num_threads(1);
  fk::reuse_freed_buffers();  // as the CLI does

  std::vector<Group> groups;
  if (fs::exists(lfw) && lfw_n > 0) {
    Group g{"LFW 250x250", {}};
    std::vector<fs::path> all;
    for (const auto& d : fs::directory_iterator(lfw))
      if (d.is_directory())
        for (const auto& f : fs::directory_iterator(d.path()))
          if (f.path().extension() == ".jpg") all.push_back(f.path());
    std::sort(all.begin(), all.end());
    // Every k-th photo: many people, not the first names of the alphabet.
    const size_t step = std::max<size_t>(1, all.size() / lfw_n);
    for (size_t i = 0; i < all.size() && static_cast<int>(g.photos.size()) < lfw_n; i += step) g.photos.push_back(all[i]);
    groups.push_back(std::move(g));
  }
  auto dir_group = [&](const std::string& name, const fs::path& dir) {
    Group g{name, {}};
    if (fs::exists(dir))
      for (const auto& f : fs::directory_iterator(dir))
        if (f.path().extension() == ".jpg" && f.path().filename() != "dogs.jpg" && f.path().filename() != "bald_guys.jpg")
          g.photos.push_back(f.path());
    std::sort(g.photos.begin(), g.photos.end());
    if (!g.photos.empty()) groups.push_back(std::move(g));
  };
  dir_group("dlib examples ~500x375", "/usr/share/doc/libdlib19.1/examples/faces");
  dir_group("face-api demo 1920 wide", fs::path(FACEKIT_SOURCE_ROOT) / "models" / "face-api" / "demo");

  const auto detector = fk::create_detector(fk::defaults::kDetector, det);
  const auto landmarker = fk::create_landmarker();
  fk::EmbedderOptions eo;
  eo.precision = precision;
  const auto embedder = fk::create_embedder(fk::defaults::kEmbedder, eo);
  const auto& tpl = embedder->alignment();
  const bool fused = embedder->manifest().arch == "fusion";

  // A gallery of random unit vectors: exact search costs the same whatever the vectors are.
  const int dim = embedder->dim();
  fk::VectorIndex index(dim, {}, gallery_rows);
  {
    std::mt19937 rng(7);
    std::normal_distribution<float> n;
    std::vector<float> rows(static_cast<size_t>(gallery_rows) * dim);
    for (auto& v : rows) v = n(rng);
    index.add(rows.data(), gallery_rows);
  }

  std::printf("precision %s (resolved %s), BlazeFace second look at %d, %d reps per stage, one thread, gallery %d x %d (%s)\n",
              precision.c_str(), fk::resolve_precision(precision), det.large_face_input, reps, gallery_rows, dim,
              index.description().c_str());
  for (const auto& g : groups) {
    std::map<std::string, std::vector<double>> per_photo;
    int faces_total = 0;
    std::vector<double> one_pass_ms;
    for (const auto& p : g.photos) {
      const std::string bytes = slurp(p);
      fk::Image img;
      per_photo["decode"].push_back(time_ms(reps, [&] { img = fk::decode_image(bytes); }));
      std::vector<fk::Face> faces;
      per_photo["detect"].push_back(time_ms(reps, [&] { faces = detector->detect(img); }));
      // One network pass, without BlazeFace's second look for large faces (a diagnostic, not a stage).
      fk::DetectorOptions one_pass = detector->options();
      one_pass.large_face_fraction = 0;
      one_pass.zoom_out_retries.clear();
      one_pass_ms.push_back(time_ms(reps, [&] { detector->detect(img, one_pass); }));
      std::vector<fk::Box> boxes;
      for (const auto& f : faces) boxes.push_back(f.box);
      std::vector<fk::Landmarks68> lms;
      per_photo["landmarks"].push_back(boxes.empty() ? 0 : time_ms(reps, [&] { lms = landmarker->landmarks(img, boxes); }));
      std::vector<fk::Image> chips;
      std::vector<fk::Embedding> embs;
      if (fused) {  // a fusion aligns each member's chips itself: "embed" includes their alignment
        per_photo["align"].push_back(0);
        per_photo["embed"].push_back(lms.empty() ? 0 : time_ms(reps, [&] { embs = embedder->embed_faces(img, lms); }));
      } else {
        per_photo["align"].push_back(time_ms(reps, [&] {
          chips.clear();
          for (const auto& l : lms) chips.push_back(fk::align_face(img, l, tpl));
        }));
        per_photo["embed"].push_back(chips.empty() ? 0 : time_ms(reps, [&] { embs = embedder->embed(chips); }));
      }
      per_photo["search"].push_back(time_ms(reps, [&] {
        for (const auto& e : embs) index.search(e.data(), 5);
      }));
      faces_total += static_cast<int>(faces.size());
    }
    double total = 0;
    std::map<std::string, double> sum;
    for (const char* s : kStages) {
      for (double v : per_photo[s]) sum[s] += v;
      total += sum[s];
    }
    const double n = static_cast<double>(g.photos.size());
    std::printf("\n%s: %zu photos, %d faces (%.2f per photo); mean over photos of each photo's median\n", g.name.c_str(),
                g.photos.size(), faces_total, faces_total / n);
    std::printf("  %-10s %10s %10s %7s\n", "stage", "ms/photo", "ms/face", "share");
    for (const char* s : kStages)
      std::printf("  %-10s %10.2f %10.2f %6.1f%%\n", s, sum[s] / n, faces_total ? sum[s] / faces_total : 0.0,
                  100.0 * sum[s] / total);
    double one_pass = 0;
    for (double v : one_pass_ms) one_pass += v;
    std::printf("  (detect, one network pass only: %.2f ms/photo)\n", one_pass / n);
    std::printf("  %-10s %10.2f %10.2f  -> %.1f photos/s on one core\n", "total", total / n,
                faces_total ? total / faces_total : 0.0, 1000.0 * n / total);
  }
  return 0;
}
