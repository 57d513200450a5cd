// ROC / DET curves and reliability diagrams drawn with OpenCV (no plotting library in the dependencies).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "facekit/error.hpp"
#include "facekit/eval.hpp"
#include "facekit/spoof_eval.hpp"
#include "facekit/bias.hpp"

namespace facekit {
namespace {

// Distinguishable line colours (BGR), in order of runs.
const cv::Scalar kColours[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44}, {40, 39, 214}, {189, 103, 148},
                               {75, 86, 140},  {194, 119, 227}, {127, 127, 127}, {34, 189, 188}, {207, 190, 23}};
const cv::Scalar kInk{40, 40, 40}, kGrid{225, 225, 225};
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

cv::Scalar colour(size_t i) { return kColours[i % std::size(kColours)]; }

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale = 0.45, cv::Scalar c = kInk, int align = 0) {
  int base = 0;
  const auto sz = cv::getTextSize(s, kFont, scale, 1, &base);
  if (align == 1) at.x -= sz.width / 2;   // centred
  if (align == 2) at.x -= sz.width;       // right-aligned
  cv::putText(img, s, at, kFont, scale, c, 1, cv::LINE_AA);
}

// A plotting area mapping data to pixels; axes linear or log10 (values given as log10 already).
struct Panel {
  cv::Rect r;
  double x0, x1, y0, y1;
  cv::Point px(double x, double y) const {
    const double fx = (x - x0) / (x1 - x0), fy = (y - y0) / (y1 - y0);
    return {r.x + static_cast<int>(std::lround(fx * r.width)), r.y + r.height - static_cast<int>(std::lround(fy * r.height))};
  }
  bool inside_x(double x) const { return x >= x0 - 1e-9 && x <= x1 + 1e-9; }
};

std::string pow10_label(int e) { return e == 0 ? "1" : "1e" + std::to_string(e); }

void frame(cv::Mat& img, const Panel& p, const std::string& title, const std::string& xlabel, const std::string& ylabel,
           bool xlog, bool ylog, double ystep) {
  // Grid and tick labels.
  if (xlog) {
    for (int e = static_cast<int>(std::ceil(p.x0)); e <= static_cast<int>(std::floor(p.x1)); ++e) {
      cv::line(img, p.px(e, p.y0), p.px(e, p.y1), kGrid, 1);
      text(img, pow10_label(e), p.px(e, p.y0) + cv::Point(0, 18), 0.42, kInk, 1);
    }
  }
  if (ylog) {
    for (int e = static_cast<int>(std::ceil(p.y0)); e <= static_cast<int>(std::floor(p.y1)); ++e) {
      cv::line(img, p.px(p.x0, e), p.px(p.x1, e), kGrid, 1);
      text(img, pow10_label(e), p.px(p.x0, e) + cv::Point(-6, 5), 0.42, kInk, 2);
    }
  } else {
    for (double y = std::ceil(p.y0 / ystep - 1e-9) * ystep; y <= p.y1 + 1e-9; y += ystep) {
      cv::line(img, p.px(p.x0, y), p.px(p.x1, y), kGrid, 1);
      char buf[16];
      std::snprintf(buf, sizeof buf, ystep < 0.1 ? "%.2f" : "%.1f", std::abs(y) < 1e-9 ? 0.0 : y);
      text(img, buf, p.px(p.x0, y) + cv::Point(-6, 5), 0.42, kInk, 2);
    }
  }
  if (!xlog) {
    for (double x = std::ceil(p.x0 / 0.1 - 1e-9) * 0.1; x <= p.x1 + 1e-9; x += 0.1) {
      cv::line(img, p.px(x, p.y0), p.px(x, p.y1), kGrid, 1);
      char buf[16];
      std::snprintf(buf, sizeof buf, "%.1f", std::abs(x) < 1e-9 ? 0.0 : x);
      text(img, buf, p.px(x, p.y0) + cv::Point(0, 18), 0.42, kInk, 1);
    }
  }
  cv::rectangle(img, p.r, kInk, 1);
  text(img, title, {p.r.x + p.r.width / 2, p.r.y - 12}, 0.55, kInk, 1);
  text(img, xlabel, {p.r.x + p.r.width / 2, p.r.y + p.r.height + 40}, 0.48, kInk, 1);
  // The y label, rotated: drawn on its own strip and turned.
  int base = 0;
  const auto sz = cv::getTextSize(ylabel, kFont, 0.48, 1, &base);
  cv::Mat strip(sz.height + base + 4, sz.width + 4, img.type(), cv::Scalar::all(255));
  cv::putText(strip, ylabel, {2, sz.height + 1}, kFont, 0.48, kInk, 1, cv::LINE_AA);
  cv::Mat turned;
  cv::rotate(strip, turned, cv::ROTATE_90_COUNTERCLOCKWISE);
  const int x = std::max(0, p.r.x - 62), y = std::max(0, p.r.y + p.r.height / 2 - turned.rows / 2);
  if (x + turned.cols <= img.cols && y + turned.rows <= img.rows) turned.copyTo(img(cv::Rect(x, y, turned.cols, turned.rows)));
}

void legend(cv::Mat& img, const Panel& p, const std::vector<std::string>& lines, bool bottom_right) {
  if (lines.empty()) return;
  int w = 0;
  for (const auto& l : lines) {
    int base = 0;
    w = std::max(w, cv::getTextSize(l, kFont, 0.42, 1, &base).width);
  }
  const int h = 20 * static_cast<int>(lines.size()) + 8;
  const cv::Point o = bottom_right ? cv::Point(p.r.x + p.r.width - w - 44, p.r.y + p.r.height - h - 8)
                                   : cv::Point(p.r.x + 8, p.r.y + 8);
  cv::rectangle(img, cv::Rect(o.x, o.y, w + 36, h), cv::Scalar::all(255), cv::FILLED);
  cv::rectangle(img, cv::Rect(o.x, o.y, w + 36, h), kGrid, 1);
  for (size_t i = 0; i < lines.size(); ++i) {
    const int y = o.y + 16 + 20 * static_cast<int>(i);
    cv::line(img, {o.x + 6, y - 4}, {o.x + 26, y - 4}, colour(i), 2, cv::LINE_AA);
    text(img, lines[i], {o.x + 32, y}, 0.42);
  }
}

void save(const std::filesystem::path& png, const cv::Mat& img) {
  bool ok = false;
  try {
    ok = cv::imwrite(png.string(), img);
  } catch (const cv::Exception&) {
    ok = false;
  }
  if (!ok) throw Error(ErrorCode::kInvalidArgument, "cannot write the plot " + png.string());
}

}  // namespace

void write_roc_plot(const std::filesystem::path& png, const std::vector<PlotRun>& runs, const std::string& title) {
  if (runs.empty()) throw Error(ErrorCode::kInvalidArgument, "no runs to plot");
  std::vector<std::vector<OperatingPoint>> curves;
  std::vector<std::string> labels;
  int most_impostors = 0;
  double lowest_tar = 1;
  for (const auto& r : runs) {
    curves.push_back(roc_curve(r.pairs));  // throws without both kinds
    const int neg = static_cast<int>(std::count_if(r.pairs.begin(), r.pairs.end(), [](auto& p) { return !p.same; }));
    most_impostors = std::max(most_impostors, neg);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s  AUC %.4f  EER %.2f%%", r.label.c_str(), roc_auc(r.pairs),
                  100 * equal_error_rate(r.pairs));
    labels.push_back(buf);
  }
  // FAR axis from the smallest rate any run can resolve (one impostor in all of them) up to 1.
  const double xmin = std::max(-6.0, std::floor(std::log10(1.0 / most_impostors)));
  for (const auto& c : curves)
    for (const auto& pt : c)
      if (pt.far >= std::pow(10, xmin)) lowest_tar = std::min(lowest_tar, pt.tar);
  const double ymin = std::max(0.0, std::floor(lowest_tar * 10 - 1e-9) / 10);

  const int W = 1320, H = 620;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar::all(255));
  if (!title.empty()) text(img, title, {W / 2, 24}, 0.6, kInk, 1);
  const Panel roc{cv::Rect(90, 70, 520, 460), xmin, 0, ymin, 1};
  frame(img, roc, "ROC", "false accept rate (FAR, log)", "true accept rate (TAR)", true, false,
        1 - ymin <= 0.3 ? 0.05 : 0.1);
  // DET: both error rates on log axes down to the resolution of the data.
  const double emin = xmin;
  const Panel det{cv::Rect(760, 70, 520, 460), emin, 0, emin, 0};
  frame(img, det, "DET", "false match rate (FMR, log)", "false non-match rate (FNMR, log)", true, true, 0);

  for (size_t i = 0; i < curves.size(); ++i) {
    std::vector<cv::Point> roc_pts, det_pts;
    for (const auto& pt : curves[i]) {
      const double lx = std::log10(std::max(pt.far, std::pow(10, xmin)));
      roc_pts.push_back(roc.px(lx, std::max(pt.tar, ymin)));
      const double fnmr = 1 - pt.tar;
      if (pt.far > 0 && fnmr > 0)
        det_pts.push_back(det.px(std::max(std::log10(pt.far), emin), std::max(std::log10(fnmr), emin)));
    }
    cv::Mat clip_roc = img(roc.r), clip_det = img(det.r);
    for (auto& q : roc_pts) q -= roc.r.tl();
    for (auto& q : det_pts) q -= det.r.tl();
    cv::polylines(clip_roc, roc_pts, false, colour(i), 2, cv::LINE_AA);
    if (det_pts.size() > 1) cv::polylines(clip_det, det_pts, false, colour(i), 2, cv::LINE_AA);
  }
  legend(img, roc, labels, true);
  legend(img, det, labels, false);
  text(img, "curves end where the data ends: " + std::to_string(most_impostors) + " impostor pairs at most",
       {W / 2, H - 16}, 0.42, kInk, 1);
  save(png, img);
}

void write_reliability_plot(const std::filesystem::path& png, const std::vector<ReliabilityRun>& runs,
                            const std::string& title) {
  if (runs.empty()) throw Error(ErrorCode::kInvalidArgument, "no runs to plot");
  const int W = 680, H = 640;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar::all(255));
  if (!title.empty()) text(img, title, {W / 2, 24}, 0.55, kInk, 1);
  const Panel p{cv::Rect(100, 70, 520, 460), 0, 1, 0, 1};
  frame(img, p, "reliability", "predicted P(same)", "observed fraction same", false, false, 0.1);
  cv::line(img, p.px(0, 0), p.px(1, 1), cv::Scalar::all(150), 1, cv::LINE_AA);  // perfect calibration
  std::vector<std::string> labels;
  for (size_t i = 0; i < runs.size(); ++i) {
    int total = 0;
    for (const auto& b : runs[i].bins) total += b.count;
    std::vector<cv::Point> pts;
    for (const auto& b : runs[i].bins) {
      if (b.count == 0) continue;
      const cv::Point c = p.px(b.mean_predicted, b.fraction_same);
      pts.push_back(c);
      // Marker area grows with the bin's share of the pairs.
      const int radius = 3 + static_cast<int>(std::lround(12 * std::sqrt(static_cast<double>(b.count) / std::max(1, total))));
      cv::circle(img, c, radius, colour(i), 2, cv::LINE_AA);
    }
    if (pts.size() > 1) cv::polylines(img, pts, false, colour(i), 1, cv::LINE_AA);
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s  ECE %.4f", runs[i].label.c_str(), runs[i].ece);
    labels.push_back(buf);
  }
  legend(img, p, labels, false);
  text(img, "circle size ~ share of pairs in the bin; grey line = perfect calibration", {W / 2, H - 16}, 0.42, kInk, 1);
  save(png, img);
}

void draw_pad_roc(const std::filesystem::path& png,
                  const std::vector<std::pair<std::string, std::vector<RocPoint>>>& curves, const std::string& title) {
  const int W = 640, H = 640;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar::all(255));
  const Panel p{cv::Rect(90, 50, 520, 520), 0, 1, 0, 1};
  frame(img, p, title, "APCER (attacks accepted)", "1 - BPCER (bona fide accepted)", false, false, 0.1);
  cv::line(img, p.px(0, 0), p.px(1, 1), cv::Scalar::all(170), 1, cv::LINE_AA);  // chance
  std::vector<std::string> labels;
  for (size_t c = 0; c < curves.size(); ++c) {
    std::vector<cv::Point> poly;
    for (const auto& pt : curves[c].second) poly.push_back(p.px(pt.apcer, 1 - pt.bpcer));
    cv::polylines(img, poly, false, colour(c), 2, cv::LINE_AA);
    labels.push_back(curves[c].first);
  }
  legend(img, p, labels, true);
  save(png, img);
}

}  // namespace facekit

namespace facekit {

void write_bias_plot(const std::filesystem::path& png, const BiasReport& r) {
  const size_t G = r.groups.size();
  if (G == 0) throw Error(ErrorCode::kInvalidArgument, "no groups to plot");
  // Both rates on log axes: from one decade under the smallest non-zero value (or interval end) to 1.
  const auto lower_edge = [&](Rate GroupRates::*a, Rate GroupRates::*b) {
    double lo = 1;
    for (const auto& g : r.groups)
      for (const Rate* x : {&(g.*a), &(g.*b)})
        for (double v : {x->value, x->boot_low, x->wilson_low})
          if (v > 0) lo = std::min(lo, v);
    return std::max(-6.0, std::floor(std::log10(lo)) - 0.5);
  };
  const double fmr0 = lower_edge(&GroupRates::fmr, &GroupRates::own_fmr);
  const double fnmr0 = lower_edge(&GroupRates::fnmr, &GroupRates::own_fnmr);
  const int W = 1320, H = 600;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar::all(255));
  char title[200];
  std::snprintf(title, sizeof title, "%s: global threshold %.4f (FMR %.0e on all impostor pairs)", r.attribute.c_str(),
                r.threshold, r.target_fmr);
  text(img, title, {W / 2, 24}, 0.6, kInk, 1);
  const double gx0 = -0.5, gx1 = static_cast<double>(G) - 0.5;
  const Panel fmr{cv::Rect(90, 70, 520, 430), gx0, gx1, fmr0, 0};
  const Panel fnmr{cv::Rect(760, 70, 520, 430), gx0, gx1, fnmr0, 0};
  // frame() draws log ticks on y only when the x range holds no integer decade.
  frame(img, {fmr.r, 0.1, 0.9, fmr0, 0}, "FMR, impostor pairs within the group", "", "false match rate (log)", true, true, 0);
  frame(img, {fnmr.r, 0.1, 0.9, fnmr0, 0}, "FNMR, genuine pairs within the group", "", "false non-match rate (log)", true,
        true, 0);
  const auto draw = [&](const Panel& p, double y0, const Rate& global, const Rate& own, size_t i) {
    const auto ly = [&](double v) { return v > 0 ? std::max(std::log10(v), y0) : y0; };
    const auto one = [&](const Rate& x, double at, size_t c, bool filled) {
      if (x.pairs == 0) return;
      // Whisker: the bootstrap interval; where no error was seen, up to Wilson's upper bound.
      const double hi = x.errors > 0 ? x.boot_high : x.wilson_high;
      cv::line(img, p.px(at, ly(x.boot_low)), p.px(at, ly(hi)), colour(c), 2, cv::LINE_AA);
      const cv::Point m = p.px(at, ly(x.value));
      if (filled) cv::circle(img, m, 6, colour(c), cv::FILLED, cv::LINE_AA);
      else cv::rectangle(img, m - cv::Point(6, 6), m + cv::Point(6, 6), colour(c), 2, cv::LINE_AA);
    };
    one(global, static_cast<double>(i) - 0.12, 0, true);
    one(own, static_cast<double>(i) + 0.12, 1, false);
  };
  for (size_t i = 0; i < G; ++i) {
    const auto& g = r.groups[i];
    draw(fmr, fmr0, g.fmr, g.own_fmr, i);
    draw(fnmr, fnmr0, g.fnmr, g.own_fnmr, i);
    for (const Panel* p : {&fmr, &fnmr}) {
      const cv::Point at = p->px(static_cast<double>(i), p->y0) + cv::Point(0, 20);
      text(img, g.group, at, 0.45, kInk, 1);
      const Rate& n = p == &fmr ? g.fmr : g.fnmr;
      text(img, "n=" + std::to_string(n.pairs), at + cv::Point(0, 18), 0.38, kInk, 1);
    }
  }
  legend(img, fmr, {"global threshold (bootstrap interval)", "the group's own threshold"}, false);
  text(img, "0 is drawn at the bottom edge; where no error was seen the whisker reaches Wilson's upper bound",
       {W / 2, H - 40}, 0.42, kInk, 1);
  char spread[240];
  std::snprintf(spread, sizeof spread, "FMR max/min %.2f (%s / %s)   FNMR max/min %.2f (%s / %s)", r.fmr_spread.ratio,
                r.fmr_spread.max_group.c_str(), r.fmr_spread.min_group.c_str(), r.fnmr_spread.ratio,
                r.fnmr_spread.max_group.c_str(), r.fnmr_spread.min_group.c_str());
  text(img, spread, {W / 2, H - 16}, 0.45, kInk, 1);
  save(png, img);
}

}  // namespace facekit
