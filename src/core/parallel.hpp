#pragma once
// A pool of threads over an index range, for the benchmarks and batch jobs that work photo by photo.
#include <cstddef>
#include <functional>

namespace facekit::detail {

/// Calls fn(i) once for every i in [0, n) from max(1, threads) threads, indices handed out in increasing
/// order. The first exception stops the threads from taking further indices and is rethrown once all have
/// joined. `progress(done, n)`, when given, follows every finished index (a failed one too), one call at a
/// time.
void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& fn,
                  const std::function<void(int, int)>& progress = {});

}  // namespace facekit::detail
