#pragma once
// Model manifests and the model store. Each model facekit can run has a committed manifest
// (share/models/NAME.json) saying what it is, where it comes from, how to feed it and how to read it; the
// weight files themselves are fetched by scripts/setup into models/ (installed with the library into
// share/facekit/weights/) and checked against the manifest's sha256.
#include <array>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "facekit/calibration.hpp"

namespace facekit {

struct ModelFile {
  std::string role;    ///< e.g. "weights_manifest", "weights"
  std::string path;    ///< relative to the models directory
  std::string sha256;  ///< lower-case hex
};

struct ModelManifest {
  std::string name;     ///< registry key, e.g. "dlib_resnet"
  std::string kind;     ///< "detector", "landmarker", "embedder"
  std::string arch;     ///< the network topology the loader builds
  std::string version;
  std::string package;  ///< source package and version, e.g. "@vladmandic/face-api@1.7.15"
  std::string licence;
  std::string provenance;
  std::vector<ModelFile> files;

  // Input preparation: (pixel - mean) * scale, RGB, square input of input_size.
  int input_size = 0;
  std::array<float, 3> mean{0, 0, 0};
  float scale = 1.f;

  // Embedders only.
  std::string alignment_template;  ///< "dlib68" (dlib's get_face_chip_details) or "arcface5"
  int chip_size = 0;
  float chip_padding = 0.f;
  int embedding_dim = 0;
  std::string metric;           ///< "euclidean" on L2-normalised embeddings
  float threshold = 0.f;        ///< same person when distance <= threshold
  std::string threshold_source; ///< how the threshold was calibrated
  /// Clustering's default distance (facekit cluster), chosen on a development set; 0: none (the verification
  /// threshold is used).
  float cluster_threshold = 0.f;
  std::string cluster_threshold_source;
  /// distance -> P(same person), fitted on labelled pairs ("embedding": {"calibration": {...}}); empty when
  /// the manifest has none.
  ScoreCalibration calibration;

  // Graph-model embedders: which placeholder and output node, and the channel order the model wants.
  std::string graph_input, graph_output;
  std::string channels = "rgb";  ///< "rgb" or "bgr"; "grey" (one luma channel) for attribute estimators only
  /// ONNX embedders ("onnx": {"runtime": ...}): "graph" (facekit's ONNX reader into the graph runtime: its fused
  /// kernels, GPU), "opencv" (OpenCV's DNN module, which reads more ops) or "auto" (graph where the reader
  /// translates every op, OpenCV DNN otherwise).
  std::string onnx_runtime = "auto";
  /// Graph embedders ("graph": {"bf16": "..."}): how running the graph in bf16 was checked against fp32 (cosine
  /// of the embeddings); empty: the model runs fp32 only, since bf16 moves some graphs' embeddings too far
  /// (human's faceres: cosine 0.994).
  std::string bf16_source;

  // Detectors whose boxes follow another convention than the landmark net's: (width scale, height scale,
  // centre shift x, centre shift y), the shifts in units of the box size.
  std::array<float, 4> box_adjust{1, 1, 0, 0};
  std::string box_adjust_source;  ///< how box_adjust was fitted

  // Fusion embedders and fusion spoof checkers: member models and their weights.
  std::vector<std::pair<std::string, float>> members;

  // Spoof checkers (kind "spoof"): how to read the output, the logistic model of a texture or fusion checker,
  // and the thresholds on P(live) calibrated on data.
  struct Spoof {
    int live_index = 0;     ///< graph models: which output element is P(live)
    float crop_scale = 1.f; ///< the face box is scaled by this about its centre before cropping
    /// Texture: features are standardised with mean/std, then P(live) = sigmoid(bias + weights . z).
    /// Fusion: P(live) = sigmoid(bias + sum of member weight * logit(member P(live))).
    std::vector<std::string> feature_groups;  ///< texture: which feature groups (empty: all)
    std::vector<float> feature_mean, feature_std, weights;
    float bias = 0.f;
    float threshold = 0.5f, live_threshold = 0.5f, spoof_threshold = 0.5f;
    std::string threshold_source;
  } spoof;
  // Attribute estimators (kind "attributes"): the crop, and one output node per categorical attribute with its
  // labels in output order.
  struct Attributes {
    float crop_scale = 1.f;  ///< the face box is made square (its longer side) and scaled by this about its centre
    std::string crop_scale_source;  ///< how crop_scale was chosen
    /// Then this part of that square is resized to the input: top, left, bottom, right as fractions.
    std::array<float, 4> crop{0, 0, 1, 1};
    std::string age_output, gender_output, group_output;
    std::vector<std::string> age_labels, gender_labels, group_labels;
    std::vector<float> age_centres;  ///< years, one per age label
    /// arch "combined": which member model gives each attribute ("age", "gender", "group" -> model name).
    std::map<std::string, std::string> sources;
  } attributes;
  /// Mesh landmarkers (arch "facemesh"): how many passes and how the next pass's crop is drawn from a mesh.
  struct Mesh {
    int passes = 1;             ///< each pass after the first crops around the previous pass's mesh
    float refine_scale = 1.5f;  ///< that crop's side over the mesh's extent (MediaPipe's 1.5)
    /// When the last pass also runs on the mirrored crop, the 68 points being the mean of the two (one more
    /// network run per face): "never", "grey" (greyscale photos only, where FaceMesh's points wander most:
    /// docs/results.md) or "always".
    std::string mirror = "never";
    /// Per 68-point offsets in dlib's template frame (face units), added to the mesh vertices standing for
    /// them so that they mean what face-api's points mean on frontal faces; empty: none.
    std::vector<std::array<float, 2>> point_offsets;
    std::string point_offsets_source;
  } mesh;
  /// Cascade detectors (arch "cascade"): members[0] runs on every photo; members[1] also runs where the first
  /// found no face or none scoring at least unsure_below, and the two lists are merged by NMS.
  struct Cascade {
    float unsure_below = 0.75f;
    std::string unsure_below_source;
  } cascade;
  /// Where `files` live: empty for the registered models (models_dir()), the model directory for a model
  /// loaded from one (a model written by `facekit train`).
  std::filesystem::path dir;

  /// The path of the file with this role; throws Error(kModelCorrupt) if the manifest has none.
  const ModelFile& file(const std::string& role) const;
  /// That file's full path (under `dir`, or under models_dir()).
  std::filesystem::path file_path(const std::string& role) const;
};

// Data directories. facekit's data (manifests, calibration tables, model weights) is found by this rule:
//  1. The environment first: $FACEKIT_DATA is a whole data directory laid out like an installed one (models/,
//     gallery/, weights/); $FACEKIT_MODELS and $FACEKIT_MANIFESTS override just the weights or the manifests.
//  2. An installed library (any libfacekit that is not the file the build wrote) reads the data directory
//     beside it: <dir of libfacekit.so>/<libdir -> datadir>/facekit, e.g.
//     /usr/lib/x86_64-linux-gnu/libfacekit.so.0.1 -> /usr/share/facekit. The prefix may move. It never reads the source tree it was built from, even when
//     that directory is missing (loading a model then fails, naming the missing file).
//  3. The library in the build tree (its file is in the directory the build put it in) reads the source tree:
//     <source>/share and the weights scripts/setup fetched into <source>/models.
// Installed layout: share/facekit/models/NAME.json and models.lock (the manifests),
// share/facekit/gallery/open_set.json, share/facekit/weights/<package>/... (the model files).

/// Where the model weights live: $FACEKIT_MODELS, else $FACEKIT_DATA/weights, else <data dir>/weights when
/// installed, <source dir>/models in the build tree.
std::filesystem::path models_dir();
/// The data files (manifests, calibration tables): $FACEKIT_DATA, else <data dir> (e.g. /usr/share/facekit)
/// when installed, <source dir>/share in the build tree.
std::filesystem::path share_dir();
/// Where the manifests live: $FACEKIT_MANIFESTS, else share_dir()/models.
std::filesystem::path manifests_dir();
/// True when this libfacekit is the one in its build tree, and so, unless the variables say otherwise, reads
/// its data from the source tree; false for an installed library.
bool data_from_source_tree();

/// Reads share/models/NAME.json, or, when `name` is a model directory (one holding manifest.json, as
/// `facekit train` writes) or a path to a manifest file, that manifest, its files relative to its directory.
/// Throws Error(kNotFound) for an unknown name (listing the known ones).
ModelManifest load_manifest(const std::string& name);
/// Reads DIR/NAME.json (same errors).
ModelManifest load_manifest(const std::string& name, const std::filesystem::path& dir);
/// Reads one manifest file; its files are looked up in `dir` when given, else in models_dir().
/// Parses manifest JSON (`where` names it in errors). Throws Error(kModelCorrupt) for malformed JSON or missing
/// fields, Error(kInvalidArgument) for JSON nested deeper than 64.
ModelManifest parse_manifest(const std::string& text, const std::string& where, const std::filesystem::path& dir = {});
/// The manifest as JSON text that parse_manifest() reads back into the same fields (the one writer next to
/// the one reader). `extra_json`, an object, is merged at the top level for what only a writer's own readers
/// use (a trained model's "training" block).
std::string manifest_to_json(const ModelManifest& m, const std::string& extra_json = "{}");
/// Writes manifest_to_json() into `file`, replacing it atomically; creates the folder.
void save_manifest(const std::filesystem::path& file, const ModelManifest& m, const std::string& extra_json = "{}");
ModelManifest load_manifest_file(const std::filesystem::path& json, const std::filesystem::path& dir = {});
/// Names of all committed manifests, sorted.
std::vector<std::string> list_manifests();

/// Checks every file of the manifest exists and matches its sha256. Throws Error(kModelMissing) or
/// Error(kModelCorrupt) with a message that names the file and the set-up command.
void verify_model_files(const ModelManifest& m);

/// Lower-case hex SHA-256 of a file's bytes.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace facekit
