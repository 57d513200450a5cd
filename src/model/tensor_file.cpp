#include "model/tensor_file.hpp"

#include <cstdint>
#include <cstring>
#include <fstream>

#include "facekit/error.hpp"
#include "gallery/atomic_file.hpp"

namespace facekit::detail {
namespace {
constexpr char kMagic[6] = {'F', 'K', 'T', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 1;

template <typename T>
void put(std::ostream& out, T v) {
  out.write(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
T get(std::istream& in, const std::filesystem::path& p) {
  T v{};
  if (!in.read(reinterpret_cast<char*>(&v), sizeof v))
    throw Error(ErrorCode::kModelCorrupt, p.string() + " is truncated");
  return v;
}
}  // namespace

void save_tensors(const std::filesystem::path& path, const TensorMap& tensors) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(kMagic, sizeof kMagic);
    put<uint32_t>(out, kVersion);
    put<uint32_t>(out, static_cast<uint32_t>(tensors.size()));
    for (const auto& [name, t] : tensors) {
      const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
      put<uint32_t>(out, static_cast<uint32_t>(name.size()));
      out.write(name.data(), static_cast<std::streamsize>(name.size()));
      put<uint32_t>(out, static_cast<uint32_t>(c.dim()));
      for (int64_t d : c.sizes()) put<int64_t>(out, d);
      out.write(reinterpret_cast<const char*>(c.data_ptr<float>()), static_cast<std::streamsize>(c.numel() * 4));
    }
  });
}

TensorMap load_tensors(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open tensor file " + p.string());
  char magic[sizeof kMagic];
  if (!in.read(magic, sizeof magic) || std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    throw Error(ErrorCode::kModelCorrupt, p.string() + " is not a facekit tensor file");
  const auto version = get<uint32_t>(in, p);
  if (version > kVersion)
    throw Error(ErrorCode::kModelCorrupt, p.string() + " has format version " + std::to_string(version) +
                                              "; this facekit reads up to " + std::to_string(kVersion));
  const auto count = get<uint32_t>(in, p);
  TensorMap out;
  for (uint32_t i = 0; i < count; ++i) {
    const auto len = get<uint32_t>(in, p);
    if (len > 4096) throw Error(ErrorCode::kModelCorrupt, p.string() + ": implausible tensor name length");
    std::string name(len, '\0');
    in.read(name.data(), len);
    const auto rank = get<uint32_t>(in, p);
    if (rank > 8) throw Error(ErrorCode::kModelCorrupt, p.string() + ": implausible rank for " + name);
    std::vector<int64_t> dims(rank);
    int64_t numel = 1;
    for (auto& d : dims) {
      d = get<int64_t>(in, p);
      if (d < 0 || d > (int64_t(1) << 32)) throw Error(ErrorCode::kModelCorrupt, p.string() + ": bad shape of " + name);
      numel *= d;
    }
    at::Tensor t = at::empty(dims, at::kFloat);
    if (!in.read(reinterpret_cast<char*>(t.data_ptr<float>()), numel * 4))
      throw Error(ErrorCode::kModelCorrupt, p.string() + " is truncated (in " + name + ")");
    out.emplace(std::move(name), std::move(t));
  }
  return out;
}

}  // namespace facekit::detail
