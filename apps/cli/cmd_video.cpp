// video (FILE | --camera N | URL) [--gallery G] [--out annotated.mp4] [--json tracks.json]: faces tracked and
// identified through a video (the library's VideoAnalyzer); frames/s shown live on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "facekit/video.hpp"

namespace facekit::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct VideoArgs {
  std::string source;
  int camera = -1;
  GalleryArgs gallery;
  std::string out, json_out, crops;
  int max_frames = 0;
  bool quiet = false;
  VideoOptions opt;
};

// The codecs tried for each container, best first. OpenCV 4.6's FFmpeg writer on Debian writes H.264 (avc1,
// libx264: what browsers play) and MPEG-4 part 2 (mp4v) into .mp4/.mov/.mkv, MJPG into .avi (docs/video.md).
cv::VideoWriter open_writer(const std::string& path, double fps, cv::Size size) {
  std::string ext = fs::path(path).extension().string();
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  std::vector<const char*> codecs;
  if (ext == ".mp4" || ext == ".mov" || ext == ".mkv")
    codecs = {"avc1", "mp4v"};
  else if (ext == ".avi")
    codecs = {"MJPG"};
  else
    throw Error(ErrorCode::kInvalidArgument, "--out " + path + ": give a .mp4, .mov, .mkv or .avi file");
  cv::VideoWriter w;
  for (const char* c : codecs)
    if (w.open(path, cv::VideoWriter::fourcc(c[0], c[1], c[2], c[3]), fps, size)) return w;
  throw Error(ErrorCode::kStorage, "--out " + path + ": OpenCV cannot write this video file");
}

json track_json(const Track& t, const std::string& crop_path) {
  json boxes = json::array();
  for (size_t i = 0; i < t.frames.size(); ++i) {
    const Box& b = t.boxes[i];
    boxes.push_back({t.frames[i], std::round(b.x * 10) / 10, std::round(b.y * 10) / 10, std::round(b.width * 10) / 10,
                     std::round(b.height * 10) / 10, t.detected[i] ? 1 : 0});
  }
  json j{{"id", t.id},
         {"first_frame", t.first_frame},
         {"last_frame", t.last_frame},
         {"first_time_s", t.first_time_s},
         {"last_time_s", t.last_time_s},
         {"identity", t.known ? t.name : "unknown"},
         {"known", t.known},
         {"similarity", t.similarity},
         {"score", t.score},
         {"threshold", t.threshold},
         {"best_candidate", t.best_candidate},
         {"faces_aggregated", t.faces_aggregated},
         {"detections", t.detections},
         {"reassociations", t.reassociations},
         {"best_quality", t.best_quality},
         {"best_crop", crop_path.empty() ? json(nullptr) : json(crop_path)},
         {"boxes", boxes}};
  if (t.liveness) j["liveness"] = {{"score", *t.liveness}, {"state", to_string(*t.liveness_state)}};
  return j;
}

int cmd_video(const Common& c, VideoArgs& a) {
  if (a.source.empty() == (a.camera < 0))
    throw Error(ErrorCode::kInvalidArgument, "give exactly one source: a video FILE or URL, or --camera N");
  // With no --gallery nothing is identified: every track is unknown and no gallery is opened.
  const bool with_gallery = !a.gallery.path.empty();
  EngineOptions eo = with_gallery ? gallery_engine_options(c, a.gallery, false, true) : engine_options(c);
  Engine engine(eo);
  a.opt.identify = with_gallery;
  if (with_gallery) {
    const IndexStatus st = engine.refresh_index();  // a gallery that cannot be opened fails before the video
    if (st.rows == 0)
      std::fprintf(stderr, "note: the gallery %s holds no %s template; every track is unknown\n",
                   engine.gallery().location().c_str(), engine.embedder_id().str().c_str());
  }
  auto source = a.camera >= 0 ? open_stream(std::to_string(a.camera)) : open_stream(a.source);
  if (!a.crops.empty()) fs::create_directories(a.crops);
  engine.load_models();
  VideoAnalyzer video(engine, a.opt);

  cv::VideoWriter writer;
  Image rgb;
  double t = 0;
  const bool tty = ::isatty(2);
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto last_report = start;
  int n = 0;
  for (; (a.max_frames <= 0 || n < a.max_frames) && source->next(rgb, t); ++n) {
    const VideoFrame& f = video.push(rgb, t);
    if (!a.out.empty()) {
      if (!writer.isOpened()) writer = open_writer(a.out, source->fps(), rgb.size());
      Image shown = rgb.clone();
      draw_tracks(shown, f);
      cv::Mat bgr;
      cv::cvtColor(shown, bgr, cv::COLOR_RGB2BGR);
      writer.write(bgr);
    }
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_report).count();
    if (!a.quiet && since >= (tty ? 0.5 : 5.0)) {
      const double el = std::chrono::duration<double>(now - start).count();
      std::fprintf(stderr, "%sframe %d  %.1f s  %.1f frames/s  %zu faces%s", tty ? "\r" : "", n + 1, t, (n + 1) / el,
                   f.tracks.size(), tty ? "   " : "\n");
      std::fflush(stderr);
      last_report = now;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const std::vector<Track> tracks = video.finish();
  const double fps = n / std::max(seconds, 1e-9);
  if (!a.quiet)
    std::fprintf(stderr, "%s%d frames in %.1f s: %.1f frames/s, %zu tracks\n", tty ? "\r" : "", n, seconds, fps,
                 tracks.size());

  json list = json::array();
  for (const Track& tr : tracks) {
    std::string crop;
    if (!a.crops.empty() && !tr.best_crop.empty()) {
      crop = (fs::path(a.crops) / ("track_" + std::to_string(tr.id) + ".jpg")).string();
      save_image(crop, tr.best_crop);
    }
    list.push_back(track_json(tr, crop));
    if (a.json_out != "-")
      std::printf("track %d  frames %d-%d (%.2f-%.2f s)  %s  similarity %.3f%s\n", tr.id, tr.first_frame, tr.last_frame,
                  tr.first_time_s, tr.last_time_s, tr.known ? tr.name.c_str() : "unknown", tr.similarity,
                  tr.liveness ? (std::string("  liveness ") + to_string(*tr.liveness_state)).c_str() : "");
  }
  if (!a.json_out.empty()) {
    const VideoTimes& tm = video.times();
    json j{{"source", source->description()},
           {"fps", source->fps()},
           {"frames", n},
           {"detect_every", a.opt.detect_every},
           {"processing_fps", fps},
           {"times_ms",
            {{"detect", tm.detect_ms}, {"quality", tm.quality_ms}, {"embed", tm.embed_ms},
             {"identify", tm.identify_ms}, {"liveness", tm.liveness_ms}, {"track", tm.track_ms},
             {"detection_frames", tm.detection_frames}, {"embeddings", tm.embeddings}}},
           {"gallery", with_gallery ? json(engine.gallery().location()) : json(nullptr)},
           {"tracks", list}};
    if (a.json_out == "-") {
      std::cout << dump_json(j) << "\n";
    } else {
      std::ofstream f(a.json_out);
      f << dump_json(j) << "\n";
      if (!f) throw Error(ErrorCode::kStorage, "cannot write " + a.json_out);
    }
  }
  return 0;
}

}  // namespace

void add_video_commands(CLI::App& app, Common& c, Commands& out) {
  auto a = std::make_shared<VideoArgs>();
  auto* v = app.add_subcommand("video", "track and identify faces through a video file, a camera or a stream");
  v->add_option("source", a->source, "a video file, or a stream URL (rtsp://, http://, ...)");
  v->add_option("--camera", a->camera, "read camera N instead")->check(CLI::Range(0, 999));
  add_gallery_option(v, a->gallery);
  v->get_option("--gallery")->description("identify tracks against this gallery file (without it every track is unknown)");
  v->add_option("--out", a->out, "write the video with boxes, track ids and names (.mp4/.mov/.mkv: H.264, else MPEG-4; .avi: MJPG)");
  v->add_option("--json", a->json_out, "write the tracks as JSON to this file (- for stdout)");
  v->add_option("--crops", a->crops, "save each track's best face crop in this folder (named in the JSON)");
  v->add_option("--every", a->opt.detect_every, "detect faces every K-th frame, predict boxes between")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  v->add_option("--best-faces", a->opt.best_faces, "best-quality faces per track aggregated into its identity")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  v->add_option("--max-lost", a->opt.tracker.max_lost_frames,
                "frames a track may go unseen before it ends (meanwhile a face can re-join it by embedding)")
      ->capture_default_str()->check(CLI::Range(0, 100000));
  v->add_option("--iou", a->opt.tracker.iou_threshold, "overlap with a track's predicted box that continues it")
      ->capture_default_str()->check(finite_range(0, 1, true));
  v->add_flag("--liveness", a->opt.liveness, "score each track with the passive anti-spoofing checker");
  v->add_option("--max-frames", a->max_frames, "read at most this many frames (0: all)")
      ->capture_default_str()->check(CLI::Range(0, 100000000));
  v->add_flag("--quiet", a->quiet, "no progress line");
  out.emplace_back(v, [&c, a] { return cmd_video(c, *a); });
}

}  // namespace facekit::cli
