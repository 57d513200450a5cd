// cluster (group a photo library's faces by person) and bench cluster (the methods against folder labels).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/cluster.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/json.hpp"
#include "facekit/pipeline.hpp"
#include "common.hpp"
#include "progress.hpp"

namespace facekit::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

struct ClusterArgs {
  std::vector<std::string> paths;
  std::string out, method = "agglomerative", cache, json_out, thresholds, methods, html;
  int html_faces = 40;  ///< thumbnails shown per cluster in the contact sheet
  float threshold = std::numeric_limits<float>::quiet_NaN();
  ClusterOptions opt;
  ScanOptions scan;
};

LibraryScan scan(const FacePipeline& pipe, ClusterArgs& a) {
  std::vector<fs::path> roots(a.paths.begin(), a.paths.end());
  const auto photos = list_photos(roots);
  if (photos.empty()) throw Error(ErrorCode::kNotFound, "no photos (jpg, jpeg, png, bmp, webp) under the given paths");
  a.scan.cache = a.cache;
  std::unique_ptr<ProgressBar> bar;
  LibraryScan s = scan_photos(pipe, photos, a.scan, [&](int done, int total) {
    if (!bar) bar = std::make_unique<ProgressBar>("faces", total);
    bar->update(done);
  });
  if (bar) bar->finish();
  std::fprintf(stderr, "%zu photos (%d from the cache), %zu faces, %zu unreadable\n", s.photos.size(), s.cached_photos,
               s.faces.size(), s.failed.size());
  for (const auto& f : s.failed) std::fprintf(stderr, "  skipped %s\n", f.c_str());
  return s;
}

// The embedder's clustering threshold (chosen on a development set), else its verification threshold.
float default_threshold(const FacePipeline& pipe) {
  const auto& m = pipe.embedder().manifest();
  if (m.cluster_threshold > 0) return m.cluster_threshold;
  std::fprintf(stderr, "note: %s has no clustering threshold in its manifest; using its verification threshold %.3f "
                       "(often too loose for a large library: try bench cluster --thresholds)\n", m.name.c_str(), m.threshold);
  return m.threshold;
}

ClusterOptions options_for(const FacePipeline& pipe, ClusterArgs& a) {
  ClusterOptions o = a.opt;
  const auto m = parse_cluster_method(a.method);
  if (!m) throw Error(ErrorCode::kInvalidArgument, "unknown method " + a.method + " (agglomerative, dbscan, chinese-whispers)");
  o.method = *m;
  o.threshold = std::isnan(a.threshold) ? default_threshold(pipe) : a.threshold;
  return o;
}

void split(const LibraryScan& s, std::vector<Embedding>& e, std::vector<int>& photo) {
  for (const auto& f : s.faces) e.push_back(f.embedding), photo.push_back(f.photo);
}

json box_json(const Box& b) { return {b.x, b.y, b.width, b.height}; }

constexpr size_t kUnclusteredShown = 400;  // thumbnails of unclustered faces in the contact sheet

// A contact sheet a person can look through: every cluster (largest first) as a row of face thumbnails (the
// first `per_cluster` faces, with the count), then the unclustered faces. Thumbnails are cut from the photos
// with a margin and written beside index.html, so the folder can be copied as it is.
void write_contact_sheet(const fs::path& dir, const LibraryScan& s, const std::vector<std::vector<size_t>>& members,
                         const std::vector<size_t>& unclustered, const ClusterOptions& o, int per_cluster) {
  fs::create_directories(dir / "faces");
  std::map<int, std::vector<size_t>> by_photo;  // each photo is read once
  const auto shown = [&](const std::vector<size_t>& v) { return std::min(v.size(), static_cast<size_t>(per_cluster)); };
  for (const auto& m : members)
    for (size_t k = 0; k < shown(m); ++k) by_photo[s.faces[m[k]].photo].push_back(m[k]);
  for (size_t k = 0; k < std::min(unclustered.size(), kUnclusteredShown); ++k) by_photo[s.faces[unclustered[k]].photo].push_back(unclustered[k]);
  for (const auto& [photo, faces] : by_photo) {
    Image img;
    try {
      img = load_image(s.photos[static_cast<size_t>(photo)]);
    } catch (const Error&) {
      continue;  // gone or changed since the scan: no thumbnail
    }
    for (const size_t i : faces) {
      const Box& b = s.faces[i].face.box;
      const float m = 0.25f * std::max(b.width, b.height);
      const cv::Rect r = cv::Rect(cv::Point(static_cast<int>(b.x - m), static_cast<int>(b.y - m)),
                                  cv::Point(static_cast<int>(b.x + b.width + m), static_cast<int>(b.y + b.height + m))) &
                         cv::Rect(0, 0, img.cols, img.rows);
      if (r.area() <= 0) continue;
      Image t;
      cv::resize(img(r), t, {96, static_cast<int>(std::lround(96.0 * r.height / r.width))}, 0, 0, cv::INTER_AREA);
      save_image(dir / "faces" / (std::to_string(i) + ".jpg"), t);
    }
  }
  std::ofstream h(dir / "index.html");
  h << "<!doctype html><html><head><meta charset=utf-8><title>facekit clusters</title><style>"
       "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h2{font-size:15px;margin:1.2em 0 .3em}"
       ".row{display:flex;flex-wrap:wrap;gap:4px}.row img{width:96px;border-radius:3px}"
       ".more{align-self:center;color:#666;padding:0 8px}</style></head><body>\n";
  h << "<h1>" << members.size() << " clusters of " << s.faces.size() << " faces in " << s.photos.size() << " photos</h1>\n";
  h << "<p>" << html_escape(to_string(o.method)) << ", threshold " << o.threshold << ", embedder " << html_escape(s.embedder)
    << ". Hover a face for its photo. Clusters are guesses: look for faces that do not belong.</p>\n";
  const auto row = [&](const std::vector<size_t>& v, size_t limit) {
    h << "<div class=row>";
    for (size_t k = 0; k < std::min(v.size(), limit); ++k)
      h << "<img loading=lazy src=\"faces/" << v[k] << ".jpg\" title=\"" << html_escape(s.photos[static_cast<size_t>(s.faces[v[k]].photo)])
        << "\" alt=\"face " << v[k] << "\">";
    if (v.size() > limit) h << "<span class=more>+" << v.size() - limit << " more</span>";
    h << "</div>\n";
  };
  for (size_t k = 0; k < members.size(); ++k) {
    h << "<h2 id=c" << k << ">Cluster " << k << ": " << members[k].size() << " faces</h2>\n";
    row(members[k], static_cast<size_t>(per_cluster));
  }
  h << "<h2 id=unclustered>Unclustered: " << unclustered.size() << " faces</h2>\n";
  row(unclustered, kUnclusteredShown);
  h << "</body></html>\n";
  if (!h) throw Error(ErrorCode::kInvalidArgument, "cannot write " + (dir / "index.html").string());
}

int cmd_cluster(const Common& c, ClusterArgs a) {
  FacePipeline pipe(pipeline_options(c));
  const ClusterOptions o = options_for(pipe, a);
  const LibraryScan s = scan(pipe, a);
  std::vector<Embedding> e;
  std::vector<int> photo;
  split(s, e, photo);
  const ClusterResult r = cluster_faces(e, photo, o);
  std::vector<std::vector<size_t>> members(static_cast<size_t>(r.clusters));
  json unclustered = json::array();
  std::vector<size_t> lone;
  const auto face_json = [&](size_t i) {
    const auto& f = s.faces[i];
    return json{{"face", i}, {"photo", s.photos[static_cast<size_t>(f.photo)]}, {"box", box_json(f.face.box)},
                {"score", f.face.score}, {"main", f.main}};
  };
  for (size_t i = 0; i < r.label.size(); ++i) {
    if (r.label[i] >= 0) members[static_cast<size_t>(r.label[i])].push_back(i);
    else unclustered.push_back(face_json(i)), lone.push_back(i);
  }
  json clusters = json::array();
  for (size_t k = 0; k < members.size(); ++k) {
    json faces = json::array();
    for (const size_t i : members[k]) faces.push_back(face_json(i));
    clusters.push_back({{"cluster", k}, {"size", members[k].size()}, {"faces", faces}});
  }
  std::printf("%d clusters, %d of %zu faces unclustered (%s, threshold %.3f; %.2f s)\n", r.clusters, r.unclustered,
              e.size(), to_string(o.method).c_str(), o.threshold, r.seconds);
  for (size_t k = 0; k < std::min<size_t>(members.size(), 10); ++k)
    std::printf("  cluster %zu: %zu faces, e.g. %s\n", k, members[k].size(),
                s.photos[static_cast<size_t>(s.faces[members[k][0]].photo)].c_str());
  if (!a.html.empty()) {
    write_contact_sheet(a.html, s, members, lone, o, a.html_faces);
    std::printf("wrote %s\n", (fs::path(a.html) / "index.html").string().c_str());
  }
  if (!a.out.empty()) {
    json doc = {{"schema_version", json_view::kSchemaVersion},
                {"embedder", s.embedder},
                {"method", to_string(o.method)},
                {"threshold", o.threshold},
                {"min_faces", o.min_faces},
                {"min_cluster_size", o.min_cluster_size},
                {"photos", s.photos.size()},
                {"faces", e.size()},
                {"clusters", clusters},
                {"unclustered", unclustered},
                {"unreadable", s.failed}};
    std::ofstream f(a.out);
    f << doc.dump(1) << "\n";
    if (!f) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.out);
    std::printf("wrote %s\n", a.out.c_str());
  }
  return 0;
}

int cmd_bench_cluster(const Common& c, ClusterArgs a) {
  FacePipeline pipe(pipeline_options(c));
  const float t0 = std::isnan(a.threshold) ? default_threshold(pipe) : a.threshold;
  const LibraryScan s = scan(pipe, a);
  std::vector<Embedding> e;
  std::vector<int> photo, truth;
  split(s, e, photo);
  // Truth: the main face of each photo is the person its folder names; other faces are not evaluated.
  std::map<std::string, int> person;
  for (const auto& f : s.faces) {
    const std::string folder = fs::path(s.photos[static_cast<size_t>(f.photo)]).parent_path().filename().string();
    truth.push_back(f.main ? person.emplace(folder, static_cast<int>(person.size())).first->second : -1);
  }
  struct Run {
    std::string name;
    ClusterOptions o;
  };
  std::vector<Run> runs;
  ClusterOptions base = a.opt;
  std::vector<ClusterMethod> methods;
  for (const auto& name : a.methods.empty() ? std::vector<std::string>{"dbscan", "chinese-whispers", "agglomerative"}
                                            : split_list(a.methods)) {
    const auto m = parse_cluster_method(name);
    if (!m) throw Error(ErrorCode::kInvalidArgument, "--methods: unknown method '" + name + "'");
    methods.push_back(*m);
  }
  if (std::find(methods.begin(), methods.end(), ClusterMethod::kDbscan) != methods.end()) {
    ClusterOptions o = base;
    o.method = ClusterMethod::kDbscan;
    o.threshold = l2_at_cosine_distance(0.5f);
    o.min_faces = 3;
    runs.push_back({"dbscan (Immich: cosine 0.5, min 3)", o});
  }
  std::vector<float> ts = a.thresholds.empty() ? std::vector<float>{t0} : parse_list<float>(a.thresholds, "--thresholds");
  for (const float t : ts)
    for (const auto m : methods) {
      ClusterOptions o = base;
      o.method = m;
      o.threshold = t;
      char name[96];
      std::snprintf(name, sizeof name, "%s at %.3f", to_string(m).c_str(), t);
      runs.push_back({name, o});
    }
  std::printf("%zu faces (%zu evaluated: the main face of each photo, labelled by its folder), embedder %s\n", e.size(),
              static_cast<size_t>(std::count_if(truth.begin(), truth.end(), [](int t) { return t >= 0; })), s.embedder.c_str());
  std::printf("%-38s %8s %8s %8s | %7s %7s %7s | %7s %7s %7s | %7s\n", "method", "clusters", "single", "unclust",
              "pair P", "pair R", "pair F", "B3 P", "B3 R", "B3 F", "seconds");
  json rows = json::array();
  for (const auto& run : runs) {
    const ClusterResult r = cluster_faces(e, photo, run.o);
    const ClusterMetrics m = cluster_metrics(r.label, truth);
    std::printf("%-38s %8d %8d %8d | %7.4f %7.4f %7.4f | %7.4f %7.4f %7.4f | %7.2f\n", run.name.c_str(), m.clusters,
                m.singletons, m.unclustered, m.pairwise_precision, m.pairwise_recall, m.pairwise_f, m.bcubed_precision,
                m.bcubed_recall, m.bcubed_f, r.seconds);
    std::fflush(stdout);
    rows.push_back({{"run", run.name},
                    {"method", to_string(run.o.method)},
                    {"threshold", run.o.threshold},
                    {"min_faces", run.o.min_faces},
                    {"clusters", m.clusters},
                    {"singletons", m.singletons},
                    {"unclustered", m.unclustered},
                    {"faces", m.faces},
                    {"people", m.people},
                    {"pairwise", {{"precision", m.pairwise_precision}, {"recall", m.pairwise_recall}, {"f", m.pairwise_f}}},
                    {"bcubed", {{"precision", m.bcubed_precision}, {"recall", m.bcubed_recall}, {"f", m.bcubed_f}}},
                    {"seconds", r.seconds}});
  }
  if (!a.json_out.empty()) {
    std::ofstream f(a.json_out);
    f << json{{"schema_version", json_view::kSchemaVersion}, {"embedder", s.embedder}, {"faces", e.size()},
              {"photos", s.photos.size()}, {"runs", rows}}.dump(1)
      << "\n";
    if (!f) throw Error(ErrorCode::kInvalidArgument, "cannot write " + a.json_out);
  }
  return 0;
}

void add_common(CLI::App* cmd, ClusterArgs& a) {
  cmd->add_option("paths", a.paths, "photo folders (searched recursively) or files")->required();
  cmd->add_option("--threshold", a.threshold, "L2 distance (default: the embedder's clustering threshold, else its verification one)")
      ->check(finite_range(0, 2, true));
  cmd->add_option("--min-faces", a.opt.min_faces, "DBSCAN: neighbours (itself included) that make a core face")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--min-cluster-size", a.opt.min_cluster_size, "smaller groups are reported as unclustered")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--size-allowance", a.opt.size_allowance,
                  "agglomerative: how much further apart (squared L2) large clusters may be than single faces; 0: plain average linkage")
      ->capture_default_str()->check(finite_range(0, 1));
  cmd->add_option("--neighbours", a.opt.neighbours, "agglomerative: candidate merges per face")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--cache", a.cache, "keep faces and embeddings here and reuse them (resumes an interrupted scan)");
  cmd->add_option("--workers", a.scan.threads, "photos processed in parallel")->capture_default_str()->check(CLI::Range(1, 64));
}

}  // namespace

void add_cluster_commands(CLI::App& app, Common& c, Commands& out) {
  auto a = std::make_shared<ClusterArgs>();
  auto* cl = app.add_subcommand("cluster", "group the faces of a photo library by person (no names needed)");
  add_common(cl, *a);
  cl->add_option("--method", a->method, "agglomerative, dbscan or chinese-whispers")->capture_default_str();
  cl->add_option("--out", a->out, "write the clusters as JSON");
  cl->add_option("--html", a->html, "write a contact sheet (index.html and face thumbnails) into this folder");
  cl->add_option("--html-faces", a->html_faces, "thumbnails per cluster in the contact sheet")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  out.emplace_back(cl, [&c, a] { return cmd_cluster(c, *a); });

  auto b = std::make_shared<ClusterArgs>();
  auto* bench = app.get_subcommand("bench");
  auto* bc = bench->add_subcommand("cluster", "every clustering method on the same embeddings, against folder labels (LFW layout)");
  add_common(bc, *b);
  bc->add_option("--thresholds", b->thresholds, "comma-separated thresholds to compare (default: --threshold)");
  bc->add_option("--methods", b->methods, "comma-separated methods to compare (default: all three)");
  bc->add_option("--json", b->json_out, "write every run's figures as JSON");
  out.emplace_back(bc, [&c, b] { return cmd_bench_cluster(c, *b); });
}

}  // namespace facekit::cli
