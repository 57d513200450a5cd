#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace facekit::detail {

void parallel_for(std::size_t n, int threads, const std::function<void(std::size_t)>& fn,
                  const std::function<void(int, int)>& progress) {
  std::atomic<std::size_t> next{0};
  int done = 0;
  std::mutex mu;
  std::exception_ptr failure;
  auto worker = [&] {
    for (std::size_t i; (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard lock(mu);
        if (!failure) failure = std::current_exception();
        next = n;
      }
      // Counted under the lock that serialises the calls, so that progress sees 1, 2, ..., n in order.
      std::lock_guard lock(mu);
      ++done;
      if (progress) progress(done, static_cast<int>(n));
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < std::max(1, threads); ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace facekit::detail
