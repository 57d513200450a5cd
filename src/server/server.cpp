#include "server/server.hpp"

#include <httplib.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/json.hpp"
#include "facekit/model.hpp"

namespace facekit::server {

using nlohmann::json;
namespace jv = json_view;
using Clock = std::chrono::steady_clock;

namespace {

// A gallery in a database has no folder to keep files beside: they go to the user's data folder, under a name
// made from the location (FNV-1a of the URL without its password), so that every server on this machine given
// the same URL shares them.
std::filesystem::path beside(const std::filesystem::path& gallery, const std::string& suffix) {
  const std::string loc = gallery.string();
  if (!is_database_location(loc)) return loc + suffix;
  const std::string shown = redact_location(loc);
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : shown) h = (h ^ ch) * 1099511628211ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const auto dir = default_gallery_path().parent_path() / "servers";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return dir / (std::string("pg-") + hex + suffix);
}

}  // namespace

std::filesystem::path default_state_path(const std::filesystem::path& gallery) { return beside(gallery, ".server.db"); }
std::filesystem::path default_admin_key_path(const std::filesystem::path& gallery) {
  return beside(gallery, ".admin-key");
}

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

/// An HTTP error that is not a library Error: auth, limits, conflicts.
struct HttpError : std::runtime_error {
  HttpError(int status, std::string code, std::string title, const std::string& detail, int retry_after_s = 0)
      : std::runtime_error(detail), status(status), code(std::move(code)), title(std::move(title)),
        retry_after_s(retry_after_s) {}
  int status;
  std::string code, title;
  int retry_after_s;
};

struct Mapped {
  int status;
  const char* title;
};
Mapped map_error(ErrorCode c) {
  switch (c) {
    case ErrorCode::kInvalidArgument: return {400, "Invalid argument"};
    case ErrorCode::kBadImage: return {400, "Bad image"};
    case ErrorCode::kImageTooLarge: return {413, "Image too large"};
    case ErrorCode::kNotFound: return {404, "Not found"};
    case ErrorCode::kNoFace: return {400, "No face"};
    case ErrorCode::kPoorQuality: return {422, "Face quality too poor"};
    case ErrorCode::kModelMissing: return {500, "Model missing"};
    case ErrorCode::kModelCorrupt: return {500, "Model corrupt"};
    case ErrorCode::kStorage: return {500, "Gallery store failed"};
    case ErrorCode::kInternal: break;
  }
  return {500, "Internal error"};
}

// ---- metrics ------------------------------------------------------------------------------------------------

/// A Prometheus histogram with fixed buckets (seconds).
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10,  30};
  void observe(double s) {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < kBounds.size(); ++i)
      if (s <= kBounds[i]) ++counts_[i];
    ++count_;
    sum_ += s;
  }
  void write(std::ostream& o, const std::string& name, const std::string& labels) const {
    std::lock_guard lock(mu_);
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < kBounds.size(); ++i)
      o << name << "_bucket{" << labels << sep << "le=\"" << kBounds[i] << "\"} " << counts_[i] << "\n";
    o << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << count_ << "\n";
    o << name << "_sum{" << labels << "} " << sum_ << "\n" << name << "_count{" << labels << "} " << count_ << "\n";
  }

 private:
  mutable std::mutex mu_;
  std::array<std::uint64_t, kBounds.size()> counts_{};
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  void request(const std::string& route, int status, double seconds) {
    std::lock_guard lock(mu_);
    ++requests_[{route, status}];
    latency_[route].observe(seconds);
  }
  void stage(const std::string& stage, double ms) {
    std::lock_guard lock(mu_);
    stages_[stage].observe(ms / 1000);
  }
  void write(std::ostream& o) const {
    std::lock_guard lock(mu_);
    o << "# HELP facekit_http_requests_total Requests answered, by route and status.\n"
         "# TYPE facekit_http_requests_total counter\n";
    for (const auto& [k, n] : requests_)
      o << "facekit_http_requests_total{route=\"" << k.first << "\",status=\"" << k.second << "\"} " << n << "\n";
    o << "# HELP facekit_http_request_duration_seconds Time from routing to answer, by route.\n"
         "# TYPE facekit_http_request_duration_seconds histogram\n";
    for (const auto& [r, h] : latency_) h.write(o, "facekit_http_request_duration_seconds", "route=\"" + r + "\"");
    o << "# HELP facekit_stage_duration_seconds Time in each stage of the pipeline, per image.\n"
         "# TYPE facekit_stage_duration_seconds histogram\n";
    for (const auto& [s, h] : stages_) h.write(o, "facekit_stage_duration_seconds", "stage=\"" + s + "\"");
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_, stages_;
};

// ---- admission: a bounded queue in front of the model work ------------------------------------------------

class Admission {
 public:
  Admission(int workers, int queue, int timeout_ms) : workers_(std::max(1, workers)), queue_(std::max(0, queue)),
                                                      timeout_(std::chrono::milliseconds(timeout_ms)) {}
  class Slot {
   public:
    explicit Slot(Admission& a) : a_(a) {}
    ~Slot() { a_.release(); }
    Slot(const Slot&) = delete;

   private:
    Admission& a_;
  };
  /// A worker slot, or HttpError(503) when the queue is full or the wait runs out. Waiters are served first
  /// come, first served, so that no request starves while later ones pass it.
  std::unique_ptr<Slot> enter() {
    std::unique_lock lock(mu_);
    if (active_ < workers_ && waiters_.empty()) {
      ++active_;
      return std::make_unique<Slot>(*this);
    }
    if (static_cast<int>(waiters_.size()) >= queue_) {
      ++shed_;
      throw HttpError(503, "overloaded", "Overloaded",
                      "the server is busy (" + std::to_string(waiters_.size()) + " requests waiting); try again", 1);
    }
    Waiter w;
    waiters_.push_back(&w);
    if (!w.cv.wait_for(lock, timeout_, [&] { return w.granted; })) {
      waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &w));
      ++shed_;
      throw HttpError(503, "overloaded", "Overloaded", "no worker became free in time; try again", 1);
    }
    return std::make_unique<Slot>(*this);  // the slot was handed over by release()
  }
  void write(std::ostream& o) const {
    std::lock_guard lock(mu_);
    o << "# HELP facekit_work_active Requests doing model work.\n# TYPE facekit_work_active gauge\n"
      << "facekit_work_active " << active_ << "\n"
      << "# HELP facekit_work_waiting Requests waiting for a worker.\n# TYPE facekit_work_waiting gauge\n"
      << "facekit_work_waiting " << waiters_.size() << "\n"
      << "# HELP facekit_work_shed_total Requests refused with 503 by the work queue.\n"
         "# TYPE facekit_work_shed_total counter\nfacekit_work_shed_total "
      << shed_ << "\n";
  }

 private:
  struct Waiter {
    bool granted = false;
    std::condition_variable cv;
  };
  void release() {
    std::lock_guard lock(mu_);
    if (waiters_.empty()) {
      --active_;
      return;
    }
    Waiter* w = waiters_.front();  // the slot passes to the oldest waiter
    waiters_.pop_front();
    w->granted = true;
    w->cv.notify_one();
  }
  const int workers_, queue_;
  const std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  std::deque<Waiter*> waiters_;
  int active_ = 0;
  std::uint64_t shed_ = 0;
};

// ---- per-key rate limits: token buckets ------------------------------------------------------------------

class RateLimiter {
 public:
  /// Seconds to wait before a request would be allowed; 0: allowed now (and counted).
  int take(std::int64_t key_id, double rate) {
    if (rate <= 0) return 0;
    std::lock_guard lock(mu_);
    auto& b = buckets_[key_id];
    const auto now = Clock::now();
    const double burst = std::max(1.0, 2 * rate);
    if (b.last == Clock::time_point{}) b.tokens = burst;
    b.tokens = std::min(burst, b.tokens + rate * std::chrono::duration<double>(now - b.last).count());
    b.last = now;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return std::max(1, static_cast<int>(std::ceil((1 - b.tokens) / rate)));
  }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last{};
  };
  std::mutex mu_;
  std::map<std::int64_t, Bucket> buckets_;
};

// ---- request helpers --------------------------------------------------------------------------------------

struct Upload {
  std::string name;
  std::string bytes;
};

std::string sha256_hex(const std::string& bytes) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  char hex[2 * sizeof h + 1];
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  return hex;
}

std::string from_base64(std::string text, const std::string& what) {
  if (text.rfind("data:", 0) == 0) {  // a data URL: data:image/jpeg;base64,....
    const auto comma = text.find(',');
    text = comma == std::string::npos ? "" : text.substr(comma + 1);
  }
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t n = 0;
  for (int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                      sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING}) {
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(),
                          " \r\n\t", &n, nullptr, variant) == 0) {
      out.resize(n);
      return out;
    }
  }
  throw Error(ErrorCode::kInvalidArgument, what + " is not valid base64");
}

json compre_box(const Face& f) {
  return {{"probability", f.score},
          {"x_min", static_cast<int>(std::lround(f.box.x))},
          {"y_min", static_cast<int>(std::lround(f.box.y))},
          {"x_max", static_cast<int>(std::lround(f.box.x + f.box.width))},
          {"y_max", static_cast<int>(std::lround(f.box.y + f.box.height))}};
}

/// The five points (eyes, nose tip, mouth corners) of 68 landmarks, else the detector's keypoints.
json five_points(const Face& f) {
  json out = json::array();
  if (f.landmarks) {
    const auto& p = *f.landmarks;
    auto mean = [&](int a, int b) {
      cv::Point2f m(0, 0);
      for (int i = a; i <= b; ++i) m += p[i];
      return m * (1.0f / (b - a + 1));
    };
    for (const cv::Point2f q : {mean(36, 41), mean(42, 47), p[30], p[48], p[54]})
      out.push_back({std::lround(q.x), std::lround(q.y)});
  } else {
    for (const auto& q : f.keypoints) out.push_back({std::lround(q.x), std::lround(q.y)});
  }
  return out;
}

/// A JPEG thumbnail of a face: its box with a margin, at most 160 pixels high.
std::string thumbnail_of(const Image& rgb, const Face& f) {
  const Image region = face_region(rgb, f.box, 0.3f);
  if (region.empty()) return {};
  cv::Mat crop, bgr;
  const double s = std::min(1.0, 160.0 / region.rows);
  cv::resize(region, crop, cv::Size(), s, s, cv::INTER_AREA);
  cv::cvtColor(crop, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> buf;
  cv::imencode(".jpg", bgr, buf, {cv::IMWRITE_JPEG_QUALITY, 85});
  return std::string(buf.begin(), buf.end());
}

struct Plugins {
  bool landmarks = false, calculator = false, quality = false, liveness = false, age = false, gender = false;
  std::vector<std::string> unsupported;
  bool attributes() const { return age || gender; }
  bool analysis() const { return quality || liveness || attributes(); }
};

Plugins parse_plugins(const std::string& csv) {
  Plugins p;
  std::stringstream ss(csv);
  std::string s;
  while (std::getline(ss, s, ',')) {
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    if (s.empty()) continue;
    if (s == "landmarks") p.landmarks = true;
    else if (s == "calculator") p.calculator = true;
    else if (s == "quality") p.quality = true;
    else if (s == "liveness") p.liveness = true;
    else if (s == "age") p.age = true;
    else if (s == "gender") p.gender = true;
    else p.unsupported.push_back(s);
  }
  return p;
}

// An age bucket label of the attribute model ("26-30", "61+") as CompreFace's {low, high}; high is null when
// the bucket is open.
json age_range(const std::string& label) {
  int low = 0, high = 0;
  if (std::sscanf(label.c_str(), "%d-%d", &low, &high) == 2) return {{"low", low}, {"high", high}};
  if (std::sscanf(label.c_str(), "%d+", &low) == 1) return {{"low", low}, {"high", nullptr}};
  return {{"low", nullptr}, {"high", nullptr}};
}

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---- the server -------------------------------------------------------------------------------------------

struct Server::Impl {
  Engine& engine;
  ServerOptions opt;
  std::unique_ptr<StateStore> state;
  std::optional<std::filesystem::path> admin_created;
  httplib::Server http;
  std::thread listener, warmer;
  std::atomic<bool> ready{false};
  std::string warm_error;
  std::mutex warm_mu;
  Metrics metrics;
  Admission admission;
  RateLimiter rates;
  std::filesystem::path web_dir;
  std::string openapi;

  static ServerOptions resolved(ServerOptions o) {
    if (o.workers <= 0) o.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return o;
  }
  Impl(Engine& e, ServerOptions o)
      : engine(e), opt(resolved(std::move(o))), admission(opt.workers, opt.queue, opt.queue_timeout_ms) {}

  /// What a handler gets.
  struct Call {
    const httplib::Request& req;
    httplib::Response& res;
    std::optional<ApiKey> key;
    bool deepstack = false;
    std::optional<json> body;  // parsed JSON body, when it is one
    std::map<std::string, double> times;  // execution_time, ms

    const json& json_body() {
      if (!body) {
        try {
          body = json::parse(req.body);
        } catch (const json::exception&) {
          throw Error(ErrorCode::kInvalidArgument, "the body is not valid JSON");
        }
      }
      return *body;
    }
    bool is_json() const { return lowercase(req.get_header_value("Content-Type")).rfind("application/json", 0) == 0; }
    /// A form field (multipart part or query/urlencoded parameter).
    std::optional<std::string> field(const std::string& name) const {
      if (req.has_file(name)) return req.get_file_value(name).content;
      if (req.has_param(name)) return req.get_param_value(name);
      return std::nullopt;
    }
  };
  using Handler = void (Impl::*)(Call&);
  struct Route {
    const char* method;
    const char* path;
    unsigned scope;
    Handler fn;
  };

  // ---- replies ----
  static void reply(Call& c, const json& j, int status = 200) {
    c.res.status = status;
    c.res.set_content(jv::dump(j, -1), "application/json");
  }
  static void problem(httplib::Response& res, int status, const std::string& code, const std::string& title,
                      const std::string& detail, bool deepstack) {
    json p{{"type", "urn:facekit:error:" + code}, {"title", title}, {"status", status}, {"detail", detail},
           {"code", code}, {"message", detail}};
    if (deepstack) {
      p["success"] = false;
      p["error"] = detail;
    }
    res.status = status;
    res.set_content(jv::dump(p, -1), "application/problem+json");
  }

  // ---- parameters ----
  static int int_param(const Call& c, const char* name, int fallback, int lo, int hi) {
    const auto v = c.field(name);
    if (!v || v->empty()) return fallback;
    try {
      size_t used = 0;
      const long long x = std::stoll(*v, &used);
      if (used == v->size() && x >= lo && x <= hi) return static_cast<int>(x);
    } catch (const std::exception&) {
    }
    throw Error(ErrorCode::kInvalidArgument,
                std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  static double float_param(const Call& c, const char* name, double fallback, double lo, double hi) {
    const auto v = c.field(name);
    if (!v || v->empty()) return fallback;
    try {
      size_t used = 0;
      const double x = std::stod(*v, &used);
      if (used == v->size() && x >= lo && x <= hi) return x;
    } catch (const std::exception&) {
    }
    throw Error(ErrorCode::kInvalidArgument, std::string(name) + " must be a number in [" + std::to_string(lo) +
                                                 ", " + std::to_string(hi) + "]");
  }
  static bool bool_param(const Call& c, const char* name) {
    const auto v = c.field(name);
    if (!v) return false;
    const std::string s = lowercase(*v);
    if (s == "true" || s == "1" || s == "yes") return true;
    if (s == "false" || s == "0" || s == "no" || s.empty()) return false;
    throw Error(ErrorCode::kInvalidArgument, std::string(name) + " must be true or false");
  }
  static std::string required(const Call& c, const char* name) {
    auto v = c.field(name);
    if (!v || v->empty()) throw Error(ErrorCode::kInvalidArgument, std::string("the field '") + name + "' is required");
    return *v;
  }

  /// The images of a request: multipart parts named `field` (or `field1`, `field2`, ... for DeepStack), or
  /// JSON {"file": base64} / {"files": [base64...]}.
  static std::vector<Upload> uploads(Call& c, const std::string& field, bool numbered = false) {
    std::vector<Upload> out;
    if (c.req.is_multipart_form_data()) {
      auto [a, b] = c.req.files.equal_range(field);
      for (auto it = a; it != b; ++it) out.push_back({it->second.filename.empty() ? field : it->second.filename,
                                                      it->second.content});
      for (int i = 1; numbered && i <= 100; ++i)
        if (c.req.has_file(field + std::to_string(i))) {
          const auto& f = c.req.get_file_value(field + std::to_string(i));
          out.push_back({f.filename.empty() ? field + std::to_string(i) : f.filename, f.content});
        }
    } else if (c.is_json()) {
      const json& j = c.json_body();
      if (!j.is_object()) throw Error(ErrorCode::kInvalidArgument, "the JSON body must be an object");
      if (j.contains(field)) {
        if (!j[field].is_string()) throw Error(ErrorCode::kInvalidArgument, "'" + field + "' must be a base64 string");
        out.push_back({field, from_base64(j[field].get<std::string>(), "'" + field + "'")});
      }
      if (j.contains(field + "s")) {
        const auto& arr = j[field + "s"];
        if (!arr.is_array()) throw Error(ErrorCode::kInvalidArgument, "'" + field + "s' must be an array");
        for (size_t i = 0; i < arr.size(); ++i) {
          const std::string what = field + "s[" + std::to_string(i) + "]";
          if (!arr[i].is_string()) throw Error(ErrorCode::kInvalidArgument, "'" + what + "' must be a base64 string");
          out.push_back({what, from_base64(arr[i].get<std::string>(), "'" + what + "'")});
        }
      }
    } else {
      throw Error(ErrorCode::kInvalidArgument,
                  "send the image as multipart/form-data (field '" + field + "') or as JSON {\"" + field + "\": base64}");
    }
    if (out.empty()) throw Error(ErrorCode::kInvalidArgument, "no image in the request (field '" + field + "')");
    if (out.size() > 64) throw Error(ErrorCode::kInvalidArgument, "at most 64 images per request");
    return out;
  }

  bool batching() const { return engine.options().pipeline.embedding.batch_across_calls; }

  /// Detection in a worker slot, then identification of the faces found (returned in `faces`). With dynamic
  /// batching the embedding waits at the batcher, not in a worker slot, so that the faces of many requests meet
  /// there (the batcher runs one pass at a time: it bounds itself); then `slot` comes back empty, else held.
  IdentifyResult identify_faces(Call& c, const Image& img, std::unique_ptr<Admission::Slot>& slot,
                                std::vector<Face>& faces) {
    slot = admission.enter();
    faces = detect(c, img);
    if (batching()) slot.reset();
    IdentifyResult r = engine.identify(img, faces);
    c.times["calculator"] += r.times.embed_ms;
    c.times["search"] += r.search_ms;
    metrics.stage("embed", r.times.embed_ms);
    metrics.stage("search", r.search_ms);
    return r;
  }

  Image decode(Call& c, const Upload& u) {
    const auto t0 = Clock::now();
    Image img = engine.decode(u.bytes, u.name);
    const double ms = ms_since(t0);
    c.times["decoder"] += ms;
    metrics.stage("decode", ms);
    return img;
  }

  /// Every face of an image, filtered as the request asks: det_prob_threshold, then the `limit` (and
  /// max_faces) best-scoring.
  std::vector<Face> detect(Call& c, const Image& img) {
    const double min_prob = float_param(c, "det_prob_threshold", 0, 0, 1);
    const int limit = int_param(c, "limit", 0, 0, 1000);
    const auto t0 = Clock::now();
    std::vector<Face> faces = engine.detect(img);
    const double ms = ms_since(t0);
    c.times["detector"] += ms;
    metrics.stage("detect+landmarks", ms);
    faces.erase(std::remove_if(faces.begin(), faces.end(), [&](const Face& f) { return f.score < min_prob; }),
                faces.end());
    std::stable_sort(faces.begin(), faces.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
    size_t keep = static_cast<size_t>(std::max(1, opt.max_faces));
    if (limit > 0) keep = std::min(keep, static_cast<size_t>(limit));
    if (faces.size() > keep) faces.resize(keep);
    return faces;
  }

  /// Plugin fields of one face.
  void add_plugins(json& out, const Plugins& p, const Face& f, const FaceAnalysis* a,
                   const Embedding* e) const {
    if (p.landmarks && f.landmarks) {
      json pts = json::array();
      for (const auto& q : *f.landmarks) pts.push_back({std::lround(q.x), std::lround(q.y)});
      out["landmarks68"] = pts;
    }
    if (p.calculator && e) out["embedding"] = *e;
    if (a && p.quality) out["quality"] = jv::quality(a->quality);
    if (a && p.liveness && a->spoof) {
      const auto& s = *a->spoof;
      json l = jv::spoof(s, engine.spoof_checker().thresholds());
      l["live"] = l.value("state", "") == "live";
      out["liveness"] = l;
    }
    // CompreFace's shapes, plus the estimate in years and a reminder that these are a model's guesses.
    if (a && a->attributes && p.age && !a->attributes->age_group.empty()) {
      const auto& top = a->attributes->age_group.front();
      json g = age_range(top.label);
      g["probability"] = top.probability;
      g["years"] = a->attributes->age;
      g["estimated"] = true;
      out["age"] = g;
    }
    if (a && a->attributes && p.gender && !a->attributes->gender.empty()) {
      const auto& top = a->attributes->gender.front();
      out["gender"] = {{"value", top.label}, {"probability", top.probability}, {"estimated", true}};
    }
  }
  json plugin_versions(const Plugins& p) const {
    json v{{"detector", engine.options().pipeline.detector}, {"calculator", engine.embedder_id().str()}};
    if (p.liveness) v["liveness"] = engine.options().spoof_checker;
    if (p.quality) v["quality"] = "classic";
    if (p.age) v["age"] = engine.options().attribute_estimator;
    if (p.gender) v["gender"] = engine.options().attribute_estimator;
    return v;
  }

  /// The template of `person_id` nearest to `e` (of this engine's embedder): the example that matched.
  /// The id of the person's stored template nearest `e`; none when the person was removed meanwhile or the
  /// gallery cannot be read (a database that is away: the answer then comes without an image_id).
  std::optional<std::int64_t> nearest_template(std::int64_t person_id, const Embedding& e) {
    std::optional<std::int64_t> best;
    float bd = 1e9f;
    std::vector<Template> templates;
    try {
      templates = engine.gallery().templates_of(person_id);
    } catch (const Error& err) {
      if (err.code() != ErrorCode::kStorage && err.code() != ErrorCode::kNotFound) throw;
      return std::nullopt;
    }
    for (const auto& t : templates) {
      if (t.embedder != engine.embedder_id() || t.embedding.size() != e.size()) continue;
      const float d = l2_distance(t.embedding, e);
      if (d < bd) bd = d, best = t.id;
    }
    return best;
  }

  static json subjects_of(const Identification& id, int count) {
    json out = json::array();
    for (int i = 0; i < count && i < static_cast<int>(id.candidates.size()); ++i) {
      const auto& cd = id.candidates[i];
      out.push_back({{"subject", cd.name}, {"similarity", cd.similarity}, {"score", cd.score},
                     {"probability", cd.probability}});
    }
    return out;
  }

  // ---- handlers: service --------------------------------------------------------------------------------
  void healthz(Call& c) { reply(c, {{"status", "ok"}}); }
  void readyz(Call& c) {
    std::lock_guard lock(warm_mu);
    if (ready) {
      // A server that cannot see its gallery's changes would answer from a stale index: not ready.
      const SyncStatus sync = engine.sync_status();
      if (sync.watching && !sync.caught_up)
        return problem(c.res, 503, "not_ready", "Not ready",
                       sync.error.empty() ? "catching up with the gallery" : "cannot follow the gallery: " + sync.error,
                       false);
      return reply(c, {{"status", "ready"}, {"embedder", engine.embedder_id().str()}, {"revision", sync.revision}});
    }
    if (!warm_error.empty()) return problem(c.res, 503, "not_ready", "Not ready", warm_error, false);
    problem(c.res, 503, "not_ready", "Not ready", "loading models and building the gallery index", false);
  }
  void openapi_doc(Call& c) {
    if (openapi.empty()) throw Error(ErrorCode::kNotFound, "openapi.json is not installed");
    c.res.set_content(openapi, "application/json");
  }
  void web_file(Call& c) {
    std::string name = c.req.matches.size() > 1 ? std::string(c.req.matches[1]) : "index.html";
    static const std::regex safe(R"([A-Za-z0-9_\-]+\.(html|js|css|svg|png|ico))");
    if (!std::regex_match(name, safe)) throw Error(ErrorCode::kNotFound, "no such file: " + name);
    std::ifstream in(web_dir / name, std::ios::binary);
    if (!in) throw Error(ErrorCode::kNotFound, "no such file: " + name);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string ext = name.substr(name.rfind('.') + 1);
    static const std::map<std::string, std::string> types{{"html", "text/html; charset=utf-8"},
                                                   {"js", "text/javascript; charset=utf-8"},
                                                   {"css", "text/css; charset=utf-8"},
                                                   {"svg", "image/svg+xml"},
                                                   {"png", "image/png"},
                                                   {"ico", "image/x-icon"}};
    c.res.set_header("Cache-Control", "no-cache");
    c.res.set_header("Content-Security-Policy",
                     "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'");
    c.res.set_content(ss.str(), types.at(ext));
  }
  void metrics_text(Call& c) {
    std::ostringstream o;
    metrics.write(o);
    admission.write(o);
    o << "# HELP facekit_ready 1 once the models are loaded and the index is built.\n# TYPE facekit_ready gauge\n"
      << "facekit_ready " << (ready ? 1 : 0) << "\n";
    const SyncStatus sync = engine.sync_status();
    o << "# HELP facekit_gallery_caught_up 1 while the index follows the gallery (its last look succeeded).\n"
         "# TYPE facekit_gallery_caught_up gauge\nfacekit_gallery_caught_up "
      << (sync.caught_up ? 1 : 0) << "\n# HELP facekit_index_revision The gallery revision the index holds.\n"
         "# TYPE facekit_index_revision gauge\nfacekit_index_revision " << sync.revision << "\n";
    if (ready) {
      const GalleryStats st = engine.gallery_stats();
      o << "# HELP facekit_gallery_people People in the gallery.\n# TYPE facekit_gallery_people gauge\n"
        << "facekit_gallery_people " << st.people << "\n"
        << "# HELP facekit_gallery_templates Templates in the gallery.\n# TYPE facekit_gallery_templates gauge\n"
        << "facekit_gallery_templates " << st.templates << "\n"
        << "# HELP facekit_gallery_revision The gallery's revision.\n# TYPE facekit_gallery_revision gauge\n"
        << "facekit_gallery_revision " << st.revision << "\n";
      if (const auto b = batching_stats(engine.pipeline().embedder())) {
        o << "# HELP facekit_embed_batches_total Forward passes of the embedder (dynamic batching).\n"
             "# TYPE facekit_embed_batches_total counter\nfacekit_embed_batches_total "
          << b->batches << "\n# HELP facekit_embed_chips_total Face chips embedded.\n"
                           "# TYPE facekit_embed_chips_total counter\nfacekit_embed_chips_total "
          << b->chips << "\n# HELP facekit_embed_batch_size_total Batches by size.\n"
                         "# TYPE facekit_embed_batch_size_total counter\n";
        const char* names[] = {"1", "2", "3-4", "5-8", "9-16", "17-32", "33+"};
        for (size_t i = 0; i < b->batch_sizes.size(); ++i)
          o << "facekit_embed_batch_size_total{size=\"" << names[i] << "\"} " << b->batch_sizes[i] << "\n";
      }
    }
    c.res.set_content(o.str(), "text/plain; version=0.0.4");
  }
  void status(Call& c) {
    const GalleryStats st = engine.gallery_stats();
    json j{{"schema_version", jv::kSchemaVersion},
           {"ready", ready.load()},
           {"gallery", {{"people", st.people}, {"templates", st.templates}, {"revision", st.revision}}},
           {"sync", sync_json()},
           {"models",
            {{"detector", engine.options().pipeline.detector},
             {"landmarker", engine.options().pipeline.landmarker},
             {"embedder", engine.embedder_id().str()},
             {"spoof_checker", engine.options().spoof_checker}}},
           {"limits",
            {{"max_body_bytes", opt.max_body_bytes},
             {"max_pixels", engine.options().image_limits.max_pixels},
             {"max_faces", opt.max_faces},
             {"workers", opt.workers},
             {"queue", opt.queue},
             {"queue_timeout_ms", opt.queue_timeout_ms},
             {"rate_limit", opt.rate_limit}}}};
    if (c.key) {
      j["key"] = {{"name", c.key->name}, {"scopes", scopes_to_string(c.key->scopes)}};
      if (c.key->scopes & kAdmin) j["gallery"]["location"] = st.location;
    }
    reply(c, j);
  }

  // ---- subjects -----------------------------------------------------------------------------------------
  std::string subject_in_path(const Call& c) { return c.req.matches.size() > 1 ? std::string(c.req.matches[1]) : ""; }
  std::string subject_in_body(Call& c) {
    const json& j = c.json_body();
    if (!j.is_object() || !j.contains("subject") || !j["subject"].is_string())
      throw Error(ErrorCode::kInvalidArgument, "the body must be {\"subject\": \"NAME\"}");
    return j["subject"].get<std::string>();
  }
  void add_subject(Call& c) {
    const std::string name = subject_in_body(c);
    check_person_name(name);
    if (engine.gallery().find_person(name) || !state->declare_subject(name))
      throw HttpError(409, "conflict", "Conflict", "subject '" + name + "' exists");
    reply(c, {{"subject", name}}, 201);
  }
  /// People in the gallery and subjects declared without faces, by name.
  std::set<std::string> all_subjects() const {
    std::set<std::string> names;
    for (const auto& p : engine.people()) names.insert(p.name);
    for (auto& n : state->declared_subjects()) names.insert(n);
    return names;
  }
  void list_subjects(Call& c) {
    const auto names = all_subjects();
    reply(c, {{"subjects", std::vector<std::string>(names.begin(), names.end())}});
  }
  void rename_subject(Call& c) {
    const std::string old_name = subject_in_path(c), new_name = subject_in_body(c);
    check_person_name(new_name);
    const auto person = engine.gallery().find_person(old_name);
    if (!person && !state->subject_declared(old_name))
      throw Error(ErrorCode::kNotFound, "no subject '" + old_name + "'");
    if (new_name == old_name) return reply(c, {{"updated", true}});
    if (engine.gallery().find_person(new_name) || state->subject_declared(new_name))
      throw HttpError(409, "conflict", "Conflict", "subject '" + new_name + "' exists");
    if (person) {
      engine.rename(std::to_string(person->id), new_name);
    } else if (state->forget_subject(old_name)) {
      state->declare_subject(new_name);
    } else {
      throw Error(ErrorCode::kNotFound, "no subject '" + old_name + "'");
    }
    reply(c, {{"updated", true}});
  }
  /// Removes a subject with their examples' thumbnails; the number of examples removed, or -1 if unknown.
  int remove_subject(const std::string& name) {
    const bool declared = state->forget_subject(name);
    auto p = engine.gallery().find_person(name);
    if (!p) return declared ? 0 : -1;
    const auto templates = engine.gallery().templates_of(p->id);
    engine.remove({std::to_string(p->id)});
    for (const auto& t : templates) state->drop_thumbnail(t.id);
    return static_cast<int>(templates.size());
  }
  void delete_subject(Call& c) {
    const std::string name = subject_in_path(c);
    if (remove_subject(name) < 0) throw Error(ErrorCode::kNotFound, "no subject '" + name + "'");
    reply(c, {{"subject", name}});
  }
  void delete_all_subjects(Call& c) {
    int n = 0;
    for (const auto& name : all_subjects()) n += remove_subject(name) >= 0;
    reply(c, {{"deleted", n}});
  }

  // ---- faces (examples) -----------------------------------------------------------------------------------
  /// Enrols one photo as an example of `subject`; returns its JSON answer.
  json add_example(Call& c, const std::string& subject, const Upload& u, bool allow_poor) {
    Image img = decode(c, u);
    const std::string sha = sha256_hex(u.bytes);
    EnrollOptions eo = engine.options().enroll;
    eo.on_conflict = OnConflict::kMerge;
    eo.allow_poor = allow_poor;
    if (c.field("augment")) eo.augment.enabled = bool_param(c, "augment");
    EnrollResult r;
    {
      auto slot = admission.enter();
      const auto t0 = Clock::now();
      r = engine.enroll(subject, {EnrollPhoto{{}, img, sha, u.name}}, eo);
      c.times["enroll"] += ms_since(t0);
    }
    state->forget_subject(subject);
    std::optional<std::int64_t> id;
    for (const auto& t : engine.gallery().templates_of(r.stored.person.id))
      if (t.source_sha256 == sha && t.embedder == engine.embedder_id() && (!id || t.id < *id)) id = t.id;
    const auto& photo = r.photos.at(0);
    if (id && !state->thumbnail(*id)) state->put_thumbnail(*id, thumbnail_of(img, photo.face));
    return {{"image_id", id ? std::to_string(*id) : ""},
            {"subject", r.stored.person.name},
            {"box", compre_box(photo.face)},
            {"quality", jv::quality(photo.quality)},
            {"duplicate", r.stored.duplicates > 0}};
  }
  void add_face(Call& c) {
    const std::string subject = required(c, "subject");
    check_person_name(subject);
    const bool allow_poor = bool_param(c, "allow_poor");
    const auto ups = uploads(c, "file");
    if (ups.size() == 1) return reply(c, add_example(c, subject, ups[0], allow_poor), 201);
    json all = json::array();
    for (const auto& u : ups) all.push_back(add_example(c, subject, u, allow_poor));
    reply(c, {{"faces", all}}, 201);
  }
  void list_faces(Call& c) {
    const int page = int_param(c, "page", 0, 0, 1 << 30), size = int_param(c, "size", 20, 1, 10000);
    std::vector<Person> people;
    if (auto s = c.field("subject"); s && !s->empty()) {
      if (auto p = engine.gallery().find_person(*s)) people.push_back(*p);
      else if (!state->subject_declared(*s))
        throw Error(ErrorCode::kNotFound, "no subject '" + *s + "'");
    } else {
      people = engine.people();
    }
    std::sort(people.begin(), people.end(), [](const Person& a, const Person& b) { return a.name < b.name; });
    std::int64_t total = 0;
    for (const auto& p : people) total += p.templates;
    json faces = json::array();
    const std::int64_t from = std::int64_t(page) * size, to = from + size;
    std::int64_t at = 0;
    for (const auto& p : people) {
      if (at + p.templates <= from) {
        at += p.templates;
        continue;
      }
      if (at >= to) break;
      for (const auto& t : engine.gallery().templates_of(p.id)) {
        if (at >= from && at < to)
          faces.push_back({{"image_id", std::to_string(t.id)}, {"subject", p.name}, {"kind", t.kind},
                           {"quality", t.quality}, {"created", jv::iso_time(t.created_at)}});
        ++at;
      }
    }
    reply(c, {{"faces", faces},
              {"page_number", page},
              {"page_size", size},
              {"total_pages", (total + size - 1) / size},
              {"total_elements", total}});
  }
  static std::int64_t image_id(const std::string& s) {
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
      throw Error(ErrorCode::kNotFound, "no face with image_id '" + s + "'");
    return std::stoll(s);
  }
  json remove_example(std::int64_t id) {
    const TemplateRemoval r = engine.remove_template(id);
    state->drop_thumbnail(id);
    return {{"image_id", std::to_string(id)}, {"subject", r.person.name}, {"subject_removed", r.person_removed}};
  }
  void delete_face(Call& c) { reply(c, remove_example(image_id(subject_in_path(c)))); }
  void delete_faces_of(Call& c) {
    const std::string subject = required(c, "subject");
    const int n = remove_subject(subject);
    if (n < 0) throw Error(ErrorCode::kNotFound, "no subject '" + subject + "'");
    reply(c, {{"deleted", n}});
  }
  void delete_faces_by_id(Call& c) {
    const json& j = c.json_body();
    if (!j.is_array()) throw Error(ErrorCode::kInvalidArgument, "the body must be a JSON array of image ids");
    json out = json::array();
    for (const auto& v : j) {
      const std::string s = v.is_string() ? v.get<std::string>() : v.is_number_integer() ? v.dump() : "";
      try {
        out.push_back(remove_example(image_id(s)));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kNotFound) throw;
      }
    }
    reply(c, out);
  }
  void face_image(Call& c) {
    const std::int64_t id = image_id(subject_in_path(c));
    auto jpeg = state->thumbnail(id);
    if (!jpeg) throw Error(ErrorCode::kNotFound, "no image stored for image_id " + std::to_string(id));
    c.res.set_header("Cache-Control", "private, max-age=3600");
    c.res.set_content(*jpeg, "image/jpeg");
  }

  // ---- recognition ----------------------------------------------------------------------------------------
  json recognize_image(Call& c, const Upload& u, const Plugins& plugins, int count) {
    Image img = decode(c, u);
    std::vector<FaceAnalysis> extra;
    std::unique_ptr<Admission::Slot> slot;
    std::vector<Face> faces;
    const IdentifyResult r = identify_faces(c, img, slot, faces);
    if (plugins.analysis()) {
      if (!slot) slot = admission.enter();
      const auto t0 = Clock::now();
      AnalyzeOptions ao;
      ao.quality = plugins.quality;
      ao.spoof = plugins.liveness;
      ao.attributes = plugins.attributes();
      extra = engine.analyze(img, faces, ao);
      c.times["plugins"] += ms_since(t0);
    }
    slot.reset();
    json out = json::array();
    for (size_t i = 0; i < r.faces.size(); ++i) {
      const auto& f = r.faces[i];
      json j{{"box", compre_box(f.face)},
             {"landmarks", five_points(f.face)},
             {"subjects", subjects_of(f.identification, count)},
             {"unknown", !f.identification.known},
             {"threshold", f.identification.threshold}};
      if (!f.identification.candidates.empty()) {
        const auto& best = f.identification.candidates.front();
        if (auto t = nearest_template(best.person_id, f.embedding)) j["subjects"][0]["image_id"] = std::to_string(*t);
      }
      add_plugins(j, plugins, f.face, i < extra.size() ? &extra[i] : nullptr, &f.embedding);
      j["execution_time"] = c.times;
      out.push_back(std::move(j));
    }
    return {{"result", out}, {"revision", r.revision}, {"threshold_source", r.threshold_source}};
  }
  void recognize(Call& c) {
    const Plugins plugins = parse_plugins(c.field("face_plugins").value_or(""));
    const int count = int_param(c, "prediction_count", 1, 1, 10);
    const auto ups = uploads(c, "file");
    auto finish = [&](json j) {
      j["plugins_versions"] = plugin_versions(plugins);
      if (!plugins.unsupported.empty()) j["plugins_unsupported"] = plugins.unsupported;
      return j;
    };
    if (ups.size() == 1) return reply(c, finish(recognize_image(c, ups[0], plugins, count)));
    json images = json::array();
    for (const auto& u : ups) {
      json one = recognize_image(c, u, plugins, count);
      one["file"] = u.name;
      images.push_back(std::move(one));
    }
    reply(c, finish({{"images", images}}));
  }

  /// Similarity of two unit embeddings and the verdict at the embedder's verification threshold.
  json match(const Embedding& a, const Embedding& b) const {
    const float d = l2_distance(a, b), t = engine.pipeline().embedder().threshold();
    return {{"similarity", 1 - d * d / 2}, {"distance", d}, {"same", d <= t}};
  }
  json verify_threshold() const {
    const float t = engine.pipeline().embedder().threshold();
    return 1 - t * t / 2;
  }
  void verify_example(Call& c) {
    const std::int64_t id = image_id(subject_in_path(c));
    std::optional<Template> example;
    try {
      example = engine.gallery().template_by_id(id);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNotFound) throw;
    }
    // Templates of another embedder cannot be compared with this engine's embeddings: not an example here.
    if (!example || example->embedder != engine.embedder_id())
      throw Error(ErrorCode::kNotFound, "no face with image_id " + std::to_string(id));
    const auto ups = uploads(c, "file");
    Image img = decode(c, ups.at(0));
    std::vector<AnalyzedFace> faces;
    {
      auto slot = admission.enter();
      const auto found = detect(c, img);
      const auto t0 = Clock::now();
      if (!found.empty()) faces = engine.pipeline().embed(img, found);
      c.times["calculator"] += ms_since(t0);
    }
    json out = json::array();
    for (const auto& f : faces) {
      json j = match(f.embedding, example->embedding);
      j["box"] = compre_box(f.face);
      j["landmarks"] = five_points(f.face);
      j["threshold"] = verify_threshold();
      j["execution_time"] = c.times;
      out.push_back(std::move(j));
    }
    reply(c, {{"result", out}});
  }
  void verify_pair(Call& c) {
    auto src = uploads(c, "source_image"), dst = uploads(c, "target_image");
    Image a = decode(c, src.at(0)), b = decode(c, dst.at(0));
    std::vector<AnalyzedFace> fa, fb;
    {
      auto slot = admission.enter();
      const auto found_a = detect(c, a), found_b = detect(c, b);
      if (found_a.empty()) throw Error(ErrorCode::kNoFace, "no face in source_image");
      const auto t0 = Clock::now();
      const int main = main_face_index(found_a, a.size());
      fa = engine.pipeline().embed(a, {found_a[main]});
      if (!found_b.empty()) fb = engine.pipeline().embed(b, found_b);
      c.times["calculator"] += ms_since(t0);
    }
    json matches = json::array();
    for (const auto& f : fb) {
      json j = match(f.embedding, fa[0].embedding);
      j["box"] = compre_box(f.face);
      matches.push_back(std::move(j));
    }
    reply(c, {{"result",
               {{{"source_image_face", {{"box", compre_box(fa[0].face)}, {"landmarks", five_points(fa[0].face)}}},
                 {"face_matches", matches},
                 {"threshold", verify_threshold()},
                 {"execution_time", c.times}}}}});
  }
  void detect_route(Call& c) {
    const Plugins plugins = parse_plugins(c.field("face_plugins").value_or(""));
    const auto ups = uploads(c, "file");
    json images = json::array();
    for (const auto& u : ups) {
      Image img = decode(c, u);
      std::vector<Face> faces;
      std::vector<FaceAnalysis> extra;
      {
        auto slot = admission.enter();
        faces = detect(c, img);
        if (plugins.analysis() || plugins.calculator) {
          AnalyzeOptions ao;
          ao.quality = plugins.quality;
          ao.spoof = plugins.liveness;
          ao.attributes = plugins.attributes();
          ao.embedding = plugins.calculator;
          const auto t0 = Clock::now();
          extra = engine.analyze(img, faces, ao);
          c.times["plugins"] += ms_since(t0);
        }
      }
      json out = json::array();
      for (size_t i = 0; i < faces.size(); ++i) {
        json j{{"box", compre_box(faces[i])}, {"landmarks", five_points(faces[i])}};
        const FaceAnalysis* a = i < extra.size() ? &extra[i] : nullptr;
        add_plugins(j, plugins, faces[i], a, a && a->embedding ? &*a->embedding : nullptr);
        j["execution_time"] = c.times;
        out.push_back(std::move(j));
      }
      images.push_back({{"file", u.name}, {"result", out}});
    }
    json j = ups.size() == 1 ? json{{"result", images[0]["result"]}} : json{{"images", images}};
    j["plugins_versions"] = plugin_versions(plugins);
    if (!plugins.unsupported.empty()) j["plugins_unsupported"] = plugins.unsupported;
    reply(c, j);
  }
  void embeddings_recognize(Call& c) {
    const json& j = c.json_body();
    if (!j.is_object() || !j.contains("embeddings") || !j["embeddings"].is_array())
      throw Error(ErrorCode::kInvalidArgument, "the body must be {\"embeddings\": [[...], ...]}");
    const int count = int_param(c, "prediction_count", 1, 1, 10);
    json out = json::array();
    for (const auto& e : j["embeddings"]) {
      if (!e.is_array()) throw Error(ErrorCode::kInvalidArgument, "each embedding must be an array of numbers");
      Embedding v;
      for (const auto& x : e) {
        if (!x.is_number()) throw Error(ErrorCode::kInvalidArgument, "each embedding must be an array of numbers");
        v.push_back(x.get<float>());
      }
      const IdentifyResult r = engine.identify(v);
      const auto& id = r.faces.at(0).identification;
      out.push_back({{"embedding", v},
                     {"similarities", subjects_of(id, count)},
                     {"unknown", !id.known},
                     {"threshold", id.threshold}});
    }
    reply(c, {{"result", out}});
  }

  // ---- DeepStack ------------------------------------------------------------------------------------------
  void ds_register(Call& c) {
    const std::string user = required(c, "userid");
    check_person_name(user);
    auto ups = uploads(c, "image", true);
    for (const auto& u : ups) add_example(c, user, u, bool_param(c, "allow_poor"));
    reply(c, {{"success", true}, {"message", "face added"}, {"duration", 0}});
  }
  void ds_recognize(Call& c) {
    const auto ups = uploads(c, "image");
    const double min_conf = float_param(c, "min_confidence", -1, 0, 1);
    Image img = decode(c, ups.at(0));
    std::unique_ptr<Admission::Slot> slot;
    std::vector<Face> faces;
    const IdentifyResult r = identify_faces(c, img, slot, faces);
    slot.reset();
    json preds = json::array();
    for (const auto& f : r.faces) {
      const auto& id = f.identification;
      const bool known = id.known && !id.candidates.empty() && id.candidates[0].similarity >= min_conf;
      const json b = compre_box(f.face);
      preds.push_back({{"userid", known ? id.candidates[0].name : "unknown"},
                       {"confidence", id.candidates.empty() ? 0.0f : id.candidates[0].similarity},
                       {"x_min", b["x_min"]},
                       {"y_min", b["y_min"]},
                       {"x_max", b["x_max"]},
                       {"y_max", b["y_max"]}});
    }
    reply(c, {{"success", true}, {"predictions", preds}, {"duration", 0}});
  }
  void ds_list(Call& c) {
    std::vector<std::string> names;
    for (const auto& p : engine.people()) names.push_back(p.name);
    reply(c, {{"success", true}, {"faces", names}, {"duration", 0}});
  }
  void ds_delete(Call& c) {
    const std::string user = required(c, "userid");
    if (remove_subject(user) < 0) throw Error(ErrorCode::kNotFound, "no userid '" + user + "'");
    reply(c, {{"success", true}, {"duration", 0}});
  }

  static const std::vector<Route>& route_table() {
    static const std::vector<Route> r{
        {"GET", "/", 0, &Impl::web_file},
        {"GET", "/web/{file}", 0, &Impl::web_file},
        {"GET", "/healthz", 0, &Impl::healthz},
        {"GET", "/readyz", 0, &Impl::readyz},
        {"GET", "/openapi.json", 0, &Impl::openapi_doc},
        {"GET", "/metrics", kRead, &Impl::metrics_text},
        {"GET", "/api/v1/facekit/status", kRead, &Impl::status},
        {"POST", "/api/v1/recognition/subjects", kEnroll, &Impl::add_subject},
        {"GET", "/api/v1/recognition/subjects", kRead, &Impl::list_subjects},
        {"DELETE", "/api/v1/recognition/subjects", kEnroll, &Impl::delete_all_subjects},
        {"PUT", "/api/v1/recognition/subjects/{subject}", kEnroll, &Impl::rename_subject},
        {"DELETE", "/api/v1/recognition/subjects/{subject}", kEnroll, &Impl::delete_subject},
        {"POST", "/api/v1/recognition/faces", kEnroll, &Impl::add_face},
        {"GET", "/api/v1/recognition/faces", kRead, &Impl::list_faces},
        {"DELETE", "/api/v1/recognition/faces", kEnroll, &Impl::delete_faces_of},
        {"POST", "/api/v1/recognition/faces/delete", kEnroll, &Impl::delete_faces_by_id},
        {"DELETE", "/api/v1/recognition/faces/{image_id}", kEnroll, &Impl::delete_face},
        {"GET", "/api/v1/recognition/faces/{image_id}/img", kRead, &Impl::face_image},
        {"POST", "/api/v1/recognition/faces/{image_id}/verify", kRecognize, &Impl::verify_example},
        {"POST", "/api/v1/recognition/recognize", kRecognize, &Impl::recognize},
        {"POST", "/api/v1/verification/verify", kRecognize, &Impl::verify_pair},
        {"POST", "/api/v1/detection/detect", kRecognize, &Impl::detect_route},
        {"POST", "/api/v1/recognition/embeddings/recognize", kRecognize, &Impl::embeddings_recognize},
        {"POST", "/v1/vision/face/register", kEnroll, &Impl::ds_register},
        {"POST", "/v1/vision/face/recognize", kRecognize, &Impl::ds_recognize},
        {"POST", "/v1/vision/face/list", kRead, &Impl::ds_list},
        {"POST", "/v1/vision/face/delete", kEnroll, &Impl::ds_delete},
    };
    return r;
  }

  /// Runs one route: key, scope and rate, then the handler; every failure becomes a problem document.
  void handle(const Route& route, const httplib::Request& req, httplib::Response& res) {
    const auto t0 = Clock::now();
    Call c{req, res, std::nullopt, std::string(route.path).rfind("/v1/vision/", 0) == 0, std::nullopt, {}};
    try {
      std::string secret = req.get_header_value("x-api-key");
      if (secret.empty() && c.deepstack) secret = c.field("api_key").value_or("");
      if (!secret.empty()) c.key = state->authenticate(secret);
      const bool needs_key = route.scope && !(route.scope == kRead && opt.public_metrics &&
                                              std::string(route.path) == "/metrics");
      if (needs_key) {
        if (secret.empty())
          throw HttpError(401, "unauthorized", "Unauthorized", "an API key is required (header x-api-key)");
        if (!c.key) throw HttpError(401, "unauthorized", "Unauthorized", "the API key is not valid or was revoked");
        if (!(c.key->scopes & (route.scope | kAdmin)))
          throw HttpError(403, "forbidden", "Forbidden",
                          "the key '" + c.key->name + "' (" + scopes_to_string(c.key->scopes) +
                              ") lacks the scope this route needs: " + scopes_to_string(route.scope));
        if (const int wait = rates.take(c.key->id, c.key->rate > 0 ? c.key->rate : opt.rate_limit))
          throw HttpError(429, "rate_limited", "Too many requests",
                          "the key '" + c.key->name + "' is over its rate; retry after " + std::to_string(wait) + " s",
                          wait);
      }
      (this->*route.fn)(c);
    } catch (const HttpError& e) {
      if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
      problem(res, e.status, e.code, e.title, e.what(), c.deepstack);
    } catch (const Error& e) {
      const Mapped m = map_error(e.code());
      std::string code = to_string(e.code());
      problem(res, m.status, code, m.title, e.what(), c.deepstack);
    } catch (const json::exception& e) {
      problem(res, 400, "invalid_argument", "Invalid argument", std::string("bad JSON: ") + e.what(), c.deepstack);
    } catch (const std::bad_alloc&) {
      problem(res, 413, "image_too_large", "Too large", "the request needs more memory than the server allows",
              c.deepstack);
    } catch (const std::exception& e) {
      problem(res, 500, "internal", "Internal error", e.what(), c.deepstack);
    }
    metrics.request(route.path, res.status, std::chrono::duration<double>(Clock::now() - t0).count());
  }

  void install_routes() {
    for (const auto& r : route_table()) {
      // OpenAPI path -> the regex httplib matches: {param} becomes one path segment.
      // A subject name may hold '/' (httplib decodes %2F before matching), so {subject} takes the rest of the path.
      std::string pattern = std::regex_replace(std::string(r.path), std::regex(R"(\{subject\})"), "(.+)");
      pattern = std::regex_replace(pattern, std::regex(R"(\{[a-z_]+\})"), "([^/]+)");
      auto h = [this, &r](const httplib::Request& req, httplib::Response& res) { handle(r, req, res); };
      const std::string m = r.method;
      if (m == "GET") http.Get(pattern, h);
      else if (m == "POST") http.Post(pattern, h);
      else if (m == "PUT") http.Put(pattern, h);
      else if (m == "DELETE") http.Delete(pattern, h);
    }
    // Errors that httplib itself answers (no route, body too large, bad request line) get a problem body too.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const bool ds = req.path.rfind("/v1/vision/", 0) == 0;
      if (res.status == 413)
        problem(res, 413, "body_too_large", "Body too large",
                "the body is over the limit of " + std::to_string(opt.max_body_bytes) + " bytes", ds);
      else if (res.status == 404)
        problem(res, 404, "not_found", "Not found", "no route " + req.method + " " + req.path, ds);
      else
        problem(res, res.status, "invalid_argument", "Bad request", "the request could not be read", ds);
      metrics.request("(none)", res.status, 0);
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      problem(res, 500, "internal", "Internal error", "unexpected failure", false);
    });
  }

  json sync_json() const {
    const SyncStatus s = engine.sync_status();
    json j{{"caught_up", s.caught_up}, {"index_revision", s.revision}, {"interval_ms", opt.sync_interval_ms}};
    if (!s.error.empty()) j["error"] = s.error;
    return j;
  }

  void warm() {
    try {
      engine.load_models();
      engine.spoof_checker();
      engine.refresh_index();
      // Other servers' writes reach this one through the watcher (notifications, and a look every interval).
      engine.watch_gallery(std::chrono::milliseconds(opt.sync_interval_ms));
      ready = true;
    } catch (const std::exception& e) {
      std::lock_guard lock(warm_mu);
      warm_error = std::string("warm-up failed: ") + e.what();
    }
  }
};

Server::Server(Engine& engine, ServerOptions options) : impl_(std::make_unique<Impl>(engine, std::move(options))) {
  auto& m = *impl_;
  const auto gallery = m.engine.gallery().location();
  if (m.opt.state.empty()) m.opt.state = default_state_path(gallery);
  if (m.opt.admin_key_file.empty()) m.opt.admin_key_file = default_admin_key_path(gallery);
  m.web_dir = m.opt.web_dir.empty() ? share_dir() / "web" : m.opt.web_dir;
  if (std::ifstream in(share_dir() / "server" / "openapi.json"); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    m.openapi = ss.str();
  }
  m.state = std::make_unique<StateStore>(m.opt.state);
  if (!m.state->has_live_keys()) {
    if (std::filesystem::exists(m.opt.admin_key_file))
      throw Error(ErrorCode::kInvalidArgument, "the server state has no key but " + m.opt.admin_key_file.string() +
                                                   " exists (from another state file?); move it away to make a new one");
    const std::string secret = m.state->create_key("admin", kAdmin);
    const int fd = ::open(m.opt.admin_key_file.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(ErrorCode::kStorage, "cannot write " + m.opt.admin_key_file.string());
    const std::string line = secret + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!ok) throw Error(ErrorCode::kStorage, "cannot write " + m.opt.admin_key_file.string());
    m.admin_created = m.opt.admin_key_file;
  }
  m.install_routes();
  m.http.new_task_queue = [n = std::max(4, m.opt.http_threads)] { return new httplib::ThreadPool(n); };
  m.http.set_payload_max_length(m.opt.max_body_bytes);
  m.http.set_read_timeout(m.opt.read_timeout_s, 0);
  m.http.set_write_timeout(m.opt.read_timeout_s, 0);
  m.http.set_keep_alive_max_count(1000);
  m.http.set_keep_alive_timeout(5);
}

Server::~Server() { stop(); }

namespace {

/// cpp-httplib 0.11 listens with a backlog of 5: 200 clients connecting at once lose SYNs and retry after 1, 3,
/// 7, 15 s (seen as a 16 s tail in bench/serve_load). Linux lets listen() be called again on the listening
/// socket to raise its backlog; the socket is found among this process's descriptors by its port.
void widen_backlog(int port) {
  for (int fd = 0; fd < 4096; ++fd) {
    int listening = 0;
    socklen_t len = sizeof listening;
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof addr;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) ::listen(fd, SOMAXCONN);
  }
}

}  // namespace

int Server::start() {
  auto& m = *impl_;
  int port = m.opt.port;
  if (port == 0) {
    port = m.http.bind_to_any_port(m.opt.host);
    if (port < 0) throw Error(ErrorCode::kInvalidArgument, "cannot listen on " + m.opt.host);
  } else if (!m.http.bind_to_port(m.opt.host, port)) {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot listen on " + m.opt.host + ":" + std::to_string(port) + " (in use, or not an address here)");
  }
  widen_backlog(port);
  m.listener = std::thread([&m] { m.http.listen_after_bind(); });
  m.warmer = std::thread([&m] { m.warm(); });
  return port;
}

void Server::stop() {
  auto& m = *impl_;
  m.http.stop();
  if (m.listener.joinable()) m.listener.join();
  if (m.warmer.joinable()) m.warmer.join();
}

bool Server::ready() const { return impl_->ready; }
std::optional<std::filesystem::path> Server::admin_key_created() const { return impl_->admin_created; }
StateStore& Server::state() { return *impl_->state; }

std::vector<RouteInfo> Server::routes() {
  std::vector<RouteInfo> out;
  for (const auto& r : Impl::route_table()) out.push_back({r.method, r.path, r.scope});
  return out;
}

}  // namespace facekit::server
