#pragma once
// The training curves as a PNG: loss and active-triplet fraction (left), accuracies (right), by epoch.
#include <filesystem>
#include <vector>

#include "facekit/train.hpp"

namespace facekit::detail {
void write_training_plot(const std::filesystem::path& png, const std::vector<EpochMetrics>& epochs);
}
