#pragma once
// What every facekit subcommand shares: the global options, how they become pipeline options, JSON views of
// results, and the registry through which each command file adds its subcommands.
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "facekit/pipeline.hpp"

namespace facekit::cli {

/// Global options (given before the subcommand).
struct Common {
  std::string device = "cpu";
  std::string model = "dlib_resnet";
  std::string detector = PipelineOptions{}.detector;
  int threads = 1;
  float min_score = 0.5f;
  int detect_size = DetectorOptions{}.input_size;
  int max_faces = 100;
  bool no_flip = false;
  int jitter = 0;
};

PipelineOptions pipeline_options(const Common& c);

nlohmann::json box_json(const Box& b);
nlohmann::json face_json(const Face& f);

/// A subcommand and the function that runs it once it was parsed; it returns the exit status.
using Commands = std::vector<std::pair<CLI::App*, std::function<int()>>>;

/// Each command file registers its subcommands here (state captured by the handlers must outlive parsing:
/// allocate it with std::make_shared).
void add_core_commands(CLI::App& app, Common& c, Commands& out);
/// enroll, identify, people, gallery, bench identify, bench gallery-scale (cmd_gallery.cpp).
void add_gallery_commands(CLI::App& app, Common& c, Commands& out);
/// train (cmd_train.cpp).
void add_train_commands(CLI::App& app, Common& c, Commands& out);

}  // namespace facekit::cli
