#include "onnx/onnx_net.hpp"

#include <fstream>
#include <iterator>
#include <mutex>

#include <opencv2/dnn.hpp>

#include "facekit/error.hpp"

namespace facekit::detail {

struct OnnxNet::Impl {
  std::filesystem::path path;
  std::vector<uchar> bytes;
  std::vector<std::string> outputs;
  std::mutex mu;
  std::vector<std::unique_ptr<cv::dnn::Net>> free;

  std::unique_ptr<cv::dnn::Net> make() const {
    try {
      auto net = std::make_unique<cv::dnn::Net>(cv::dnn::readNetFromONNX(bytes));
      if (net->empty()) throw Error(ErrorCode::kModelCorrupt, path.string() + ": OpenCV DNN read no layers");
      net->setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
      net->setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
      return net;
    } catch (const cv::Exception& e) {
      throw Error(ErrorCode::kModelCorrupt, path.string() + " is not an ONNX model OpenCV DNN can run: " + e.what());
    }
  }
};

OnnxNet::OnnxNet(const std::filesystem::path& onnx) : impl_(std::make_unique<Impl>()) {
  impl_->path = onnx;
  std::ifstream in(onnx, std::ios::binary);
  if (!in) throw Error(ErrorCode::kModelMissing, "cannot read " + onnx.string());
  impl_->bytes.assign(std::istreambuf_iterator<char>(in), {});
  auto net = impl_->make();
  impl_->outputs = net->getUnconnectedOutLayersNames();
  impl_->free.push_back(std::move(net));
}

OnnxNet::~OnnxNet() = default;

const std::vector<std::string>& OnnxNet::output_names() const { return impl_->outputs; }

std::vector<cv::Mat> OnnxNet::forward(const cv::Mat& blob, const std::vector<std::string>& outputs) const {
  std::unique_ptr<cv::dnn::Net> net;
  {
    std::lock_guard lock(impl_->mu);
    if (!impl_->free.empty()) {
      net = std::move(impl_->free.back());
      impl_->free.pop_back();
    }
  }
  if (!net) net = impl_->make();
  std::vector<cv::Mat> out;
  try {
    net->setInput(blob);
    net->forward(out, outputs.empty() ? impl_->outputs : outputs);
  } catch (const cv::Exception& e) {
    throw Error(ErrorCode::kInvalidArgument, impl_->path.filename().string() + ": OpenCV DNN failed: " + e.what());
  }
  for (auto& m : out) m = m.clone();  // the net reuses its output buffers on the next run
  std::lock_guard lock(impl_->mu);
  impl_->free.push_back(std::move(net));
  return out;
}

}  // namespace facekit::detail
