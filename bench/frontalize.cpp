#include "frontalize.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"

namespace facekit::detail {
namespace {

using Vec3 = cv::Vec3d;

Vec3 v3(const cv::Point3f& p) { return {p.x, p.y, p.z}; }

Vec3 centroid(const Mesh468& m) {
  Vec3 c(0, 0, 0);
  for (const auto& p : m) c += v3(p);
  return c / 468.0;
}

// Least-squares similarity taking `a` onto `b`: b ~ s R (a - ca) + cb (Umeyama, no reflection).
struct Similarity3 {
  cv::Matx33d r = cv::Matx33d::eye();
  double s = 1;
  Vec3 ca, cb;
};

Similarity3 procrustes(const Mesh468& a, const Mesh468& b) {
  Similarity3 t;
  t.ca = centroid(a), t.cb = centroid(b);
  cv::Matx33d h = cv::Matx33d::zeros();
  double var_a = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const Vec3 p = v3(a[i]) - t.ca, q = v3(b[i]) - t.cb;
    h += cv::Matx33d(q[0] * p[0], q[0] * p[1], q[0] * p[2], q[1] * p[0], q[1] * p[1], q[1] * p[2], q[2] * p[0],
                     q[2] * p[1], q[2] * p[2]);
    var_a += p.dot(p);
  }
  cv::Mat w, u, vt;
  cv::SVD::compute(cv::Mat(h), w, u, vt);  // h = sum q p^T = U W V^T; R = U D V^T
  const double d = cv::determinant(u * vt) < 0 ? -1 : 1;
  cv::Mat dm = cv::Mat::eye(3, 3, CV_64F);
  dm.at<double>(2, 2) = d;
  const cv::Mat r = u * dm * vt;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) t.r(i, j) = r.at<double>(i, j);
  const double trace = w.at<double>(0) + w.at<double>(1) + d * w.at<double>(2);
  t.s = var_a > 0 ? trace / var_a : 1;
  return t;
}

Mesh468 normalised(const Mesh468& m) {
  const Vec3 c = centroid(m);
  double ss = 0;
  for (const auto& p : m) ss += (v3(p) - c).dot(v3(p) - c);
  const double k = ss > 0 ? 1 / std::sqrt(ss / 468.0) : 1;
  Mesh468 out;
  for (size_t i = 0; i < m.size(); ++i) {
    const Vec3 q = (v3(m[i]) - c) * k;
    out[i] = cv::Point3f(float(q[0]), float(q[1]), float(q[2]));
  }
  return out;
}

float smoothstep(float e0, float e1, float x) {
  const float t = std::clamp((x - e0) / (e1 - e0), 0.f, 1.f);
  return t * t * (3 - 2 * t);
}

// Unit normal's component towards the camera (-z), signed so that the reference's frontal view is positive.
float visibility(const Mesh468& m, const std::array<int, 3>& t, float orient) {
  const Vec3 a = v3(m[t[0]]), b = v3(m[t[1]]), c = v3(m[t[2]]);
  const Vec3 n = (b - a).cross(c - a);
  const double len = cv::norm(n);
  return len > 0 ? orient * static_cast<float>(-n[2] / len) : 0.f;
}

float orientation(const Mesh468& ref, const std::array<int, 3>& t) {
  const Vec3 a = v3(ref[t[0]]), b = v3(ref[t[1]]), c = v3(ref[t[2]]);
  return -(b - a).cross(c - a)[2] >= 0 ? 1.f : -1.f;
}

// Which points of the mesh the camera sees: a depth buffer of the mesh's own triangles at about 1/128 of the
// face's width per cell, since the normal alone does not say whether the nose hides a point behind it.
class DepthBuffer {
 public:
  DepthBuffer(const Mesh468& m, const std::vector<std::array<int, 3>>& tris) : m_(m) {
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (const auto& p : m) x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
    cell_ = std::max(x1 - x0, y1 - y0) / 128.f;
    if (!(cell_ > 0)) cell_ = 1;
    ox_ = x0, oy_ = y0;
    w_ = int((x1 - x0) / cell_) + 2, h_ = int((y1 - y0) / cell_) + 2;
    z_.assign(size_t(w_) * h_, 1e30f);
    tol_ = 3 * cell_;
    for (const auto& t : tris) draw(t);
  }
  bool visible(const cv::Point3f& p) const {
    const int gx = int((p.x - ox_) / cell_ + 0.5f), gy = int((p.y - oy_) / cell_ + 0.5f);
    if (gx < 0 || gy < 0 || gx >= w_ || gy >= h_) return true;
    return p.z <= z_[size_t(gy) * w_ + gx] + tol_;
  }
  // Share of the triangle's corners and centre that nothing nearer hides.
  float seen(const std::array<int, 3>& t) const {
    const cv::Point3f c = (m_[t[0]] + m_[t[1]] + m_[t[2]]) * (1.f / 3);
    return (visible(m_[t[0]]) + visible(m_[t[1]]) + visible(m_[t[2]]) + visible(c)) / 4.f;
  }

 private:
  void draw(const std::array<int, 3>& t) {
    cv::Point3f p[3];
    for (int k = 0; k < 3; ++k) p[k] = {(m_[t[k]].x - ox_) / cell_, (m_[t[k]].y - oy_) / cell_, m_[t[k]].z};
    const float area = (p[1].x - p[0].x) * (p[2].y - p[0].y) - (p[2].x - p[0].x) * (p[1].y - p[0].y);
    if (std::abs(area) < 1e-6f) return;
    const int xa = std::max(0, int(std::floor(std::min({p[0].x, p[1].x, p[2].x}))));
    const int xb = std::min(w_ - 1, int(std::ceil(std::max({p[0].x, p[1].x, p[2].x}))));
    const int ya = std::max(0, int(std::floor(std::min({p[0].y, p[1].y, p[2].y}))));
    const int yb = std::min(h_ - 1, int(std::ceil(std::max({p[0].y, p[1].y, p[2].y}))));
    for (int y = ya; y <= yb; ++y)
      for (int x = xa; x <= xb; ++x) {
        const float l1 = ((p[1].x - x) * (p[2].y - y) - (p[2].x - x) * (p[1].y - y)) / area;
        const float l2 = ((p[2].x - x) * (p[0].y - y) - (p[0].x - x) * (p[2].y - y)) / area;
        const float l3 = 1 - l1 - l2;
        if (l1 < -1e-4f || l2 < -1e-4f || l3 < -1e-4f) continue;
        float& z = z_[size_t(y) * w_ + x];
        z = std::min(z, l1 * p[0].z + l2 * p[1].z + l3 * p[2].z);
      }
  }
  const Mesh468& m_;
  float cell_ = 1, ox_ = 0, oy_ = 0, tol_ = 0;
  int w_ = 0, h_ = 0;
  std::vector<float> z_;
};

}  // namespace

FrontalModel build_frontal_model(const std::vector<Mesh468>& meshes) {
  if (meshes.empty()) throw Error(ErrorCode::kInvalidArgument, "build_frontal_model: no meshes");
  std::vector<Mesh468> norm;
  for (const auto& m : meshes) norm.push_back(normalised(m));
  Mesh468 ref = norm[0];
  for (int iter = 0; iter < 5; ++iter) {
    std::array<Vec3, 468> sum{};
    for (const auto& m : norm) {
      const auto t = procrustes(m, ref);  // m -> ref
      for (int i = 0; i < 468; ++i) sum[i] += t.s * (t.r * (v3(m[i]) - t.ca)) + t.cb;
    }
    Mesh468 mean;
    for (int i = 0; i < 468; ++i) {
      const Vec3 q = sum[i] / double(norm.size());
      mean[i] = cv::Point3f(float(q[0]), float(q[1]), float(q[2]));
    }
    ref = normalised(mean);
  }
  // The symmetry plane: fitted to FaceMesh's midline vertices (lips, nose, brow ridge, forehead, chin).
  static const int kMidline[] = {0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 151, 152, 164, 168, 175, 195, 197, 199, 200};
  Vec3 p0(0, 0, 0);
  for (int i : kMidline) p0 += v3(ref[i]);
  p0 /= double(std::size(kMidline));
  cv::Matx33d cov = cv::Matx33d::zeros();
  for (int i : kMidline) {
    const Vec3 d = v3(ref[i]) - p0;
    cov += cv::Matx33d(d[0] * d[0], d[0] * d[1], d[0] * d[2], d[1] * d[0], d[1] * d[1], d[1] * d[2], d[2] * d[0],
                       d[2] * d[1], d[2] * d[2]);
  }
  cv::Mat evals, evecs;
  cv::eigen(cv::Mat(cov), evals, evecs);  // descending; the last is the plane's normal
  Vec3 x(evecs.at<double>(2, 0), evecs.at<double>(2, 1), evecs.at<double>(2, 2));
  if (x[0] < 0) x = -x;
  Vec3 y = Vec3(0, 1, 0) - x * x[1];  // the photos' own "down", within the plane: keeps their mean pitch
  y /= cv::norm(y);
  const Vec3 z = x.cross(y);
  FrontalModel fm;
  for (int i = 0; i < 468; ++i) {
    const Vec3 d = v3(ref[i]) - p0;
    fm.mean[i] = cv::Point3f(float(d.dot(x)), float(d.dot(y)), float(d.dot(z)));
  }
  for (int i = 0; i < 468; ++i) {
    const cv::Point3f r(-fm.mean[i].x, fm.mean[i].y, fm.mean[i].z);
    double best = 1e30;
    for (int j = 0; j < 468; ++j) {
      const cv::Point3f d = fm.mean[j] - r;
      const double dd = d.dot(d);
      if (dd < best) best = dd, fm.mirror[i] = j;
    }
  }
  Mesh468 sym;
  for (int i = 0; i < 468; ++i) {
    const auto& q = fm.mean[fm.mirror[i]];
    sym[i] = (fm.mean[i] + cv::Point3f(-q.x, q.y, q.z)) * 0.5f;
  }
  fm.mean = normalised(sym);
  // Delaunay triangulation of the frontal view.
  cv::Subdiv2D sub(cv::Rect(-10000, -10000, 20000, 20000));
  for (int i = 0; i < 468; ++i) sub.insert(cv::Point2f(fm.mean[i].x * 1000, fm.mean[i].y * 1000));
  std::vector<cv::Vec6f> tris;
  sub.getTriangleList(tris);
  auto index_of = [&](float px, float py) {
    int best = -1;
    double bd = 1e30;
    for (int i = 0; i < 468; ++i) {
      const double dx = fm.mean[i].x * 1000 - px, dy = fm.mean[i].y * 1000 - py, dd = dx * dx + dy * dy;
      if (dd < bd) bd = dd, best = i;
    }
    return bd < 1e-2 ? best : -1;
  };
  for (const auto& t : tris) {
    const int a = index_of(t[0], t[1]), b = index_of(t[2], t[3]), c = index_of(t[4], t[5]);
    if (a < 0 || b < 0 || c < 0) continue;
    fm.triangles.push_back({a, b, c});
  }
  return fm;
}

void write_frontal_model(const std::string& path, const FrontalModel& m) {
  nlohmann::json j;
  j["format"] = "facekit-frontal-model-1";
  std::vector<float> mean;
  for (const auto& p : m.mean) mean.insert(mean.end(), {p.x, p.y, p.z});
  j["mean"] = mean;
  j["mirror"] = std::vector<int>(m.mirror.begin(), m.mirror.end());
  std::vector<int> tri;
  for (const auto& t : m.triangles) tri.insert(tri.end(), t.begin(), t.end());
  j["triangles"] = tri;
  std::ofstream(path) << j.dump() << "\n";
}

FrontalModel read_frontal_model(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open frontal model " + path);
  FrontalModel m;
  try {
    const auto j = nlohmann::json::parse(in);
    const auto mean = j.at("mean").get<std::vector<float>>();
    const auto mirror = j.at("mirror").get<std::vector<int>>();
    const auto tri = j.at("triangles").get<std::vector<int>>();
    if (mean.size() != 468 * 3 || mirror.size() != 468 || tri.size() % 3 != 0 || tri.empty())
      throw Error(ErrorCode::kModelCorrupt, "frontal model " + path + ": wrong sizes");
    for (int i = 0; i < 468; ++i) {
      m.mean[i] = {mean[3 * i], mean[3 * i + 1], mean[3 * i + 2]};
      if (mirror[i] < 0 || mirror[i] >= 468) throw Error(ErrorCode::kModelCorrupt, "frontal model: bad mirror index");
      m.mirror[i] = mirror[i];
    }
    for (size_t i = 0; i < tri.size(); i += 3) {
      for (int k = 0; k < 3; ++k)
        if (tri[i + k] < 0 || tri[i + k] >= 468) throw Error(ErrorCode::kModelCorrupt, "frontal model: bad triangle");
      m.triangles.push_back({tri[i], tri[i + 1], tri[i + 2]});
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kModelCorrupt, "frontal model " + path + ": " + e.what());
  }
  return m;
}

MeshPose mesh_pose(const Mesh468& mesh, const FrontalModel& model) {
  const auto t = procrustes(model.mean, mesh);
  MeshPose p;
  p.rotation = t.r;
  p.centroid = {t.cb[0], t.cb[1], t.cb[2]};
  p.scale = t.s;
  const auto& r = t.r;
  constexpr double deg = 180.0 / CV_PI;
  p.yaw = std::asin(std::clamp(-r(2, 0), -1.0, 1.0)) * deg;
  p.pitch = std::atan2(r(2, 1), r(2, 2)) * deg;
  p.roll = std::atan2(r(1, 0), r(0, 0)) * deg;
  return p;
}

Image frontal_chip(const Image& rgb, const Mesh468& mesh, const FrontalModel& model, const MeshSource& source,
                   const AlignmentTemplate& tpl, const FrontalizeOptions& options, MeshPose* pose_out) {
  const MeshPose pose = mesh_pose(mesh, model);
  if (pose_out) *pose_out = pose;
  const Vec3 c(pose.centroid.x, pose.centroid.y, pose.centroid.z);
  const cv::Matx33d rt = pose.rotation.t();
  Mesh468 front;  // the face's own mesh, turned to face the camera about its centroid
  for (int i = 0; i < 468; ++i) {
    const Vec3 q = rt * (v3(mesh[i]) - c) + c;
    front[i] = cv::Point3f(float(q[0]), float(q[1]), float(q[2]));
  }
  const cv::Mat m = alignment_matrix(source.to_68(front), tpl);  // image -> chip, for the frontal face
  const int n = tpl.size;
  Image base;
  cv::warpAffine(rgb, base, m, {n, n}, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  std::vector<cv::Point2f> dst(468), src(468);
  for (int i = 0; i < 468; ++i) {
    dst[i] = {float(m.at<double>(0, 0) * front[i].x + m.at<double>(0, 1) * front[i].y + m.at<double>(0, 2)),
              float(m.at<double>(1, 0) * front[i].x + m.at<double>(1, 1) * front[i].y + m.at<double>(1, 2))};
    src[i] = {mesh[i].x, mesh[i].y};
  }
  const size_t nt = model.triangles.size();
  const DepthBuffer depth(mesh, model.triangles);
  cv::Mat1i ids(n, n, -1);
  std::vector<cv::Matx23d> own(nt), mir(nt);
  std::vector<float> weight(nt, 1.f);
  for (size_t t = 0; t < nt; ++t) {
    const auto& tri = model.triangles[t];
    const cv::Point2f d[3] = {dst[tri[0]], dst[tri[1]], dst[tri[2]]};
    const double area = (d[1] - d[0]).cross(d[2] - d[0]);
    if (std::abs(area) < 1e-3) continue;
    const cv::Point2f s[3] = {src[tri[0]], src[tri[1]], src[tri[2]]};
    const std::array<int, 3> mt = {model.mirror[tri[0]], model.mirror[tri[1]], model.mirror[tri[2]]};
    const cv::Point2f sm[3] = {src[mt[0]], src[mt[1]], src[mt[2]]};
    own[t] = cv::Matx23d(cv::getAffineTransform(d, s));
    mir[t] = cv::Matx23d(cv::getAffineTransform(d, sm));
    const float o = orientation(model.mean, tri);
    const float vis = visibility(mesh, tri, o) * depth.seen(tri);
    const float vis_m = visibility(mesh, mt, orientation(model.mean, mt)) * depth.seen(mt);
    weight[t] = std::max(smoothstep(options.hidden_below, options.visible_above, vis), smoothstep(-0.1f, 0.1f, vis - vis_m));
    cv::Point pts[3];
    for (int k = 0; k < 3; ++k) pts[k] = cv::Point(cvRound(d[k].x * 16), cvRound(d[k].y * 16));
    cv::fillConvexPoly(ids, pts, 3, cv::Scalar(int(t)), cv::LINE_8, 4);
  }
  cv::Mat2f map_own(n, n, cv::Vec2f(-1, -1)), map_mir(n, n, cv::Vec2f(-1, -1));
  cv::Mat1f w(n, n, 0.f);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const int t = ids(y, x);
      if (t < 0) continue;
      const auto& a = own[t];
      const auto& b = mir[t];
      map_own(y, x) = cv::Vec2f(float(a(0, 0) * x + a(0, 1) * y + a(0, 2)), float(a(1, 0) * x + a(1, 1) * y + a(1, 2)));
      map_mir(y, x) = cv::Vec2f(float(b(0, 0) * x + b(0, 1) * y + b(0, 2)), float(b(1, 0) * x + b(1, 1) * y + b(1, 2)));
      w(y, x) = weight[t];
    }
  Image a, b;
  cv::remap(rgb, a, map_own, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  cv::remap(rgb, b, map_mir, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(0));
  Image out = base.clone();
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      if (ids(y, x) < 0) continue;
      const float k = w(y, x);
      const auto& pa = a.at<cv::Vec3b>(y, x);
      const auto& pb = b.at<cv::Vec3b>(y, x);
      auto& po = out.at<cv::Vec3b>(y, x);
      for (int ch = 0; ch < 3; ++ch) po[ch] = cv::saturate_cast<uchar>(k * pa[ch] + (1 - k) * pb[ch]);
    }
  return out;
}

}  // namespace facekit::detail
