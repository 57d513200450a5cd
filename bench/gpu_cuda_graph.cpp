// CUDA-graph replay of a network pass, for bench/gpu_bench.cpp (built only against a CUDA libtorch, by
// bench/gpu/build.sh). At small batches a GPU spends its time on the host launching a pass's ~100 kernels one
// by one; a captured graph launches them all at once.
#include <functional>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

namespace facekit::bench {

// `fn` must read and write fixed GPU tensors only (no host synchronisation inside). Returns a call that replays
// the captured pass and returns its output tensor (the same tensor, rewritten, on each replay).
std::function<at::Tensor()> capture_cuda_graph(const std::function<at::Tensor()>& fn) {
  auto graph = std::make_shared<at::cuda::CUDAGraph>();
  auto out = std::make_shared<at::Tensor>();
  const auto side = c10::cuda::getStreamFromPool();
  const auto previous = c10::cuda::getCurrentCUDAStream();
  c10::cuda::device_synchronize();
  c10::cuda::setCurrentCUDAStream(side);  // the legacy default stream cannot be captured
  try {
    for (int i = 0; i < 3; ++i) (void)fn();  // warm-up on the capture stream: cuDNN's autotuning, the allocator
    c10::cuda::device_synchronize();
    graph->capture_begin();
    *out = fn();
    graph->capture_end();
  } catch (...) {
    c10::cuda::setCurrentCUDAStream(previous);
    throw;
  }
  c10::cuda::setCurrentCUDAStream(previous);
  c10::cuda::device_synchronize();
  return [graph, out] {
    graph->replay();
    return *out;
  };
}

}  // namespace facekit::bench
