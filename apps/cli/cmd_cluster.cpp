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
#include "facekit/cluster_review.hpp"
#include "facekit/gallery.hpp"
#include "facekit/model.hpp"
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
  bool recluster = false;
  GalleryArgs gallery;  // seeds: only when --gallery is given
  std::string out, method = "agglomerative", cache, json_out, thresholds, methods, html;
  int html_faces = 40;  ///< thumbnails shown per cluster in the contact sheet
  float threshold = std::numeric_limits<float>::quiet_NaN();
  ClusterOptions opt;
  ScanOptions scan;
};

LibraryScan scan(const FacePipeline& pipe, ClusterArgs& a) {
  if (a.paths.empty()) throw Error(ErrorCode::kInvalidArgument, "give the photo folders (or files) to cluster");
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

constexpr size_t kUnclusteredShown = 400;  // thumbnails of unclustered faces in the contact sheet

// A contact sheet a person can look through: every cluster (largest first, with its id and name) as a row of face
// thumbnails (the first `per_cluster` faces, with the count), then the unclustered faces; each face's key on
// hover, for `cluster not` and `cluster split`. Thumbnails are cut from the photos with a margin and written
// beside index.html, so the folder can be copied as it is.
void write_contact_sheet(const fs::path& dir, const ClusterReview& st, int per_cluster) {
  fs::create_directories(dir / "faces");
  const auto clusters = st.by_size();
  std::vector<std::vector<const ReviewFace*>> rows;
  std::vector<std::string> titles;
  size_t total = st.unclustered().size();
  for (const auto* c : clusters) {
    total += c->faces.size();
    std::vector<const ReviewFace*> r;
    for (size_t k = 0; k < std::min(c->faces.size(), static_cast<size_t>(per_cluster)); ++k) r.push_back(&c->faces[k]);
    rows.push_back(std::move(r));
    titles.push_back("Cluster " + std::to_string(c->id) + (c->name.empty() ? "" : " (" + c->name + ")") + ": " +
                     std::to_string(c->faces.size()) + " faces");
  }
  {
    std::vector<const ReviewFace*> r;
    for (size_t k = 0; k < std::min(st.unclustered().size(), kUnclusteredShown); ++k) r.push_back(&st.unclustered()[k]);
    rows.push_back(std::move(r));
    titles.push_back("Unclustered: " + std::to_string(st.unclustered().size()) + " faces");
  }
  // Thumbnails are numbered in page order; each photo is read once.
  std::map<std::string, std::vector<std::pair<const ReviewFace*, size_t>>> by_photo;
  size_t number = 0;
  std::vector<std::vector<size_t>> numbers(rows.size());
  for (size_t r = 0; r < rows.size(); ++r)
    for (const auto* f : rows[r]) by_photo[f->photo].push_back({f, number}), numbers[r].push_back(number++);
  for (const auto& [photo, faces] : by_photo) {
    Image img;
    try {
      img = load_image(photo);
    } catch (const Error&) {
      continue;  // gone or changed since the scan: no thumbnail
    }
    for (const auto& [f, num] : faces) {
      const Image region = face_region(img, f->box, 0.25f);
      if (region.empty()) continue;
      Image t;
      cv::resize(region, t, {96, static_cast<int>(std::lround(96.0 * region.rows / region.cols))}, 0, 0, cv::INTER_AREA);
      save_image(dir / "faces" / (std::to_string(num) + ".jpg"), t);
    }
  }
  std::ofstream h(dir / "index.html");
  h << "<!doctype html><html><head><meta charset=utf-8><title>facekit clusters</title><style>"
       "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}h2{font-size:15px;margin:1.2em 0 .3em}"
       ".row{display:flex;flex-wrap:wrap;gap:4px}.row img{width:96px;border-radius:3px}"
       ".more{align-self:center;color:#666;padding:0 8px}code{background:#f3f3f3;padding:0 3px}</style></head><body>\n";
  h << "<h1>" << clusters.size() << " clusters of " << total << " faces in " << st.photos << " photos</h1>\n";
  h << "<p>" << html_escape(to_string(st.options.method)) << ", threshold " << st.options.threshold << ", embedder "
    << html_escape(st.embedder) << ". Clusters are guesses: look for faces that do not belong. Hover a face for its key, "
    << "then <code>facekit cluster name ID NAME</code>, <code>merge ID ID</code>, <code>split ID [KEY...]</code> or "
       "<code>not KEY ID|NAME</code>.</p>\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    const bool last = r + 1 == rows.size();
    h << "<h2 id=" << (last ? std::string("unclustered") : "c" + std::to_string(clusters[r]->id)) << ">"
      << html_escape(titles[r]) << "</h2>\n<div class=row>";
    for (size_t k = 0; k < rows[r].size(); ++k)
      h << "<img loading=lazy src=\"faces/" << numbers[r][k] << ".jpg\" title=\"" << html_escape(rows[r][k]->key())
        << "\" alt=\"" << html_escape(rows[r][k]->key()) << "\">";
    const size_t size = last ? st.unclustered().size() : clusters[r]->faces.size();
    if (size > rows[r].size()) h << "<span class=more>+" << size - rows[r].size() << " more</span>";
    h << "</div>\n";
  }
  h << "</body></html>\n";
  if (!h) throw Error(ErrorCode::kInvalidArgument, "cannot write " + (dir / "index.html").string());
}

EmbedderId embedder_id_of(const std::string& name) { return {name, load_manifest(name).version}; }

void print_clusters(const ClusterReview& st) {
  const auto v = st.by_size();
  for (size_t k = 0; k < std::min<size_t>(v.size(), 10); ++k)
    std::printf("  cluster %d%s: %zu faces, e.g. %s\n", v[k]->id, v[k]->name.empty() ? "" : (" (" + v[k]->name + ")").c_str(),
                v[k]->faces.size(), v[k]->faces[0].photo.c_str());
}

void write_outputs(const ClusterReview& st, const std::string& state, const std::string& html, int html_faces) {
  if (!html.empty()) {
    write_contact_sheet(html, st, html_faces);
    std::printf("wrote %s\n", (fs::path(html) / "index.html").string().c_str());
  }
  if (!state.empty()) {
    st.save(state);
    std::printf("wrote %s\n", state.c_str());
  }
}

int cmd_cluster(const Common& c, ClusterArgs a) {
  if (a.paths.empty())
    throw Error(ErrorCode::kInvalidArgument, "give the photo folders to cluster, or a review command (name, merge, split, not)");
  FacePipeline pipe(pipeline_options(c));
  const ClusterOptions o = options_for(pipe, a);
  ClusterReview st = a.out.empty() ? ClusterReview{} : ClusterReview::load(a.out);
  // A state keeps its faces' embeddings in a cache beside it: the review commands need them.
  if (a.cache.empty() && !a.out.empty()) a.cache = st.cache.empty() ? a.out + ".faces" : st.cache.string();
  const LibraryScan s = scan(pipe, a);
  std::vector<SeedPerson> seeds;
  if (!a.gallery.path.empty()) {
    auto g = open_gallery(a.gallery.resolved(), a.gallery.options(false, true));
    seeds = gallery_seeds(*g, embedder_id_of(s.embedder));
    std::fprintf(stderr, "%zu people of %s seed their clusters\n", seeds.size(), a.gallery.path.c_str());
  }
  const int before = static_cast<int>(st.by_size().size());
  const ReviewUpdate u = st.update(s, o, seeds, a.recluster);
  st.cache = a.cache;
  std::printf("%zu clusters, %zu of %d faces unclustered (%s, threshold %.3f; %.2f s)\n", st.by_size().size(),
              st.unclustered().size(), u.faces, to_string(o.method).c_str(), o.threshold, u.seconds);
  if (before > 0 || !seeds.empty() || u.dropped > 0) {
    std::printf("%d new faces: %d joined existing clusters, %d new clusters; %d faces of removed photos dropped\n",
                u.new_faces, u.joined, u.new_clusters, u.dropped);
    for (const auto& [name, k] : u.joined_named) std::printf("  %s: +%d\n", name.c_str(), k);
  }
  print_clusters(st);
  write_outputs(st, a.out, a.html, a.html_faces);
  return 0;
}

// The review commands: each loads the state, changes it, and writes it back (and the contact sheet if asked).
struct ReviewArgs {
  std::string state = "clusters.json", html;
  int html_faces = 40;
  std::string first, second;      // the command's two arguments
  std::vector<std::string> faces;  // split's face keys
  GalleryArgs gallery;
  bool no_enrol = false;
};

LibraryScan faces_of(const ClusterReview& st, const std::vector<const ReviewCluster*>& clusters) {
  std::vector<std::string> photos;
  for (const auto* c : clusters)
    for (const auto& f : c->faces) photos.push_back(f.photo);
  std::sort(photos.begin(), photos.end());
  photos.erase(std::unique(photos.begin(), photos.end()), photos.end());
  return load_scan(st.cache, photos, st.embedder);
}

int cmd_review(const std::string& what, ReviewArgs& a) {
  if (!fs::exists(a.state)) throw Error(ErrorCode::kNotFound, "no cluster state " + a.state + ": run facekit cluster PHOTOS --out " + a.state + " first");
  ClusterReview st = ClusterReview::load(a.state);
  if (what == "name") {
    const int id = st.find(a.first).id;
    st.name(id, a.second);
    const ReviewCluster& cl = st.cluster(id);
    std::printf("cluster %d is %s (%zu faces)\n", id, cl.name.c_str(), cl.faces.size());
    if (!a.no_enrol) {
      const LibraryScan s = faces_of(st, {&cl});
      auto g = open_gallery(a.gallery.resolved(), a.gallery.options(true));
      const AddResult r = enrol_cluster(*g, embedder_id_of(st.embedder), cl, s);
      std::printf("enrolled %s in %s: %d templates added, %d already there\n", r.person.name.c_str(),
                  g->location().c_str(), r.added, r.duplicates);
    }
  } else if (what == "merge") {
    const int into = st.find(a.first).id, from = st.find(a.second).id;
    st.merge(into, from);
    std::printf("cluster %d now holds cluster %d's faces: %zu faces\n", into, from, st.cluster(into).faces.size());
  } else if (what == "split") {
    const int id = st.find(a.first).id;
    const std::vector<std::string>& keys = a.faces;
    std::optional<LibraryScan> s;
    if (keys.empty()) s = faces_of(st, {&st.cluster(id)});
    const auto made = st.split(id, keys, s ? &*s : nullptr, st.options);
    std::printf("cluster %d keeps %zu faces;", id, st.cluster(id).faces.size());
    for (const int m : made) std::printf(" new cluster %d: %zu faces;", m, st.cluster(m).faces.size());
    std::printf(" %zu faces unclustered\n", st.unclustered().size());
  } else {  // not
    const std::string& key = a.first;
    const std::string& person = a.second;
    // A named cluster's face leaves the gallery person too.
    std::string name = person;
    try {
      name = st.find(person).name;
    } catch (const Error&) {
    }
    st.not_same(key, person);
    std::printf("%s is not %s: kept for the next runs\n", key.c_str(), person.c_str());
    const auto where = a.gallery.resolved();
    if (!a.no_enrol && !name.empty() && (is_database_location(where.string()) || fs::exists(where))) {
      auto g = open_gallery(a.gallery.resolved(), a.gallery.options(false));
      const auto s = load_scan(st.cache, {key.substr(0, key.rfind('#'))}, st.embedder);
      if (unenrol_face(*g, name, key, s))
        std::printf("removed its template from %s in %s\n", name.c_str(), g->location().c_str());
    }
  }
  write_outputs(st, a.state, a.html, a.html_faces);
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
  cmd->add_option("paths", a.paths, "photo folders (searched recursively) or files");
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
  auto* cl = app.add_subcommand("cluster", "group the faces of a photo library by person (no names needed), then review the groups");
  add_common(cl, *a);
  cl->require_subcommand(0, 1);
  cl->add_option("--method", a->method, "agglomerative, dbscan or chinese-whispers")->capture_default_str();
  cl->add_option("--out,--state", a->out,
                 "the clusters as JSON; when the file exists, its clusters, names and constraints are kept and new faces join them");
  cl->add_flag("--recluster", a->recluster, "with --out: cluster the faces of clusters not named afresh");
  cl->add_option("--gallery", a->gallery.path, "seed clusters with this gallery's people")->check(non_empty());
  cl->add_option("--key-file", a->gallery.key_file, "the gallery's key file (encrypted galleries)");
  cl->add_option("--html", a->html, "write a contact sheet (index.html and face thumbnails) into this folder");
  cl->add_option("--html-faces", a->html_faces, "thumbnails per cluster in the contact sheet")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  struct Review {
    const char* name;
    const char* help;
    std::pair<const char*, const char*> first, second;  // positional name and help; second.first null: a list of faces
  };
  const std::vector<Review> reviews = {
      {"name", "name a cluster (and enrol its faces as that person in the gallery)", {"cluster", "id or name"}, {"name", "the person"}},
      {"merge", "move the second cluster's faces into the first", {"into", "cluster id or name"}, {"from", "cluster id or name"}},
      {"split", "split a cluster: the listed faces go to a new cluster; none listed: where it falls apart",
       {"cluster", "id or name"}, {nullptr, nullptr}},
      {"not", "face KEY is not this person: out of their cluster, now and in later runs", {"face", "face key, PHOTO#K"},
       {"person", "cluster id or name"}}};
  for (const auto& rv : reviews) {
    auto r = std::make_shared<ReviewArgs>();
    auto* sc = cl->add_subcommand(rv.name, rv.help);
    sc->add_option(rv.first.first, r->first, rv.first.second)->required();
    if (rv.second.first) sc->add_option(rv.second.first, r->second, rv.second.second)->required();
    else sc->add_option("faces", r->faces, "face keys (PHOTO#K) to move out");
    sc->add_option("--state", r->state, "the cluster state written by facekit cluster --out")->capture_default_str();
    sc->add_option("--html", r->html, "write the contact sheet again into this folder");
    if (std::string(rv.name) == "name" || std::string(rv.name) == "not") {
      add_gallery_option(sc, r->gallery);
      sc->add_flag("--no-enrol", r->no_enrol, "change the clusters only, not the gallery");
    }
    out.emplace_back(sc, [r, what = std::string(rv.name)] { return cmd_review(what, *r); });
  }
  // After the review commands: the first parsed command runs, and `cluster` is parsed with them.
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
