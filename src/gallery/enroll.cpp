// Enrolment: exactly one face per photo -> (augmented) embedding -> one transaction for the person.
#include <cmath>

#include <opencv2/core.hpp>

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

Embedding mean_of_good_templates(const std::vector<Embedding>& embeddings, const std::vector<float>& quality,
                                 float min_quality) {
  if (quality.size() != embeddings.size())
    throw Error(ErrorCode::kInvalidArgument, "one quality per embedding is needed");
  std::vector<Embedding> good;
  for (size_t i = 0; i < embeddings.size(); ++i)
    if (quality[i] >= min_quality) good.push_back(embeddings[i]);
  return mean_embedding(good.empty() ? embeddings : good);
}

std::vector<Embedding> augmented_embeddings(const FacePipeline& pipeline, const Image& rgb,
                                            const Landmarks68& landmarks, const AugmentOptions& options) {
  const Embedder& embedder = pipeline.embedder();
  const AlignmentTemplate& tpl = embedder.alignment();
  std::vector<Image> chips;
  chips.push_back(align_face(rgb, landmarks, tpl));
  // Rotating or scaling the template points about the chip centre turns the least-squares alignment by the
  // same similarity, so each copy is cut from the full-resolution photo (not resampled from the chip).
  const cv::Point2f c(tpl.size / 2.f, tpl.size / 2.f);
  auto transformed = [&](float deg, float scale) {
    AlignmentTemplate t = tpl;
    const float r = deg * static_cast<float>(CV_PI) / 180.f, cs = std::cos(r) * scale, sn = std::sin(r) * scale;
    for (auto& p : t.points) {
      const cv::Point2f d = p - c;
      p = c + cv::Point2f(cs * d.x - sn * d.y, sn * d.x + cs * d.y);
    }
    return t;
  };
  for (float deg : options.rotations_deg) chips.push_back(align_face(rgb, landmarks, transformed(deg, 1.f)));
  for (float s : options.scales) chips.push_back(align_face(rgb, landmarks, transformed(0.f, s)));
  for (float g : options.gammas) {
    cv::Mat lut(1, 256, CV_8U);
    for (int i = 0; i < 256; ++i)
      lut.at<uchar>(i) = cv::saturate_cast<uchar>(255.0 * std::pow(i / 255.0, static_cast<double>(g)));
    Image lit;
    cv::LUT(chips[0], lut, lit);
    chips.push_back(lit);
  }
  return embedder.embed(chips);
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
