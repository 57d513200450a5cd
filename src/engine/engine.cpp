#include "facekit/engine.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>

#include "facekit/error.hpp"
#include "facekit/model.hpp"

namespace facekit {

void check_model_name(const std::string& name, const std::string& kind, const std::string& what) {
  ModelManifest m;
  try {
    m = load_manifest(name);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNotFound) throw;
    std::string known;
    for (const auto& n : list_manifests()) {
      try {
        if (load_manifest(n).kind == kind) known += (known.empty() ? "" : ", ") + n;
      } catch (const Error&) {
      }
    }
    throw Error(ErrorCode::kInvalidArgument,
                what + " " + name + ": no such " + kind + " (known: " + known +
                    (kind == "embedder" ? "; or a model directory written by facekit train" : "") + ")");
  }
  if (m.kind != kind) throw Error(ErrorCode::kInvalidArgument, what + " " + name + ": a " + m.kind + ", not a " + kind);
}

namespace {

/// The index and names of one gallery revision, shared by the identify() calls that use it. It is brought up
/// to date in place, under `mu` held alone, by applying the changes since its revision (milliseconds, however
/// large the gallery: copying a million-row index per change would not be); identify() holds `mu` shared,
/// so an answer never mixes two revisions.
struct Snapshot {
  std::unique_ptr<Identifier> identifier;
  std::atomic<std::int64_t> revision{-1};
  mutable std::shared_mutex mu;
};

}  // namespace

struct Engine::Impl {
  EngineOptions opt;
  EmbedderId eid;
  int embedding_dim = 0;  // from the manifest; 0 when it does not say
  ScoreCalibration calibration;  // distance -> P(same): the options' map, else the manifest's

  mutable std::once_flag pipeline_once;
  mutable std::unique_ptr<FacePipeline> pipe;
  mutable std::once_flag quality_once;
  mutable std::unique_ptr<QualityAssessor> assessor;
  mutable std::once_flag spoof_once;
  mutable std::unique_ptr<SpoofChecker> checker;
  mutable std::once_flag attributes_once;
  mutable std::unique_ptr<AttributeEstimator> estimator;

  mutable std::mutex gallery_mu;  // opening the gallery
  mutable std::unique_ptr<Gallery> store;

  mutable std::mutex write_mu;    // the engine's writes, one at a time
  mutable std::mutex build_mu;    // one snapshot build at a time
  mutable std::mutex snap_mu;     // guards `snap` (the pointer, not what it points to)
  mutable std::shared_ptr<Snapshot> snap;
  // Set by the engine's own writes; the time the gallery's revision was last asked for (steady clock, ns).
  mutable std::atomic<bool> dirty{true};
  mutable std::atomic<std::int64_t> polled_ns{0};

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  /// After one of the engine's writes committed.
  void wrote() const { dirty = true; }

  const FacePipeline& pipeline() const {
    std::call_once(pipeline_once, [&] {
      if (!pipe) pipe = std::make_unique<FacePipeline>(opt.pipeline);
    });
    return *pipe;
  }
  const QualityAssessor& quality() const {
    std::call_once(quality_once, [&] {
      QualityOptions q = opt.quality;
      q.eye_landmarker = GeometryMeter::landmarker_for(q.eye_landmarker, opt.pipeline.landmarker);
      assessor = create_quality_assessor("classic", q);
    });
    return *assessor;
  }
  const SpoofChecker& spoof() const {
    std::call_once(spoof_once, [&] {
      SpoofOptions so = opt.spoof;
      so.device = opt.pipeline.device;
      checker = create_spoof_checker(opt.spoof_checker, so);
    });
    return *checker;
  }
  const AttributeEstimator& attributes() const {
    std::call_once(attributes_once, [&] {
      AttributeOptions ao;
      ao.device = opt.pipeline.device;
      estimator = create_attribute_estimator(opt.attribute_estimator, ao);
    });
    return *estimator;
  }
  Gallery& gallery() const {
    std::lock_guard lock(gallery_mu);
    if (!store) {
      const auto path = opt.gallery.empty() ? default_gallery_path() : opt.gallery;
      store = open_gallery(path, opt.gallery_options);
    }
    return *store;
  }

  std::shared_ptr<Snapshot> current() const {
    std::lock_guard lock(snap_mu);
    return snap;
  }

  /// The newest snapshot: the current one when the gallery has not moved; otherwise it is brought up to date
  /// first, unless another thread is doing that (then the current one answers: readers wait for no update
  /// but the first build and the in-place apply of a change).
  std::shared_ptr<Snapshot> snapshot() const {
    auto s = current();
    Gallery& g = gallery();
    // Between polls, with no write of ours since the snapshot, it is the newest state this engine knows of.
    const std::int64_t now = now_ns();
    if (s && !dirty && now - polled_ns < std::int64_t(opt.revision_poll_ms) * 1000000) return s;
    polled_ns = now;
    // A gallery that cannot be asked (its database is away) leaves the index as it was: identify() goes on
    // answering from it, and the watcher (readyz) reports the outage.
    const auto revision_or_stale = [&]() -> std::optional<std::int64_t> {
      try {
        return g.revision();
      } catch (const Error& e) {
        if (!s || e.code() != ErrorCode::kStorage) throw;
        return std::nullopt;
      }
    };
    const auto latest = revision_or_stale();
    if (!latest || (s && !dirty && s->revision == *latest)) return s;
    std::unique_lock build(build_mu, std::defer_lock);
    if (s) {
      if (!build.try_lock()) return s;
    } else {
      build.lock();
    }
    s = current();
    dirty = false;  // a write from now on makes the snapshot below stale again
    // A snapshot built aside and then published: readers keep the old one while it is built.
    const auto publish_new = [&] {
      auto next = std::make_shared<Snapshot>();
      next->identifier = std::make_unique<Identifier>(g, eid, opt.identify);
      next->revision = next->identifier->revision();
      std::lock_guard lock(snap_mu);
      snap = next;
      return next;
    };
    if (!s) return publish_new();
    if (s->revision != g.revision()) {
      // An SVM retrains on every change (seconds to a minute): built aside, not under the readers' lock.
      if (s->identifier->classifier().trainable()) return publish_new();
      std::unique_lock alone(s->mu);
      s->identifier->refresh();
      s->revision = s->identifier->revision();
    }
    return s;
  }

  // ---- following the gallery (watch_gallery) ----
  std::thread watcher;
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool watch_stop = false;
  mutable std::mutex sync_mu;
  SyncStatus sync;

  void watch_loop(std::chrono::milliseconds interval) {
    using Clock = std::chrono::steady_clock;
    auto last = Clock::now();  // watch_gallery looked just before
    for (;;) {
      {
        std::lock_guard lock(watch_mu);
        if (watch_stop) return;
      }
      bool woke = false;
      try {
        // In slices of at most 200 ms, so that stopping is prompt.
        woke = gallery().wait_for_change(std::min<std::chrono::milliseconds>(interval, std::chrono::milliseconds(200)));
      } catch (const std::exception&) {
        woke = true;
      }
      {
        std::lock_guard lock(watch_mu);
        if (watch_stop) return;
      }
      if (!woke && Clock::now() - last < interval) continue;
      last = Clock::now();
      if (!look()) {
        std::unique_lock w(watch_mu);
        watch_cv.wait_for(w, std::min<std::chrono::milliseconds>(interval, std::chrono::seconds(1)),
                          [&] { return watch_stop; });
      }
    }
  }

  /// One look at the gallery, recorded in `sync`; false when the gallery could not be reached.
  bool look() {
    try {
      dirty = true;
      gallery().revision();  // throws while the gallery is away (snapshot() would answer from the old index)
      const auto s = snapshot();
      std::lock_guard lock(sync_mu);
      sync.revision = s->revision;
      sync.error.clear();
      sync.caught_up = true;
      sync.checks += 1;
      return true;
    } catch (const std::exception& e) {
      std::lock_guard lock(sync_mu);
      sync.error = e.what();
      sync.caught_up = false;
      sync.checks += 1;
      return false;
    }
  }

  ~Impl() {
    {
      std::lock_guard lock(watch_mu);
      watch_stop = true;
    }
    watch_cv.notify_all();
    if (watcher.joinable()) watcher.join();
  }

  /// A gallery that holds templates of other embedders only (enrolled before the default embedder changed,
  /// or with another --model) cannot answer: say so rather than call everyone unknown.
  void refuse_other_embedders_gallery() const {
    const GalleryStats st = gallery().stats();
    if (st.templates_by_embedder.empty() || st.templates_by_embedder.count(eid)) return;
    std::string others;
    for (const auto& [e, n] : st.templates_by_embedder)
      others += (others.empty() ? "" : ", ") + e.str() + " (" + std::to_string(n) + " templates)";
    throw Error(ErrorCode::kInvalidArgument, "the gallery holds templates of " + others + " and none of " + eid.str() +
                                                 ", the embedder in use: identify with that embedder (--model " +
                                                 st.templates_by_embedder.begin()->first.name + ") or enrol again");
  }

  /// `image_size`: the photo the faces are in (their head pose needs it); empty when there is none.
  IdentifyResult identify_embeddings(const std::vector<std::pair<Face, const Embedding*>>& faces,
                                     cv::Size image_size) const {
    const auto s = snapshot();
    std::shared_lock shared(s->mu);
    const Identifier& id = *s->identifier;
    IdentifyResult r;
    r.revision = s->revision;
    r.embedder = eid.str();
    r.classifier = opt.identify.classifier;
    r.threshold = id.threshold();
    r.threshold_source = id.threshold_source();
    r.gallery = gallery().location();
    r.cache_error = id.last_refresh().cache_error;
    try {
      r.people = id.index().label_count();
    } catch (const Error&) {
      r.people = 0;  // no template of this embedder
    }
    if (r.people == 0) refuse_other_embedders_gallery();
    const auto t0 = std::chrono::steady_clock::now();
    for (const auto& [face, e] : faces) {
      std::optional<HeadPose> pose;
      if (face.landmarks && !image_size.empty()) pose = estimate_head_pose(*face.landmarks, image_size);
      r.faces.push_back({face, id.identify(*e, pose ? &*pose : nullptr), *e});
      if (!calibration.empty())
        for (auto& c : r.faces.back().identification.candidates) c.match_probability = calibration.probability_at(c.distance);
    }
    r.search_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }

  /// Faces with their embeddings against the newest snapshot, with the stage times that found them.
  IdentifyResult identify_analyzed(const std::vector<AnalyzedFace>& faces, const StageTimes& times,
                                   cv::Size image_size) const {
    std::vector<std::pair<Face, const Embedding*>> in;
    for (const auto& f : faces) in.emplace_back(f.face, &f.embedding);
    IdentifyResult r = identify_embeddings(in, image_size);
    r.times = times;
    return r;
  }

  /// A person by id (all digits) or by name. New names cannot be all digits; a gallery written by an older
  /// facekit may hold one, and then a reference that is both one person's id and another's name is refused.
  Person resolve(const std::string& ref) const {
    const Gallery& g = gallery();
    const bool numeric = !ref.empty() && ref.find_first_not_of("0123456789") == std::string::npos && ref.size() < 19;
    std::optional<Person> by_id;
    if (numeric) {
      try {
        by_id = g.person(std::stoll(ref));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kNotFound) throw;
      }
    }
    const std::optional<Person> by_name = g.find_person(ref);
    if (by_id && by_name && by_id->id != by_name->id)
      throw Error(ErrorCode::kInvalidArgument, "'" + ref + "' is both the id of " + by_id->name +
                                                   " and the name of person " + std::to_string(by_name->id) +
                                                   "; refer to them by the other's name or id");
    if (by_id) return *by_id;
    if (by_name) return *by_name;
    throw Error(ErrorCode::kNotFound, "no person '" + ref + "' in the gallery " + g.location());
  }
};

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.opt = std::move(options);
  check_model_name(m.opt.pipeline.embedder, "embedder", "embedder");
  check_model_name(m.opt.pipeline.detector, "detector", "detector");
  const ModelManifest em = load_manifest(m.opt.pipeline.embedder);
  m.eid = {em.name, em.version};
  m.embedding_dim = em.embedding_dim;
  m.calibration = calibration_for(m.opt.pipeline, em);
  m.opt.enroll.image_limits = m.opt.image_limits;
  if (m.opt.identify.top_k < 1) throw Error(ErrorCode::kInvalidArgument, "top_k must be at least 1");
}

Engine::Engine(EngineOptions options, FacePipeline pipeline) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.opt = std::move(options);
  m.pipe = std::make_unique<FacePipeline>(std::move(pipeline));
  const ModelManifest& em = m.pipe->embedder().manifest();
  m.eid = {em.name, em.version};
  m.embedding_dim = em.embedding_dim;
  m.calibration = calibration_for(m.opt.pipeline, em);
  m.opt.pipeline.embedder = em.name;
  m.opt.enroll.image_limits = m.opt.image_limits;
  if (m.opt.identify.top_k < 1) throw Error(ErrorCode::kInvalidArgument, "top_k must be at least 1");
}

Engine::~Engine() = default;

const EngineOptions& Engine::options() const { return impl_->opt; }
void Engine::load_models() const { impl_->pipeline(); }
const FacePipeline& Engine::pipeline() const { return impl_->pipeline(); }
EmbedderId Engine::embedder_id() const { return impl_->eid; }

Image Engine::load(const std::filesystem::path& path) const { return load_image(path, impl_->opt.image_limits); }
Image Engine::decode(const std::string& bytes, const std::string& name) const {
  return decode_image(bytes, impl_->opt.image_limits, name);
}

std::vector<Face> Engine::detect(const Image& rgb) const { return impl_->pipeline().detect(rgb); }
std::vector<AnalyzedFace> Engine::embed(const Image& rgb) const { return impl_->pipeline().analyze(rgb); }

std::vector<FaceAnalysis> Engine::analyze(const Image& rgb, const AnalyzeOptions& o) const {
  const auto& pipe = impl_->pipeline();
  std::vector<Face> faces = pipe.detect(rgb);
  if (faces.empty() && o.rescue) {
    try {
      faces.push_back(pipe.detect_one(rgb, FacePick::kLargest));
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNoFace) throw;
    }
  }
  return analyze(rgb, faces, o);
}

std::vector<FaceAnalysis> Engine::analyze(const Image& rgb, const std::vector<Face>& faces,
                                          const AnalyzeOptions& o) const {
  const auto& pipe = impl_->pipeline();
  std::vector<FaceAnalysis> out;
  std::vector<AnalyzedFace> embedded;
  if (o.embedding && !faces.empty()) embedded = pipe.embed(rgb, faces);
  std::vector<FaceAttributes> attrs;
  if (o.attributes && !faces.empty()) attrs = attributes(rgb, faces);
  for (size_t i = 0; i < faces.size(); ++i) {
    FaceAnalysis a;
    a.face = faces[i];
    if (o.quality) a.quality = impl_->quality().assess(rgb, faces[i]);
    if (o.spoof) a.spoof = impl_->spoof().check(rgb, faces[i]);
    if (o.embedding) a.embedding = embedded.at(i).embedding;
    if (o.attributes) a.attributes = attrs.at(i);
    out.push_back(std::move(a));
  }
  return out;
}

VerifyResult Engine::verify(const Image& a, const Image& b, float threshold) const {
  VerifyResult r = impl_->pipeline().verify(a, b);
  if (!std::isnan(threshold)) {
    if (!(threshold > 0 && threshold < 2))
      throw Error(ErrorCode::kInvalidArgument, "a distance threshold must lie in (0, 2)");
    r.threshold = threshold;
    r.same = r.distance <= threshold;
  }
  return r;
}

std::vector<SpoofedFace> Engine::spoof(const Image& rgb, bool whole_image) const {
  std::vector<Face> faces;
  if (whole_image) {
    faces.emplace_back();
    faces.back().box = {0, 0, float(rgb.cols), float(rgb.rows)};
  } else {
    faces = impl_->pipeline().detector().detect(rgb);
  }
  const auto& checker = impl_->spoof();
  std::vector<SpoofedFace> out;
  for (const auto& f : faces) out.push_back({f, checker.check(rgb, f)});
  return out;
}

const SpoofChecker& Engine::spoof_checker() const { return impl_->spoof(); }

std::vector<FaceAttributes> Engine::attributes(const Image& rgb, const std::vector<Face>& faces) const {
  return impl_->attributes().estimate_batch(std::vector<const Image*>(faces.size(), &rgb), faces);
}

const AttributeEstimator& Engine::attribute_estimator() const { return impl_->attributes(); }

ActiveLivenessResult Engine::liveness(FrameSource& source, ActiveLivenessOptions o, bool passive,
                                      int max_frames) const {
  if (passive) {
    const SpoofChecker* checker = &impl_->spoof();
    o.passive = [checker](const Image& rgb, const Face& face) { return checker->check(rgb, face).score; };
    o.passive_threshold = checker->thresholds().decision;
  } else {
    o.passive = nullptr;
  }
  return check_active_liveness(source, impl_->pipeline(), o, max_frames);
}

EnrollResult Engine::enroll(const std::string& name, const std::vector<EnrollPhoto>& photos) {
  return enroll(name, photos, impl_->opt.enroll);
}

EnrollResult Engine::enroll(const std::string& name, const std::vector<EnrollPhoto>& photos,
                            const EnrollOptions& options) {
  // Cheap refusals before any model work; the gallery opens before the slow part, so that one that cannot be
  // opened is reported at once.
  check_person_name(name);
  check_metadata(options.metadata);
  EnrollOptions eo = options;
  eo.image_limits = impl_->opt.image_limits;
  Gallery& g = impl_->gallery();
  const auto& pipe = impl_->pipeline();
  std::lock_guard lock(impl_->write_mu);
  EnrollResult r = facekit::enroll(g, pipe, name, photos, eo);
  impl_->wrote();
  return r;
}

IdentifyResult Engine::identify(const Image& rgb) const {
  impl_->gallery();  // a gallery that cannot be opened fails before the models load
  StageTimes times;
  return impl_->identify_analyzed(impl_->pipeline().analyze(rgb, &times), times, rgb.size());
}

IdentifyResult Engine::identify(const Image& rgb, const std::vector<Face>& faces) const {
  impl_->gallery();
  StageTimes times;
  std::vector<AnalyzedFace> embedded;
  if (!faces.empty()) embedded = impl_->pipeline().embed(rgb, faces, &times);
  return impl_->identify_analyzed(embedded, times, rgb.size());
}

IdentifyResult Engine::identify(const Embedding& embedding) const {
  const int dim = impl_->embedding_dim;
  if (dim > 0 && static_cast<int>(embedding.size()) != dim)
    throw Error(ErrorCode::kInvalidArgument, "an embedding of " + impl_->eid.str() + " has " + std::to_string(dim) +
                                                 " values, not " + std::to_string(embedding.size()));
  double norm = 0;
  for (float v : embedding) norm += double(v) * v;
  if (!std::isfinite(norm) || std::abs(norm - 1) > 1e-3)
    throw Error(ErrorCode::kInvalidArgument, "an embedding must be finite and of unit length (its length is " +
                                                 std::to_string(std::sqrt(norm)) + ")");
  return impl_->identify_embeddings({{Face{}, &embedding}}, {});
}

std::vector<Person> Engine::people() const { return impl_->gallery().people(); }
Person Engine::find(const std::string& ref) const { return impl_->resolve(ref); }

PersonRecord Engine::person(const std::string& ref) const {
  PersonRecord r;
  r.person = impl_->resolve(ref);
  r.templates = impl_->gallery().templates_of(r.person.id);
  return r;
}

Person Engine::rename(const std::string& ref, const std::string& new_name) {
  std::lock_guard lock(impl_->write_mu);
  const Person p = impl_->resolve(ref);
  impl_->gallery().rename_person(p.id, new_name);
  impl_->wrote();
  return p;
}

std::vector<Person> Engine::remove(const std::vector<std::string>& refs) {
  std::lock_guard lock(impl_->write_mu);
  std::vector<Person> who;
  for (const auto& r : refs) {  // every reference resolved before any removal
    Person p = impl_->resolve(r);
    if (std::none_of(who.begin(), who.end(), [&](const Person& w) { return w.id == p.id; })) who.push_back(std::move(p));
  }
  for (const auto& p : who) {
    impl_->gallery().remove_person(p.id);
    impl_->wrote();
  }
  return who;
}

TemplateRemoval Engine::remove_template(std::int64_t template_id) {
  std::lock_guard lock(impl_->write_mu);
  TemplateRemoval r = impl_->gallery().remove_template(template_id);
  impl_->wrote();
  return r;
}

GalleryStats Engine::gallery_stats() const { return impl_->gallery().stats(); }

IndexStatus Engine::refresh_index() const {
  const auto s = impl_->snapshot();
  std::shared_lock shared(s->mu);
  IndexStatus st;
  st.refresh = s->identifier->last_refresh();
  st.index = "none";
  try {
    st.rows = s->identifier->index().size();
    st.index = s->identifier->index().index().description();
  } catch (const Error&) {
  }
  st.classifier = s->identifier->classifier().describe();
  return st;
}

Gallery& Engine::gallery() { return impl_->gallery(); }

void Engine::watch_gallery(std::chrono::milliseconds interval) {
  auto& m = *impl_;
  if (m.watcher.joinable()) return;
  if (interval < std::chrono::milliseconds(10)) interval = std::chrono::milliseconds(10);
  {
    std::lock_guard lock(m.sync_mu);
    m.sync.watching = true;
  }
  m.look();  // so that the status is known before the first wake-up
  m.watcher = std::thread([&m, interval] { m.watch_loop(interval); });
}

SyncStatus Engine::sync_status() const {
  std::lock_guard lock(impl_->sync_mu);
  return impl_->sync;
}

}  // namespace facekit
