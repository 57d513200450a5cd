#include "eval/face_cache.hpp"

#include <algorithm>
#include <fstream>

#include "facekit/error.hpp"

namespace facekit::detail {
namespace fs = std::filesystem;
namespace {
constexpr char kCacheMagic[] = "FKFC1";
}

FaceCache read_face_cache(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[5];
  in.read(magic, 5);
  if (!in || std::string(magic, 5) != kCacheMagic)
    throw Error(ErrorCode::kInvalidArgument, p.string() + " is not a facekit face cache");
  FaceCache out;
  uint32_t len;
  while (in.read(reinterpret_cast<char*>(&len), 4)) {
    std::string path(len, '\0');
    unsigned char found = 0;
    in.read(path.data(), len);
    in.read(reinterpret_cast<char*>(&found), 1);
    if (!found) {
      out[path] = {};
      continue;
    }
    Face f;
    Landmarks68 lm;
    in.read(reinterpret_cast<char*>(&f.box), sizeof f.box);
    in.read(reinterpret_cast<char*>(&f.score), sizeof f.score);
    in.read(reinterpret_cast<char*>(lm.data()), sizeof lm);
    if (!in) throw Error(ErrorCode::kInvalidArgument, p.string() + " is truncated; delete it");
    f.landmarks = lm;
    out[path] = {f, found};
  }
  return out;
}

void write_face_cache(const fs::path& p, const FaceCache& faces) {
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(kCacheMagic, 5);
    for (const auto& [path, c] : faces) {
      const uint32_t len = static_cast<uint32_t>(path.size());
      const unsigned char found = c.face ? static_cast<unsigned char>(std::clamp(c.faces, 1, 255)) : 0;
      out.write(reinterpret_cast<const char*>(&len), 4);
      out.write(path.data(), len);
      out.write(reinterpret_cast<const char*>(&found), 1);
      if (!found) continue;
      out.write(reinterpret_cast<const char*>(&c.face->box), sizeof c.face->box);
      out.write(reinterpret_cast<const char*>(&c.face->score), sizeof c.face->score);
      out.write(reinterpret_cast<const char*>(c.face->landmarks->data()), sizeof(Landmarks68));
    }
    if (!out) throw Error(ErrorCode::kInvalidArgument, "cannot write " + tmp.string());
  }
  fs::rename(tmp, p);  // a reader never sees a half-written cache
}

}  // namespace facekit::detail
