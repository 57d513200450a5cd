#pragma once
// face-api's SSD MobileNetV1 face detector on ATen (internal; exposed for the parity tests).
#include <ATen/ATen.h>

#include "facekit/model.hpp"
#include "model/weights.hpp"
#include "nn/tf_ops.hpp"

namespace facekit::detail {

class SsdMobilenetV1Net {
 public:
  SsdMobilenetV1Net(const WeightMap& w, const at::Device& device);
  struct Output {
    at::Tensor boxes;   ///< [N, 5118, 4] (ymin, xmin, ymax, xmax) in units of the 512 input square
    at::Tensor scores;  ///< [N, 5118] face probability
  };
  /// x: [N, 3, 512, 512], already normalised to -1..1.
  Output forward(const at::Tensor& x) const;
  const at::Device& device() const { return device_; }

 private:
  struct DwPw {
    nn::Conv2d dw, pw;
  };
  nn::Conv2d conv0_;
  std::vector<DwPw> blocks_;           // MobileNet conv_1..conv_13
  std::vector<nn::Conv2d> extra_;      // prediction conv_0..conv_7
  std::vector<nn::Conv2d> box_pred_;   // 6 box encoders
  std::vector<nn::Conv2d> class_pred_; // 6 class predictors
  at::Tensor anchors_;                 // [5118, 4] (ymin, xmin, ymax, xmax)
  at::Device device_;
};

}  // namespace facekit::detail
