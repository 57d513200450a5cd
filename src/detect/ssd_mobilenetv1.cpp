#include "detect/ssd_mobilenetv1.hpp"

#include <chrono>

#include <opencv2/imgproc.hpp>

#include "facekit/detector.hpp"
#include "facekit/error.hpp"

namespace facekit::detail {
namespace {

constexpr double kBnEpsilon = 0.0010000000474974513;

// Depthwise conv followed by batch norm: BN folds into the filter and a bias.
nn::Conv2d depthwise_bn(const WeightMap& w, const std::string& prefix, int64_t ch, int stride) {
  auto filt = nn::depthwise_weight_from_tf(take(w, prefix + "/depthwise_weights", {3, 3, ch, 1}));
  auto gamma = take(w, prefix + "/BatchNorm/gamma", {ch});
  auto beta = take(w, prefix + "/BatchNorm/beta", {ch});
  auto mean = take(w, prefix + "/BatchNorm/moving_mean", {ch});
  auto var = take(w, prefix + "/BatchNorm/moving_variance", {ch});
  auto k = gamma / at::sqrt(var + kBnEpsilon);
  nn::Conv2d c;
  c.weight = filt * k.view({ch, 1, 1, 1});
  c.bias = beta - mean * k;
  c.stride = stride;
  c.groups = static_cast<int>(ch);
  return c;
}

nn::Conv2d pointwise(const WeightMap& w, const std::string& prefix, int64_t k, int64_t in, int64_t out, int stride) {
  nn::Conv2d c;
  c.weight = nn::conv_weight_from_tf(take(w, prefix + "/weights", {k, k, in, out}));
  c.bias = take(w, prefix + "/convolution_bn_offset", {out});
  c.stride = stride;
  return c;
}

nn::Conv2d predictor(const WeightMap& w, const std::string& prefix, int64_t in, int64_t out) {
  nn::Conv2d c;
  c.weight = nn::conv_weight_from_tf(take(w, prefix + "/weights", {1, 1, in, out}));
  c.bias = take(w, prefix + "/biases", {out});
  return c;
}

at::Tensor clip6(at::Tensor x) { return at::clamp_(x, 0, 6); }

}  // namespace

SsdMobilenetV1Net::SsdMobilenetV1Net(const WeightMap& w, const at::Device& device) : device_(device) {
  conv0_ = pointwise(w, "MobilenetV1/Conv2d_0_pointwise", 3, 3, 32, 2);
  const int64_t chans[14] = {32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
  for (int i = 1; i <= 13; ++i) {
    const int stride = (i == 2 || i == 4 || i == 6 || i == 12) ? 2 : 1;
    const std::string p = "MobilenetV1/Conv2d_" + std::to_string(i);
    blocks_.push_back({depthwise_bn(w, p + "_depthwise", chans[i - 1], stride),
                       pointwise(w, p + "_pointwise", 1, chans[i - 1], chans[i], 1)});
  }
  const int64_t ex[9] = {1024, 256, 512, 128, 256, 128, 256, 64, 128};
  for (int i = 0; i < 8; ++i)
    extra_.push_back(pointwise(w, "Prediction/Conv2d_" + std::to_string(i) + "_pointwise", i % 2 ? 3 : 1, ex[i],
                               ex[i + 1], i % 2 ? 2 : 1));
  const int64_t pred_in[6] = {512, 1024, 512, 256, 256, 128};
  for (int i = 0; i < 6; ++i) {
    const int64_t anchors = i == 0 ? 3 : 6;
    const std::string p = "Prediction/BoxPredictor_" + std::to_string(i);
    box_pred_.push_back(predictor(w, p + "/BoxEncodingPredictor", pred_in[i], anchors * 4));
    class_pred_.push_back(predictor(w, p + "/ClassPredictor", pred_in[i], anchors * 3));
  }
  stored_anchors_ = take(w, "Output/extra_dim", {1, 5118, 4}).view({5118, 4});
  // Recover each layer's anchor shapes from its first cell (every cell of a layer repeats them).
  const int64_t grid512[6] = {32, 16, 8, 4, 2, 1}, per_cell[6] = {3, 6, 6, 6, 6, 6};
  int64_t offset = 0;
  for (int l = 0; l < 6; ++l) {
    at::Tensor first = stored_anchors_.narrow(0, offset, per_cell[l]);
    anchor_px_.push_back(at::stack({first.select(1, 2) - first.select(1, 0), first.select(1, 3) - first.select(1, 1)}, 1) * 512);
    offset += grid512[l] * grid512[l] * per_cell[l];
  }
  conv0_.to(device);
  for (auto& b : blocks_) b.dw.to(device), b.pw.to(device);
  for (auto& c : extra_) c.to(device);
  for (auto& c : box_pred_) c.to(device);
  for (auto& c : class_pred_) c.to(device);
}

SsdMobilenetV1Net::Output SsdMobilenetV1Net::forward(const at::Tensor& x) const {
  const int64_t n = x.size(0);
  at::Tensor out = clip6(conv0_(x.contiguous(at::MemoryFormat::ChannelsLast)));
  at::Tensor conv11;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    out = clip6(blocks_[i].pw(clip6(blocks_[i].dw(out))));
    if (i + 1 == 11) conv11 = out;
  }
  std::vector<at::Tensor> feats = {conv11, out};
  at::Tensor e = out;
  for (size_t i = 0; i < extra_.size(); ++i) {
    e = clip6(extra_[i](e));
    if (i % 2 == 1) feats.push_back(e);
  }
  std::vector<at::Tensor> enc, cls;
  std::vector<std::pair<int64_t, int64_t>> grids;
  for (size_t i = 0; i < 6; ++i) {
    grids.emplace_back(feats[i].size(2), feats[i].size(3));
    // NHWC order of (cell, anchor) is what the anchor table follows.
    enc.push_back(box_pred_[i](feats[i]).permute({0, 2, 3, 1}).reshape({n, -1, 4}));
    cls.push_back(class_pred_[i](feats[i]).permute({0, 2, 3, 1}).reshape({n, -1, 3}));
  }
  at::Tensor t = at::cat(enc, 1);  // [n, 5118, 4]: (ty, tx, th, tw)
  at::Tensor logits = at::cat(cls, 1);

  const at::Tensor anc = anchors(x.size(2), x.size(3), grids).to(t.device());
  at::Tensor a_size_y = anc.select(1, 2) - anc.select(1, 0);
  at::Tensor a_size_x = anc.select(1, 3) - anc.select(1, 1);
  at::Tensor a_cy = anc.select(1, 0) + a_size_y / 2;
  at::Tensor a_cx = anc.select(1, 1) + a_size_x / 2;
  at::Tensor half_h = at::exp(t.select(2, 2) / 5) * a_size_y / 2;
  at::Tensor half_w = at::exp(t.select(2, 3) / 5) * a_size_x / 2;
  at::Tensor cy = t.select(2, 0) / 10 * a_size_y + a_cy;
  at::Tensor cx = t.select(2, 1) / 10 * a_size_x + a_cx;
  Output o;
  o.boxes = at::stack({cy - half_h, cx - half_w, cy + half_h, cx + half_w}, 2);
  o.scores = at::sigmoid(logits.select(2, 1));
  return o;
}

at::Tensor SsdMobilenetV1Net::anchors(int64_t h, int64_t w,
                                      const std::vector<std::pair<int64_t, int64_t>>& grids) const {
  if (h == 512 && w == 512) return stored_anchors_;  // the exact trained values
  std::vector<at::Tensor> layers;
  for (size_t l = 0; l < grids.size(); ++l) {
    const auto [gh, gw] = grids[l];
    at::Tensor cy = (at::arange(gh, at::kFloat) + 0.5f) / gh;
    at::Tensor cx = (at::arange(gw, at::kFloat) + 0.5f) / gw;
    // [gh, gw, k]: cell-major, anchor-minor, the order of the predictors' NHWC outputs.
    cy = cy.view({gh, 1, 1}).expand({gh, gw, anchor_px_[l].size(0)});
    cx = cx.view({1, gw, 1}).expand({gh, gw, anchor_px_[l].size(0)});
    at::Tensor hh = (anchor_px_[l].select(1, 0) / h).view({1, 1, -1}).expand_as(cy);
    at::Tensor ww = (anchor_px_[l].select(1, 1) / w).view({1, 1, -1}).expand_as(cy);
    layers.push_back(at::stack({cy - hh / 2, cx - ww / 2, cy + hh / 2, cx + ww / 2}, 3).reshape({-1, 4}));
  }
  return at::cat(layers, 0);
}

namespace {

class SsdDetector final : public Detector {
 public:
  SsdDetector(const ModelManifest& m, const DetectorOptions& opt)
      : manifest_(m), opt_(opt), net_(load_model_weights(m), nn::parse_device(opt.device)) {
    check(opt);
  }

  std::vector<Face> detect(const Image& rgb, const DetectorOptions& opt) const override {
    if (rgb.empty() || rgb.type() != CV_8UC3) throw Error(ErrorCode::kInvalidArgument, "detect() needs an RGB image");
    check(opt);
    auto faces = detect_once(rgb, 1.f, opt);
    for (size_t i = 0; faces.empty() && i < opt.zoom_out_retries.size(); ++i)
      faces = detect_once(rgb, opt.zoom_out_retries[i], opt);
    return faces;
  }
  const DetectorOptions& options() const override { return opt_; }
  const std::string& name() const override { return manifest_.name; }

 private:
  static void check(const DetectorOptions& o) {
    if (o.min_score < 0 || o.min_score > 1 || o.nms_iou <= 0 || o.nms_iou > 1 || o.max_faces < 1 ||
        o.input_size < 64 || o.input_size > 2048 || o.input_size % 32)
      throw Error(ErrorCode::kInvalidArgument,
                  "detector options out of range (input_size: a multiple of 32 in [64, 2048])");
    for (float z : o.zoom_out_retries)
      if (!(z >= 1 && z <= 8)) throw Error(ErrorCode::kInvalidArgument, "zoom-out factors must be in [1, 8]");
  }

  // One pass. zoom 1: the image itself (face-api pads it to a square, we only round each side up to the
  // network's stride of 32 unless square_input asks for face-api's layout). zoom > 1: the image centred on a
  // square canvas `zoom` times its longer side, so faces that fill the photo become anchor-sized.
  std::vector<Face> detect_once(const Image& rgb, float zoom, const DetectorOptions& opt) const {
    const int side0 = std::max(rgb.cols, rgb.rows);
    const bool square = zoom > 1 || opt.square_input;
    const int canvas_w = zoom > 1 ? static_cast<int>(std::lround(side0 * zoom)) : square ? side0 : rgb.cols;
    const int canvas_h = zoom > 1 ? canvas_w : square ? side0 : rgb.rows;
    const int ox = zoom > 1 ? (canvas_w - rgb.cols) / 2 : 0, oy = zoom > 1 ? (canvas_h - rgb.rows) / 2 : 0;
    const double s = static_cast<double>(opt.input_size) / std::max(canvas_w, canvas_h);
    auto round_up = [](double v) { return std::max(32, static_cast<int>(std::ceil(v / 32 - 1e-9)) * 32); };
    const int in_w = square ? opt.input_size : round_up(canvas_w * s);
    const int in_h = square ? opt.input_size : round_up(canvas_h * s);
    // Resize only the image, then place it: the padding stays exactly zero.
    cv::Mat input(in_h, in_w, CV_8UC3, cv::Scalar::all(0));
    const int rw = std::clamp(static_cast<int>(std::lround(rgb.cols * s)), 1, in_w);
    const int rh = std::clamp(static_cast<int>(std::lround(rgb.rows * s)), 1, in_h);
    const int rx = std::min(static_cast<int>(std::lround(ox * s)), in_w - rw);
    const int ry = std::min(static_cast<int>(std::lround(oy * s)), in_h - rh);
    cv::Mat resized;
    cv::resize(rgb, resized, {rw, rh}, 0, 0, s < 0.5 ? cv::INTER_AREA : cv::INTER_LINEAR);
    resized.copyTo(input(cv::Rect(rx, ry, rw, rh)));
    // Pixel scale actually used (rounding of rw/rh included).
    const double sx = static_cast<double>(rw) / rgb.cols, sy = static_cast<double>(rh) / rgb.rows;

    c10::InferenceMode guard;
    auto x = nn::images_to_batch({input}, manifest_.mean, manifest_.scale, net_.device());
    auto out = net_.forward(x);
    auto boxes = out.boxes[0].to(at::kCPU).contiguous();
    auto scores = out.scores[0].to(at::kCPU).contiguous();
    const float* b = boxes.data_ptr<float>();
    const float* sc = scores.data_ptr<float>();
    std::vector<Face> cand;
    for (int64_t i = 0; i < scores.size(0); ++i) {
      if (sc[i] < opt.min_score) continue;
      auto to_x = [&](float v) { return static_cast<float>((std::clamp(v, 0.f, 1.f) * in_w - rx) / sx); };
      auto to_y = [&](float v) { return static_cast<float>((std::clamp(v, 0.f, 1.f) * in_h - ry) / sy); };
      float x0 = std::clamp(to_x(b[4 * i + 1]), 0.f, float(rgb.cols)), y0 = std::clamp(to_y(b[4 * i]), 0.f, float(rgb.rows));
      float x1 = std::clamp(to_x(b[4 * i + 3]), 0.f, float(rgb.cols)), y1 = std::clamp(to_y(b[4 * i + 2]), 0.f, float(rgb.rows));
      if (x1 - x0 < 1 || y1 - y0 < 1) continue;
      Face f;
      f.box = {x0, y0, x1 - x0, y1 - y0};
      f.score = sc[i];
      cand.push_back(std::move(f));
    }
    std::stable_sort(cand.begin(), cand.end(), [](const Face& a, const Face& c) { return a.score > c.score; });
    return non_max_suppression(std::move(cand), opt.nms_iou, opt.max_faces);
  }

  ModelManifest manifest_;
  DetectorOptions opt_;
  SsdMobilenetV1Net net_;
};

}  // namespace

std::unique_ptr<Detector> make_ssd_detector(const ModelManifest& m, const DetectorOptions& opt) {
  return std::make_unique<SsdDetector>(m, opt);
}

}  // namespace facekit::detail
