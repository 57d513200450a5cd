// The networks of the recognition path on one device, at several batch sizes and arithmetics (issue 18, item 4):
// the dlib ResNet embedder (fp32, TF32, fp16, bf16), the 68-point landmark net and the graph-runtime models
// (BlazeFace, FaceMesh; fp32 and TF32), and on a GPU the same passes replayed as CUDA graphs and fed from pinned
// memory. Built from the library's own network code and nothing else (ATen and
// nlohmann-json), so that it also builds against a CUDA libtorch on a machine without OpenCV (bench/gpu/build.sh);
// CMake builds it here for the CPU.
//
//   facekit_gpu_bench --data DIR --models MODELS --manifests share/models [--device cuda] [--json FILE]
//                     [--precisions fp32,tf32,fp16,bf16] [--batches 1,16,128,512] [--graphs blazeface-back,facemesh]
//
// DIR comes from facekit_gpu_prepare (chips of LFW pairs and the library's CPU fp32 embeddings of them). Accuracy:
// every chip is embedded at each arithmetic and compared with that reference (cosine) and the pairs are decided at
// the embedder's threshold. Speed: medians of 5 timed rounds after warm-up; each call ends by copying its result
// to the host, so GPU timings include the synchronisation a caller pays.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "align/landmark68_net.hpp"
#include "embed/dlib_resnet.hpp"
#ifndef FACEKIT_GPU_BENCH_NO_GRAPH
#include "graph/graph_model.hpp"
#endif
#include "model/weights.hpp"

#ifdef FACEKIT_GPU_BENCH_CUDA
namespace facekit::bench {
std::function<at::Tensor()> capture_cuda_graph(const std::function<at::Tensor()>& fn);  // gpu_cuda_graph.cpp
}
#endif

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace fd = facekit::detail;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> r;
  std::stringstream in(s);
  for (std::string t; std::getline(in, t, ',');)
    if (!t.empty()) r.push_back(t);
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median milliseconds per call: 3 warm-up calls (cuDNN autotuning, oneDNN primitives), then 5 rounds of at least
// `round_s` seconds each.
double time_ms(const std::function<void()>& fn, double round_s = 0.15) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> per_call;
  for (int r = 0; r < 5; ++r) {
    int calls = 0;
    const auto t0 = clock::now();
    double s = 0;
    do {
      fn();
      ++calls;
      s = std::chrono::duration<double>(clock::now() - t0).count();
    } while (s < round_s);
    per_call.push_back(1000 * s / calls);
  }
  return median(per_call);
}

at::ScalarType dtype_of(const std::string& p) {
  if (p == "fp16") return at::kHalf;
  if (p == "bf16") return at::kBFloat16;
  return at::kFloat;  // fp32, tf32
}

// "tf32" lets cuDNN and cuBLAS use TF32 tensor cores for float32 (PyTorch's default for convolutions);
// "fp32" asks for IEEE float32 throughout.
void set_tf32(bool on) {
  at::globalContext().setAllowTF32CuDNN(on);
  at::globalContext().setAllowTF32CuBLAS(on);
}

struct Chips {
  int n = 0, h = 0, w = 0;
  at::Tensor u8;  // [n, h, w, 3] on the host
};

Chips read_chips(const fs::path& file) {
  std::ifstream f(file, std::ios::binary);
  char magic[8];
  int32_t hdr[3];
  if (!f.read(magic, 8) || std::string(magic, 8) != "FKCHIPS1" || !f.read(reinterpret_cast<char*>(hdr), sizeof hdr))
    throw std::runtime_error(file.string() + " is not a chips file (make it with facekit_gpu_prepare)");
  Chips c{hdr[0], hdr[1], hdr[2], at::empty({hdr[0], hdr[1], hdr[2], 3}, at::kByte)};
  if (!f.read(reinterpret_cast<char*>(c.u8.data_ptr()), static_cast<std::streamsize>(c.u8.numel())))
    throw std::runtime_error(file.string() + " is truncated");
  return c;
}

// uint8 NHWC (any device) -> normalised float NCHW with channels-last strides, on the tensor's device.
at::Tensor normalise(const at::Tensor& u8, const at::Tensor& mean, double scale) {
  return ((u8.to(at::kFloat) - mean) * scale).permute({0, 3, 1, 2});
}

// Rows i..i+b of `x`, wrapping around (batches larger than the data repeat it).
at::Tensor take_batch(const at::Tensor& x, int64_t b) {
  if (b <= x.size(0)) return x.slice(0, 0, b).contiguous(at::MemoryFormat::ChannelsLast);
  const auto idx = at::arange(b, at::TensorOptions().dtype(at::kLong).device(x.device())).remainder(x.size(0));
  return x.index_select(0, idx).contiguous(at::MemoryFormat::ChannelsLast);
}

json read_json(const fs::path& p) {
  std::ifstream f(p);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  return json::parse(f);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> arg{{"--device", "cpu"},
                                         {"--precisions", "fp32"},
                                         {"--batches", "1,16"},
                                         {"--graphs", "blazeface-back,facemesh"},
                                         {"--threads", "1"}};
  for (int i = 1; i + 1 < argc; i += 2) arg[argv[i]] = argv[i + 1];
  if (!arg.count("--data") || !arg.count("--models") || !arg.count("--manifests")) {
    std::fprintf(stderr, "usage: %s --data DIR --models MODELS --manifests share/models [--device cuda] "
                         "[--precisions fp32,tf32,fp16,bf16,int8] [--batches 1,16,512] [--graphs a,b] [--json FILE]\n"
                         "       [--int8-ranges FILE (default share/int8/dlib_resnet.json)]\n"
                         "       [--calibrate-int8 OUT --note TEXT: write the int8 activation ranges measured on --data's chips]\n",
                 argv[0]);
    return 2;
  }
  try {
    at::set_num_threads(std::stoi(arg["--threads"]));
    const at::Device device(arg["--device"]);
    const bool cuda = device.is_cuda();
    if (cuda) at::globalContext().setBenchmarkCuDNN(true);
    c10::InferenceMode guard;
    const fs::path data = arg["--data"], models = arg["--models"], manifests = arg["--manifests"];
    const json meta = read_json(data / "meta.json");
    const Chips chips = read_chips(data / "chips.u8");
    const int dim = meta.at("dim");
    at::Tensor ref = at::empty({chips.n, dim}, at::kFloat);
    {
      std::ifstream f(data / "ref.f32", std::ios::binary);
      if (!f.read(reinterpret_cast<char*>(ref.data_ptr()), static_cast<std::streamsize>(ref.numel() * 4)))
        throw std::runtime_error("ref.f32 is missing or short");
    }
    const auto mean_v = meta.at("mean").get<std::vector<float>>();
    const at::Tensor mean_host = at::tensor(mean_v);
    const at::Tensor mean_dev = mean_host.to(device);
    const double scale = meta.at("scale");
    const double threshold = meta.at("threshold");
    const auto pairs = meta.at("pairs");
    const auto batches = split(arg["--batches"]);
    json out = {{"device", arg["--device"]}, {"chips", chips.n}, {"pairs", pairs.size()},
                {"reference", meta.value("reference", "")}, {"threads", at::get_num_threads()},
                {"embedder", json::array()}, {"landmarks", json::array()}, {"graphs", json::array()}};
    std::printf("device %s, %d chips (%zu LFW pairs), reference: %s\n", arg["--device"].c_str(), chips.n,
                pairs.size(), meta.value("reference", "").c_str());

    const auto weights = fd::load_faceapi_weights(models / "face-api/face_recognition_model-weights_manifest.json");
    const at::Tensor all_x = normalise(chips.u8.to(device), mean_dev, scale).contiguous(at::MemoryFormat::ChannelsLast);
    if (arg.count("--calibrate-int8")) {
      // The fp32 network's min and max of every activation the int8 network quantises, over all chips.
      const fd::DlibResNet net(weights, at::kCPU);
      std::vector<std::pair<float, float>> r;
      for (int64_t s = 0; s < chips.n; s += 64) {
        size_t k = 0;
        const fd::DlibResNet::Observer see = [&](const at::Tensor& t) {
          const float lo = t.min().item<float>(), hi = t.max().item<float>();
          if (k == r.size()) r.emplace_back(lo, hi);
          else r[k] = {std::min(r[k].first, lo), std::max(r[k].second, hi)};
          ++k;
        };
        (void)net.blocks(net.stem(all_x.slice(0, s, std::min<int64_t>(chips.n, s + 64)).to(at::kCPU), &see), 0,
                         net.num_blocks(), &see);
      }
      const json head = {{"model", "dlib_resnet"},
                         {"source", "facekit_gpu_bench --calibrate-int8: min and max of each activation of the fp32 "
                                    "network (DlibResNet::Observer's order) over " + std::to_string(chips.n) +
                                    " chips: " + arg["--note"]}};
      std::ofstream f(arg["--calibrate-int8"]);
      f << "{\n \"model\": " << head["model"].dump() << ",\n \"source\": " << head["source"].dump() << ",\n \"ranges\": [";
      for (size_t i = 0; i < r.size(); ++i) f << (i ? ",\n  " : "\n  ") << json({r[i].first, r[i].second}).dump();
      f << "\n ]\n}\n";
      std::printf("%zu activation ranges over %d chips -> %s\n", r.size(), chips.n, arg["--calibrate-int8"].c_str());
      return 0;
    }
    // Reference decisions: the library's CPU fp32 embeddings.
    auto decide = [&](const at::Tensor& e) {
      int correct = 0;
      std::vector<bool> same_decided;
      for (const auto& p : pairs) {
        const float d = (e[p.at(0).get<int>()] - e[p.at(1).get<int>()]).norm().item<float>();
        same_decided.push_back(d <= threshold);
        correct += (d <= threshold) == p.at(2).get<bool>();
      }
      return std::make_pair(correct, same_decided);
    };
    const auto [ref_correct, ref_decisions] = decide(ref);

    std::printf("\nembedder dlib_resnet (150x150), per-chip ms and chips/s; cosine to the CPU fp32 reference\n");
    std::printf("  %-5s %6s %10s %10s %12s\n", "arith", "batch", "ms/batch", "ms/chip", "chips/s");
    for (const auto& p : split(arg["--precisions"])) {
      if (cuda) set_tf32(p == "tf32");
      const auto dt = dtype_of(p);
      fd::DlibResNet net(weights, device);
      if (dt != at::kFloat) net.set_dtype(dt);
      std::unique_ptr<fd::DlibResNetInt8> int8;
      if (p == "int8")
        int8 = std::make_unique<fd::DlibResNetInt8>(
            net, fd::read_int8_ranges(arg.count("--int8-ranges") ? arg["--int8-ranges"]
                                                                  : (manifests / ".." / "int8" / "dlib_resnet.json").string()));
      auto embed = [&](const at::Tensor& x) {
        at::Tensor e = (int8 ? int8->forward(x) : net.forward(x.to(dt))).to(at::kFloat);
        return e / e.norm(2, {1}, true).clamp_min(1e-12);
      };
      // Accuracy: every chip, batches of 128.
      std::vector<at::Tensor> parts;
      for (int64_t s = 0; s < chips.n; s += 128)
        parts.push_back(embed(all_x.slice(0, s, std::min<int64_t>(chips.n, s + 128))).to(at::kCPU));
      const at::Tensor e = at::cat(parts, 0);
      const at::Tensor cos = (e * ref).sum(1);
      const auto [correct, decisions] = decide(e);
      int flipped = 0;
      for (size_t i = 0; i < decisions.size(); ++i) flipped += decisions[i] != ref_decisions[i];
      json row = {{"precision", p},
                  {"cosine_min", cos.min().item<double>()},
                  {"cosine_mean", cos.mean().item<double>()},
                  {"pair_accuracy", double(correct) / pairs.size()},
                  {"reference_pair_accuracy", double(ref_correct) / pairs.size()},
                  {"decisions_changed", flipped},
                  {"speed", json::array()}};
      for (const auto& bs : batches) {
        const int64_t b = std::stoll(bs);
        const at::Tensor x = take_batch(all_x, b);
        const double ms = time_ms([&] { (void)embed(x).to(at::kCPU); });
        row["speed"].push_back({{"batch", b}, {"ms_per_batch", ms}, {"ms_per_chip", ms / b}, {"chips_per_s", 1000 * b / ms}});
        std::printf("  %-5s %6lld %10.3f %10.4f %12.0f\n", p.c_str(), static_cast<long long>(b), ms, ms / b, 1000 * b / ms);
#ifdef FACEKIT_GPU_BENCH_CUDA
        if (cuda) {
          const auto replay = facekit::bench::capture_cuda_graph([&] { return embed(x); });
          const double diff = (replay().to(at::kCPU) - embed(x).to(at::kCPU)).abs().max().item<double>();
          const double gms = time_ms([&] { (void)replay().to(at::kCPU); });
          row["speed"].back()["cuda_graph"] = {{"ms_per_batch", gms}, {"chips_per_s", 1000 * b / gms}, {"max_abs_diff", diff}};
          std::printf("  %-5s %6lld %10.3f %10.4f %12.0f  (CUDA graph replay; max |diff| to eager %.2g)\n", p.c_str(),
                      static_cast<long long>(b), gms, gms / b, 1000 * b / gms, diff);
        }
#endif
      }
      // The whole step a batch job pays: uint8 chips on the host -> normalised on the device -> embeddings back.
      {
        const int64_t b = std::stoll(batches.back());
        const at::Tensor host = take_batch(chips.u8.permute({0, 3, 1, 2}), b).permute({0, 2, 3, 1}).contiguous();
        const double ms = time_ms([&] { (void)embed(normalise(host.to(device), mean_dev, scale)).to(at::kCPU); });
        row["from_host_uint8"] = {{"batch", b}, {"ms_per_batch", ms}, {"chips_per_s", 1000 * b / ms}};
        std::printf("  %-5s %6lld %10.3f %10.4f %12.0f  (from host uint8 chips, incl. upload and normalisation)\n",
                    p.c_str(), static_cast<long long>(b), ms, ms / b, 1000 * b / ms);
        if (cuda) {  // the same from page-locked host memory, copied without blocking the host
          const at::Tensor pinned = host.pin_memory();
          const double pms = time_ms([&] {
            (void)embed(normalise(pinned.to(device, /*non_blocking=*/true), mean_dev, scale)).to(at::kCPU);
          });
          row["from_pinned_uint8"] = {{"batch", b}, {"ms_per_batch", pms}, {"chips_per_s", 1000 * b / pms}};
          std::printf("  %-5s %6lld %10.3f %10.4f %12.0f  (the same from pinned host memory)\n", p.c_str(),
                      static_cast<long long>(b), pms, pms / b, 1000 * b / pms);
        }
      }
      std::printf("  %-5s cosine to reference: min %.6f, mean %.6f; pairs right %d/%zu (reference %d), decisions changed %d\n",
                  p.c_str(), row["cosine_min"].get<double>(), row["cosine_mean"].get<double>(), correct, pairs.size(),
                  ref_correct, flipped);
      out["embedder"].push_back(row);
    }

    // The landmark net and the graph models: fp32 (and TF32 on a GPU), random input at the model's size.
    std::vector<std::string> float_modes = {"fp32"};
    if (cuda) float_modes.push_back("tf32");
    auto input_of = [&](const std::string& name) { return read_json(manifests / (name + ".json")).at("input"); };
    {
      const int s = input_of("face_landmark_68").at("size");
      fd::Landmark68Net lm(fd::load_faceapi_weights(models / "face-api/face_landmark_68_model-weights_manifest.json"), device);
      std::printf("\nlandmarks face_landmark_68 (%dx%d)\n", s, s);
      for (const auto& p : float_modes) {
        if (cuda) set_tf32(p == "tf32");
        for (const auto& bs : batches) {
          const int64_t b = std::stoll(bs);
          const at::Tensor x = at::rand({b, 3, s, s}, at::TensorOptions().device(device)).contiguous(at::MemoryFormat::ChannelsLast);
          const double ms = time_ms([&] { (void)lm.forward(x).to(at::kCPU); });
          out["landmarks"].push_back({{"precision", p}, {"batch", b}, {"ms_per_batch", ms}, {"per_s", 1000 * b / ms}});
          std::printf("  %-5s %6lld %10.3f ms/batch %10.4f ms/face %10.0f faces/s\n", p.c_str(), static_cast<long long>(b), ms, ms / b, 1000 * b / ms);
#ifdef FACEKIT_GPU_BENCH_CUDA
          if (cuda) {
            const auto replay = facekit::bench::capture_cuda_graph([&] { return lm.forward(x); });
            const double gms = time_ms([&] { (void)replay().to(at::kCPU); });
            out["landmarks"].back()["cuda_graph_ms_per_batch"] = gms;
            std::printf("  %-5s %6lld %10.3f ms/batch %10.4f ms/face %10.0f faces/s (CUDA graph replay)\n", p.c_str(),
                        static_cast<long long>(b), gms, gms / b, 1000 * b / gms);
          }
#endif
        }
      }
    }
#ifndef FACEKIT_GPU_BENCH_NO_GRAPH
    for (const auto& name : split(arg["--graphs"])) {
      const json man = read_json(manifests / (name + ".json"));
      std::string path;
      for (const auto& f : man.at("files"))
        if (f.at("role") == "model_json") path = f.at("path");
      const int s = man.at("input").at("size");
      // The nodes the library reads (BlazeFace's graph ends in batch-1 reshapes after them).
      const std::string in_name = man.at("graph").at("input");
      const auto out_names = split(man.at("graph").at("output").get<std::string>());
      facekit::graph::GraphModel g(models / path, device);
      std::printf("\ngraph %s (%dx%d)\n", name.c_str(), s, s);
      for (const auto& p : float_modes) {
        if (cuda) set_tf32(p == "tf32");
        for (const auto& bs : batches) {
          const int64_t b = std::stoll(bs);
          const at::Tensor x = at::rand({b, s, s, 3}, at::TensorOptions().device(device));
          const double ms = time_ms([&] {
            for (const auto& o : g.run({{in_name, x}}, out_names)) (void)o.to(at::kCPU);
          });
          out["graphs"].push_back({{"model", name}, {"precision", p}, {"batch", b}, {"ms_per_batch", ms}, {"per_s", 1000 * b / ms}});
          std::printf("  %-5s %6lld %10.3f ms/batch %10.4f ms/image %10.0f images/s\n", p.c_str(), static_cast<long long>(b), ms, ms / b, 1000 * b / ms);
        }
      }
    }
#endif
    if (arg.count("--json")) std::ofstream(arg["--json"]) << out.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
