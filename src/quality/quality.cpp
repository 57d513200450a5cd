// The "classic" quality assessor: OpenCV measures on the photo, an aligned grey chip and the 68 landmarks;
// the eyes' openness from the eye landmarker's points (GeometryMeter).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgproc.hpp>

#include "facekit/aligner.hpp"
#include "facekit/error.hpp"
#include "facekit/registry.hpp"
#include "facekit/quality.hpp"

namespace facekit {

const char* to_string(QualityLevel level) {
  switch (level) {
    case QualityLevel::kGood:
      return "good";
    case QualityLevel::kFair:
      return "fair";
    case QualityLevel::kPoor:
      return "poor";
  }
  return "unknown";
}

namespace {

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

// Collects each measure's factor and the worst level, with reasons.
struct Grader {
  float score = 1;
  QualityLevel level = QualityLevel::kGood;
  std::vector<std::string> reasons;

  // `badness` grows as quality drops: fair from `fair`, poor from `poor` (poor > fair).
  void grade(float badness, float fair, float poor, const std::string& reason) {
    if (badness <= fair) return;
    float factor;
    if (badness <= poor) {
      factor = 1.f - 0.5f * (badness - fair) / (poor - fair);
      level = std::max(level, QualityLevel::kFair);
    } else {
      factor = std::max(0.f, 0.5f - 0.5f * (badness - poor) / (poor - fair));
      level = QualityLevel::kPoor;
    }
    score *= factor;
    reasons.push_back(reason);
  }
  void fail(float factor, const std::string& reason) {
    score *= factor;
    level = QualityLevel::kPoor;
    reasons.push_back(reason);
  }
};

class ClassicQuality final : public QualityAssessor {
 public:
  explicit ClassicQuality(const QualityOptions& o) : o_(o), eyes_(o.eye_landmarker) {
    auto ordered = [](float fair, float poor, bool higher_better) {
      return higher_better ? poor < fair : fair < poor;
    };
    if (o.chip_size < 32 || !ordered(o.sharpness_fair, o.sharpness_poor, true) ||
        !ordered(o.dark_fair, o.dark_poor, true) || !ordered(o.bright_fair, o.bright_poor, false) ||
        !ordered(o.contrast_fair, o.contrast_poor, true) || !ordered(o.yaw_fair, o.yaw_poor, false) ||
        !ordered(o.pitch_fair, o.pitch_poor, false) || !ordered(o.roll_fair, o.roll_poor, false) ||
        !ordered(o.eye_distance_fair, o.eye_distance_poor, true))
      throw Error(ErrorCode::kInvalidArgument,
                  "quality options: each 'poor' bound must lie beyond its 'fair' bound, and chip_size >= 32");
    tpl_ = dlib68_template(o.chip_size, 0.f);
  }

  FaceQuality assess(const Image& rgb, const Face& face) const override {
    if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(ErrorCode::kInvalidArgument, "quality: needs an 8-bit RGB image");
    if (!face.landmarks) throw Error(ErrorCode::kInvalidArgument, "quality: the face has no 68 landmarks");
    const Landmarks68& pts = *face.landmarks;
    FaceQuality q;
    q.box = face.box;

    // Sharpness and exposure on an aligned chip of fixed size, so that they do not depend on the face's size
    // in the photo (a large face is shrunk with area averaging first, which is what its detail looks like at
    // recognition scale).
    cv::Mat grey;
    cv::cvtColor(align_face(rgb, pts, tpl_), grey, cv::COLOR_RGB2GRAY);
    const int s = o_.chip_size;
    const cv::Rect inner(s / 5, s / 6, s - 2 * (s / 5), s - s / 6 - s / 12);  // eyes to mouth, no background
    cv::Scalar mean, sd;
    cv::meanStdDev(grey(inner), mean, sd);
    q.brightness = static_cast<float>(mean[0]);
    q.contrast = static_cast<float>(sd[0]);
    // Laplacian of the contrast-normalised chip: blur removes the high frequencies whatever the lighting.
    // The gain is capped so that a flat, dark chip does not turn its noise into "detail".
    cv::Mat norm, lap;
    grey.convertTo(norm, CV_32F, 50.0 / std::max(sd[0], 10.0));
    cv::Laplacian(norm, lap, CV_32F, 1);
    cv::meanStdDev(lap(inner), mean, sd);
    q.sharpness = static_cast<float>(sd[0]);

    q.pose = estimate_head_pose(pts, rgb.size());
    q.eye_aspect_ratio = eye_aspect_ratio(eyes_.points(rgb, face));  // its pose is not wanted here
    q.eyes_open = q.eye_aspect_ratio >= o_.eyes_closed_ear;
    cv::Point2f l(0, 0), r(0, 0);
    for (int i = 0; i < 6; ++i) l += pts[36 + i] / 6.f, r += pts[42 + i] / 6.f;
    q.eye_distance = static_cast<float>(cv::norm(r - l));

    float x0 = pts[0].x, y0 = pts[0].y, x1 = x0, y1 = y0;
    for (const auto& p : pts) x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
    q.face_size = std::max(x1 - x0, y1 - y0);
    const float mx = o_.border_margin * (x1 - x0), my = o_.border_margin * (y1 - y0);
    const cv::Rect2f grown(x0 - mx, y0 - my, x1 - x0 + 2 * mx, y1 - y0 + 2 * my);
    const cv::Rect2f inside = grown & cv::Rect2f(0, 0, static_cast<float>(rgb.cols), static_cast<float>(rgb.rows));
    q.inside_fraction = grown.area() > 0 ? inside.area() / grown.area() : 0.f;
    q.cut_by_border = q.inside_fraction < 1.f - o_.border_cut_fraction;

    Grader g;
    g.grade(-q.sharpness, -o_.sharpness_fair, -o_.sharpness_poor,
            fmt("blurred (sharpness %.1f < %.1f)", q.sharpness, q.sharpness < o_.sharpness_poor ? o_.sharpness_poor : o_.sharpness_fair));
    q.too_dark = q.brightness < o_.dark_fair;
    q.too_bright = q.brightness > o_.bright_fair;
    q.low_contrast = q.contrast < o_.contrast_fair;
    g.grade(-q.brightness, -o_.dark_fair, -o_.dark_poor, fmt("too dark (brightness %.0f < %.0f)", q.brightness, q.brightness < o_.dark_poor ? o_.dark_poor : o_.dark_fair));
    g.grade(q.brightness, o_.bright_fair, o_.bright_poor, fmt("too bright (brightness %.0f > %.0f)", q.brightness, q.brightness > o_.bright_poor ? o_.bright_poor : o_.bright_fair));
    g.grade(-q.contrast, -o_.contrast_fair, -o_.contrast_poor, fmt("low contrast (%.0f < %.0f)", q.contrast, q.contrast < o_.contrast_poor ? o_.contrast_poor : o_.contrast_fair));
    auto angle = [&](const char* what, float v, float fair, float poor) {
      const float a = std::abs(v);
      g.grade(a, fair, poor, std::string(what) + fmt(" %.0f degrees (|.| > %.0f)", v, a > poor ? poor : fair));
    };
    angle("turned: yaw", q.pose.yaw, o_.yaw_fair, o_.yaw_poor);
    angle("tilted: pitch", q.pose.pitch, o_.pitch_fair, o_.pitch_poor);
    angle("tilted: roll", q.pose.roll, o_.roll_fair, o_.roll_poor);
    g.grade(-q.eye_distance, -o_.eye_distance_fair, -o_.eye_distance_poor,
            fmt("small face (eye distance %.1f px < %.0f)", q.eye_distance,
                q.eye_distance < o_.eye_distance_poor ? o_.eye_distance_poor : o_.eye_distance_fair));
    if (!q.eyes_open) g.fail(0.3f, fmt("eyes closed (eye aspect ratio %.2f < %.2f)", q.eye_aspect_ratio, o_.eyes_closed_ear));
    if (q.cut_by_border) g.fail(q.inside_fraction, fmt("cut by the image border (%.0f%% of the face inside, < %.0f%%)", 100.0 * q.inside_fraction, 100.0 * (1.0 - o_.border_cut_fraction)));
    q.score = g.score;
    q.level = g.level;
    q.reasons = std::move(g.reasons);
    return q;
  }

  const QualityOptions& options() const override { return o_; }
  const std::string& name() const override { return name_; }

 private:
  QualityOptions o_;
  GeometryMeter eyes_;
  AlignmentTemplate tpl_;
  std::string name_ = "classic";
};

}  // namespace

Registry<QualityAssessor, const QualityOptions&>& quality_assessor_registry() {
  static auto* r = [] {
    auto* r = new Registry<QualityAssessor, const QualityOptions&>("quality assessor");
    r->add("classic", [](const QualityOptions& o) -> std::unique_ptr<QualityAssessor> {
      return std::make_unique<ClassicQuality>(o);
    });
    return r;
  }();
  return *r;
}

std::unique_ptr<QualityAssessor> create_quality_assessor(const std::string& name, const QualityOptions& options) {
  return quality_assessor_registry().create(name, options);
}

}  // namespace facekit
