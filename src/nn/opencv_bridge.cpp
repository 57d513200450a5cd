// The nn helpers that touch OpenCV, apart from tf_ops.cpp so that the network code links without OpenCV's
// libraries (bench/gpu/build.sh builds the networks alone against another libtorch).
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdlib>

#include <ATen/Parallel.h>
#include <opencv2/core/utility.hpp>

#include "facekit/error.hpp"
#include "facekit/runtime.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::nn {

at::Tensor images_to_batch(const std::vector<cv::Mat>& rgb, const std::array<float, 3>& mean, float scale,
                           const at::Device& device) {
  if (rgb.empty()) throw Error(ErrorCode::kInvalidArgument, "empty batch");
  const int h = rgb[0].rows, w = rgb[0].cols;
  at::Tensor t = at::empty({static_cast<int64_t>(rgb.size()), h, w, 3}, at::kFloat);
  float* dst = t.data_ptr<float>();
  for (const auto& im : rgb) {
    if (im.type() != CV_8UC3 || im.rows != h || im.cols != w)
      throw Error(ErrorCode::kInvalidArgument, "batch images must be RGB 8-bit and all of one size");
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = im.ptr<uint8_t>(y);
      for (int x = 0; x < w * 3; x += 3) {
        *dst++ = (row[x] - mean[0]) * scale;
        *dst++ = (row[x + 1] - mean[1]) * scale;
        *dst++ = (row[x + 2] - mean[2]) * scale;
      }
    }
  }
  // NHWC data viewed as NCHW is exactly the channels-last layout: no copy.
  return t.permute({0, 3, 1, 2}).to(device);
}

}  // namespace facekit::nn

namespace facekit {

void set_num_threads(int n) {
  if (n < 1) throw Error(ErrorCode::kInvalidArgument, "thread count must be >= 1");
  at::set_num_threads(n);
  // ONNX models run on OpenCV DNN, whose pool would otherwise take every core inside each worker.
  cv::setNumThreads(n);
}
int num_threads() { return at::get_num_threads(); }

void reuse_freed_buffers() {
#if defined(__GLIBC__)
  if (std::getenv("FACEKIT_DEFAULT_MALLOC")) return;  // for A/B measurements
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}
}  // namespace facekit
