// Inputs for bench/gpu_bench.cpp, made on the CPU with the whole library: the aligned chips of the two photos
// of LFW pairs (chosen evenly across pairs.txt's ten folds, matched and mismatched alike), the library's own
// fp32 embeddings of them (the reference a GPU run is compared against) and a meta.json with the pairs.
//
//   build/bench/facekit_gpu_prepare --root LFW/images --pairs LFW/pairs.txt --pairs-n 256 --out DIR
//
// Writes DIR/chips.u8 (magic "FKCHIPS1", int32 n, h, w, then n*h*w*3 RGB bytes), DIR/ref.f32 (n x dim floats,
// L2-normalised) and DIR/meta.json. Faces are picked and aligned as `bench lfw` does (default detector and
// landmarks, FacePick::kMain, the embedder's alignment); the embedder runs with flip off, one view per chip.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"

namespace fs = std::filesystem;
namespace fk = facekit;

int main(int argc, char** argv) {
  std::map<std::string, std::string> arg;
  for (int i = 1; i + 1 < argc; i += 2) arg[argv[i]] = argv[i + 1];
  if (!arg.count("--root") || !arg.count("--pairs") || !arg.count("--out")) {
    std::fprintf(stderr, "usage: %s --root LFW/images --pairs pairs.txt --out DIR [--pairs-n 256]\n", argv[0]);
    return 2;
  }
  try {
    const fs::path root = arg["--root"], out = arg["--out"];
    const size_t want = arg.count("--pairs-n") ? std::stoul(arg["--pairs-n"]) : 256;
    const auto all = fk::read_lfw_pairs(arg["--pairs"]);
    std::vector<fk::LfwPair> same, diff;
    for (const auto& p : all) (p.same ? same : diff).push_back(p);
    auto spread = [](const std::vector<fk::LfwPair>& v, size_t k) {
      std::vector<fk::LfwPair> r;
      for (size_t i = 0; i < k && !v.empty(); ++i) r.push_back(v[i * v.size() / k]);
      return r;
    };
    std::vector<fk::LfwPair> pairs = spread(same, want / 2);
    for (auto& p : spread(diff, want - want / 2)) pairs.push_back(p);

    fk::PipelineOptions po;
    po.embedder = "dlib_resnet";  // the network the GPU bench times, whatever the default embedder is
    po.embedding.flip = false;
    po.embedding.precision = "fp32";
    fk::FacePipeline pipe(po);
    const auto& tpl = pipe.embedder().alignment();
    std::vector<fk::Image> chips;
    nlohmann::json jpairs = nlohmann::json::array();
    int skipped = 0;
    for (const auto& p : pairs) {
      fk::Image ca, cb;
      try {
        const auto ia = fk::load_image(root / p.a), ib = fk::load_image(root / p.b);
        const auto fa = pipe.detect_one(ia, fk::FacePick::kMain), fb = pipe.detect_one(ib, fk::FacePick::kMain);
        ca = fk::align_face(ia, *fa.landmarks, tpl);
        cb = fk::align_face(ib, *fb.landmarks, tpl);
      } catch (const fk::Error& e) {
        std::fprintf(stderr, "skipping %s / %s: %s\n", p.a.c_str(), p.b.c_str(), e.what());
        ++skipped;
        continue;
      }
      const int i = static_cast<int>(chips.size());
      chips.push_back(ca);
      chips.push_back(cb);
      jpairs.push_back({i, i + 1, p.same, p.a, p.b});
    }
    const auto ref = pipe.embedder().embed(chips);

    fs::create_directories(out);
    {
      std::ofstream f(out / "chips.u8", std::ios::binary);
      const int32_t hdr[3] = {static_cast<int32_t>(chips.size()), tpl.size, tpl.size};
      f.write("FKCHIPS1", 8);
      f.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
      for (const auto& c : chips) {
        const fk::Image cc = c.isContinuous() ? c : c.clone();
        f.write(reinterpret_cast<const char*>(cc.data), static_cast<std::streamsize>(cc.total() * cc.elemSize()));
      }
      if (!f) throw fk::Error(fk::ErrorCode::kInternal, "cannot write chips.u8");
    }
    {
      std::ofstream f(out / "ref.f32", std::ios::binary);
      for (const auto& e : ref) f.write(reinterpret_cast<const char*>(e.data()), static_cast<std::streamsize>(e.size() * 4));
      if (!f) throw fk::Error(fk::ErrorCode::kInternal, "cannot write ref.f32");
    }
    const auto& m = pipe.embedder().manifest();
    nlohmann::json meta = {{"embedder", m.name},
                           {"size", tpl.size},
                           {"dim", m.embedding_dim},
                           {"mean", m.mean},
                           {"scale", m.scale},
                           {"threshold", m.threshold},
                           {"reference", "facekit CPU fp32, flip off"},
                           {"pairs", jpairs}};
    std::ofstream(out / "meta.json") << meta.dump(1) << "\n";
    std::printf("%zu chips of %zu pairs (%d skipped) in %s\n", chips.size(), jpairs.size(), skipped, out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
