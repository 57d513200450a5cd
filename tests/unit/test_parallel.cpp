// detail::parallel_for: every index once, progress after each, the first failure stops and is rethrown.
#include <atomic>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "core/parallel.hpp"

namespace {

TEST(ParallelFor, RunsEveryIndexOnceAndReportsProgress) {
  for (int threads : {0, 1, 3}) {
    std::vector<std::atomic<int>> hits(1000);
    int calls = 0, last = 0;
    facekit::detail::parallel_for(
        hits.size(), threads, [&](size_t i) { ++hits[i]; },
        [&](int done, int n) {
          ++calls;  // serialised by parallel_for
          EXPECT_EQ(n, 1000);
          EXPECT_GT(done, last);
          last = done;
        });
    for (const auto& h : hits) EXPECT_EQ(h.load(), 1);
    EXPECT_EQ(calls, 1000);
    EXPECT_EQ(last, 1000);
  }
  facekit::detail::parallel_for(0, 2, [](size_t) { FAIL() << "no index to run"; });
}

TEST(ParallelFor, TheFirstFailureStopsTheRestAndIsRethrown) {
  // One thread: deterministic, nothing after the failing index runs.
  std::atomic<int> ran{0};
  auto fail_at_10 = [&](size_t i) {
    ++ran;
    if (i == 10) throw std::runtime_error("photo 10 is broken");
  };
  EXPECT_THROW(facekit::detail::parallel_for(100000, 1, fail_at_10), std::runtime_error);
  EXPECT_EQ(ran.load(), 11);
  // Several threads: the failure raised on a worker reaches the caller with its message. (How many indices
  // the other threads finish first depends on scheduling, so it is not checked.)
  try {
    facekit::detail::parallel_for(1000, 3, [](size_t i) {
      if (i == 10) throw std::runtime_error("photo 10 is broken");
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "photo 10 is broken");
  }
}

}  // namespace
