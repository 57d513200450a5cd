#pragma once
// JSON views of facekit's results: one shape for each result, shared by the CLI (--json), the HTTP service
// and anything else that prints them. Every document (a whole answer: one image's faces, a verification, an
// enrolment, a person) carries "schema_version"; an answer that is a list is a list of such documents.
// The shapes are documented in docs/json.md; a change that removes or renames a field bumps the version.
#include <string>

#include <nlohmann/json.hpp>

#include "facekit/engine.hpp"

namespace facekit::json_view {

using nlohmann::json;

/// The version of every shape below.
inline constexpr int kSchemaVersion = 1;

// ---- parts ------------------------------------------------------------------------------------------------
json box(const Box& b);
/// box, score, and when known landmarks68 ([x, y] x 68) and landmarks5.
json face(const Face& f);
json quality(const FaceQuality& q);
/// {model, estimated: true, age, age_group, gender, group, probabilities: {age_group, gender, group}}
json attributes(const FaceAttributes& a, const std::string& model);
/// score, state, thresholds, per-signal scores and states, the scored crop.
json spoof(const SpoofResult& r, const SpoofThresholds& t);
json person(const Person& p);
/// Without the embedding.
json template_info(const Template& t);
json candidate(const Candidate& c);
json gallery_stats(const GalleryStats& s, const std::string& uuid);
/// Unix seconds as ISO 8601 UTC.
std::string iso_time(std::int64_t t);

// ---- documents ----------------------------------------------------------------------------------------------
/// {image, width, height, faces: [face]}
json detection(const std::string& image, const Image& rgb, const std::vector<Face>& faces);
/// The same with each face's "attributes" (attrs[i] belongs to faces[i]).
json detection(const std::string& image, const Image& rgb, const std::vector<Face>& faces,
               const std::vector<FaceAttributes>& attrs, const std::string& model);
/// {image, model, faces: [face + embedding]}
json embeddings(const std::string& image, const std::string& model, const std::vector<AnalyzedFace>& faces);
/// {image, width, height, faces: [{box, detection_score, quality}]}
json quality_report(const std::string& image, const Image& rgb, const std::vector<FaceAnalysis>& faces);
/// {image, width, height, checker, faces: [spoof + box + detection_score]}
json spoof_report(const std::string& image, const Image& rgb, const SpoofChecker& checker,
                  const std::vector<SpoofedFace>& faces);
/// {same, distance, threshold, model, faces_in_a, faces_in_b, face_a, face_b}
json verification(const VerifyResult& r, const std::string& model);
/// {person, created, templates_added, duplicates_skipped, augmented, embedder, gallery, photos}
json enrolment(const EnrollResult& r, bool augmented, const std::string& embedder, const std::string& gallery);
/// One image's faces: {image, width, height, faces: [{box, detection_score, identity, person_id, known,
/// candidates}]} (without schema_version: it sits inside identification()).
json identified_image(const std::string& image, const Image& rgb, const IdentifyResult& r);
/// {gallery, revision, embedder, classifier, threshold, threshold_source, images: [identified_image]}
json identification(const IdentifyResult& last, const json& images);
/// person plus template_list.
json person_record(const PersonRecord& r);
/// The verdict of active liveness; with `timeline`, every frame's EAR, pose and passive score.
json active_liveness(const ActiveLivenessResult& r, bool timeline);

/// JSON text: a string that is not valid UTF-8 (a name stored by an older facekit) is shown with U+FFFD
/// instead of throwing.
std::string dump(const json& j, int indent = 2);

}  // namespace facekit::json_view
