#include "train/dataset.hpp"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <opencv2/imgproc.hpp>

#include "core/parallel.hpp"
#include "eval/face_cache.hpp"
#include "facekit/error.hpp"
#include "facekit/image.hpp"
#include "facekit/pipeline.hpp"

namespace facekit::detail {
namespace fs = std::filesystem;

namespace {
bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  static const std::set<std::string> kExt = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pnm", ".ppm", ".pgm"};
  return kExt.count(e) > 0;
}

std::set<std::string> read_people(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot open people file " + file.string());
  std::set<std::string> names;
  std::string line;
  std::getline(in, line);  // the count
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string name;
    if (ss >> name) names.insert(name);
  }
  if (names.empty()) throw Error(ErrorCode::kInvalidArgument, "people file " + file.string() + " lists nobody");
  return names;
}
}  // namespace

std::vector<IdentityFolder> scan_identity_folders(const fs::path& data, const fs::path& people) {
  if (!fs::is_directory(data)) throw Error(ErrorCode::kNotFound, "data folder " + data.string() + " does not exist");
  std::optional<std::set<std::string>> only;
  if (!people.empty()) only = read_people(people);
  std::vector<IdentityFolder> out;
  for (const auto& e : fs::directory_iterator(data)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    if (only && !only->count(name)) continue;
    IdentityFolder f{name, {}};
    for (const auto& img : fs::directory_iterator(e.path()))
      if (img.is_regular_file() && is_image(img.path())) f.photos.push_back(img.path());
    std::sort(f.photos.begin(), f.photos.end());
    if (!f.photos.empty()) out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  if (out.empty())
    throw Error(ErrorCode::kInvalidArgument, "no identity folder with photos in " + data.string() +
                                                 " (expected one sub-folder of photos per person)");
  return out;
}

AlignedPhotos detect_and_align(const std::vector<fs::path>& photos, const fs::path& cache_path,
                               const std::string& detector, bool pick_center, const AlignmentTemplate& tpl,
                               const std::function<void(int, int)>& progress) {
  FaceCache cache;
  if (!cache_path.empty() && fs::exists(cache_path)) cache = read_face_cache(cache_path);
  const size_t cached_before = cache.size();
  std::vector<std::string> keys;
  for (const auto& p : photos) keys.push_back(fs::absolute(p).lexically_normal().string());

  std::unique_ptr<FacePipeline> pipeline;  // built only when some photo is not cached (loading costs ~1 s)
  std::once_flag once;
  AlignedPhotos r;
  r.chips.resize(photos.size());
  r.reasons.resize(photos.size());
  std::mutex mu;  // the cache
  const int threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
  auto align_one = [&](size_t i) {
    try {
      const Image img = load_image(photos[i]);
      CachedFace c;
      bool hit = false;
      {
        std::lock_guard lock(mu);
        auto it = cache.find(keys[i]);
        if (it != cache.end()) c = it->second, hit = true;
      }
      if (!hit) {
        std::call_once(once, [&] {
          PipelineOptions po;
          po.detector = detector;
          pipeline = std::make_unique<FacePipeline>(po);
        });
        try {
          c.face = pipeline->detect_one(img, FacePick::kNearestCenter, nullptr, &c.faces);
          c.faces = std::max(c.faces, 1);
        } catch (const Error& e) {
          if (e.code() != ErrorCode::kNoFace) throw;
        }
        std::lock_guard lock(mu);
        cache[keys[i]] = c;
      }
      if (!c.face) {
        r.reasons[i] = "no face";
      } else if (c.faces > 1 && !pick_center) {
        r.reasons[i] = std::to_string(c.faces) + " faces (use --pick-center to keep the central one)";
      } else {
        r.chips[i] = align_face(img, *c.face->landmarks, tpl);
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kBadImage && e.code() != ErrorCode::kImageTooLarge) throw;
      r.reasons[i] = e.what();  // a bad photo is skipped, not fatal
    }
  };
  // Detections made before a failure are still worth keeping: the cache is written either way.
  std::exception_ptr failure;
  try {
    parallel_for(photos.size(), threads, align_one, progress);
  } catch (...) {
    failure = std::current_exception();
  }
  if (!cache_path.empty() && cache.size() > cached_before) write_face_cache(cache_path, cache);
  if (failure) std::rethrow_exception(failure);
  return r;
}

Image augment_chip(const Image& chip, const TrainAugmentOptions& o, std::mt19937_64& rng) {
  if (!o.enabled) return chip;
  std::uniform_real_distribution<double> u(-1.0, 1.0), u01(0.0, 1.0);
  const double s = chip.cols;
  Image out;
  // One affine warp for shift, scale and rotation (reflected border: no black corners to learn from).
  const double angle = o.rotate_deg * u(rng), scale = 1.0 + o.crop_jitter * u(rng);
  cv::Mat m = cv::getRotationMatrix2D(cv::Point2f(s / 2, s / 2), angle, scale);
  m.at<double>(0, 2) += o.crop_jitter * s * u(rng);
  m.at<double>(1, 2) += o.crop_jitter * s * u(rng);
  cv::warpAffine(chip, out, m, chip.size(), cv::INTER_LINEAR, cv::BORDER_REFLECT_101);
  if (o.flip && u01(rng) < 0.5) cv::flip(out, out, 1);
  if (o.colour > 0) {
    cv::Mat f;
    out.convertTo(f, CV_32FC3);
    const double contrast = 1.0 + o.colour * u(rng), bright = 1.0 + o.colour * u(rng),
                 sat = 1.0 + o.colour * u(rng);
    cv::Mat grey;
    cv::cvtColor(f, grey, cv::COLOR_RGB2GRAY);
    cv::Mat grey3;
    cv::cvtColor(grey, grey3, cv::COLOR_GRAY2RGB);
    f = grey3 + (f - grey3) * sat;  // saturation: away from / towards the grey image
    // Scalar::all states "every channel" (a plain double works too in OpenCV 4.6, with a warning that
    // multi-channel semantics may change).
    const cv::Scalar mean = cv::Scalar::all(cv::mean(grey)[0]);
    f = (f - mean) * contrast + mean * bright;
    f.convertTo(out, CV_8UC3);  // saturates to 0..255
  }
  if (o.blur > 0 && u01(rng) < o.blur) {
    const double sigma = 0.5 + 0.7 * u01(rng);
    cv::GaussianBlur(out, out, cv::Size(0, 0), sigma);
  }
  return out;
}

}  // namespace facekit::detail
