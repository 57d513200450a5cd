// Hand-made texture features of a face crop (OpenCV only), for the "spoof-texture" checker.
//
// A replayed or printed face is a picture of a picture: the second capture adds screen moire or print halftone
// (narrow peaks at high spatial frequency), loses fine detail (less high-frequency energy, lower Laplacian
// variance) and shifts chroma micro-texture (display gamut, paper). Colour LBP after Boulkenafet et al.
// ("Face anti-spoofing based on color texture analysis", ICIP 2015) on YCrCb, plus spectral bands and sharpness.
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>

#include "facekit/error.hpp"
#include "facekit/spoof.hpp"

namespace facekit {
namespace {

constexpr int kSide = 128;      // every crop is resized to this first
constexpr int kLbpBins = 59;    // 58 uniform 8-bit patterns + one bin for all others
constexpr std::array<double, 7> kBandEdges = {0.02, 0.1, 0.2, 0.35, 0.5, 0.75, 1.5};  // radius / Nyquist
constexpr double kPeakFrom = 0.35;  // moire/halftone peaks are looked for above this radius

// Uniform pattern: at most two 0/1 transitions around the circle. Maps each 8-bit code to its bin.
std::array<uint8_t, 256> uniform_lbp_table() {
  std::array<uint8_t, 256> t{};
  int next = 0;
  for (int c = 0; c < 256; ++c) {
    int transitions = 0;
    for (int b = 0; b < 8; ++b) transitions += ((c >> b) & 1) != ((c >> ((b + 1) % 8)) & 1);
    t[c] = transitions <= 2 ? static_cast<uint8_t>(next++) : static_cast<uint8_t>(kLbpBins - 1);
  }
  return t;
}

// Normalised uniform LBP(8,1) histogram of one 8-bit plane (interior pixels).
void lbp_histogram(const cv::Mat& plane, std::vector<float>& out) {
  static const std::array<uint8_t, 256> table = uniform_lbp_table();
  static constexpr int dy[8] = {-1, -1, -1, 0, 1, 1, 1, 0}, dx[8] = {-1, 0, 1, 1, 1, 0, -1, -1};
  std::array<double, kLbpBins> h{};
  for (int y = 1; y < plane.rows - 1; ++y)
    for (int x = 1; x < plane.cols - 1; ++x) {
      const uint8_t c = plane.at<uint8_t>(y, x);
      int code = 0;
      for (int k = 0; k < 8; ++k) code |= (plane.at<uint8_t>(y + dy[k], x + dx[k]) >= c) << k;
      h[table[code]] += 1;
    }
  const double n = static_cast<double>(plane.rows - 2) * (plane.cols - 2);
  for (double v : h) out.push_back(static_cast<float>(v / n));
}

// Log energy fraction per radial band of the windowed grey spectrum, then log(max / median) power above
// kPeakFrom (isolated peaks: moire, halftone).
void spectrum_features(const cv::Mat& grey, std::vector<float>& out) {
  cv::Mat f;
  grey.convertTo(f, CV_32F);
  f -= cv::mean(f)[0];
  cv::Mat win;
  cv::createHanningWindow(win, f.size(), CV_32F);
  f = f.mul(win);
  cv::Mat spec;
  cv::dft(f, spec, cv::DFT_COMPLEX_OUTPUT);
  std::array<double, kBandEdges.size() - 1> band{};
  double total = 1e-12;
  std::vector<float> high;
  const int n = f.rows;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const cv::Vec2f v = spec.at<cv::Vec2f>(y, x);
      const double p = double(v[0]) * v[0] + double(v[1]) * v[1];
      const int fy = y < n / 2 ? y : y - n, fx = x < n / 2 ? x : x - n;
      const double r = std::sqrt(double(fx) * fx + double(fy) * fy) / (n / 2);
      if (r < kBandEdges.front()) continue;  // DC and the face's overall shading
      total += p;
      for (size_t b = 0; b + 1 < kBandEdges.size(); ++b)
        if (r >= kBandEdges[b] && r < kBandEdges[b + 1]) band[b] += p;
      if (r >= kPeakFrom && r <= 1.0) high.push_back(static_cast<float>(p));
    }
  for (double e : band) out.push_back(static_cast<float>(std::log10(e / total + 1e-10)));
  std::nth_element(high.begin(), high.begin() + high.size() / 2, high.end());
  const double median = high[high.size() / 2];
  const double peak = *std::max_element(high.begin(), high.end());
  out.push_back(static_cast<float>(std::log10((peak + 1e-6) / (median + 1e-6))));
}

}  // namespace

const std::vector<std::string>& texture_feature_groups() {
  static const std::vector<std::string> g = {"lbp", "spectrum", "sharpness", "chroma"};
  return g;
}

namespace {

// Which groups to compute, in canonical order; validates the names.
std::array<bool, 4> selected(const std::vector<std::string>& groups) {
  const auto& all = texture_feature_groups();
  std::array<bool, 4> on{};
  for (const auto& g : groups) {
    const auto it = std::find(all.begin(), all.end(), g);
    if (it == all.end()) throw Error(ErrorCode::kInvalidArgument, "unknown texture feature group '" + g + "'");
    on[it - all.begin()] = true;
  }
  if (groups.empty()) on.fill(true);
  return on;
}

}  // namespace

int texture_feature_size(const std::vector<std::string>& groups) {
  constexpr int sizes[4] = {3 * kLbpBins, static_cast<int>(kBandEdges.size() - 1) + 1, 1, 4};
  const auto on = selected(groups);
  int n = 0;
  for (int i = 0; i < 4; ++i) n += on[i] ? sizes[i] : 0;
  return n;
}

std::vector<float> texture_features(const Image& rgb_crop, const std::vector<std::string>& groups) {
  const auto on = selected(groups);
  if (rgb_crop.empty() || rgb_crop.type() != CV_8UC3)
    throw Error(ErrorCode::kInvalidArgument, "texture features need an RGB 8-bit crop");
  cv::Mat img;
  cv::resize(rgb_crop, img, {kSide, kSide}, 0, 0, rgb_crop.cols > kSide ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::Mat ycc;
  cv::cvtColor(img, ycc, cv::COLOR_RGB2YCrCb);
  std::vector<cv::Mat> planes;
  cv::split(ycc, planes);
  std::vector<float> f;
  f.reserve(texture_feature_size(groups));
  if (on[0])
    for (const auto& p : planes) lbp_histogram(p, f);
  if (on[1]) spectrum_features(planes[0], f);
  if (on[2]) {
    // Sharpness relative to contrast, so that exposure does not move it.
    cv::Mat lap;
    cv::Laplacian(planes[0], lap, CV_32F);
    cv::Scalar gm, gs, lm, ls;
    cv::meanStdDev(planes[0], gm, gs);
    cv::meanStdDev(lap, lm, ls);
    f.push_back(static_cast<float>(std::log10((ls[0] * ls[0] + 1e-3) / (gs[0] * gs[0] + 1.0))));
  }
  if (on[3])
    for (int c = 1; c <= 2; ++c) {
      cv::Scalar m, sd;
      cv::meanStdDev(planes[c], m, sd);
      f.push_back(static_cast<float>(m[0] / 255.0));
      f.push_back(static_cast<float>(sd[0] / 255.0));
    }
  return f;
}

}  // namespace facekit
