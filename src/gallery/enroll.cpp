// Enrolment: exactly one face per photo -> (augmented) embedding -> one transaction for the person.
#include <cmath>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/identify.hpp"
#include "facekit/image.hpp"
#include "facekit/model.hpp"

namespace facekit {

EmbedderId embedder_id(const FacePipeline& pipeline) {
  const auto& m = pipeline.embedder().manifest();
  return {m.name, m.version};
}

Embedding mean_embedding(const std::vector<Embedding>& embeddings) {
  if (embeddings.empty()) throw Error(ErrorCode::kInvalidArgument, "mean of no embeddings");
  Embedding m(embeddings[0].size(), 0.f);
  for (const auto& e : embeddings) {
    if (e.size() != m.size()) throw Error(ErrorCode::kInvalidArgument, "embeddings differ in length");
    for (size_t j = 0; j < m.size(); ++j) m[j] += e[j];
  }
  double n = 0;
  for (float v : m) n += double(v) * v;
  n = std::sqrt(std::max(n, 1e-24));
  for (float& v : m) v = static_cast<float>(v / n);
  return m;
}

namespace {
// mean_of_good_templates' choice: the templates of quality >= min_quality, or all when none reaches it.
std::vector<const Embedding*> good_templates(const std::vector<Embedding>& embeddings, const std::vector<float>& quality,
                                             float min_quality) {
  if (quality.size() != embeddings.size())
    throw Error(ErrorCode::kInvalidArgument, "one quality per embedding is needed");
  std::vector<const Embedding*> good, all;
  for (size_t i = 0; i < embeddings.size(); ++i) {
    all.push_back(&embeddings[i]);
    if (quality[i] >= min_quality) good.push_back(&embeddings[i]);
  }
  return good.empty() ? all : good;
}
}  // namespace

Embedding mean_of_good_templates(const std::vector<Embedding>& embeddings, const std::vector<float>& quality,
                                 float min_quality) {
  std::vector<Embedding> chosen;
  for (const Embedding* e : good_templates(embeddings, quality, min_quality)) chosen.push_back(*e);
  return mean_embedding(chosen);
}

Embedding mean_row(const std::vector<Embedding>& embeddings, const std::vector<float>& quality, float min_quality,
                   float power) {
  if (!(power >= 0 && power <= 1)) throw Error(ErrorCode::kInvalidArgument, "mean_norm_power must be in [0, 1]");
  const auto chosen = good_templates(embeddings, quality, min_quality);
  if (chosen.empty()) throw Error(ErrorCode::kInvalidArgument, "mean of no embeddings");
  const size_t dim = chosen[0]->size();
  std::vector<double> m(dim, 0.0);
  for (const Embedding* e : chosen) {
    if (e->size() != dim) throw Error(ErrorCode::kInvalidArgument, "embeddings differ in length");
    double n = 0;
    for (float v : *e) n += double(v) * v;
    n = std::sqrt(std::max(n, 1e-24));
    for (size_t j = 0; j < dim; ++j) m[j] += (*e)[j] / n;
  }
  double norm = 0;
  for (double& v : m) v /= static_cast<double>(chosen.size()), norm += v * v;
  norm = std::min(1.0, std::sqrt(std::max(norm, 1e-24)));
  Embedding row(dim + 1);
  const double scale = 1.0 / std::pow(norm, power);
  for (size_t j = 0; j < dim; ++j) row[j] = static_cast<float>(m[j] * scale);
  row[dim] = static_cast<float>(std::sqrt(std::max(0.0, 1.0 - std::pow(norm, 2.0 - 2.0 * power))));
  return row;
}

std::vector<Embedding> augmented_embeddings(const FacePipeline& pipeline, const Image& rgb,
                                            const Landmarks68& landmarks, const AugmentOptions& options) {
  const Embedder& embedder = pipeline.embedder();
  const AlignmentTemplate& tpl = embedder.alignment();
  // A copy turned by `deg` and scaled by `scale` about the chip's centre. Turning the landmarks the other way
  // about the photo point that lands on the chip's centre does the same through any embedder's own alignment
  // (exactly so for this template: a least-squares similarity fit follows a similarity of its source points),
  // so a fusion, whose members align with templates of their own, gets the same views; and each copy is cut
  // from the full-resolution photo, not resampled from the chip.
  cv::Mat m = alignment_matrix(landmarks, tpl);  // photo -> chip, 2x3
  m.convertTo(m, CV_64F);
  cv::Mat m_inv;
  cv::invertAffineTransform(m, m_inv);
  const cv::Point2f c(tpl.size / 2.f, tpl.size / 2.f);
  auto transformed = [&](float deg, float scale) {
    // The chip-space similarity B (about c) becomes A = M^-1 B^-1 M on the photo's points.
    const cv::Mat b_inv = cv::getRotationMatrix2D(c, deg, 1.0 / scale);  // B^-1: the turn and scale undone
    auto apply = [](const cv::Mat& t, cv::Point2f p) {
      return cv::Point2f(static_cast<float>(t.at<double>(0, 0) * p.x + t.at<double>(0, 1) * p.y + t.at<double>(0, 2)),
                         static_cast<float>(t.at<double>(1, 0) * p.x + t.at<double>(1, 1) * p.y + t.at<double>(1, 2)));
    };
    Landmarks68 out = landmarks;
    for (auto& p : out) p = apply(m_inv, apply(b_inv, apply(m, p)));
    return out;
  };
  std::vector<Landmarks68> views = {landmarks};
  for (float deg : options.rotations_deg) views.push_back(transformed(deg, 1.f));
  for (float s : options.scales) views.push_back(transformed(0.f, s));
  std::vector<Image> images = {rgb};
  std::vector<std::vector<Landmarks68>> faces = {views};
  for (float g : options.gammas) {
    cv::Mat lut(1, 256, CV_8U);
    for (int i = 0; i < 256; ++i)
      lut.at<uchar>(i) = cv::saturate_cast<uchar>(255.0 * std::pow(i / 255.0, static_cast<double>(g)));
    Image lit;
    cv::LUT(rgb, lut, lit);
    images.push_back(lit);
    faces.push_back({landmarks});
  }
  std::vector<Embedding> out;
  for (auto& per_image : embedder.embed_faces_batch(images, faces))
    for (auto& e : per_image) out.push_back(std::move(e));
  return out;
}

EnrollResult enroll(Gallery& gallery, const FacePipeline& pipeline, const std::string& name,
                    const std::vector<EnrollPhoto>& photos, const EnrollOptions& options) {
  if (name.empty()) throw Error(ErrorCode::kInvalidArgument, "enrolment needs a name");
  // Before any photo is looked at: a name or metadata the store would refuse fails at once.
  check_person_name(name);
  check_metadata(options.metadata);
  if (photos.empty()) throw Error(ErrorCode::kInvalidArgument, "enrolment needs at least one photo");
  const EmbedderId eid = embedder_id(pipeline);
  QualityOptions quality = options.quality;
  quality.eye_landmarker = GeometryMeter::landmarker_for(quality.eye_landmarker, pipeline.landmarker().name());
  const auto assessor = create_quality_assessor("classic", quality);
  EnrollResult result;
  NewPerson person;
  person.name = name;
  person.metadata = options.metadata;
  for (const auto& ph : photos) {
    const std::string label = !ph.label.empty() ? ph.label : ph.path.string();
    Image img = ph.image;
    std::string sha = ph.sha256;
    if (img.empty()) {
      img = load_image(ph.path, options.image_limits);  // throws kNotFound / kBadImage / kImageTooLarge naming the file
      if (sha.empty()) sha = sha256_file(ph.path);
    }
    auto faces = pipeline.detect(img);
    if (faces.empty()) {
      // A photo given for enrolment is expected to hold a face: retry at the rescue score, as verify does.
      int found = 0;
      try {
        auto a = pipeline.analyze_one(img, FacePick::kLargest, nullptr, &found);
        if (found == 1) faces.push_back(a.face);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kNoFace) throw;
      }
      if (found > 1)
        throw Error(ErrorCode::kInvalidArgument, label + ": " + std::to_string(found) +
                                                     " faces found; enrolment needs exactly one face per photo");
      if (faces.empty()) throw Error(ErrorCode::kNoFace, label + ": no face found; nothing was enrolled");
    }
    if (faces.size() > 1)
      throw Error(ErrorCode::kInvalidArgument,
                  label + ": " + std::to_string(faces.size()) +
                      " faces found; enrolment needs exactly one face per photo (crop it); nothing was enrolled");
    const Face& face = faces[0];
    FaceQuality q = assessor->assess(img, face);
    if (q.level == QualityLevel::kPoor && !options.allow_poor) {
      std::string why;
      for (const auto& r : q.reasons) why += (why.empty() ? "" : "; ") + r;
      throw Error(ErrorCode::kPoorQuality, label + ": the face is too poor to enrol (" + why +
                                               "); nothing was enrolled (allow it with --allow-poor)");
    }
    NewTemplate t;
    t.embedder = eid;
    t.quality = q.score;
    t.source_sha256 = sha;
    if (options.augment.enabled) {
      t.embedding = mean_embedding(augmented_embeddings(pipeline, img, *face.landmarks, options.augment));
      t.kind = "photo+aug";
    } else {
      AugmentOptions none;
      none.rotations_deg.clear();
      none.scales.clear();
      none.gammas.clear();
      t.embedding = augmented_embeddings(pipeline, img, *face.landmarks, none).at(0);
      t.kind = "photo";
    }
    person.templates.push_back(std::move(t));
    result.photos.push_back({label, sha, face, std::move(q)});
  }
  result.stored = gallery.add_person(person, options.on_conflict);
  return result;
}

}  // namespace facekit
