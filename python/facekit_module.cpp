// Python bindings: `import facekit; e = facekit.Engine(); e.verify(a, b)`. A thin layer over facekit::Engine:
// images come in as numpy arrays (H x W x 3 RGB or H x W grey, uint8), file paths or encoded bytes; embeddings
// and landmarks go out as float32 numpy arrays; every result also has .json() giving the library's JSON view
// (the shape the CLI and the service print) as a dict. facekit::Error becomes a facekit.Error subclass with the
// library's message. The GIL is released while the engine works, so Python threads run in parallel.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cstring>

#include <opencv2/imgproc.hpp>

#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/json.hpp"

namespace py = pybind11;
namespace fk = facekit;

namespace {

using nlohmann::json;

/// A JSON view as a Python object (through the json module: exact numbers, no hand-written converter).
py::object to_py(const json& j) {
  // Leaked on purpose: a static py::object would be released after the interpreter is gone.
  static py::handle loads = py::object(py::module_::import("json").attr("loads")).release();
  return loads(fk::json_view::dump(j, -1));
}

/// An image argument: numpy uint8 array (H x W x 3 RGB, H x W x 4 RGBA or H x W grey), a path (str or
/// os.PathLike), or encoded bytes.
fk::Image to_image(const fk::Engine& e, const py::handle& obj) {
  if (py::isinstance<py::bytes>(obj)) {
    const std::string bytes = obj.cast<std::string>();
    py::gil_scoped_release nogil;
    return e.decode(bytes);
  }
  if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
    const auto path = py::module_::import("os").attr("fspath")(obj).cast<std::string>();
    py::gil_scoped_release nogil;
    return e.load(path);
  }
  if (!py::isinstance<py::array>(obj))
    throw fk::Error(fk::ErrorCode::kInvalidArgument,
                    "an image is a numpy uint8 array (H x W x 3 RGB, or H x W), a file path or encoded bytes, not " +
                        py::str(py::type::of(obj)).cast<std::string>());
  const auto arr = py::array::ensure(obj);
  if (!arr || arr.dtype().kind() != 'u' || arr.itemsize() != 1)
    throw fk::Error(fk::ErrorCode::kInvalidArgument,
                    "an image array must be uint8, not " + py::str(arr ? py::object(arr.dtype()) : py::none()).cast<std::string>());
  const auto a = py::array_t<std::uint8_t, py::array::c_style | py::array::forcecast>::ensure(arr);
  const int nd = static_cast<int>(a.ndim());
  const int channels = nd == 2 ? 1 : nd == 3 ? static_cast<int>(a.shape(2)) : 0;
  if (!(channels == 1 || channels == 3 || channels == 4))
    throw fk::Error(fk::ErrorCode::kInvalidArgument, "an image array must be H x W, H x W x 3 or H x W x 4");
  const int h = static_cast<int>(a.shape(0)), w = static_cast<int>(a.shape(1));
  if (h < 1 || w < 1) throw fk::Error(fk::ErrorCode::kInvalidArgument, "an image array must not be empty");
  const auto& lim = e.options().image_limits;
  if (w > lim.max_width || h > lim.max_height || static_cast<std::int64_t>(w) * h > lim.max_pixels)
    throw fk::Error(fk::ErrorCode::kImageTooLarge, "image of " + std::to_string(w) + "x" + std::to_string(h) +
                                                       " pixels is over the limits");
  const cv::Mat view(h, w, CV_8UC(channels), const_cast<std::uint8_t*>(a.data()));
  fk::Image rgb;
  if (channels == 1)
    cv::cvtColor(view, rgb, cv::COLOR_GRAY2RGB);
  else if (channels == 4)
    cv::cvtColor(view, rgb, cv::COLOR_RGBA2RGB);
  else
    rgb = view.clone();  // the array may change or go once we release the GIL
  return rgb;
}

py::array_t<float> to_array(const fk::Embedding& e) {
  py::array_t<float> out(static_cast<py::ssize_t>(e.size()));
  std::copy(e.begin(), e.end(), out.mutable_data());
  return out;
}

fk::Embedding to_embedding(const py::array_t<float, py::array::c_style | py::array::forcecast>& a) {
  if (a.ndim() != 1) throw fk::Error(fk::ErrorCode::kInvalidArgument, "an embedding is a 1-D array");
  return fk::Embedding(a.data(), a.data() + a.size());
}

py::object landmarks_array(const fk::Face& f) {
  if (!f.landmarks) return py::none();
  py::array_t<float> out({68, 2});
  auto m = out.mutable_unchecked<2>();
  for (int i = 0; i < 68; ++i) m(i, 0) = (*f.landmarks)[i].x, m(i, 1) = (*f.landmarks)[i].y;
  return out;
}

// Exception classes, made at import; plain handles (never released) so that nothing is released after the
// interpreter has shut down.
py::handle g_error, g_no_face, g_not_found, g_invalid, g_bad_image, g_poor_quality, g_storage, g_model;

[[noreturn]] void raise(const fk::Error& e) {
  py::handle cls = g_error;
  switch (e.code()) {
    case fk::ErrorCode::kNoFace: cls = g_no_face; break;
    case fk::ErrorCode::kNotFound: cls = g_not_found; break;
    case fk::ErrorCode::kInvalidArgument: cls = g_invalid; break;
    case fk::ErrorCode::kBadImage:
    case fk::ErrorCode::kImageTooLarge: cls = g_bad_image; break;
    case fk::ErrorCode::kPoorQuality: cls = g_poor_quality; break;
    case fk::ErrorCode::kStorage: cls = g_storage; break;
    case fk::ErrorCode::kModelMissing:
    case fk::ErrorCode::kModelCorrupt: cls = g_model; break;
    default: break;
  }
  py::object exc = cls(e.what());
  exc.attr("code") = fk::to_string(e.code());
  PyErr_SetObject(cls.ptr(), exc.ptr());
  throw py::error_already_set();
}

std::vector<fk::EnrollPhoto> to_photos(const fk::Engine& e, const py::iterable& images) {
  std::vector<fk::EnrollPhoto> out;
  int i = 0;
  for (const auto& obj : images) {
    fk::EnrollPhoto p;
    ++i;
    if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
      p.path = py::module_::import("os").attr("fspath")(obj).cast<std::string>();
      p.label = p.path.string();
    } else {
      p.image = to_image(e, obj);
      p.label = "image " + std::to_string(i);
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) throw fk::Error(fk::ErrorCode::kInvalidArgument, "enroll needs at least one photo");
  return out;
}

fk::EngineOptions engine_options(const std::string& gallery, const std::string& detector, const std::string& embedder,
                                 const std::string& device, const std::string& classifier,
                                 const std::optional<float>& threshold, double fpir, int top_k, bool augment,
                                 bool allow_poor, const std::string& spoof_checker,
                                 const std::optional<std::string>& key_file, bool create) {
  fk::EngineOptions o;
  o.gallery = gallery;
  if (!detector.empty()) o.pipeline.detector = detector;
  if (!embedder.empty()) o.pipeline.embedder = embedder;
  o.pipeline.device = device;
  o.identify.classifier = classifier;
  if (threshold) o.identify.threshold = *threshold;
  o.identify.fpir = fpir;
  o.identify.top_k = top_k;
  o.enroll.augment.enabled = augment;
  o.enroll.allow_poor = allow_poor;
  o.spoof_checker = spoof_checker;
  o.gallery_options.create = create;
  if (key_file) o.gallery_options.key = fk::GalleryKey::from_file(*key_file);
  else o.gallery_options.key = fk::gallery_key_from_environment();
  return o;
}

/// Runs `fn` with the GIL released, turning facekit::Error into the matching Python exception.
template <class F>
auto call(F&& fn) {
  try {
    py::gil_scoped_release nogil;
    return fn();
  } catch (const fk::Error& e) {
    raise(e);
  }
}

template <class F>
auto guarded(F&& fn) {
  try {
    return fn();
  } catch (const fk::Error& e) {
    raise(e);
  }
}

}  // namespace

PYBIND11_MODULE(_facekit, m) {
  m.doc() = "facekit: face detection, verification, enrolment and identification (C++ engine)";

  g_error = PyErr_NewExceptionWithDoc("facekit.Error", "A facekit error; .code names its kind (e.g. 'no_face').",
                                      PyExc_RuntimeError, nullptr);
  const auto sub = [&](const char* name, const char* doc, py::object also) -> py::handle {
    py::tuple bases = also.is_none() ? py::make_tuple(g_error) : py::make_tuple(g_error, also);
    return PyErr_NewExceptionWithDoc((std::string("facekit.") + name).c_str(), doc, bases.ptr(), nullptr);
  };
  const py::object builtins = py::module_::import("builtins");
  g_no_face = sub("NoFaceError", "A photo that must hold a face holds none.", py::none());
  g_not_found = sub("NotFoundError", "A file, person or id that does not exist.", builtins.attr("LookupError"));
  g_invalid = sub("InvalidArgumentError", "A value that cannot be right.", builtins.attr("ValueError"));
  g_bad_image = sub("BadImageError", "An image that cannot be decoded, is damaged or is over the limits.",
                    builtins.attr("ValueError"));
  g_poor_quality = sub("PoorQualityError", "A face too poor for enrolment; the message gives the reasons.", py::none());
  g_storage = sub("StorageError", "The gallery store failed (not a gallery, corrupt, locked, disk full, key).",
                  builtins.attr("OSError"));
  g_model = sub("ModelError", "A model file is missing or corrupt (run scripts/setup).", py::none());
  m.attr("Error") = g_error;
  m.attr("NoFaceError") = g_no_face;
  m.attr("NotFoundError") = g_not_found;
  m.attr("InvalidArgumentError") = g_invalid;
  m.attr("BadImageError") = g_bad_image;
  m.attr("PoorQualityError") = g_poor_quality;
  m.attr("StorageError") = g_storage;
  m.attr("ModelError") = g_model;
  m.attr("SCHEMA_VERSION") = fk::json_view::kSchemaVersion;

  py::class_<fk::Face>(m, "Face")
      .def_property_readonly("box", [](const fk::Face& f) { return py::make_tuple(f.box.x, f.box.y, f.box.width, f.box.height); },
                             "(x, y, width, height) in pixels")
      .def_readonly("score", &fk::Face::score)
      .def_property_readonly("landmarks", &landmarks_array, "68 x 2 float32 array of (x, y), or None")
      .def("json", [](const fk::Face& f) { return to_py(fk::json_view::face(f)); })
      .def("__repr__", [](const fk::Face& f) {
        return "<facekit.Face box=(" + std::to_string(int(f.box.x)) + ", " + std::to_string(int(f.box.y)) + ", " +
               std::to_string(int(f.box.width)) + ", " + std::to_string(int(f.box.height)) +
               ") score=" + std::to_string(f.score) + ">";
      });

  py::class_<fk::AnalyzedFace>(m, "EmbeddedFace")
      .def_readonly("face", &fk::AnalyzedFace::face)
      .def_property_readonly("embedding", [](const fk::AnalyzedFace& a) { return to_array(a.embedding); });

  py::class_<fk::VerifyResult>(m, "Verification")
      .def_readonly("same", &fk::VerifyResult::same)
      .def_readonly("distance", &fk::VerifyResult::distance)
      .def_readonly("threshold", &fk::VerifyResult::threshold)
      .def_property_readonly("face_a", [](const fk::VerifyResult& r) { return r.a.face; })
      .def_property_readonly("face_b", [](const fk::VerifyResult& r) { return r.b.face; })
      .def_readonly("faces_in_a", &fk::VerifyResult::faces_in_a)
      .def_readonly("faces_in_b", &fk::VerifyResult::faces_in_b)
      .def("__bool__", [](const fk::VerifyResult& r) { return r.same; })
      .def("__repr__", [](const fk::VerifyResult& r) {
        return std::string("<facekit.Verification same=") + (r.same ? "True" : "False") +
               " distance=" + std::to_string(r.distance) + " threshold=" + std::to_string(r.threshold) + ">";
      });

  py::class_<fk::Person>(m, "Person")
      .def_readonly("id", &fk::Person::id)
      .def_readonly("name", &fk::Person::name)
      .def_property_readonly("metadata", [](const fk::Person& p) { return py::module_::import("json").attr("loads")(p.metadata); })
      .def_readonly("templates", &fk::Person::templates)
      .def_readonly("created_at", &fk::Person::created_at)
      .def("json", [](const fk::Person& p) { return to_py(fk::json_view::person(p)); })
      .def("__repr__", [](const fk::Person& p) {
        return "<facekit.Person id=" + std::to_string(p.id) + " name=" + py::repr(py::str(p.name)).cast<std::string>() +
               " templates=" + std::to_string(p.templates) + ">";
      });

  py::class_<fk::EnrollResult>(m, "Enrolment")
      .def_property_readonly("person", [](const fk::EnrollResult& r) { return r.stored.person; })
      .def_property_readonly("created", [](const fk::EnrollResult& r) { return r.stored.created; })
      .def_property_readonly("added", [](const fk::EnrollResult& r) { return r.stored.added; })
      .def_property_readonly("duplicates", [](const fk::EnrollResult& r) { return r.stored.duplicates; });

  py::class_<fk::Candidate>(m, "Candidate")
      .def_readonly("person_id", &fk::Candidate::person_id)
      .def_readonly("name", &fk::Candidate::name)
      .def_readonly("distance", &fk::Candidate::distance)
      .def_readonly("similarity", &fk::Candidate::similarity)
      .def_readonly("score", &fk::Candidate::score)
      .def_readonly("probability", &fk::Candidate::probability)
      .def("__repr__", [](const fk::Candidate& c) {
        return "<facekit.Candidate " + py::repr(py::str(c.name)).cast<std::string>() + " id=" + std::to_string(c.person_id) +
               " score=" + std::to_string(c.score) + ">";
      });

  py::class_<fk::IdentifiedFace>(m, "IdentifiedFace")
      .def_readonly("face", &fk::IdentifiedFace::face)
      .def_property_readonly("known", [](const fk::IdentifiedFace& f) { return f.identification.known; })
      .def_property_readonly("identity", [](const fk::IdentifiedFace& f) -> py::object {
        if (!f.identification.known) return py::none();
        return py::str(f.identification.candidates[0].name);
      }, "the name of the person, or None for unknown")
      .def_property_readonly("candidates", [](const fk::IdentifiedFace& f) { return f.identification.candidates; })
      .def_property_readonly("threshold", [](const fk::IdentifiedFace& f) { return f.identification.threshold; });

  py::class_<fk::IdentifyResult>(m, "Identification")
      .def_readonly("faces", &fk::IdentifyResult::faces)
      .def_readonly("revision", &fk::IdentifyResult::revision)
      .def_readonly("embedder", &fk::IdentifyResult::embedder)
      .def_readonly("threshold", &fk::IdentifyResult::threshold)
      .def_readonly("threshold_source", &fk::IdentifyResult::threshold_source)
      .def_readonly("people", &fk::IdentifyResult::people)
      .def("json", [](const fk::IdentifyResult& r) {
        return to_py(fk::json_view::identification(r, json::array({fk::json_view::identified_image("", fk::Image(), r)})));
      });

  py::class_<fk::Engine>(m, "Engine", R"doc(The facekit engine: pipeline, gallery and index, safe to share between threads.

Images are numpy uint8 arrays (H x W x 3 RGB, H x W x 4 RGBA or H x W grey), file paths or encoded bytes.)doc")
      .def(py::init([](const std::string& gallery, const std::string& detector, const std::string& embedder,
                       const std::string& device, const std::string& classifier, std::optional<float> threshold,
                       double fpir, int top_k, bool augment, bool allow_poor, const std::string& spoof_checker,
                       std::optional<std::string> key_file, bool create) {
             return guarded([&] {
               return std::make_unique<fk::Engine>(engine_options(gallery, detector, embedder, device, classifier,
                                                                  threshold, fpir, top_k, augment, allow_poor,
                                                                  spoof_checker, key_file, create));
             });
           }),
           py::kw_only(), py::arg("gallery") = "", py::arg("detector") = "", py::arg("embedder") = "",
           py::arg("device") = "cpu", py::arg("classifier") = "knn", py::arg("threshold") = py::none(),
           py::arg("fpir") = 0.01, py::arg("top_k") = 5, py::arg("augment") = true, py::arg("allow_poor") = false,
           py::arg("spoof_checker") = "spoof-combined", py::arg("key_file") = py::none(), py::arg("create") = true,
           "gallery: file ('' = $FACEKIT_GALLERY or ~/.local/share/facekit/gallery.db); detector, embedder: model "
           "names ('' = the defaults); threshold: open-set score threshold (None: calibrated for fpir)")
      .def_property_readonly("embedder", [](const fk::Engine& e) { return e.embedder_id().str(); })
      .def_property_readonly("verify_threshold", [](const fk::Engine& e) { return call([&] { return e.pipeline().embedder().threshold(); }); })
      .def("load_models", [](const fk::Engine& e) { call([&] { e.load_models(); }); })
      .def("load", [](const fk::Engine& e, const py::object& path) {
             const fk::Image img = guarded([&] { return to_image(e, path); });
             py::array_t<std::uint8_t> out({img.rows, img.cols, 3});
             for (int y = 0; y < img.rows; ++y)
               std::memcpy(out.mutable_data(y, 0, 0), img.ptr(y), static_cast<size_t>(img.cols) * 3);
             return out;
           }, py::arg("image"), "the image as an H x W x 3 RGB uint8 array")
      .def("detect", [](const fk::Engine& e, const py::object& img) {
             const fk::Image rgb = guarded([&] { return to_image(e, img); });
             return call([&] { return e.detect(rgb); });
           }, py::arg("image"), "every face: box, score, 68 landmarks")
      .def("embed", [](const fk::Engine& e, const py::object& img) {
             const fk::Image rgb = guarded([&] { return to_image(e, img); });
             return call([&] { return e.embed(rgb); });
           }, py::arg("image"), "every face with its embedding (float32 array)")
      .def("verify", [](const fk::Engine& e, const py::object& a, const py::object& b, std::optional<float> threshold) {
             const fk::Image ia = guarded([&] { return to_image(e, a); }), ib = guarded([&] { return to_image(e, b); });
             return call([&] { return e.verify(ia, ib, threshold ? *threshold : std::numeric_limits<float>::quiet_NaN()); });
           }, py::arg("a"), py::arg("b"), py::arg("threshold") = py::none(),
           "same person? The main face of each photo; threshold None: the embedder's calibrated one")
      .def("enroll", [](fk::Engine& e, const std::string& name, const py::iterable& images,
                        std::optional<py::dict> metadata, bool merge) {
             fk::EnrollOptions eo = e.options().enroll;
             eo.on_conflict = merge ? fk::OnConflict::kMerge : fk::OnConflict::kFail;
             if (metadata) eo.metadata = py::module_::import("json").attr("dumps")(*metadata).cast<std::string>();
             auto photos = guarded([&] { return to_photos(e, images); });
             return call([&] { return e.enroll(name, photos, eo); });
           }, py::arg("name"), py::arg("images"), py::kw_only(), py::arg("metadata") = py::none(), py::arg("merge") = true,
           "enrol a person from photos (each must hold exactly one face); all or nothing")
      .def("identify", [](const fk::Engine& e, const py::object& img) {
             const fk::Image rgb = guarded([&] { return to_image(e, img); });
             return call([&] { return e.identify(rgb); });
           }, py::arg("image"), "every face of the image against the gallery")
      .def("identify_embedding", [](const fk::Engine& e, const py::array_t<float, py::array::c_style | py::array::forcecast>& a) {
             const fk::Embedding emb = guarded([&] { return to_embedding(a); });
             return call([&] { return e.identify(emb); });
           }, py::arg("embedding"))
      .def("people", [](const fk::Engine& e) { return call([&] { return e.people(); }); })
      .def("person", [](const fk::Engine& e, const std::string& ref) { return call([&] { return e.find(ref); }); },
           py::arg("ref"), "a person by id or name")
      .def("rename", [](fk::Engine& e, const std::string& ref, const std::string& name) {
             return call([&] { return e.rename(ref, name); });
           }, py::arg("ref"), py::arg("new_name"))
      .def("remove", [](fk::Engine& e, const std::vector<std::string>& refs) { return call([&] { return e.remove(refs); }); },
           py::arg("refs"), "remove people by id or name; returns them as they were")
      .def("spoof", [](const fk::Engine& e, const py::object& img, bool whole_image) {
             const fk::Image rgb = guarded([&] { return to_image(e, img); });
             auto r = call([&] { return e.spoof(rgb, whole_image); });
             return to_py(fk::json_view::spoof_report("", rgb, e.spoof_checker(), r));
           }, py::arg("image"), py::arg("whole_image") = false,
           "passive anti-spoofing of every face, as the JSON view (dict)")
      .def("quality", [](const fk::Engine& e, const py::object& img) {
             const fk::Image rgb = guarded([&] { return to_image(e, img); });
             fk::AnalyzeOptions ao;
             ao.rescue = true;
             auto r = call([&] { return e.analyze(rgb, ao); });
             return to_py(fk::json_view::quality_report("", rgb, r));
           }, py::arg("image"), "quality of every face, as the JSON view (dict)");
}
