// Video benchmark (issue 16): test clips built from LFW photos, and the tracks of `facekit video` scored
// against their ground truth.
//
//   facekit_bench_video generate --lfw DIR --out DIR [--seconds 20] [--seed 1] [--unknown 1]
//     Picks enrolled people among LFW's people with >= 10 photos and unknown ones among the rest, enrols the
//     enrolled from photos 6-10 of each (gallery.db), and writes clip.avi (640x480, 25 frames/s, MJPG) in which
//     people move along smooth paths, cross (the one drawn later hides the other), leave and re-enter, each
//     appearance showing another of photos 1-5; truth.json holds every person's face box in every frame.
//   facekit_bench_video score --truth truth.json --tracks tracks.json [--json report.json]
//     Matches the tracks' boxes to the true faces frame by frame (IoU >= 0.3); over the faces at least half
//     visible it reports coverage, ID switches (a person's track changing within one appearance),
//     fragmentation (tracks per appearance), tracks on two people, identification accuracy over the
//     track-frames of enrolled people, and what the unknown person was called. A box matching no face is
//     counted: it is a false detection or a face the truth does not know (LFW photos show bystanders).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"

namespace fk = facekit;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kWidth = 640, kHeight = 480;
constexpr double kFps = 25;

std::string arg(const std::map<std::string, std::string>& a, const std::string& k, const std::string& def = "") {
  const auto it = a.find(k);
  if (it != a.end()) return it->second;
  if (def.empty()) throw fk::Error(fk::ErrorCode::kInvalidArgument, "missing " + k);
  return def;
}

// A person's photo ready to paste: the region around the face, and the face box within it.
struct Sprite {
  fk::Image img;
  fk::Box face;
};

Sprite make_sprite(const fk::FacePipeline& pipe, const fs::path& photo, float face_width) {
  const fk::Image img = fk::load_image(photo);
  const fk::Face f = pipe.detect_one(img, fk::FacePick::kMain);
  const cv::Point2f c = f.box.center();
  const float side = 1.9f * std::max(f.box.width, f.box.height);
  const cv::Rect r = cv::Rect(static_cast<int>(c.x - side / 2), static_cast<int>(c.y - side * 0.55f),
                              static_cast<int>(side), static_cast<int>(side)) &
                     cv::Rect(0, 0, img.cols, img.rows);
  const float s = face_width / f.box.width;
  Sprite out;
  cv::resize(img(r), out.img, cv::Size(), s, s, cv::INTER_AREA);
  out.face = {(f.box.x - r.x) * s, (f.box.y - r.y) * s, f.box.width * s, f.box.height * s};
  return out;
}

// One appearance: a person on screen from `first` to `last` frame along waypoints of the face centre (eased
// between them: smooth starts and stops), which may lie outside the picture (entering, leaving).
struct Appearance {
  int person = 0;
  int photo = 0;
  int first = 0, last = 0;
  std::vector<cv::Point2f> path;
  float face_width = 100;
};

cv::Point2f position(const Appearance& a, int frame) {
  const float u = static_cast<float>(frame - a.first) / static_cast<float>(std::max(1, a.last - a.first));
  const float seg = u * static_cast<float>(a.path.size() - 1);
  const size_t i = std::min(static_cast<size_t>(seg), a.path.size() - 2);
  const float t = seg - static_cast<float>(i), e = 0.5f - 0.5f * std::cos(t * static_cast<float>(CV_PI));
  return a.path[i] * (1 - e) + a.path[i + 1] * e;
}

// The script of a clip of `frames` frames (scaled from a 20 s plan): people 0-2 enrolled, 3 unknown; at most
// three on screen at once. P0 and P1 cross (P1 hides P0), P0 leaves right and comes back, P2 leaves through
// the top and re-enters from the bottom, the unknown crosses P1.
std::vector<Appearance> script(int frames) {
  const auto f = [&](double s) { return static_cast<int>(s / 20.0 * frames); };
  const float out_l = -120, out_r = kWidth + 120, out_t = -140, out_b = kHeight + 140;
  return {
      {0, 0, 0, f(8.8), {{out_l, 170}, {160, 160}, {320, 200}, {480, 180}, {out_r, 160}}, 100},
      {1, 0, 0, f(20) - 1, {{560, 200}, {420, 190}, {160, 190}, {220, 320}, {450, 330}, {520, 200}}, 105},
      {2, 0, f(2.4), f(10.4), {{300, out_b}, {330, 330}, {120, 340}, {200, 200}, {240, out_t}}, 95},
      {3, 0, f(9.2), f(16.8), {{out_r, 300}, {520, 320}, {300, 330}, {140, 300}, {out_l, 310}}, 100},
      {0, 1, f(12), f(20) - 1, {{out_r, 140}, {480, 120}, {360, 130}, {420, 160}}, 95},
      {2, 1, f(17.2), f(20) - 1, {{150, out_b}, {140, 360}, {160, 340}}, 100},
  };
}

int generate(const std::map<std::string, std::string>& a) {
  const fs::path lfw = arg(a, "--lfw"), out = arg(a, "--out");
  const int frames = static_cast<int>(std::stod(arg(a, "--seconds", "20")) * kFps);
  const unsigned seed = static_cast<unsigned>(std::stoul(arg(a, "--seed", "1")));
  fs::create_directories(out);

  // People with >= 10 photos (enrolled: 5 photos to enrol, 5 for the clip), in a seeded order.
  std::vector<std::string> many, few;
  for (const auto& e : fs::directory_iterator(lfw)) {
    if (!e.is_directory()) continue;
    const auto n = std::distance(fs::directory_iterator(e.path()), fs::directory_iterator());
    (n >= 10 ? many : few).push_back(e.path().filename().string());
  }
  std::sort(many.begin(), many.end());
  std::sort(few.begin(), few.end());
  std::mt19937 rng(seed);
  std::shuffle(many.begin(), many.end(), rng);
  std::shuffle(few.begin(), few.end(), rng);
  const std::vector<std::string> people = {many[0], many[1], many[2], few[0]};  // the last one is not enrolled
  const auto photo = [&](const std::string& name, int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "_%04d.jpg", i + 1);
    return lfw / name / (name + buf);
  };

  fk::EngineOptions eo;
  eo.gallery = out / "gallery.db";
  fs::remove(eo.gallery);
  fk::Engine engine(eo);
  fk::EnrollOptions enrol;
  enrol.allow_poor = true;  // LFW as it is: the clip's faces are no better
  for (int p = 0; p < 3; ++p) {
    // LFW photos often show a second face at the edge: enrol the main face's region, as a user would crop it.
    int n = 0;
    for (int i = 5; i < 10; ++i) {
      const fs::path file = photo(people[static_cast<size_t>(p)], i);
      const fk::Image img = fk::load_image(file);
      const fk::Box b = engine.pipeline().detect_one(img, fk::FacePick::kMain).box;
      const float m = 0.4f * b.width;
      const cv::Rect r = cv::Rect(static_cast<int>(b.x - m), static_cast<int>(b.y - m), static_cast<int>(b.width + 2 * m),
                                  static_cast<int>(b.height + 2 * m)) &
                         cv::Rect(0, 0, img.cols, img.rows);
      try {
        engine.enroll(people[static_cast<size_t>(p)], {{{}, fk::Image(img(r).clone()), {}, file.string()}}, enrol);
        ++n;
      } catch (const fk::Error& e) {
        std::fprintf(stderr, "skipped %s: %s\n", file.c_str(), e.what());
      }
    }
    std::fprintf(stderr, "enrolled %s from %d photos\n", people[static_cast<size_t>(p)].c_str(), n);
  }

  const std::vector<Appearance> plan = script(frames);
  std::vector<Sprite> sprites;
  for (const auto& ap : plan) {
    // The unknown person may have a single photo: use it for every appearance.
    const std::string& name = people[static_cast<size_t>(ap.person)];
    fs::path p = photo(name, ap.photo);
    if (!fs::exists(p)) p = photo(name, 0);
    sprites.push_back(make_sprite(engine.pipeline(), p, ap.face_width));
  }

  cv::VideoWriter w((out / "clip.avi").string(), cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), kFps,
                    cv::Size(kWidth, kHeight));
  if (!w.isOpened()) throw fk::Error(fk::ErrorCode::kStorage, "cannot write the clip");
  // A background with some texture (a coarse, muted noise field), the same in every frame. Sharper or more
  // colourful noise made the detector see a face in it now and then.
  cv::Mat noise(kHeight / 40, kWidth / 40, CV_8UC3), bg;
  cv::randu(noise, cv::Scalar(70, 80, 90), cv::Scalar(130, 140, 150));
  cv::resize(noise, bg, cv::Size(kWidth, kHeight), 0, 0, cv::INTER_CUBIC);
  cv::GaussianBlur(bg, bg, cv::Size(0, 0), 8);
  json truth = json::array();
  for (int f = 0; f < frames; ++f) {
    cv::Mat canvas = bg.clone();
    std::vector<std::pair<size_t, fk::Box>> drawn;  // appearance, face box in the frame
    for (size_t k = 0; k < plan.size(); ++k) {
      const Appearance& ap = plan[k];
      if (f < ap.first || f > ap.last) continue;
      const Sprite& s = sprites[k];
      const cv::Point2f c = position(ap, f);
      const int x = static_cast<int>(std::lround(c.x - s.face.x - s.face.width / 2));
      const int y = static_cast<int>(std::lround(c.y - s.face.y - s.face.height / 2));
      const cv::Rect dst = cv::Rect(x, y, s.img.cols, s.img.rows) & cv::Rect(0, 0, kWidth, kHeight);
      if (dst.area() > 0) s.img(cv::Rect(dst.x - x, dst.y - y, dst.width, dst.height)).copyTo(canvas(dst));
      drawn.push_back({k, {s.face.x + static_cast<float>(x), s.face.y + static_cast<float>(y), s.face.width, s.face.height}});
    }
    // What share of each face shows: inside the picture and not under a sprite drawn after it.
    json people_here = json::array();
    for (size_t i = 0; i < drawn.size(); ++i) {
      const fk::Box& b = drawn[i].second;
      cv::Mat mask = cv::Mat::zeros(kHeight, kWidth, CV_8U);
      const cv::Rect fr = cv::Rect(static_cast<int>(b.x), static_cast<int>(b.y), static_cast<int>(b.width),
                                   static_cast<int>(b.height));
      mask(fr & cv::Rect(0, 0, kWidth, kHeight)).setTo(1);
      for (size_t j = i + 1; j < drawn.size(); ++j) {
        const size_t k = drawn[j].first;
        const cv::Point2f c = position(plan[k], f);
        const Sprite& s = sprites[k];
        const cv::Rect sr(static_cast<int>(std::lround(c.x - s.face.x - s.face.width / 2)),
                          static_cast<int>(std::lround(c.y - s.face.y - s.face.height / 2)), s.img.cols, s.img.rows);
        mask(sr & cv::Rect(0, 0, kWidth, kHeight)).setTo(0);
      }
      const double visible = cv::countNonZero(mask) / std::max(1.0, static_cast<double>(fr.area()));
      const Appearance& ap = plan[drawn[i].first];
      people_here.push_back({{"person", people[static_cast<size_t>(ap.person)]},
                             {"enrolled", ap.person < 3},
                             {"appearance", drawn[i].first},
                             {"box", {b.x, b.y, b.width, b.height}},
                             {"visible", std::round(visible * 100) / 100}});
    }
    truth.push_back({{"frame", f}, {"people", people_here}});
    cv::Mat bgr;
    cv::cvtColor(canvas, bgr, cv::COLOR_RGB2BGR);  // photos load as RGB, the writer takes BGR
    w.write(bgr);
  }
  json j{{"clip", "clip.avi"}, {"fps", kFps}, {"width", kWidth}, {"height", kHeight}, {"frames", frames},
         {"people", people}, {"enrolled", {people[0], people[1], people[2]}}, {"truth", truth}};
  std::ofstream(out / "truth.json") << j.dump() << "\n";
  std::printf("wrote %s/clip.avi (%d frames), truth.json, gallery.db; enrolled %s, %s, %s; unknown %s\n",
              out.c_str(), frames, people[0].c_str(), people[1].c_str(), people[2].c_str(), people[3].c_str());
  return 0;
}

float iou(const std::vector<float>& a, const std::vector<float>& b) {
  return fk::iou({a[0], a[1], a[2], a[3]}, {b[0], b[1], b[2], b[3]});
}

int score(const std::map<std::string, std::string>& a) {
  const json truth = json::parse(std::ifstream(arg(a, "--truth")));
  const json tracks = json::parse(std::ifstream(arg(a, "--tracks")));
  const float min_iou = 0.3f, min_visible = 0.5f;

  // Each frame's track boxes, and each track's identity.
  std::map<int, std::vector<std::pair<int, std::vector<float>>>> boxes;  // frame -> (track, box)
  std::map<int, std::string> identity;
  for (const auto& t : tracks["tracks"]) {
    const int id = t["id"];
    identity[id] = t["identity"];
    for (const auto& b : t["boxes"]) boxes[b[0].get<int>()].push_back({id, {b[1], b[2], b[3], b[4]}});
  }

  int eval = 0, covered = 0, known_frames = 0, known_right = 0, unknown_frames = 0, unknown_right = 0,
      switches = 0, false_boxes = 0, track_boxes = 0;
  std::map<int, std::vector<int>> by_appearance;  // appearance -> matched track per evaluable frame
  std::map<int, std::string> appearance_person;
  std::map<int, std::set<std::string>> track_people;
  std::map<std::string, int> unknown_called;
  for (const auto& fr : truth["truth"]) {
    const int f = fr["frame"];
    auto& here = boxes[f];
    track_boxes += static_cast<int>(here.size());
    std::vector<bool> used(here.size(), false);
    // Greedy: faces at least half visible first (a hidden face's box lies under the face in front of it),
    // the best-overlapping (person, track) pairs first.
    std::vector<std::tuple<bool, float, size_t, size_t>> pairs;
    for (size_t p = 0; p < fr["people"].size(); ++p)
      for (size_t k = 0; k < here.size(); ++k)
        if (const float v = iou(fr["people"][p]["box"].get<std::vector<float>>(), here[k].second); v >= min_iou)
          pairs.push_back({fr["people"][p]["visible"].get<float>() >= min_visible, v, p, k});
    std::sort(pairs.rbegin(), pairs.rend());
    std::vector<int> match(fr["people"].size(), -1);
    for (const auto& [evaluable, v, p, k] : pairs)
      if (match[p] < 0 && !used[k]) match[p] = static_cast<int>(k), used[k] = true;
    for (size_t p = 0; p < fr["people"].size(); ++p) {
      const auto& person = fr["people"][p];
      const bool evaluable = person["visible"].get<float>() >= min_visible;
      if (match[p] < 0) continue;
      if (!evaluable) continue;
      const int tid = here[static_cast<size_t>(match[p])].first;
      track_people[tid].insert(person["person"].get<std::string>());
      const int ap = person["appearance"];
      appearance_person[ap] = person["person"];
      by_appearance[ap].push_back(tid);
      if (person["enrolled"]) {
        ++known_frames;
        known_right += identity[tid] == person["person"];
      } else {
        ++unknown_frames;
        unknown_right += identity[tid] == "unknown";
        ++unknown_called[identity[tid]];
      }
    }
    for (size_t p = 0; p < fr["people"].size(); ++p) eval += fr["people"][p]["visible"].get<float>() >= min_visible;
    for (size_t p = 0; p < fr["people"].size(); ++p)
      covered += match[p] >= 0 && fr["people"][p]["visible"].get<float>() >= min_visible;
    for (size_t k = 0; k < here.size(); ++k) false_boxes += !used[k];
  }
  json per_appearance = json::array();
  double fragments = 0;
  for (const auto& [ap, ids] : by_appearance) {
    int sw = 0;
    for (size_t i = 1; i < ids.size(); ++i) sw += ids[i] != ids[i - 1];
    switches += sw;
    const std::set<int> distinct(ids.begin(), ids.end());
    fragments += static_cast<double>(distinct.size());
    std::vector<std::string> names;
    for (int t : distinct) names.push_back(std::to_string(t) + ":" + identity[t]);
    per_appearance.push_back({{"appearance", ap}, {"person", appearance_person[ap]}, {"frames", ids.size()},
                              {"tracks", names}, {"id_switches", sw}});
  }
  int merged = 0;
  for (const auto& [t, who] : track_people) merged += who.size() > 1;
  json r{{"truth_faces", eval},
         {"coverage", eval ? static_cast<double>(covered) / eval : 0},
         {"id_switches", switches},
         {"appearances", by_appearance.size()},
         {"fragmentation", by_appearance.empty() ? 0 : fragments / static_cast<double>(by_appearance.size())},
         {"tracks", tracks["tracks"].size()},
         {"tracks_on_two_people", merged},
         {"enrolled_track_frames", known_frames},
         {"identification_accuracy", known_frames ? static_cast<double>(known_right) / known_frames : 0},
         {"unknown_track_frames", unknown_frames},
         {"unknown_reported_unknown", unknown_frames ? static_cast<double>(unknown_right) / unknown_frames : 0},
         {"unknown_called", unknown_called},
         {"boxes_on_no_face", false_boxes},
         {"track_boxes", track_boxes},
         {"processing_fps", tracks.value("processing_fps", 0.0)},
         {"per_appearance", per_appearance}};
  if (a.count("--json")) std::ofstream(a.at("--json")) << r.dump(2) << "\n";
  std::printf("coverage %.3f  id switches %d  fragmentation %.2f (%zu appearances, %zu tracks, %d on two people)\n"
              "identification accuracy %.4f over %d enrolled track-frames; unknown reported unknown %.4f of %d\n"
              "boxes on no face %d of %d; processing %.1f frames/s\n",
              r["coverage"].get<double>(), switches, r["fragmentation"].get<double>(), by_appearance.size(),
              tracks["tracks"].size(), merged, r["identification_accuracy"].get<double>(), known_frames,
              r["unknown_reported_unknown"].get<double>(), unknown_frames, false_boxes, track_boxes,
              r["processing_fps"].get<double>());
  for (const auto& p : per_appearance) std::printf("  %s\n", p.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || (std::string(argv[1]) != "generate" && std::string(argv[1]) != "score") || argc % 2 != 0) {
    std::fprintf(stderr,
                 "usage: %s generate --lfw DIR --out DIR [--seconds 20] [--seed 1]\n"
                 "       %s score --truth truth.json --tracks tracks.json [--json report.json]\n",
                 argv[0], argv[0]);
    return 2;
  }
  std::map<std::string, std::string> a;
  for (int i = 2; i + 1 < argc; i += 2) a[argv[i]] = argv[i + 1];
  try {
    return std::string(argv[1]) == "generate" ? generate(a) : score(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
