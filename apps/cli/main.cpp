// facekit: the command-line front end. Library errors become a one-line message on stderr and an exit status
// (see facekit::exit_status); usage errors exit with 2.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "facekit/runtime.hpp"

using namespace facekit;

int main(int argc, char** argv) {
  facekit::reuse_freed_buffers();
  CLI::App app{"facekit: face detection, alignment and recognition"};
  app.require_subcommand(1);
  cli::Common c;
  app.add_option("--device", c.device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--threads", c.threads, "threads per network call")->capture_default_str()->check(CLI::Range(1, 256));
  app.add_option("--model", c.model, "embedder: a model name, or a model directory written by facekit train")->capture_default_str();
  app.add_option("--detector", c.detector, "detector model name")->capture_default_str();
  app.add_option("--landmarker", c.landmarker, "landmarker model name (face_landmark_68, facemesh)")->capture_default_str();
  app.add_option("--min-score", c.min_score, "detection score threshold")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--max-faces", c.max_faces, "report at most this many faces per photo, best first")
      ->capture_default_str()->check(CLI::Range(1, 10000));
  app.add_option("--detect-size", c.detect_size,
                 "longest side of the SSD detector's input, a multiple of 32 in [64, 2048] (smaller: faster, misses small faces)")
      ->capture_default_str()
      ->check(cli::input_size(false));
  app.add_option("--large-face-input", c.large_face_input,
                 "BlazeFace: input size of the second look for frame-filling faces (0 = the model's 256)")
      ->capture_default_str()
      ->check(cli::input_size(true));
  app.add_option("--precision", c.precision,
                 "embedder arithmetic: fp32, bf16 (dlib_resnet; fast on CPUs with AVX512-BF16 or AMX), int8 (dlib_resnet "
                 "on the CPU; fast with VNNI) or auto (never int8)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8", "auto"}))
      ->capture_default_str();
  app.add_option("--calibration", c.calibration,
                 "distance -> P(same) map from this file (facekit calibrate) instead of the embedder's own")
      ->check(CLI::ExistingFile);
  app.add_flag("--no-flip", c.no_flip, "do not average each face's embedding with its mirror image's");
  app.add_option("--jitter", c.jitter, "also average this many slightly perturbed copies of each face (0-8)")
      ->capture_default_str()->check(CLI::Range(0, 8));
  app.add_flag("--accept-damaged", c.accept_damaged,
               "use damaged images (truncated, corrupt data) as far as they decode, with a warning, instead of refusing them");

  cli::Commands commands;
  cli::add_core_commands(app, c, commands);  // first: it creates "bench"
  cli::add_eval_commands(app, c, commands);
  cli::add_bias_commands(app, c, commands);
  cli::add_cluster_commands(app, c, commands);
  cli::add_gallery_commands(app, c, commands);
  cli::add_quality_commands(app, c, commands);
  cli::add_video_commands(app, c, commands);
  cli::add_spoof_commands(app, c, commands);
  cli::add_train_commands(app, c, commands);
  cli::add_serve_commands(app, c, commands);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ValidationError& e) {
    // A value outside what an option allows (a range, a finite number, non-empty) is an invalid argument.
    app.exit(e);
    return exit_status(ErrorCode::kInvalidArgument);
  } catch (const CLI::ConversionError& e) {
    app.exit(e);
    return exit_status(ErrorCode::kInvalidArgument);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;  // --help is a ParseError that exits 0
  }
  try {
    set_num_threads(c.threads);
    for (const auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const Error& e) {
    std::fprintf(stderr, "facekit: error: %s\n", e.what());
    return exit_status(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "facekit: unexpected error: %s\n", e.what());
    return 1;
  }
  return 0;
}
