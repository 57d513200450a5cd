#include "facekit/json.hpp"

#include <cmath>
#include <ctime>

#include "facekit/error.hpp"

namespace facekit::json_view {

namespace {
json num(float v) { return std::isnan(v) ? json(nullptr) : json(v); }
json versioned(json j) {
  j["schema_version"] = kSchemaVersion;
  return j;
}
}  // namespace

std::string iso_time(std::int64_t t) {
  char buf[32];
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

json box(const Box& b) { return {{"x", b.x}, {"y", b.y}, {"width", b.width}, {"height", b.height}}; }

json face(const Face& f) {
  json j = {{"box", box(f.box)}, {"score", f.score}};
  if (f.landmarks) {
    json pts = json::array();
    for (const auto& p : *f.landmarks) pts.push_back({p.x, p.y});
    j["landmarks68"] = pts;
    json five = json::array();
    for (const auto& p : reduce_to_5(*f.landmarks)) five.push_back({p.x, p.y});
    j["landmarks5"] = five;
  }
  return j;
}

json quality(const FaceQuality& q) {
  return {{"score", q.score},
          {"level", to_string(q.level)},
          {"reasons", q.reasons},
          {"sharpness", q.sharpness},
          {"exposure",
           {{"brightness", q.brightness}, {"contrast", q.contrast}, {"too_dark", q.too_dark},
            {"too_bright", q.too_bright}, {"low_contrast", q.low_contrast}}},
          {"pose", {{"yaw", q.pose.yaw}, {"pitch", q.pose.pitch}, {"roll", q.pose.roll}}},
          {"face_size", q.face_size},
          {"eye_distance", q.eye_distance},
          {"eye_aspect_ratio", q.eye_aspect_ratio},
          {"eyes_open", q.eyes_open},
          {"inside_fraction", q.inside_fraction},
          {"cut_by_border", q.cut_by_border}};
}

json spoof(const SpoofResult& r, const SpoofThresholds& t) {
  json signals = json::object();
  for (const auto& s : r.signals) signals[s.name] = {{"score", s.score}, {"state", to_string(s.state)}};
  return {{"score", r.score},
          {"state", to_string(r.state)},
          {"thresholds", {{"decision", t.decision}, {"live", t.live}, {"spoof", t.spoof}}},
          {"signals", signals},
          {"crop", box(r.crop)}};
}

json person(const Person& p) {
  json meta;
  try {
    meta = json::parse(p.metadata);
  } catch (const json::exception&) {
    meta = p.metadata;  // stored by an older facekit; shown as it is
  }
  return versioned({{"id", p.id}, {"name", p.name}, {"metadata", meta}, {"created_at", iso_time(p.created_at)},
                    {"templates", p.templates}});
}

json template_info(const Template& t) {
  return {{"id", t.id},
          {"embedder", t.embedder.str()},
          {"kind", t.kind},
          {"quality", t.quality},
          {"source_sha256", t.source_sha256},
          {"created_at", iso_time(t.created_at)},
          {"dim", t.embedding.size()}};
}

json candidate(const Candidate& c) {
  json j = {{"person_id", c.person_id}, {"name", c.name},   {"distance", c.distance},
            {"similarity", c.similarity}, {"score", c.score}, {"probability", c.probability}};
  if (c.match_probability) j["match_probability"] = *c.match_probability;
  return j;
}

json gallery_stats(const GalleryStats& st, const std::string& uuid) {
  json by = json::array();
  for (const auto& [e, n] : st.templates_by_embedder)
    by.push_back({{"embedder", e.str()}, {"templates", n}, {"people", st.people_by_embedder.at(e)}});
  return versioned({{"gallery", st.location}, {"format_version", st.format_version}, {"revision", st.revision},
                    {"uuid", uuid},           {"people", st.people},                 {"templates", st.templates},
                    {"embedders", by},        {"bytes", st.bytes},                   {"encrypted", st.encrypted}});
}

json detection(const std::string& image, const Image& rgb, const std::vector<Face>& faces) {
  json fj = json::array();
  for (const auto& f : faces) fj.push_back(face(f));
  return versioned({{"image", image}, {"width", rgb.cols}, {"height", rgb.rows}, {"faces", fj}});
}

json attributes(const FaceAttributes& a, const std::string& model) {
  const auto top = [](const std::vector<LabelScore>& v) { return v.empty() ? std::string() : v.front().label; };
  const auto probs = [](const std::vector<LabelScore>& v) {
    json o = json::object();
    for (const auto& l : v) o[l.label] = l.probability;
    return o;
  };
  // Only what the model gives: a gender-only model has no age or group.
  json j = {{"model", model}, {"estimated", true}, {"probabilities", json::object()}};
  if (!a.age_group.empty()) {
    j["age"] = a.age;
    j["age_group"] = top(a.age_group);
    j["probabilities"]["age_group"] = probs(a.age_group);
  }
  if (!a.gender.empty()) j["gender"] = top(a.gender), j["probabilities"]["gender"] = probs(a.gender);
  if (!a.group.empty()) j["group"] = top(a.group), j["probabilities"]["group"] = probs(a.group);
  return j;
}

json detection(const std::string& image, const Image& rgb, const std::vector<Face>& faces,
               const std::vector<FaceAttributes>& attrs, const std::string& model) {
  if (attrs.size() != faces.size()) throw Error(ErrorCode::kInvalidArgument, "one attribute set per face is needed");
  json d = detection(image, rgb, faces);
  for (size_t i = 0; i < faces.size(); ++i) d["faces"][i]["attributes"] = attributes(attrs[i], model);
  return d;
}

json embeddings(const std::string& image, const std::string& model, const std::vector<AnalyzedFace>& faces) {
  json fj = json::array();
  for (const auto& a : faces) {
    json j = face(a.face);
    j["embedding"] = a.embedding;
    fj.push_back(std::move(j));
  }
  return versioned({{"image", image}, {"model", model}, {"faces", fj}});
}

json quality_report(const std::string& image, const Image& rgb, const std::vector<FaceAnalysis>& faces) {
  json fj = json::array();
  for (const auto& f : faces)
    fj.push_back({{"box", box(f.face.box)}, {"detection_score", f.face.score}, {"quality", quality(f.quality)}});
  return versioned({{"image", image}, {"width", rgb.cols}, {"height", rgb.rows}, {"faces", fj}});
}

json spoof_report(const std::string& image, const Image& rgb, const SpoofChecker& checker,
                  const std::vector<SpoofedFace>& faces) {
  json fj = json::array();
  for (const auto& f : faces) {
    json j = spoof(f.result, checker.thresholds());
    j["box"] = box(f.face.box);
    j["detection_score"] = f.face.score;
    fj.push_back(std::move(j));
  }
  return versioned(
      {{"image", image}, {"width", rgb.cols}, {"height", rgb.rows}, {"checker", checker.name()}, {"faces", fj}});
}

json verification(const VerifyResult& r, const std::string& model) {
  json j = versioned({{"same", r.same},
                    {"distance", r.distance},
                    {"threshold", r.threshold},
                    {"model", model},
                    {"faces_in_a", r.faces_in_a},
                    {"faces_in_b", r.faces_in_b},
                    {"face_a", face(r.a.face)},
                    {"face_b", face(r.b.face)}});
  if (r.probability) j["probability"] = *r.probability;  // P(same) from the embedder's score calibration
  return j;
}

json enrolment(const EnrollResult& r, bool augmented, const std::string& embedder, const std::string& gallery) {
  json ph = json::array();
  for (const auto& p : r.photos)
    ph.push_back({{"image", p.label}, {"sha256", p.sha256}, {"box", box(p.face.box)}, {"score", p.face.score},
                  {"quality", quality(p.quality)}});
  json pj = person(r.stored.person);
  pj.erase("schema_version");
  return versioned({{"person", pj},
                    {"created", r.stored.created},
                    {"templates_added", r.stored.added},
                    {"duplicates_skipped", r.stored.duplicates},
                    {"augmented", augmented},
                    {"embedder", embedder},
                    {"gallery", gallery},
                    {"photos", ph}});
}

json identified_image(const std::string& image, const Image& rgb, const IdentifyResult& r) {
  json fj = json::array();
  for (const auto& f : r.faces) {
    const auto& id = f.identification;
    json cj = json::array();
    for (const auto& c : id.candidates) cj.push_back(candidate(c));
    fj.push_back({{"box", box(f.face.box)},
                  {"detection_score", f.face.score},
                  {"identity", id.known ? id.candidates[0].name : "unknown"},
                  {"person_id", id.known ? json(id.candidates[0].person_id) : json(nullptr)},
                  {"known", id.known},
                  {"threshold", id.threshold},
                  {"turned", id.turned},
                  {"candidates", cj}});
  }
  return {{"image", image}, {"width", rgb.cols}, {"height", rgb.rows}, {"revision", r.revision}, {"faces", fj}};
}

json identification(const IdentifyResult& last, const json& images) {
  return versioned({{"gallery", last.gallery},
                    {"revision", last.revision},
                    {"embedder", last.embedder},
                    {"classifier", last.classifier},
                    {"threshold", last.threshold},
                    {"threshold_source", last.threshold_source},
                    {"people", last.people},
                    {"images", images}});
}

json person_record(const PersonRecord& r) {
  json tj = json::array();
  for (const auto& t : r.templates) tj.push_back(template_info(t));
  json j = person(r.person);
  j["template_list"] = tj;
  return j;
}

json active_liveness(const ActiveLivenessResult& r, bool timeline) {
  json ev = json::array(), ch = json::array();
  for (const auto& e : r.events)
    ev.push_back({{"kind", e.kind}, {"first_frame", e.first_frame}, {"last_frame", e.last_frame},
                  {"start_s", e.start_s}, {"end_s", e.end_s}, {"magnitude", e.magnitude}});
  for (const auto& c : r.challenges)
    ch.push_back({{"challenge", to_string(c.challenge)}, {"passed", c.passed}, {"first_frame", c.first_frame},
                  {"last_frame", c.last_frame}, {"deadline_s", c.deadline_s}});
  json j = {{"state", to_string(r.state)},
            {"reasons", r.reasons},
            {"frames", r.frames.size()},
            {"frames_with_face", r.frames_with_face},
            {"tracks", r.tracks},
            {"duration_s", r.duration_s},
            {"ear_baseline", num(r.ear_baseline)},
            {"yaw_baseline", num(r.yaw_baseline)},
            {"passive_mean", num(r.passive_mean)},
            {"events", ev},
            {"challenges", ch}};
  if (timeline) {
    json t = json::array();
    for (const auto& f : r.frames)
      t.push_back({{"index", f.index}, {"time_s", f.time_s}, {"faces", f.faces}, {"track", f.track},
                   {"ear", num(f.ear)}, {"yaw", f.track >= 0 ? json(f.pose.yaw) : json(nullptr)},
                   {"pitch", f.track >= 0 ? json(f.pose.pitch) : json(nullptr)},
                   {"roll", f.track >= 0 ? json(f.pose.roll) : json(nullptr)}, {"passive", num(f.passive)}});
    j["timeline"] = t;
  }
  return versioned(std::move(j));
}

std::string dump(const json& j, int indent) { return j.dump(indent, ' ', false, json::error_handler_t::replace); }

}  // namespace facekit::json_view
