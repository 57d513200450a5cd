#pragma once
// ONNX models on OpenCV's DNN module (Debian libopencv-dnn): the runtime behind every manifest whose `arch`
// is an "onnx_*" one. OpenCV's importer covers the common face models' operators (convolutions, PReLU,
// batch norm, pooling, Gemm, Flatten, Softmax, element-wise ops), is already a facekit dependency, and runs
// on the CPU without another runtime; see docs/design.md.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace facekit::detail {

/// One ONNX model. cv::dnn::Net keeps per-run state, so forward() hands each concurrent caller a Net of its
/// own from a pool (grown on demand, all parsed from the same bytes): safe to call from several threads.
class OnnxNet {
 public:
  /// Reads and parses the model; throws Error(kModelCorrupt) naming the file when OpenCV cannot import it.
  explicit OnnxNet(const std::filesystem::path& onnx);
  ~OnnxNet();
  OnnxNet(const OnnxNet&) = delete;
  OnnxNet& operator=(const OnnxNet&) = delete;

  /// Runs the network on an NCHW float blob; returns the named outputs (all unconnected outputs when
  /// `outputs` is empty), each a CV_32F Mat of the output's shape.
  std::vector<cv::Mat> forward(const cv::Mat& blob, const std::vector<std::string>& outputs = {}) const;
  /// The names of the model's unconnected outputs, in OpenCV's order.
  const std::vector<std::string>& output_names() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace facekit::detail
