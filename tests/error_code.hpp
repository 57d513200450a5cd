#pragma once
// The facekit::ErrorCode that a call throws, for tests of error paths.
#include <gtest/gtest.h>

#include "facekit/error.hpp"

namespace fk_test {

/// Runs f and returns the code of the facekit::Error it throws; a call that throws nothing fails the test
/// (and returns kInternal).
template <class F>
facekit::ErrorCode error_code_of(F&& f) {
  try {
    f();
  } catch (const facekit::Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no facekit::Error thrown";
  return facekit::ErrorCode::kInternal;
}

}  // namespace fk_test
