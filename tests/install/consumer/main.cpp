// A program that uses an installed facekit, as an application would (tests/install/check_install.sh builds it
// with CMake's find_package and with pkg-config).
//   facekit_consumer --dirs          where the library finds its data
//   facekit_consumer PHOTO OTHER     also: faces in each photo, PHOTO verified against its mirror image
//                                    (the same person) and against OTHER's main face
#include <cstdio>
#include <exception>
#include <string>

#include <opencv2/core.hpp>

#include "facekit/image.hpp"
#include "facekit/model.hpp"
#include "facekit/pipeline.hpp"

namespace {
void print_verify(const char* what, const facekit::VerifyResult& r) {
  std::printf("verify_%s distance=%.4f threshold=%.4f same=%d\n", what, r.distance, r.threshold,
              r.same ? 1 : 0);
}
}  // namespace

int main(int argc, char** argv) {
  std::printf("share_dir=%s\n", facekit::share_dir().c_str());
  std::printf("models_dir=%s\n", facekit::models_dir().c_str());
  std::printf("manifests_dir=%s\n", facekit::manifests_dir().c_str());
  std::printf("source_tree=%d\n", facekit::data_from_source_tree() ? 1 : 0);
  if (argc == 2 && std::string(argv[1]) == "--dirs") return 0;
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s --dirs | PHOTO OTHER\n", argv[0]);
    return 2;
  }
  try {
    const facekit::FacePipeline pipeline;
    const facekit::Image photo = facekit::load_image(argv[1]);
    const facekit::Image other = facekit::load_image(argv[2]);
    const auto faces = pipeline.analyze(photo);
    std::printf("faces_photo=%zu\n", faces.size());
    std::printf("faces_other=%zu\n", pipeline.detect(other).size());
    if (!faces.empty()) std::printf("embedding_dim=%zu\n", faces.front().embedding.size());
    facekit::Image mirrored;
    cv::flip(photo, mirrored, 1);
    print_verify("mirrored", pipeline.verify(photo, mirrored));
    print_verify("other", pipeline.verify(photo, other));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
