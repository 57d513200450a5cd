#include "train/plot.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include <opencv2/imgproc.hpp>

#include "facekit/image.hpp"

namespace facekit::detail {
namespace {
struct Series {
  std::function<double(const EpochMetrics&)> value;
  cv::Scalar colour;  // RGB
  const char* label;
};

void panel(cv::Mat& img, cv::Rect r, const std::vector<EpochMetrics>& ep, const std::vector<Series>& series,
           double lo, double hi, const char* title) {
  const cv::Scalar ink(40, 40, 40), grid(220, 220, 220);
  cv::rectangle(img, r, ink, 1);
  for (int i = 1; i < 4; ++i) {
    const int y = r.y + r.height * i / 4;
    cv::line(img, {r.x, y}, {r.x + r.width, y}, grid, 1);
    cv::putText(img, cv::format("%.2f", hi - (hi - lo) * i / 4), {r.x - 42, y + 4}, cv::FONT_HERSHEY_SIMPLEX, 0.35, ink, 1);
  }
  cv::putText(img, cv::format("%.2f", hi), {r.x - 42, r.y + 4}, cv::FONT_HERSHEY_SIMPLEX, 0.35, ink, 1);
  cv::putText(img, cv::format("%.2f", lo), {r.x - 42, r.y + r.height + 4}, cv::FONT_HERSHEY_SIMPLEX, 0.35, ink, 1);
  cv::putText(img, title, {r.x, r.y - 8}, cv::FONT_HERSHEY_SIMPLEX, 0.45, ink, 1);
  cv::putText(img, "epoch", {r.x + r.width / 2 - 20, r.y + r.height + 30}, cv::FONT_HERSHEY_SIMPLEX, 0.4, ink, 1);
  const int n = static_cast<int>(ep.size());
  auto px = [&](int i) { return r.x + (n == 1 ? r.width / 2 : r.width * i / (n - 1)); };
  auto py = [&](double v) { return r.y + static_cast<int>(r.height * (hi - std::clamp(v, lo, hi)) / std::max(hi - lo, 1e-9)); };
  for (int i = 0; i < n; i += std::max(1, n / 10))
    cv::putText(img, std::to_string(ep[i].epoch), {px(i) - 4, r.y + r.height + 14}, cv::FONT_HERSHEY_SIMPLEX, 0.35, ink, 1);
  int legend_y = r.y + 16;
  for (const auto& s : series) {
    if (s.value(ep[0]) < 0) continue;  // series not measured (e.g. no eval pairs)
    for (int i = 0; i < n; ++i) {
      cv::circle(img, {px(i), py(s.value(ep[i]))}, 3, s.colour, cv::FILLED);
      if (i > 0) cv::line(img, {px(i - 1), py(s.value(ep[i - 1]))}, {px(i), py(s.value(ep[i]))}, s.colour, 2);
    }
    cv::putText(img, s.label, {r.x + 8, legend_y}, cv::FONT_HERSHEY_SIMPLEX, 0.4, s.colour, 1);
    legend_y += 16;
  }
}
}  // namespace

void write_training_plot(const std::filesystem::path& png, const std::vector<EpochMetrics>& ep) {
  if (ep.empty()) return;
  cv::Mat img(360, 900, CV_8UC3, cv::Scalar(255, 255, 255));
  double loss_hi = 0;
  for (const auto& e : ep) loss_hi = std::max({loss_hi, e.loss, e.active});
  panel(img, {60, 30, 370, 280}, ep,
        {{[](const EpochMetrics& e) { return e.loss; }, {200, 40, 40}, "triplet loss"},
         {[](const EpochMetrics& e) { return e.active; }, {240, 150, 0}, "active triplets (fraction)"}},
        0, std::max(loss_hi * 1.05, 0.01), "loss");
  double acc_lo = 1;
  for (const auto& e : ep)
    for (double v : {e.validation_accuracy, e.eval_accuracy, e.eval_accuracy_calibrated})
      if (v >= 0) acc_lo = std::min(acc_lo, v);
  panel(img, {510, 30, 370, 280}, ep,
        {{[](const EpochMetrics& e) { return e.validation_accuracy; }, {30, 90, 200}, "validation identities"},
         {[](const EpochMetrics& e) { return e.eval_accuracy; }, {30, 160, 60}, "eval pairs (bench threshold)"},
         {[](const EpochMetrics& e) { return e.eval_accuracy_calibrated; }, {120, 60, 160}, "eval pairs (val threshold)"}},
        std::max(0.0, std::floor(acc_lo * 20) / 20), 1.0, "pair accuracy");
  save_image(png, img);
}

}  // namespace facekit::detail
