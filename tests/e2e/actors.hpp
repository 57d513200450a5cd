#pragma once
// The bald_guys cut-outs: Debian libdlib19.1's bald_guys.jpg is a collage of four actors, about six photos each.
// Each face is cut out with a margin into its own photo (one face per photo, as enrolment wants) and the
// cut-outs are grouped into actors by average-linkage clustering of their embeddings. Made once per test
// program, removed when it ends.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "cli_run.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"

namespace fk_test {

/// The cut-outs, grouped by actor (largest group first).
struct Actors {
  std::filesystem::path dir;
  std::vector<std::vector<std::filesystem::path>> groups;
};

// Removes the cut-outs when the test program ends.
struct ActorsCleanup : ::testing::Environment {
  std::filesystem::path dir;
  void TearDown() override {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};
inline ActorsCleanup* const g_actors_cleanup =
    static_cast<ActorsCleanup*>(::testing::AddGlobalTestEnvironment(new ActorsCleanup));

inline const Actors& actors() {
  static const Actors a = [] {
    Actors out;
    out.dir = std::filesystem::temp_directory_path() / ("fk_actors_" + std::to_string(::getpid()));
    g_actors_cleanup->dir = out.dir;
    std::filesystem::create_directories(out.dir);
    const facekit::Image img = facekit::load_image(kDlibFaces / "bald_guys.jpg");
    const auto faces = shared_pipeline().analyze(img);
    std::vector<std::filesystem::path> files;
    std::vector<facekit::Embedding> embs;
    for (size_t i = 0; i < faces.size(); ++i) {
      const auto& b = faces[i].face.box;
      const float m = 0.3f * std::max(b.width, b.height);
      cv::Rect r(cv::Point(std::max(0, int(b.x - m)), std::max(0, int(b.y - m))),
                 cv::Point(std::min(img.cols, int(b.x + b.width + m)), std::min(img.rows, int(b.y + b.height + m))));
      const facekit::Image crop = img(r).clone();
      if (shared_pipeline().detect(crop).size() != 1) continue;  // a neighbour's face in the margin: not usable
      const std::filesystem::path f = out.dir / ("face" + std::to_string(i) + ".png");
      facekit::save_image(f, crop);
      files.push_back(f);
      embs.push_back(faces[i].embedding);
    }
    const auto cl = cluster_faces(embs, shared_pipeline().embedder().threshold());
    for (const auto& c : cl) {
      std::vector<std::filesystem::path> g;
      for (size_t i : c) g.push_back(files[i]);
      out.groups.push_back(g);
    }
    return out;
  }();
  return a;
}

}  // namespace fk_test
