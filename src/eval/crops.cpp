#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <opencv2/imgproc.hpp>
#include <optional>

#include "core/parallel.hpp"
#include "facekit/crop_eval.hpp"
#include "facekit/error.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"
#include "facekit/landmarker.hpp"

namespace facekit {
namespace fs = std::filesystem;

namespace {

struct Variant {
  std::string name;
  float margin = -1;  // < 0: the whole photo
  bool grey = false;
  int size = 0;  // 0: keep
};

std::vector<Variant> make_variants(const CropBenchOptions& o) {
  std::vector<float> margins;
  if (o.include_original) margins.push_back(-1);
  margins.insert(margins.end(), o.margins.begin(), o.margins.end());
  std::vector<int> sizes = o.sizes.empty() ? std::vector<int>{0} : o.sizes;
  std::vector<Variant> v;
  for (float m : margins)
    for (int s : sizes)
      for (int g = 0; g <= (o.grey ? 1 : 0); ++g) {
        char name[64];
        if (m < 0)
          std::snprintf(name, sizeof name, "original");
        else
          std::snprintf(name, sizeof name, "margin%.2f", m);
        std::string n = name;
        if (s > 0) n += "-s" + std::to_string(s);
        if (g) n += "-grey";
        v.push_back({n, m, g == 1, s});
      }
  return v;
}

cv::Rect2f landmark_box(const Landmarks68& lm) {
  float x0 = lm[0].x, y0 = lm[0].y, x1 = x0, y1 = y0;
  for (const auto& p : lm) x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
  return {x0, y0, x1 - x0, y1 - y0};
}

// Where a photo point lands in a variant: p' = (p - offset) * scale.
struct VariantMap {
  cv::Point2f offset;
  double scale = 1;
  cv::Point2f operator()(cv::Point2f p) const { return (p - offset) * static_cast<float>(scale); }
  cv::Rect2f operator()(const cv::Rect2f& r) const {
    return {float((r.x - offset.x) * scale), float((r.y - offset.y) * scale), float(r.width * scale),
            float(r.height * scale)};
  }
};

// The variant photo; `to_variant` gets the map from photo to variant coordinates.
Image make_variant(const Image& rgb, const cv::Rect2f& face, const Variant& v, VariantMap* to_variant) {
  cv::Rect roi(0, 0, rgb.cols, rgb.rows);
  if (v.margin >= 0) {
    const float mx = v.margin * face.width, my = v.margin * face.height;
    const int x0 = std::max(0, static_cast<int>(std::floor(face.x - mx)));
    const int y0 = std::max(0, static_cast<int>(std::floor(face.y - my)));
    const int x1 = std::min(rgb.cols, static_cast<int>(std::ceil(face.x + face.width + mx)));
    const int y1 = std::min(rgb.rows, static_cast<int>(std::ceil(face.y + face.height + my)));
    roi = {x0, y0, std::max(1, x1 - x0), std::max(1, y1 - y0)};
  }
  Image out = rgb(roi).clone();
  *to_variant = {cv::Point2f(float(roi.x), float(roi.y)), 1.0};
  if (v.size > 0) {
    const double s = static_cast<double>(v.size) / std::max(out.cols, out.rows);
    cv::resize(out, out, {std::max(1, int(std::lround(out.cols * s))), std::max(1, int(std::lround(out.rows * s)))}, 0, 0,
               s < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    to_variant->scale = s;
  }
  if (v.grey) {
    Image g;
    cv::cvtColor(out, g, cv::COLOR_RGB2GRAY);
    cv::cvtColor(g, out, cv::COLOR_GRAY2RGB);
  }
  return out;
}

struct PhotoResult {
  int faces = -1;   // detect() count; -1 = reference missing
  bool on_face = false;
  std::optional<Embedding> embedding;
  /// The template `enroll` would store (augmented mean), for a person's first photo when augmentation is on.
  std::optional<Embedding> enrolment;
};

void write_embeddings(const fs::path& dir, const std::vector<Variant>& variants,
                      const std::vector<std::pair<int, std::string>>& photos, const std::vector<bool>& first,
                      const std::vector<std::vector<PhotoResult>>& res) {
  fs::create_directories(dir);
  std::ofstream index(dir / "index.tsv"), rows(dir / "embeddings.f32", std::ios::binary);
  index << "variant\tperson\tphoto\tfirst\tembedding_row\tenrolment_row\n";
  long next = 0;
  auto put = [&](const std::optional<Embedding>& e) -> long {
    if (!e) return -1;
    rows.write(reinterpret_cast<const char*>(e->data()),
               static_cast<std::streamsize>(e->size() * sizeof(float)));
    return next++;
  };
  for (size_t v = 0; v < variants.size(); ++v)
    for (size_t i = 0; i < photos.size(); ++i) {
      const PhotoResult& r = res[v][i];
      if (r.faces < 0) continue;
      const long a = put(r.embedding), b = put(r.enrolment);
      index << variants[v].name << '\t' << photos[i].first << '\t' << photos[i].second << '\t'
            << int(first[i]) << '\t' << a << '\t' << b << '\n';
    }
  if (!index || !rows)
    throw Error(ErrorCode::kInvalidArgument, "cannot write embeddings under " + dir.string());
}

}  // namespace

CropBenchReport run_crop_bench(const FacePipeline& pipeline, const FacePipeline& reference,
                               const CropBenchOptions& o, const std::function<void(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.first_index < 1 || o.last_index < o.first_index)
    throw Error(ErrorCode::kInvalidArgument, "photo index range must be 1 <= first <= last");
  for (float m : o.margins)
    if (!(m >= 0 && m <= 4)) throw Error(ErrorCode::kInvalidArgument, "crop margins must be in [0, 4]");
  for (int s : o.sizes)
    if (s < 16 || s > 4096) throw Error(ErrorCode::kInvalidArgument, "crop sizes must be in [16, 4096] pixels");

  // People (folders, sorted) and their photos in the index range.
  std::vector<std::pair<std::string, std::vector<std::string>>> people;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(o.root))
    if (e.is_directory()) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    const std::string name = d.filename().string();
    std::vector<std::string> photos;
    for (int i = o.first_index; i <= o.last_index; ++i) {
      char file[32];
      std::snprintf(file, sizeof file, "_%04d.jpg", i);
      if (fs::exists(d / (name + file))) photos.push_back(name + "/" + name + file);
    }
    if (photos.size() >= 2) people.emplace_back(name, std::move(photos));
    if (o.limit_people > 0 && static_cast<int>(people.size()) >= o.limit_people) break;
  }
  if (people.empty()) throw Error(ErrorCode::kInvalidArgument, o.root.string() + " holds no person with two photos in the index range");

  std::vector<std::pair<int, std::string>> photos;  // person index, relative path
  std::vector<bool> first_of_person;
  for (size_t p = 0; p < people.size(); ++p)
    for (const auto& f : people[p].second) {
      first_of_person.push_back(&f == &people[p].second.front());
      photos.emplace_back(static_cast<int>(p), f);
    }
  const auto variants = make_variants(o);
  std::vector<std::vector<PhotoResult>> res(variants.size(), std::vector<PhotoResult>(photos.size()));

  detail::parallel_for(
      photos.size(), o.workers,
      [&](size_t i) {
        const Image img = load_image(o.root / photos[i].second);
        Face ref;
        try {
          ref = reference.detect_one(img, FacePick::kMain);
        } catch (const Error& e) {
          if (e.code() == ErrorCode::kNoFace) return;  // reference missing: faces stays -1
          throw;
        }
        const cv::Rect2f face = landmark_box(*ref.landmarks);
        for (size_t v = 0; v < variants.size(); ++v) {
          VariantMap to_variant;
          const Image var = make_variant(img, face, variants[v], &to_variant);
          const cv::Rect2f f = to_variant(face);  // where the reference face lands
          if (!o.write_dir.empty()) {
            const fs::path out = o.write_dir / variants[v].name / fs::path(photos[i].second).replace_extension(".png");
            fs::create_directories(out.parent_path());
            save_image(out, var);
          }
          PhotoResult& r = res[v][i];
          const auto faces = pipeline.detector().detect(var);
          r.faces = static_cast<int>(faces.size());
          if (faces.size() == 1) {
            const cv::Point2f c = faces[0].box.center();
            r.on_face = f.contains(c);
          }
          if (!o.identify) continue;
          try {
            Face main;
            if (faces.empty()) {
              // Only analyze_one's rescue (lower score, zoomed-out canvases) can still find the face.
              AnalyzedFace a = pipeline.analyze_one(var, FacePick::kMain);
              r.embedding = std::move(a.embedding);
              main = std::move(a.face);
            } else {
              // The faces just counted, picked as analyze_one(kMain) would: no second detection.
              main = faces[main_face_index(faces, var.size())];
              if (!o.reference_landmarks)
                main.landmarks = pipeline.landmarker().landmarks(var, {main.box}).at(0);
            }
            if (o.reference_landmarks) {
              Landmarks68 lm = *ref.landmarks;
              for (auto& p : lm) p = to_variant(p);
              main.landmarks = lm;
              r.embedding.reset();
            }
            if (o.augment.enabled && first_of_person[i] && main.landmarks) {
              // The plain view is the first of the augmented ones: embedded once.
              const auto views = augmented_embeddings(pipeline, var, *main.landmarks, o.augment);
              if (!r.embedding) r.embedding = views.at(0);
              r.enrolment = mean_embedding(views);
            } else if (!r.embedding) {
              r.embedding = pipeline.embed(var, {main}).at(0).embedding;
            }
          } catch (const Error& e) {
            if (e.code() != ErrorCode::kNoFace) throw;
          }
        }
      },
      progress);

  CropBenchReport report;
  report.people = static_cast<int>(people.size());
  report.photos = static_cast<int>(photos.size());
  for (size_t i = 0; i < photos.size(); ++i) report.reference_missing += res[0][i].faces < 0;
  for (size_t v = 0; v < variants.size(); ++v) {
    CropVariantReport r;
    r.name = variants[v].name;
    // Gallery: each person's first photo with a reference face.
    std::map<int, size_t> enrolled;  // person -> photo index
    for (size_t i = 0; i < photos.size(); ++i)
      if (res[v][i].faces >= 0 && !enrolled.count(photos[i].first)) enrolled[photos[i].first] = i;
    for (size_t i = 0; i < photos.size(); ++i) {
      const PhotoResult& p = res[v][i];
      if (p.faces < 0) continue;
      ++r.photos;
      if (p.faces == 0) r.zero++;
      else if (p.faces > 1) r.several++;
      else if (p.on_face) r.one++;
      else r.one_elsewhere++;
      if (p.faces != 1 || !p.on_face) r.failures.push_back(photos[i].second + " (" + std::to_string(p.faces) + ")");
      if (enrolled.at(photos[i].first) == i) {
        if (!p.embedding) r.enrolment_failures++;
        r.augmented_enrolments += p.enrolment.has_value();
        continue;
      }
      ++r.probes;
      if (!p.embedding) continue;
      float best = 1e30f;
      int who = -1;
      for (const auto& [person, j] : enrolled) {
        if (!res[v][j].embedding) continue;
        const PhotoResult& e = res[v][j];
        const float d = l2_distance(*p.embedding, e.enrolment ? *e.enrolment : *e.embedding);
        if (d < best) best = d, who = person;
      }
      r.rank1 += who == photos[i].first;
    }
    report.variants.push_back(std::move(r));
  }
  if (!o.embeddings_dir.empty()) write_embeddings(o.embeddings_dir, variants, photos, first_of_person, res);
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace facekit
