// Identifier: a gallery's templates of one embedder in a FAISS index plus a classifier, kept consistent with
// the store by revision, and cached beside the gallery so a new process does not rebuild them.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "facekit/error.hpp"
#include "facekit/identify.hpp"
#include "facekit/model.hpp"
#include "gallery/atomic_file.hpp"
#include "gallery/open_set.hpp"

namespace facekit {
namespace fs = std::filesystem;

const char* to_string(Aggregation a) {
  return a == Aggregation::kMean ? "mean" : a == Aggregation::kNone ? "none" : "auto";
}

Aggregation parse_aggregation(const std::string& s) {
  if (s == "auto") return Aggregation::kAuto;
  if (s == "none") return Aggregation::kNone;
  if (s == "mean") return Aggregation::kMean;
  throw Error(ErrorCode::kInvalidArgument, "unknown aggregation '" + s + "' (auto, none, mean)");
}

float resolve_mean_norm_power(float power, const std::optional<OpenSetCalibration>& knn_calibration) {
  if (!std::isnan(power)) return power;
  return knn_calibration ? knn_calibration->mean_norm_power : 1.f;
}

std::string open_set_key(const std::string& classifier, Aggregation aggregation) {
  const Aggregation a = resolve_aggregation(aggregation, classifier);
  if (a == resolve_aggregation(Aggregation::kAuto, classifier)) return classifier;
  return classifier + "/" + to_string(a);
}

std::int64_t open_set_comparisons(const std::string& classifier, Aggregation aggregation, std::int64_t people,
                                  std::int64_t rows) {
  return classifier == "knn" && resolve_aggregation(aggregation, classifier) == Aggregation::kNone ? rows : people;
}

double resolve_turned_fpir_factor(double factor, const std::optional<OpenSetCalibration>& calibration) {
  if (!std::isnan(factor)) return factor;
  return calibration ? calibration->turned_fpir_factor : 0.5;
}

Aggregation resolve_aggregation(Aggregation a, const std::string& classifier) {
  if (a != Aggregation::kAuto) return a;
  return classifier == "svm" ? Aggregation::kNone : Aggregation::kMean;
}

double turned_fpir_scale(float yaw, const IdentifyOptions& o) {
  const double a = std::abs(yaw);
  if (!(a > o.turned_yaw)) return 1;
  const double t = std::min(1.0, (a - o.turned_yaw) / (o.turned_yaw_full - o.turned_yaw));
  return std::pow(o.turned_fpir_factor, t);
}

float OpenSetCalibration::threshold_for(double fpir, std::int64_t people) const {
  if (far.empty() || far.size() != threshold.size()) throw Error(ErrorCode::kModelCorrupt, "empty open-set calibration");
  const double target = std::log10(std::max(fpir, 1e-12) / static_cast<double>(std::max<std::int64_t>(people, 1)));
  if (target >= std::log10(far.front())) return threshold.front();
  if (target <= std::log10(far.back())) return threshold.back();
  for (size_t i = 1; i < far.size(); ++i) {
    const double hi = std::log10(far[i - 1]), lo = std::log10(far[i]);
    if (target <= hi && target >= lo) {
      const double t = (hi - target) / (hi - lo);
      return static_cast<float>(threshold[i - 1] + t * (threshold[i] - threshold[i - 1]));
    }
  }
  return threshold.back();
}

std::optional<OpenSetCalibration> load_open_set_calibration(const EmbedderId& embedder, const std::string& classifier) {
  const char* env = std::getenv("FACEKIT_OPEN_SET");
  const fs::path file = env && *env ? fs::path(env) : share_dir() / "gallery" / "open_set.json";
  std::ifstream in(file);
  if (!in) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(in);
    if (!j.contains(embedder.str()) || !j[embedder.str()].contains(classifier)) return std::nullopt;
    const auto& e = j[embedder.str()][classifier];
    OpenSetCalibration c;
    for (const auto& row : e.at("far_table")) {
      c.far.push_back(row.at(0).get<double>());
      c.threshold.push_back(row.at(1).get<float>());
    }
    c.source = file.string() + ": " + e.value("source", "");
    c.mean_norm_power = e.value("mean_norm_power", 1.f);
    c.turned_fpir_factor = e.value("turned_fpir_factor", 0.1);
    if (!(c.turned_fpir_factor > 0 && c.turned_fpir_factor <= 1))
      throw Error(ErrorCode::kModelCorrupt, file.string() + ": turned_fpir_factor outside (0, 1]");
    if (!(c.mean_norm_power >= 0 && c.mean_norm_power <= 1))
      throw Error(ErrorCode::kModelCorrupt, file.string() + ": mean_norm_power outside [0, 1]");
    if (c.far.empty()) throw Error(ErrorCode::kModelCorrupt, file.string() + ": empty far_table");
    for (size_t i = 1; i < c.far.size(); ++i)
      if (!(c.far[i] < c.far[i - 1]) || c.far[i] <= 0)
        throw Error(ErrorCode::kModelCorrupt, file.string() + ": far_table must descend in FAR");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, file.string() + ": " + e.what());
  }
}

void save_open_set_calibration(const fs::path& file, const EmbedderId& embedder, const std::string& classifier,
                               const OpenSetCalibration& c) {
  if (c.far.empty() || c.far.size() != c.threshold.size())
    throw Error(ErrorCode::kInvalidArgument, "an open-set calibration needs as many thresholds as FARs, at least one");
  for (size_t i = 1; i < c.far.size(); ++i)
    if (!(c.far[i] < c.far[i - 1]) || c.far[i] <= 0)
      throw Error(ErrorCode::kInvalidArgument, "an open-set calibration's far_table must descend in FAR");
  nlohmann::json out = nlohmann::json::object();
  if (std::ifstream old(file); old) {
    try {
      out = nlohmann::json::parse(old);
    } catch (const nlohmann::json::exception&) {
      throw Error(ErrorCode::kInvalidArgument, file.string() + " exists and is not JSON");
    }
    if (!out.is_object()) throw Error(ErrorCode::kInvalidArgument, file.string() + " exists and is not a JSON object");
  }
  nlohmann::json table = nlohmann::json::array();
  for (size_t i = 0; i < c.far.size(); ++i) table.push_back({c.far[i], c.threshold[i]});
  out[embedder.str()][classifier] = {{"far_table", table}, {"source", c.source}};
  if (classifier == "knn") out[embedder.str()][classifier]["mean_norm_power"] = c.mean_norm_power;
  out[embedder.str()][classifier]["turned_fpir_factor"] = c.turned_fpir_factor;
  write_file_atomically(file, [&](std::ostream& os) { os << out.dump(2) << "\n"; });
}

float detail::open_set_threshold(const std::optional<OpenSetCalibration>& c, const EmbedderId& embedder,
                                 const std::string& classifier, std::int64_t people, double fpir, std::string* source) {
  if (c) {
    const float t = c->threshold_for(fpir, people);
    if (source) {
      char buf[160];
      // `people` counts the comparisons a stranger's FPIR spreads over: templates for a kNN over every template.
      const bool templates = classifier.ends_with("/none");
      std::snprintf(buf, sizeof buf, "FPIR %g with %lld %s (FAR %.2g per comparison), from ", fpir,
                    static_cast<long long>(people), templates ? "templates" : "people",
                    fpir / std::max<std::int64_t>(people, 1));
      *source = buf + c->source;
    }
    return t;
  }
  if (classifier == "knn" || classifier.starts_with("knn/")) {
    // The embedder's verification threshold (a distance) as a similarity.
    const float t = load_manifest(embedder.name).threshold;
    if (source) *source = "verification threshold of " + embedder.name + " (no open-set calibration)";
    return 1.f - t * t / 2;
  }
  if (source) *source = "default 0.5 (no open-set calibration)";
  return 0.5f;
}

float default_open_set_threshold(const EmbedderId& embedder, const std::string& classifier, std::int64_t people,
                                 double fpir, std::string* source) {
  return detail::open_set_threshold(load_open_set_calibration(embedder, classifier), embedder, classifier, people,
                                    fpir, source);
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kIndexCacheMagic = "facekit-index-cache";
constexpr const char* kModelCacheMagic = "facekit-model-cache";
constexpr int kCacheVersion = 1;

std::string file_safe(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' && c != '@') c = '_';
  return s;
}

// How per-person means are taken (part of every cache key: a cache of other means is not reused).
std::string mean_key(const IdentifyOptions& o) {
  if (o.aggregation != Aggregation::kMean) return "";
  std::ostringstream s;
  s << " q>=" << o.template_min_quality << " p=" << o.mean_norm_power;
  return s.str();
}

// The options a trained classifier depends on: a cached model trained with others is not reused.
std::string fingerprint(const IdentifyOptions& o) {
  const auto& c = o.classifier_options;
  std::ostringstream s;
  s << o.classifier << " agg=" << to_string(o.aggregation) << mean_key(o) << " C=" << c.svm_c << " hard=" << c.svm_hard_negative_people
    << " rand=" << c.svm_random_negatives << " platt=" << c.svm_fit_platt << "," << c.svm_platt_a << ","
    << c.svm_platt_b << " seed=" << c.seed;
  return s.str();
}

// One header line: magic version uuid revision key.
void write_header(std::FILE* f, const char* magic, const std::string& uuid, std::int64_t rev, const std::string& key) {
  const std::string h = std::string(magic) + " " + std::to_string(kCacheVersion) + " " + uuid + " " +
                        std::to_string(rev) + " " + key + "\n";
  if (std::fwrite(h.data(), 1, h.size(), f) != h.size()) throw Error(ErrorCode::kStorage, "cannot write cache");
}

struct Header {
  std::string uuid, key;
  std::int64_t revision = -1;
};

Header read_header(std::FILE* f, const char* magic) {
  char buf[4096];
  if (!std::fgets(buf, sizeof buf, f)) throw Error(ErrorCode::kStorage, "empty cache file");
  std::istringstream s(buf);
  std::string m;
  int version = 0;
  Header h;
  s >> m >> version >> h.uuid >> h.revision;
  std::getline(s, h.key);
  if (!h.key.empty() && h.key[0] == ' ') h.key.erase(0, 1);
  if (!h.key.empty() && h.key.back() == '\n') h.key.pop_back();
  if (m != magic || version != kCacheVersion) throw Error(ErrorCode::kStorage, "not a current facekit cache file");
  return h;
}

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

std::string rest_of(std::FILE* f) {
  std::string rest;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) rest.append(buf, n);
  return rest;
}

// An encrypted gallery's index holds its embeddings: it goes through memory and is sealed before it touches disk.
std::string index_bytes(const LabelledIndex& index) {
  char* buf = nullptr;
  size_t n = 0;
  std::FILE* m = ::open_memstream(&buf, &n);
  if (!m) throw Error(ErrorCode::kInternal, "open_memstream failed");
  try {
    index.save(m);
  } catch (...) {
    std::fclose(m);
    std::free(buf);
    throw;
  }
  std::fclose(m);
  std::string out(buf, n);
  std::free(buf);
  return out;
}

LabelledIndex index_from_bytes(std::string bytes) {
  File m(::fmemopen(bytes.data(), bytes.size(), "rb"));
  if (!m) throw Error(ErrorCode::kStorage, "empty index cache");
  return LabelledIndex::load(m.get());
}

}  // namespace

struct Identifier::Impl {
  const Gallery& gallery;
  EmbedderId embedder;
  IdentifyOptions opt;
  std::unique_ptr<LabelledIndex> index;  // null while the gallery holds no template of this embedder
  std::unique_ptr<Classifier> classifier;
  std::int64_t revision = -1, classifier_revision = -1;
  float threshold = 0;
  // The open-set calibration and gallery size the default threshold came from (none when one was given), for
  // the thresholds of turned faces.
  std::optional<OpenSetCalibration> calibration;
  std::int64_t people = 0;  // comparisons a stranger's FPIR spreads over (open_set_comparisons)
  std::string threshold_source;
  RefreshReport last;
  // People's names as of `revision`, so that an answer never mixes the index of one revision with a name
  // renamed or a person removed after it (and identify() needs no query per candidate).
  std::unordered_map<std::int64_t, std::string> names;
  std::int64_t names_revision = -1;
  std::optional<Clock::time_point> saved_at;   // the index cache's last save by this identifier
  std::optional<Clock::time_point> shared_at;  // its last copy into the gallery (shared_index)
  Clock::time_point created_at = Clock::now();

  Impl(const Gallery& g, EmbedderId e, IdentifyOptions o) : gallery(g), embedder(std::move(e)), opt(std::move(o)) {
    opt.aggregation = resolve_aggregation(opt.aggregation, opt.classifier);
    // The rules the embedder's calibrations were checked with, unless given (one read for the default kNN).
    const std::string key = open_set_key(opt.classifier, opt.aggregation);
    const auto cal = load_open_set_calibration(embedder, key);
    opt.mean_norm_power =
        resolve_mean_norm_power(opt.mean_norm_power, key == "knn" ? cal : load_open_set_calibration(embedder, "knn"));
    opt.turned_fpir_factor = resolve_turned_fpir_factor(opt.turned_fpir_factor, cal);
    if (!(opt.mean_norm_power >= 0 && opt.mean_norm_power <= 1))
      throw Error(ErrorCode::kInvalidArgument, "mean_norm_power must be in [0, 1]");
    if (!(opt.template_min_quality >= 0 && opt.template_min_quality <= 1))
      throw Error(ErrorCode::kInvalidArgument, "template_min_quality must be in [0, 1]");
    if (!(opt.turned_fpir_factor > 0 && opt.turned_fpir_factor <= 1))
      throw Error(ErrorCode::kInvalidArgument, "turned_fpir_factor must be in (0, 1]");
    if (!(opt.turned_yaw >= 0 && opt.turned_yaw_full > opt.turned_yaw))
      throw Error(ErrorCode::kInvalidArgument, "need 0 <= turned_yaw < turned_yaw_full (degrees)");
  }

  fs::path cache_dir() const {
    return opt.cache_dir.empty() ? gallery.cache_dir() : opt.cache_dir;
  }
  std::string base() const { return file_safe(embedder.str()) + "." + to_string(opt.aggregation); }
  fs::path index_path() const { return cache_dir() / (base() + ".index"); }
  fs::path model_path() const { return cache_dir() / (base() + "." + opt.classifier + ".model"); }
  std::string index_key() const {
    return embedder.str() + " " + to_string(opt.aggregation) + mean_key(opt) + " " + opt.index.kind + " M=" +
           std::to_string(opt.index.hnsw_m) + " efc=" + std::to_string(opt.index.ef_construction) +
           " min=" + std::to_string(opt.index.hnsw_min_size) + (gallery.encrypted() ? " sealed" : "");
  }

  bool want_hnsw(std::int64_t rows) const {
    if (opt.index.kind == "hnsw") return true;
    if (opt.index.kind == "flat") return false;
    return rows >= opt.index.hnsw_min_size;
  }

  void rebuild() {
    build_from_store();
    // Reading the store held every template at once (half a gigabyte at a million): give it back to the
    // system, not to the heap's free lists, or a server keeps it for life.
    ::malloc_trim(0);
  }

  void build_from_store() {
    std::vector<float> data;
    std::vector<std::int64_t> keys, labels;
    std::int64_t rev = 0;
    int dim = 0;
    if (opt.aggregation == Aggregation::kNone) {
      gallery.for_each_template(
          embedder,
          [&](const Template& t) {
            if (!dim) dim = static_cast<int>(t.embedding.size());
            if (static_cast<int>(t.embedding.size()) != dim) return;
            data.insert(data.end(), t.embedding.begin(), t.embedding.end());
            keys.push_back(t.id);
            labels.push_back(t.person_id);
          },
          &rev);
    } else {
      std::unordered_map<std::int64_t, std::pair<std::vector<Embedding>, std::vector<float>>> by_person;
      std::vector<std::int64_t> order;
      gallery.for_each_template(
          embedder,
          [&](const Template& t) {
            auto& v = by_person[t.person_id];
            if (v.first.empty()) order.push_back(t.person_id);
            v.first.push_back(t.embedding);
            v.second.push_back(t.quality);
          },
          &rev);
      for (std::int64_t pid : order) {
        const auto& [es, qs] = by_person[pid];
        const Embedding m = mean_row(es, qs, opt.template_min_quality, opt.mean_norm_power);
        if (!dim) dim = static_cast<int>(m.size());
        data.insert(data.end(), m.begin(), m.end());
        keys.push_back(pid);
        labels.push_back(pid);
      }
    }
    revision = rev;
    if (!dim) {
      index.reset();
      return;
    }
    const auto n = static_cast<std::int64_t>(keys.size());
    index = std::make_unique<LabelledIndex>(dim, opt.index, n);
    index->add(data.data(), keys.data(), labels.data(), n);
    last.rebuilt = true;
  }

  // Applies the gallery's changes since `revision` to the index; false when a rebuild is the better answer.
  bool catch_up() {
    const GalleryChanges ch = gallery.changes_since(embedder, revision);
    std::vector<float> data;
    std::vector<std::int64_t> keys, labels;
    if (opt.aggregation == Aggregation::kNone) {
      for (const auto& [tid, pid] : ch.removed) last.removed += index->remove_key(tid);
      for (const auto& t : ch.added) {
        if (index->has_key(t.id) || static_cast<int>(t.embedding.size()) != index->dim()) continue;
        data.insert(data.end(), t.embedding.begin(), t.embedding.end());
        keys.push_back(t.id);
        labels.push_back(t.person_id);
      }
    } else {
      std::unordered_set<std::int64_t> affected;
      for (const auto& r : ch.removed) affected.insert(r.second);
      for (const auto& t : ch.added) affected.insert(t.person_id);
      for (std::int64_t pid : affected) {
        last.removed += index->remove_key(pid);
        std::vector<Embedding> mine;
        std::vector<float> quality;
        try {
          for (auto& t : gallery.templates_of(pid))
            if (t.embedder == embedder) mine.push_back(std::move(t.embedding)), quality.push_back(t.quality);
        } catch (const Error& e) {
          if (e.code() != ErrorCode::kNotFound) throw;  // removed since: nothing to add
        }
        if (mine.empty()) continue;
        const Embedding m = mean_row(mine, quality, opt.template_min_quality, opt.mean_norm_power);
        if (static_cast<int>(m.size()) != index->dim()) continue;
        data.insert(data.end(), m.begin(), m.end());
        keys.push_back(pid);
        labels.push_back(pid);
      }
    }
    index->add(data.data(), keys.data(), labels.data(), static_cast<std::int64_t>(keys.size()));
    last.added += static_cast<std::int64_t>(keys.size());
    // Names move with the index when the store lists who was added or renamed (a removed person's name may
    // stay: nothing in the index points at it any more).
    if (ch.names_complete && names_revision == revision) {
      for (const auto& [pid, name] : ch.named) names[pid] = name;
      names_revision = ch.to_revision;
    }
    revision = ch.to_revision;
    const auto& vi = index->index();
    // Tombstones cost search time and memory; the kind should follow the size.
    if (vi.removed() > vi.rows() / 5) return false;
    if (want_hnsw(vi.live()) != vi.approximate() &&
        (opt.index.kind != "auto" || vi.live() >= opt.index.hnsw_min_size || vi.live() < opt.index.hnsw_min_size / 2))
      return false;
    return true;
  }

  // A cache is used when it was built from this gallery with these options and is not ahead of it.
  bool load_index_from(std::FILE* f, const std::string& where) {
    try {
      const Header h = read_header(f, kIndexCacheMagic);
      if (h.uuid != gallery.uuid() || h.key != index_key() || h.revision > gallery.revision()) return false;
      auto li = std::make_unique<LabelledIndex>(gallery.encrypted() ? index_from_bytes(gallery.unseal(rest_of(f)))
                                                                    : LabelledIndex::load(f));
      index = std::move(li);
      revision = h.revision;
      last.index_from_cache = true;
      return true;
    } catch (const Error& e) {
      last.cache_error = where + ": " + e.what() + " (rebuilt)";
      return false;
    }
  }

  // The local file first, else the copy a database gallery keeps for servers starting elsewhere.
  void load_index_cache() {
    if (File f(std::fopen(index_path().c_str(), "rb")); f && load_index_from(f.get(), index_path().string())) return;
    std::optional<std::string> shared;
    try {
      shared = gallery.shared_index(base());
    } catch (const Error& e) {
      last.cache_error = std::string("cannot read the gallery's shared index: ") + e.what();
    }
    if (!shared) return;
    File m(::fmemopen(shared->data(), shared->size(), "rb"));
    if (m && load_index_from(m.get(), "the gallery's shared index")) {
      last.index_from_shared = true;
      save_index_cache();  // the next start here reads the local file
    }
  }

  void write_index_cache(std::FILE* f) const {
    write_header(f, kIndexCacheMagic, gallery.uuid(), revision, index_key());
    if (!gallery.encrypted()) return index->save(f);
    const std::string sealed = gallery.seal(index_bytes(*index));
    if (std::fwrite(sealed.data(), 1, sealed.size(), f) != sealed.size())
      throw Error(ErrorCode::kStorage, "cannot write cache");
  }

  void save_index_cache() {
    if (!opt.use_cache || !index) return;
    try {
      fs::create_directories(cache_dir());
      write_file_atomically_c(index_path(), [&](std::FILE* f) { write_index_cache(f); });
    } catch (const std::exception& e) {
      last.cache_error = std::string("cannot write the index cache: ") + e.what();
    }
  }

  // A database gallery keeps a copy for servers that start without a cache: after a full build, and at most
  // every 10 minutes while an index lives and is updated in place (a server loading an older copy applies the changes
  // since). A file gallery ignores it.
  void share_index_cache() {
    if (!opt.use_cache || !index || gallery.encrypted()) return;
    if (!last.rebuilt && Clock::now() - (shared_at ? *shared_at : created_at) < std::chrono::minutes(10)) return;
    shared_at = Clock::now();
    try {
      char* buf = nullptr;
      size_t n = 0;
      std::FILE* m = ::open_memstream(&buf, &n);
      if (!m) return;
      try {
        write_index_cache(m);
      } catch (...) {
        std::fclose(m);
        std::free(buf);
        throw;
      }
      std::fclose(m);
      const std::string bytes(buf, n);
      std::free(buf);
      gallery.put_shared_index(base(), bytes);
      ::malloc_trim(0);  // the copies of a large index go back to the system, not to the heap's free lists
    } catch (const std::exception& e) {
      last.cache_error = std::string("cannot store the shared index: ") + e.what();
    }
  }

  bool load_model_cache() {
    File f(std::fopen(model_path().c_str(), "rb"));
    if (!f) return false;
    try {
      const Header h = read_header(f.get(), kModelCacheMagic);
      if (h.uuid != gallery.uuid() || h.revision != revision || h.key != fingerprint(opt)) return false;
      std::istringstream in(gallery.unseal(rest_of(f.get())));
      classifier->load(in);
      return true;
    } catch (const Error& e) {
      last.cache_error = model_path().string() + ": " + e.what() + " (retrained)";
      return false;
    }
  }

  void save_model_cache() {
    if (!opt.use_cache) return;
    try {
      fs::create_directories(cache_dir());
      std::ostringstream body;
      classifier->save(body);
      const std::string b = gallery.seal(body.str());
      write_file_atomically_c(model_path(), [&](std::FILE* f) {
        write_header(f, kModelCacheMagic, gallery.uuid(), revision, fingerprint(opt));
        if (std::fwrite(b.data(), 1, b.size(), f) != b.size()) throw Error(ErrorCode::kStorage, "cannot write cache");
      });
    } catch (const std::exception& e) {
      last.cache_error = std::string("cannot write the model cache: ") + e.what();
    }
  }
};

Identifier::Identifier(const Gallery& gallery, EmbedderId embedder, IdentifyOptions options)
    : impl_(std::make_unique<Impl>(gallery, std::move(embedder), std::move(options))) {
  auto& m = *impl_;
  if (m.opt.top_k < 1) throw Error(ErrorCode::kInvalidArgument, "top_k must be at least 1");
  m.classifier = create_classifier(m.opt.classifier, m.opt.classifier_options);
  refresh();
}

Identifier::~Identifier() = default;
Identifier::Identifier(Identifier&&) noexcept = default;

RefreshReport Identifier::refresh() {
  auto& m = *impl_;
  const auto t0 = Clock::now();
  m.last = RefreshReport{};
  const std::int64_t before = m.revision;
  if (!m.index && m.opt.use_cache && m.revision < 0) m.load_index_cache();
  // The names are read after the index; when another writer committed in between, catch up again so that
  // both reflect one revision (a few rounds at most: writes are rare next to reads).
  for (int round = 0; round < 8; ++round) {
    if (m.index) {
      if (m.revision != m.gallery.revision() && !m.catch_up()) m.rebuild();
    } else if (m.revision != m.gallery.revision() || m.revision < 0) {
      m.rebuild();
    }
    if (m.names_revision == m.revision) break;
    std::unordered_map<std::int64_t, std::string> names;
    for (const auto& p : m.gallery.people()) names.emplace(p.id, p.name);
    if (m.gallery.revision() != m.revision) continue;
    m.names = std::move(names);
    m.names_revision = m.revision;
    break;
  }
  // A cached index carries the beam it was saved with; the caller's options decide.
  if (m.index) m.index->set_ef_search(m.opt.index.ef_search);
  const bool index_changed = m.revision != before && !(m.last.index_from_cache && m.last.added == 0 &&
                                                        m.last.removed == 0 && !m.last.rebuilt);
  // An index kept up to date in place (a server following its gallery) is saved at most every 30 s: each
  // save writes the whole index, and a process that loads an older one applies the changes since.
  const bool due = !m.saved_at || Clock::now() - *m.saved_at > std::chrono::seconds(30);
  if (index_changed && (due || m.last.rebuilt || m.last.index_from_cache)) {
    m.save_index_cache();
    m.saved_at = Clock::now();
  }
  if (index_changed && !m.last.index_from_shared) m.share_index_cache();
  if (m.classifier->trainable() && m.index && m.classifier_revision != m.revision) {
    if (m.opt.use_cache && m.load_model_cache()) {
      m.last.classifier_from_cache = true;
    } else {
      m.classifier->train(*m.index);
      m.last.retrained = true;
      m.save_model_cache();
    }
    m.classifier_revision = m.revision;
  }
  // The default threshold depends on how many people a stranger is compared with.
  if (std::isnan(m.opt.threshold)) {
    const std::int64_t people =
        m.index ? open_set_comparisons(m.opt.classifier, m.opt.aggregation, m.index->label_count(), m.index->size()) : 0;
    const std::string key = open_set_key(m.opt.classifier, m.opt.aggregation);
    m.calibration = load_open_set_calibration(m.embedder, key);
    m.threshold = detail::open_set_threshold(m.calibration, m.embedder, key, people, m.opt.fpir,
                                             &m.threshold_source);
    m.people = people;
  } else {
    m.calibration.reset();
    m.threshold = m.opt.threshold;
    m.threshold_source = "given";
  }
  m.last.revision = m.revision;
  m.last.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return m.last;
}

const RefreshReport& Identifier::last_refresh() const { return impl_->last; }

Identification Identifier::identify(const Embedding& e, const HeadPose* pose) const {
  const auto& m = *impl_;
  Identification r;
  r.turned = pose && std::abs(pose->yaw) >= m.opt.turned_yaw;
  r.threshold = r.turned ? threshold_at_yaw(pose->yaw) : m.threshold;
  if (!m.index || m.index->size() == 0) return r;
  // A mean row is one value longer than an embedding (mean_row): the probe gets a 0 there.
  const bool mean_rows = m.opt.aggregation == Aggregation::kMean;
  const int dim = m.index->dim() - (mean_rows ? 1 : 0);
  if (static_cast<int>(e.size()) != dim)
    throw Error(ErrorCode::kInvalidArgument, "embedding has " + std::to_string(e.size()) + " values, the gallery's " +
                                                 m.embedder.str() + " templates " + std::to_string(dim));
  if (m.classifier->trainable() && m.classifier_revision != m.revision)
    throw Error(ErrorCode::kInternal, "classifier is behind the index (call refresh)");
  Embedding padded;
  if (mean_rows) {
    padded.reserve(e.size() + 1);
    padded.assign(e.begin(), e.end());
    padded.push_back(0.f);
  }
  for (const auto& s : m.classifier->classify(*m.index, mean_rows ? padded.data() : e.data(), m.opt.top_k)) {
    Candidate c;
    c.person_id = s.label;
    if (const auto it = m.names.find(s.label); m.names_revision == m.revision && it != m.names.end()) {
      c.name = it->second;
    } else {
      // Only when the gallery kept moving through every round of refresh(): ask it.
      try {
        c.name = m.gallery.person(s.label).name;
      } catch (const Error& err) {
        if (err.code() == ErrorCode::kNotFound) continue;  // removed by another process since the last refresh
        throw;
      }
    }
    c.distance = s.distance;
    c.similarity = 1.f - s.distance * s.distance / 2;
    c.score = s.score;
    c.probability = s.probability;
    r.candidates.push_back(std::move(c));
  }
  r.known = !r.candidates.empty() && r.candidates[0].score >= r.threshold;
  return r;
}

std::int64_t Identifier::revision() const { return impl_->revision; }
const LabelledIndex& Identifier::index() const {
  if (!impl_->index) throw Error(ErrorCode::kNotFound, "the gallery holds no template of " + impl_->embedder.str());
  return *impl_->index;
}
const Classifier& Identifier::classifier() const { return *impl_->classifier; }
const IdentifyOptions& Identifier::options() const { return impl_->opt; }
void Identifier::set_ef_search(int ef) {
  impl_->opt.index.ef_search = ef;
  if (impl_->index) impl_->index->set_ef_search(ef);
}
float Identifier::threshold() const { return impl_->threshold; }
float Identifier::threshold_at_yaw(float yaw) const {
  const auto& m = *impl_;
  if (!m.calibration) return m.threshold;  // given, or no calibration to read a stricter one from
  return m.calibration->threshold_for(m.opt.fpir * turned_fpir_scale(yaw, m.opt), m.people);
}
std::string Identifier::threshold_source() const { return impl_->threshold_source; }

void Identifier::clear_cache(const Gallery& gallery, const IdentifyOptions& options) {
  // Every embedder's and aggregation's files: a reindex starts from the store alone.
  const fs::path dir = options.cache_dir.empty() ? gallery.cache_dir() : options.cache_dir;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto n = e.path().filename().string();
    if (n.ends_with(".index") || n.ends_with(".model")) fs::remove(e.path(), ec);
  }
}

}  // namespace facekit
