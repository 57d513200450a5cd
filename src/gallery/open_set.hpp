#pragma once
// The default open-set threshold from a calibration already read (internal): Identifier::refresh() and
// `bench identify` read open_set.json once and derive every threshold they need from what they read.
#include <cstdint>
#include <optional>
#include <string>

#include "facekit/identify.hpp"

namespace facekit::detail {

/// default_open_set_threshold() with `calibration` as load_open_set_calibration() returned it.
float open_set_threshold(const std::optional<OpenSetCalibration>& calibration, const EmbedderId& embedder,
                         const std::string& classifier, std::int64_t people, double fpir, std::string* source = nullptr);

}  // namespace facekit::detail
