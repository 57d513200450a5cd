#pragma once
// Damaged copies of a model file (empty, not a model, truncated, bytes flipped) against a reader and the graph
// runtime: each copy loads and runs or is refused with a facekit model or argument error, never anything else.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <unistd.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "facekit/error.hpp"
#include "graph/graph_model.hpp"

namespace facekit::test {

/// `read(bytes)` parses a file's bytes (read_tflite, read_onnx); `where(trial, rng)` picks the byte to flip.
template <class Read, class Where>
void expect_damage_handled_cleanly(const std::string& good, Read read, const std::string& ext, const at::Tensor& input,
                                   unsigned seed, Where where) {
  const auto tmp = std::filesystem::temp_directory_path() / ("facekit_damaged_" + std::to_string(::getpid()) + ext);
  auto outcome = [&](const std::string& bytes) -> std::string {
    try {
      read(bytes);
      // Read: the runtime must then load and run it, or refuse it, as cleanly.
      std::ofstream(tmp, std::ios::binary) << bytes;
      const graph::GraphModel net(tmp);
      net.run(input);
      return "ok";
    } catch (const Error& e) {
      return e.code() == ErrorCode::kModelCorrupt || e.code() == ErrorCode::kInvalidArgument ? "error" : "other code";
    } catch (const std::exception& e) {
      return std::string("foreign exception: ") + e.what();
    }
  };
  EXPECT_EQ(outcome(""), "error");
  EXPECT_EQ(outcome("not a model at all"), "error");
  for (size_t n : {size_t{8}, size_t{64}, size_t{4096}, good.size() / 2, good.size() * 9 / 10})
    EXPECT_EQ(outcome(good.substr(0, n)), "error") << "truncated to " << n << " bytes";
  std::mt19937 rng(seed);
  int refused = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string bad = good;
    const size_t at = where(trial, rng);
    bad[at] = static_cast<char>(bad[at] ^ (1 + rng() % 255));
    const std::string got = outcome(bad);
    EXPECT_TRUE(got == "ok" || got == "error") << "byte " << at << ": " << got;
    refused += got == "error";
  }
  EXPECT_GT(refused, 0);  // the damage is seen at all
  std::filesystem::remove(tmp);
}

}  // namespace facekit::test
