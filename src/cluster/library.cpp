// Scanning a photo library for clustering: every face of every photo, detected and embedded, with a cache on
// disk so that a long scan can be resumed and clustering can be rerun without the networks.
#include <algorithm>
#include <cctype>
#include <fstream>
#include <mutex>
#include <unordered_map>

#include "core/parallel.hpp"
#include "facekit/cluster.hpp"
#include "facekit/cluster_review.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"
#include "gallery/atomic_file.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

bool is_photo(const fs::path& p) {
  std::string e = p.extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp" || e == ".webp";
}

// Cache format "FKLS1": the embedder's name, then per photo its path, a status byte (0 read, 1 unreadable),
// and its faces: box, score, main flag, 68 points, embedding size and values. Little-endian, as written.
constexpr char kMagic[] = "FKLS1";

struct CachedPhoto {
  bool failed = false;
  std::string reason;
  std::vector<LibraryFace> faces;  // photo index unset
};

template <class T>
void put(std::ostream& o, const T& v) {
  o.write(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
void get(std::istream& i, T& v) {
  i.read(reinterpret_cast<char*>(&v), sizeof v);
}
void put_string(std::ostream& o, const std::string& s) {
  put(o, static_cast<std::uint32_t>(s.size()));
  o.write(s.data(), static_cast<std::streamsize>(s.size()));
}
std::string get_string(std::istream& i, const fs::path& file) {
  std::uint32_t n = 0;
  get(i, n);
  if (!i || n > (1u << 20)) throw Error(ErrorCode::kInvalidArgument, file.string() + " is corrupt or truncated; delete it");
  std::string s(n, '\0');
  i.read(s.data(), n);
  return s;
}

std::unordered_map<std::string, CachedPhoto> read_cache(const fs::path& file, const std::string& embedder) {
  std::unordered_map<std::string, CachedPhoto> out;
  if (file.empty() || !fs::exists(file)) return out;
  std::ifstream in(file, std::ios::binary);
  char magic[5] = {};
  in.read(magic, 5);
  if (!in || std::string(magic, 5) != kMagic) throw Error(ErrorCode::kInvalidArgument, file.string() + " is not a facekit library cache");
  const std::string model = get_string(in, file);
  if (model != embedder)
    throw Error(ErrorCode::kInvalidArgument, file.string() + " holds " + model + " embeddings, not " + embedder +
                                                 "'s: use another cache file");
  while (in.peek() != EOF) {
    const std::string path = get_string(in, file);
    CachedPhoto c;
    std::uint8_t status = 0;
    std::uint32_t n = 0;
    get(in, status);
    c.failed = status != 0;
    if (c.failed) c.reason = get_string(in, file);
    get(in, n);
    if (!in || n > 100000) throw Error(ErrorCode::kInvalidArgument, file.string() + " is corrupt or truncated; delete it");
    for (std::uint32_t k = 0; k < n; ++k) {
      LibraryFace f;
      std::uint8_t main = 0;
      std::uint32_t dim = 0;
      Landmarks68 lm;
      get(in, f.face.box);
      get(in, f.face.score);
      get(in, main);
      in.read(reinterpret_cast<char*>(lm.data()), sizeof lm);
      get(in, dim);
      if (!in || dim > 65536) throw Error(ErrorCode::kInvalidArgument, file.string() + " is corrupt or truncated; delete it");
      f.face.landmarks = lm;
      f.main = main != 0;
      f.embedding.resize(dim);
      in.read(reinterpret_cast<char*>(f.embedding.data()), static_cast<std::streamsize>(dim * sizeof(float)));
      c.faces.push_back(std::move(f));
    }
    if (!in) throw Error(ErrorCode::kInvalidArgument, file.string() + " is corrupt or truncated; delete it");
    out[path] = std::move(c);
  }
  return out;
}

void write_cache(const fs::path& file, const std::string& embedder, const std::unordered_map<std::string, CachedPhoto>& photos) {
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  write_file_atomically(file, [&](std::ostream& out) {  // never half a cache
    out.write(kMagic, 5);
    put_string(out, embedder);
    for (const auto& [path, c] : photos) {
      put_string(out, path);
      put(out, static_cast<std::uint8_t>(c.failed));
      if (c.failed) put_string(out, c.reason);
      put(out, static_cast<std::uint32_t>(c.faces.size()));
      for (const auto& f : c.faces) {
        put(out, f.face.box);
        put(out, f.face.score);
        put(out, static_cast<std::uint8_t>(f.main));
        const Landmarks68 lm = f.face.landmarks.value_or(Landmarks68{});
        out.write(reinterpret_cast<const char*>(lm.data()), sizeof lm);
        put(out, static_cast<std::uint32_t>(f.embedding.size()));
        out.write(reinterpret_cast<const char*>(f.embedding.data()), static_cast<std::streamsize>(f.embedding.size() * sizeof(float)));
      }
    }
  });
}

// The faces of scan.photos, in order, from the cache (which holds every one of them).
void assemble(LibraryScan& scan, const std::unordered_map<std::string, CachedPhoto>& cache) {
  for (size_t i = 0; i < scan.photos.size(); ++i) {
    const auto& c = cache.at(scan.photos[i]);
    if (c.failed) {
      scan.failed.push_back(scan.photos[i] + ": " + c.reason);
      continue;
    }
    for (const auto& f : c.faces) {
      LibraryFace x = f;
      x.photo = static_cast<int>(i);
      scan.faces.push_back(std::move(x));
    }
  }
}

}  // namespace

std::vector<fs::path> list_photos(const std::vector<fs::path>& paths) {
  std::vector<fs::path> out;
  for (const auto& p : paths) {
    if (!fs::exists(p)) throw Error(ErrorCode::kNotFound, "no such file or folder: " + p.string());
    if (!fs::is_directory(p)) {
      out.push_back(p);
      continue;
    }
    for (const auto& e : fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied))
      if (e.is_regular_file() && is_photo(e.path())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

LibraryScan scan_photos(const FacePipeline& pipeline, const std::vector<fs::path>& photos, const ScanOptions& o,
                        const std::function<void(int, int)>& progress) {
  LibraryScan scan;
  scan.embedder = pipeline.embedder().manifest().name;
  auto cache = read_cache(o.cache, scan.embedder);
  std::vector<size_t> todo;
  for (size_t i = 0; i < photos.size(); ++i) {
    scan.photos.push_back(photos[i].string());
    if (!cache.count(scan.photos.back())) todo.push_back(i);
  }
  scan.cached_photos = static_cast<int>(photos.size() - todo.size());
  const size_t per = static_cast<size_t>(std::max(1, o.batch));
  const size_t round = std::max(per, static_cast<size_t>(std::max(1, o.checkpoint)));
  std::mutex m;
  int done = scan.cached_photos;
  if (progress) progress(done, static_cast<int>(photos.size()));
  for (size_t r0 = 0; r0 < todo.size(); r0 += round) {
    const size_t r1 = std::min(todo.size(), r0 + round);
    const size_t chunks = (r1 - r0 + per - 1) / per;
    detail::parallel_for(chunks, o.threads, [&](size_t c) {
      const size_t b = r0 + c * per, e = std::min(r1, b + per);
      std::vector<Image> imgs;
      std::vector<std::vector<Face>> faces;
      std::vector<std::string> paths;
      std::vector<std::pair<std::string, CachedPhoto>> results;
      for (size_t k = b; k < e; ++k) {
        const std::string& path = scan.photos[todo[k]];
        try {
          Image img = load_image(photos[todo[k]]);
          auto f = pipeline.detect(img);
          imgs.push_back(std::move(img));
          faces.push_back(std::move(f));
          paths.push_back(path);
        } catch (const Error& err) {
          CachedPhoto bad;
          bad.failed = true;
          bad.reason = err.what();
          results.push_back({path, std::move(bad)});
        }
      }
      if (!imgs.empty()) {
        std::vector<int> main(imgs.size());
        for (size_t k = 0; k < imgs.size(); ++k) main[k] = main_face_index(faces[k], imgs[k].size());
        auto emb = pipeline.embed_batch(imgs, faces);
        for (size_t k = 0; k < imgs.size(); ++k) {
          CachedPhoto c;
          for (size_t j = 0; j < emb[k].size(); ++j) {
            LibraryFace f;
            f.face = emb[k][j].face;
            f.embedding = std::move(emb[k][j].embedding);
            f.main = static_cast<int>(j) == main[k];
            c.faces.push_back(std::move(f));
          }
          results.push_back({paths[k], std::move(c)});
        }
      }
      std::lock_guard<std::mutex> lock(m);
      for (auto& [p, c] : results) cache[p] = std::move(c);
      done += static_cast<int>(e - b);
      if (progress) progress(done, static_cast<int>(photos.size()));
    });
    if (!o.cache.empty()) write_cache(o.cache, scan.embedder, cache);
  }
  assemble(scan, cache);
  return scan;
}

LibraryScan load_scan(const fs::path& cache_file, const std::vector<std::string>& photos, const std::string& embedder) {
  if (cache_file.empty() || !fs::exists(cache_file))
    throw Error(ErrorCode::kNotFound, "no face cache " + cache_file.string() + ": cluster the photos again with --cache");
  const auto cache = read_cache(cache_file, embedder);
  LibraryScan scan;
  scan.embedder = embedder;
  scan.photos = photos;
  for (const auto& p : photos)
    if (!cache.count(p)) throw Error(ErrorCode::kNotFound, p + " is not in the face cache " + cache_file.string() + ": cluster again");
  scan.cached_photos = static_cast<int>(photos.size());
  assemble(scan, cache);
  return scan;
}

}  // namespace facekit
