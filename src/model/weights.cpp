#include "model/weights.hpp"

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"

namespace facekit::detail {
namespace {

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::kModelMissing, "cannot open model file " + p.string() + "; run scripts/setup");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string shape_str(at::IntArrayRef s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

WeightMap load_faceapi_weights(const std::filesystem::path& manifest_json) {
  nlohmann::json groups;
  try {
    groups = nlohmann::json::parse(read_all(manifest_json));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, "weights manifest " + manifest_json.string() + " is not valid JSON (" +
                                              e.what() + "); run scripts/setup");
  }
  WeightMap out;
  try {
    for (const auto& g : groups) {
      std::string blob;
      for (const auto& p : g.at("paths")) blob += read_all(manifest_json.parent_path() / p.get<std::string>());
      size_t off = 0;
      for (const auto& w : g.at("weights")) {
        const auto name = w.at("name").get<std::string>();
        const auto shape = w.at("shape").get<std::vector<int64_t>>();
        const auto dtype = w.at("dtype").get<std::string>();
        int64_t n = 1;
        for (auto d : shape) n *= d;
        at::Tensor t = at::empty(shape, at::kFloat);
        float* dst = t.data_ptr<float>();
        if (w.contains("quantization")) {
          const auto& q = w["quantization"];
          if (q.at("dtype") != "uint8")
            throw Error(ErrorCode::kModelCorrupt, "unsupported quantisation of " + name);
          const float scale = q.at("scale").get<float>(), mn = q.at("min").get<float>();
          if (off + n > blob.size()) throw Error(ErrorCode::kModelCorrupt, "weights truncated at " + name);
          const auto* src = reinterpret_cast<const uint8_t*>(blob.data() + off);
          const bool is_int = dtype == "int32";
          for (int64_t i = 0; i < n; ++i) {
            float v = src[i] * scale + mn;
            dst[i] = is_int ? std::round(v) : v;
          }
          off += n;
        } else {
          if (off + 4 * n > blob.size()) throw Error(ErrorCode::kModelCorrupt, "weights truncated at " + name);
          if (dtype == "float32") {
            std::memcpy(dst, blob.data() + off, 4 * n);
          } else if (dtype == "int32") {
            for (int64_t i = 0; i < n; ++i) {
              int32_t v;
              std::memcpy(&v, blob.data() + off + 4 * i, 4);
              dst[i] = static_cast<float>(v);
            }
          } else {
            throw Error(ErrorCode::kModelCorrupt, "unsupported dtype " + dtype + " of " + name);
          }
          off += 4 * n;
        }
        out.emplace(name, t);
      }
      if (off != blob.size())
        throw Error(ErrorCode::kModelCorrupt, "weights file of " + manifest_json.string() + " has " +
                                                  std::to_string(blob.size() - off) + " unexpected trailing bytes");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt,
                "weights manifest " + manifest_json.string() + " is malformed (" + e.what() + ")");
  }
  return out;
}

WeightMap load_model_weights(const ModelManifest& m) {
  verify_model_files(m);
  return load_faceapi_weights(models_dir() / m.file("weights_manifest").path);
}

at::Tensor take(const WeightMap& w, const std::string& name, at::IntArrayRef shape) {
  auto it = w.find(name);
  if (it == w.end()) throw Error(ErrorCode::kModelCorrupt, "model weights lack tensor " + name);
  if (it->second.sizes() != shape)
    throw Error(ErrorCode::kModelCorrupt, "tensor " + name + " has shape " + shape_str(it->second.sizes()) +
                                              ", expected " + shape_str(shape));
  return it->second;
}

}  // namespace facekit::detail
