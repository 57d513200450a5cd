#pragma once
// The JSON form of a ScoreCalibration, shared by the manifest parser and calibration files.
#include <string>

#include <nlohmann/json.hpp>

#include "facekit/calibration.hpp"

namespace facekit {
/// Throws Error(kModelCorrupt) naming `where` for a malformed or inconsistent calibration.
ScoreCalibration calibration_from_json(const nlohmann::json& c, const std::string& where);
nlohmann::json calibration_to_json(const ScoreCalibration& c);
}  // namespace facekit
