// facekit serve's API over real HTTP (cpp-httplib's client against the server in this process) with the real
// models and real photos: every route, keys and scopes, limits, the bad inputs of the CLI tests, and
// enrol-then-recognize under concurrency. The CLI side (facekit serve, facekit keys) is in test_serve_cli.cpp.
#include <httplib.h>
#include <sodium.h>

#include <cstring>

#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "../e2e/actors.hpp"
#include "../e2e/cli_run.hpp"
#include "../test_dir.hpp"
#include "facekit/engine.hpp"
#include "facekit/error.hpp"
#include "facekit/model.hpp"
#include "server/server.hpp"

namespace {

using nlohmann::json;
namespace fs = std::filesystem;
using fk_test::actors;
using fk_test::kDlibFaces;

using fk_test::slurp;

std::string url_encode(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.') {
      out += static_cast<char>(ch);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", ch);
      out += buf;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(std::strlen(out.c_str()));
  return out;
}

/// A photo with no face: a smooth gradient (Debian's dogs.jpg will not do: BlazeFace scores a dog's face at
/// 0.57, over its threshold; and a gradient with shapes on it yields a poor "face" at enrolment's rescue score).
std::string no_face() {
  cv::Mat img(480, 640, CV_8UC3);
  for (int y = 0; y < img.rows; ++y)
    for (int x = 0; x < img.cols; ++x) img.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 255 / 640, y * 255 / 480, 90);
  std::vector<uchar> buf;
  cv::imencode(".jpg", img, buf);
  return {buf.begin(), buf.end()};
}

std::string tom() { return slurp(kDlibFaces / "Tom_Cruise_avp_2014_4.jpg"); }

httplib::MultipartFormDataItems file(const std::string& bytes, const std::string& field = "file",
                                     const std::string& name = "photo.jpg") {
  return {{field, bytes, name, "image/jpeg"}};
}

/// One engine and server for the whole suite (models load once), over a fresh gallery.
class Api : public ::testing::Test {
 protected:
  static inline fs::path dir;
  static inline std::unique_ptr<facekit::Engine> engine;
  static inline std::unique_ptr<facekit::server::Server> server;
  static inline int port = 0;
  static inline std::string admin;

  static void SetUpTestSuite() {
    dir = fs::temp_directory_path() / ("fk_api_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    facekit::EngineOptions o;
    o.gallery = dir / "gallery.db";
    o.pipeline.embedding.batch_across_calls = true;
    o.image_limits.max_pixels = 40'000'000;
    o.identify.top_k = 10;
    engine = std::make_unique<facekit::Engine>(o);
    facekit::server::ServerOptions so;
    so.port = 0;
    so.max_body_bytes = 10u << 20;
    so.web_dir = facekit::share_dir() / "web";
    server = std::make_unique<facekit::server::Server>(*engine, so);
    port = server->start();
    admin = slurp(dir / "gallery.db.admin-key");
    while (!admin.empty() && admin.back() == '\n') admin.pop_back();
    for (int i = 0; i < 600 && !server->ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(server->ready());
  }
  static void TearDownTestSuite() {
    server.reset();
    engine.reset();
    fs::remove_all(dir);
  }

  static httplib::Client client(const std::string& key = admin) {
    httplib::Client c("127.0.0.1", port);
    if (!key.empty()) c.set_default_headers({{"x-api-key", key}});
    c.set_read_timeout(120, 0);
    return c;
  }
  static json body(const httplib::Result& r) {
    EXPECT_TRUE(r) << "no answer";
    if (!r) return {};
    try {
      return json::parse(r->body);
    } catch (const json::exception&) {
      ADD_FAILURE() << "not JSON: " << r->body.substr(0, 200);
      return {};
    }
  }
  /// A problem document with this status and code.
  static void expect_problem(const httplib::Result& r, int status, const std::string& code) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/problem+json");
    const json j = body(r);
    EXPECT_EQ(j.value("code", ""), code) << r->body;
    EXPECT_EQ(j.value("status", 0), status);
    EXPECT_FALSE(j.value("detail", "").empty());
    EXPECT_EQ(j.value("type", ""), "urn:facekit:error:" + code);
  }
  static std::int64_t revision() { return engine->gallery_stats().revision; }
  /// Enrols `photo` as `subject`; returns the image_id.
  static std::string add(const std::string& subject, const std::string& bytes) {
    auto c = client();
    auto r = c.Post("/api/v1/recognition/faces?subject=" + url_encode(subject), file(bytes));
    EXPECT_TRUE(r && r->status == 201) << (r ? r->body : "no answer");
    return body(r).value("image_id", "");
  }
  static void remove_all() {
    auto c = client();
    auto r = c.Delete("/api/v1/recognition/subjects");
    ASSERT_TRUE(r && r->status == 200);
  }
};

TEST_F(Api, HealthReadyAndTheDocumentNeedNoKey) {
  auto c = client("");
  auto h = c.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(body(h)["status"], "ok");
  auto r = c.Get("/readyz");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body(r)["status"], "ready");
  auto o = c.Get("/openapi.json");
  ASSERT_EQ(o->status, 200);
  EXPECT_EQ(body(o)["openapi"].get<std::string>().substr(0, 2), "3.");
  auto p = c.Get("/");
  ASSERT_EQ(p->status, 200);
  EXPECT_NE(p->body.find("<html"), std::string::npos);
  EXPECT_EQ(p->get_header_value("Content-Type"), "text/html; charset=utf-8");
  expect_problem(c.Get("/web/../../etc/passwd"), 404, "not_found");
  expect_problem(c.Get("/no/such/route"), 404, "not_found");
}

TEST_F(Api, KeysAndScopes) {
  auto& st = server->state();
  const std::string reader = st.create_key("t-reader", facekit::server::kRead);
  const std::string recog = st.create_key("t-recognize", facekit::server::kRecognize);
  const std::string revoked = st.create_key("t-revoked", facekit::server::kAdmin);
  st.revoke_key("t-revoked");
  // Only hashes are stored: no key text in the state file.
  const std::string stored = slurp(dir / "gallery.db.server.db") + slurp(dir / "gallery.db.server.db-wal");
  EXPECT_EQ(stored.find(reader), std::string::npos);
  EXPECT_EQ(stored.find(admin), std::string::npos);
  EXPECT_EQ(fs::status(dir / "gallery.db.admin-key").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);

  expect_problem(client("").Get("/api/v1/recognition/subjects"), 401, "unauthorized");
  expect_problem(client("fk_0123456789abcdef").Get("/api/v1/recognition/subjects"), 401, "unauthorized");
  expect_problem(client(revoked).Get("/api/v1/recognition/subjects"), 401, "unauthorized");
  EXPECT_EQ(client(reader).Get("/api/v1/recognition/subjects")->status, 200);
  expect_problem(client(reader).Post("/api/v1/recognition/recognize", file(tom())), 403, "forbidden");
  expect_problem(client(recog).Post("/api/v1/recognition/faces?subject=X", file(tom())), 403, "forbidden");
  expect_problem(client(recog).Get("/metrics"), 403, "forbidden");
  auto s = client(reader).Get("/api/v1/facekit/status");
  ASSERT_EQ(s->status, 200);
  EXPECT_EQ(body(s)["key"]["name"], "t-reader");
  EXPECT_EQ(body(s)["key"]["scopes"], "read");
  EXPECT_FALSE(body(s)["gallery"].contains("location"));  // admins only
  EXPECT_TRUE(body(client().Get("/api/v1/facekit/status"))["gallery"].contains("location"));
}

TEST_F(Api, RateLimitAnswers429WithRetryAfter) {
  const std::string k = server->state().create_key("t-slow", facekit::server::kRead, 1.0);
  auto c = client(k);
  int ok = 0, limited = 0;
  std::string retry;
  for (int i = 0; i < 6; ++i) {
    auto r = c.Get("/api/v1/recognition/subjects");
    ASSERT_TRUE(r);
    if (r->status == 200) ++ok;
    if (r->status == 429) {
      ++limited;
      retry = r->get_header_value("Retry-After");
      expect_problem(r, 429, "rate_limited");
    }
  }
  EXPECT_EQ(ok, 2);  // a bucket of 2 x the rate
  EXPECT_EQ(limited, 4);
  EXPECT_GE(std::stoi(retry), 1);
}

TEST_F(Api, Metrics) {
  client().Get("/healthz");
  auto r = client().Get("/metrics");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  for (const char* s : {"facekit_http_requests_total{route=\"/healthz\",status=\"200\"}",
                        "# TYPE facekit_http_request_duration_seconds histogram", "facekit_gallery_people ",
                        "facekit_work_waiting ", "facekit_ready 1", "facekit_embed_batches_total "})
    EXPECT_NE(r->body.find(s), std::string::npos) << s;
}

TEST_F(Api, SubjectsLifecycle) {
  remove_all();
  auto c = client();
  auto r = c.Post("/api/v1/recognition/subjects", R"({"subject":"Ada"})", "application/json");
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(body(r)["subject"], "Ada");
  expect_problem(c.Post("/api/v1/recognition/subjects", R"({"subject":"Ada"})", "application/json"), 409, "conflict");
  expect_problem(c.Post("/api/v1/recognition/subjects", R"({"subject":"  "})", "application/json"), 400,
                 "invalid_argument");
  expect_problem(c.Post("/api/v1/recognition/subjects", R"({"subject":)", "application/json"), 400,
                 "invalid_argument");
  EXPECT_EQ(body(c.Get("/api/v1/recognition/subjects"))["subjects"], json::array({"Ada"}));
  // A declared subject gets its first face, is renamed, then removed.
  add("Ada", tom());
  ASSERT_EQ(c.Put("/api/v1/recognition/subjects/Ada", R"({"subject":"Ada L"})", "application/json")->status, 200);
  EXPECT_EQ(body(c.Get("/api/v1/recognition/subjects"))["subjects"], json::array({"Ada L"}));
  expect_problem(c.Put("/api/v1/recognition/subjects/Nobody", R"({"subject":"X"})", "application/json"), 404,
                 "not_found");
  auto d = c.Delete("/api/v1/recognition/subjects/Ada%20L");
  ASSERT_EQ(d->status, 200) << d->body;
  EXPECT_EQ(body(d)["subject"], "Ada L");
  EXPECT_EQ(body(c.Get("/api/v1/recognition/subjects"))["subjects"], json::array());
  expect_problem(c.Delete("/api/v1/recognition/subjects/Ada"), 404, "not_found");
  // A name with '/' in it is one path segment however it is encoded.
  ASSERT_EQ(c.Post("/api/v1/recognition/subjects", R"({"subject":"AC/DC"})", "application/json")->status, 201);
  ASSERT_EQ(c.Put("/api/v1/recognition/subjects/AC%2FDC", R"({"subject":"AC/DC 2"})", "application/json")->status, 200);
  ASSERT_EQ(c.Delete("/api/v1/recognition/subjects/AC%2FDC%202")->status, 200);
  c.Post("/api/v1/recognition/subjects", R"({"subject":"B"})", "application/json");
  add("C", tom());
  auto all = c.Delete("/api/v1/recognition/subjects");
  EXPECT_EQ(body(all)["deleted"], 2);
  EXPECT_EQ(engine->gallery_stats().people, 0);
}

TEST_F(Api, FacesAddListImageDelete) {
  remove_all();
  const auto& a = actors().groups;
  ASSERT_GE(a.size(), 2u);
  auto c = client();
  const std::string id1 = add("One", slurp(a[0][0]));
  // The same photo as JSON base64 is a duplicate of the same example.
  const std::string b64 = base64(slurp(a[0][0]));
  auto dup = c.Post("/api/v1/recognition/faces?subject=One", json{{"file", b64}}.dump(), "application/json");
  ASSERT_EQ(dup->status, 201) << dup->body;
  EXPECT_EQ(body(dup)["image_id"], id1);
  EXPECT_TRUE(body(dup)["duplicate"].get<bool>());
  const std::string id2 = add("One", slurp(a[0][1]));
  const std::string id3 = add("Two", slurp(a[1][0]));
  EXPECT_NE(id1, id2);
  auto added = c.Post("/api/v1/recognition/faces?subject=Two", file(slurp(a[1][1])));
  EXPECT_EQ(body(added)["quality"]["level"].get<std::string>().empty(), false);
  EXPECT_EQ(body(added)["box"].size(), 5u);

  auto list = body(c.Get("/api/v1/recognition/faces?size=3&page=0"));
  EXPECT_EQ(list["total_elements"], 4);
  EXPECT_EQ(list["total_pages"], 2);
  EXPECT_EQ(list["faces"].size(), 3u);
  EXPECT_EQ(body(c.Get("/api/v1/recognition/faces?size=3&page=1"))["faces"].size(), 1u);
  EXPECT_EQ(body(c.Get("/api/v1/recognition/faces?subject=One"))["faces"].size(), 2u);
  expect_problem(c.Get("/api/v1/recognition/faces?subject=Nobody"), 404, "not_found");
  expect_problem(c.Get("/api/v1/recognition/faces?size=0"), 400, "invalid_argument");

  auto img = c.Get("/api/v1/recognition/faces/" + id1 + "/img");
  ASSERT_EQ(img->status, 200);
  EXPECT_EQ(img->get_header_value("Content-Type"), "image/jpeg");
  const cv::Mat thumb = cv::imdecode(std::vector<uchar>(img->body.begin(), img->body.end()), cv::IMREAD_COLOR);
  ASSERT_FALSE(thumb.empty());
  EXPECT_LE(thumb.rows, 160);
  expect_problem(c.Get("/api/v1/recognition/faces/999999/img"), 404, "not_found");
  expect_problem(c.Get("/api/v1/recognition/faces/abc/img"), 404, "not_found");

  auto del = c.Delete("/api/v1/recognition/faces/" + id1);
  ASSERT_EQ(del->status, 200);
  EXPECT_EQ(body(del)["subject"], "One");
  EXPECT_FALSE(body(del)["subject_removed"].get<bool>());
  expect_problem(c.Delete("/api/v1/recognition/faces/" + id1), 404, "not_found");
  auto many = c.Post("/api/v1/recognition/faces/delete", json::array({id2, "424242"}).dump(), "application/json");
  ASSERT_EQ(many->status, 200);
  ASSERT_EQ(body(many).size(), 1u);  // the unknown id is skipped
  EXPECT_TRUE(body(many)[0]["subject_removed"].get<bool>());  // One's last example
  auto bysub = c.Delete("/api/v1/recognition/faces?subject=Two");
  EXPECT_EQ(body(bysub)["deleted"], 2);
  EXPECT_EQ(engine->gallery_stats().people, 0);
  (void)id3;
}

TEST_F(Api, RecognizeKnownUnknownPluginsAndBatch) {
  remove_all();
  const auto& a = actors().groups;
  const std::string id = add("Actor0", slurp(a[0][0]));
  auto c = client();
  auto r = c.Post("/api/v1/recognition/recognize?face_plugins=landmarks,calculator,quality,liveness,age,gender,mask",
                  file(slurp(a[0][1])));
  ASSERT_EQ(r->status, 200) << r->body;
  json j = body(r);
  ASSERT_EQ(j["result"].size(), 1u);
  const json& f = j["result"][0];
  EXPECT_EQ(f["subjects"][0]["subject"], "Actor0");
  EXPECT_EQ(f["subjects"][0]["image_id"], id);
  EXPECT_FALSE(f["unknown"].get<bool>());
  EXPECT_GT(f["subjects"][0]["similarity"].get<double>(), f["threshold"].get<double>());
  EXPECT_EQ(f["landmarks"].size(), 5u);
  EXPECT_EQ(f["landmarks68"].size(), 68u);
  EXPECT_EQ(f["embedding"].size(), static_cast<size_t>(engine->pipeline().embedder().dim()));
  EXPECT_TRUE(f["quality"].contains("level"));
  EXPECT_TRUE(f["liveness"].contains("live"));
  EXPECT_TRUE(f["execution_time"].contains("detector"));
  // Age and gender in CompreFace's shapes, from the attribute model (estimates).
  ASSERT_TRUE(f.contains("age")) << f.dump();
  EXPECT_GE(f["age"]["low"].get<int>(), 0);
  EXPECT_TRUE(f["age"]["high"].is_null() || f["age"]["high"].get<int>() >= f["age"]["low"].get<int>());
  EXPECT_GT(f["age"]["probability"].get<double>(), 0.0);
  EXPECT_GT(f["age"]["years"].get<double>(), 0.0);
  ASSERT_TRUE(f.contains("gender")) << f.dump();
  EXPECT_TRUE(f["gender"]["value"] == "male" || f["gender"]["value"] == "female") << f["gender"];
  EXPECT_GE(f["gender"]["probability"].get<double>(), 0.5);
  EXPECT_TRUE(f["gender"]["estimated"].get<bool>());
  EXPECT_EQ(j["plugins_versions"]["gender"], "attributes");
  EXPECT_EQ(j["plugins_unsupported"], json::array({"mask"}));
  for (const char* k : {"probability", "x_min", "y_min", "x_max", "y_max"}) EXPECT_TRUE(f["box"].contains(k)) << k;

  // Someone not enrolled: unknown, with the nearest candidate still listed (CompreFace clients threshold it).
  auto s = body(c.Post("/api/v1/recognition/recognize", file(slurp(a[1][0]))));
  ASSERT_EQ(s["result"].size(), 1u);
  EXPECT_TRUE(s["result"][0]["unknown"].get<bool>());

  // Several images in one call; limit keeps the best-scoring faces.
  httplib::MultipartFormDataItems two{{"file", slurp(a[0][2]), "a.png", "image/png"},
                                      {"file", slurp(kDlibFaces / "bald_guys.jpg"), "b.jpg", "image/jpeg"}};
  auto b = body(c.Post("/api/v1/recognition/recognize?limit=2&prediction_count=2", two));
  ASSERT_EQ(b["images"].size(), 2u);
  EXPECT_EQ(b["images"][0]["result"][0]["subjects"][0]["subject"], "Actor0");
  EXPECT_EQ(b["images"][1]["result"].size(), 2u);
  EXPECT_EQ(b["images"][1]["result"][0]["subjects"].size(), 1u);  // one person enrolled
  // No face at all: an empty result, not an error.
  auto dogs = c.Post("/api/v1/recognition/recognize", file(no_face()));
  ASSERT_EQ(dogs->status, 200);
  EXPECT_EQ(body(dogs)["result"].size(), 0u);
  expect_problem(c.Post("/api/v1/recognition/recognize?prediction_count=0", file(tom())), 400, "invalid_argument");
  expect_problem(c.Post("/api/v1/recognition/recognize?det_prob_threshold=2", file(tom())), 400, "invalid_argument");
}

TEST_F(Api, VerifyDetectAndEmbeddings) {
  remove_all();
  const auto& a = actors().groups;
  const std::string id = add("Actor0", slurp(a[0][0]));
  auto c = client();
  auto same = body(c.Post("/api/v1/recognition/faces/" + id + "/verify", file(slurp(a[0][1]))));
  ASSERT_EQ(same["result"].size(), 1u);
  EXPECT_TRUE(same["result"][0]["same"].get<bool>());
  auto other = body(c.Post("/api/v1/recognition/faces/" + id + "/verify", file(slurp(a[1][0]))));
  EXPECT_FALSE(other["result"][0]["same"].get<bool>());
  EXPECT_LT(other["result"][0]["similarity"].get<double>(), same["result"][0]["similarity"].get<double>());
  expect_problem(c.Post("/api/v1/recognition/faces/987654/verify", file(tom())), 404, "not_found");

  httplib::MultipartFormDataItems pair{{"source_image", slurp(a[0][0]), "s.png", "image/png"},
                                       {"target_image", slurp(kDlibFaces / "bald_guys.jpg"), "t.jpg", "image/jpeg"}};
  auto v = body(c.Post("/api/v1/verification/verify", pair));
  ASSERT_EQ(v["result"].size(), 1u);
  const auto& m = v["result"][0]["face_matches"];
  ASSERT_GE(m.size(), 4u);
  int same_count = 0;
  for (const auto& x : m) same_count += x["same"].get<bool>();
  EXPECT_GE(same_count, 1);                        // the source actor is in the collage
  EXPECT_LT(same_count, static_cast<int>(m.size()));  // and so are others
  httplib::MultipartFormDataItems nosrc{{"source_image", no_face(), "d.jpg", "image/jpeg"},
                                        {"target_image", tom(), "t.jpg", "image/jpeg"}};
  expect_problem(c.Post("/api/v1/verification/verify", nosrc), 400, "no_face");
  expect_problem(c.Post("/api/v1/verification/verify", file(tom(), "source_image")), 400, "invalid_argument");

  auto d = body(c.Post("/api/v1/detection/detect?face_plugins=calculator,gender", file(slurp(kDlibFaces / "bald_guys.jpg"))));
  ASSERT_GE(d["result"].size(), 4u);
  for (const auto& face : d["result"]) EXPECT_TRUE(face.contains("gender")) << face.dump();
  EXPECT_FALSE(d["result"][0].contains("age"));
  const auto emb = d["result"][0]["embedding"];
  ASSERT_EQ(emb.size(), static_cast<size_t>(engine->pipeline().embedder().dim()));

  auto e = c.Post("/api/v1/recognition/embeddings/recognize", json{{"embeddings", json::array({emb})}}.dump(),
                  "application/json");
  ASSERT_EQ(e->status, 200) << e->body;
  EXPECT_EQ(body(e)["result"][0]["similarities"].size(), 1u);
  expect_problem(c.Post("/api/v1/recognition/embeddings/recognize", R"({"embeddings":[[1,2,3]]})", "application/json"),
                 400, "invalid_argument");
  expect_problem(c.Post("/api/v1/recognition/embeddings/recognize", R"({"embeddings":"x"})", "application/json"), 400,
                 "invalid_argument");
}

TEST_F(Api, DeepStackRoutes) {
  remove_all();
  const auto& a = actors().groups;
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120, 0);
  // DeepStack clients send the key as a form field.
  httplib::MultipartFormDataItems reg{{"userid", "Actor1", "", ""},
                                      {"image", slurp(a[1][0]), "a.png", "image/png"},
                                      {"api_key", admin, "", ""}};
  auto r = c.Post("/v1/vision/face/register", reg);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(body(r)["success"].get<bool>());
  httplib::MultipartFormDataItems rec{{"image", slurp(a[1][1]), "b.png", "image/png"}, {"api_key", admin, "", ""}};
  auto p = body(c.Post("/v1/vision/face/recognize", rec));
  ASSERT_EQ(p["predictions"].size(), 1u);
  EXPECT_EQ(p["predictions"][0]["userid"], "Actor1");
  for (const char* k : {"confidence", "x_min", "y_min", "x_max", "y_max"}) EXPECT_TRUE(p["predictions"][0].contains(k));
  httplib::MultipartFormDataItems stranger{{"image", slurp(a[0][0]), "c.png", "image/png"}, {"api_key", admin, "", ""}};
  EXPECT_EQ(body(c.Post("/v1/vision/face/recognize", stranger))["predictions"][0]["userid"], "unknown");
  httplib::MultipartFormDataItems key_only{{"api_key", admin, "", ""}};
  EXPECT_EQ(body(c.Post("/v1/vision/face/list", key_only))["faces"], json::array({"Actor1"}));
  httplib::MultipartFormDataItems del{{"userid", "Actor1", "", ""}, {"api_key", admin, "", ""}};
  EXPECT_TRUE(body(c.Post("/v1/vision/face/delete", del))["success"].get<bool>());
  auto again = c.Post("/v1/vision/face/delete", del);
  expect_problem(again, 404, "not_found");
  EXPECT_FALSE(body(again)["success"].get<bool>());
  expect_problem(c.Post("/v1/vision/face/list"), 401, "unauthorized");
}

TEST_F(Api, BadInputsGetClearErrorsAndStoreNothing) {
  remove_all();
  add("Keep", tom());
  const std::int64_t rev = revision();
  auto c = client();
  const std::string jpeg = tom();
  const std::string path = "/api/v1/recognition/faces?subject=Bad";
  expect_problem(c.Post(path, file(jpeg.substr(0, jpeg.size() / 2))), 400, "bad_image");  // truncated
  expect_problem(c.Post(path, file("just some text, not an image\n", "file", "a.txt")), 400, "bad_image");
  expect_problem(c.Post(path, file("")), 400, "bad_image");
  expect_problem(c.Post(path, "", "application/octet-stream"), 400, "invalid_argument");
  expect_problem(c.Post(path, "{", "application/json"), 400, "invalid_argument");
  expect_problem(c.Post(path, R"({"file":"%%%not base64"})", "application/json"), 400, "invalid_argument");
  expect_problem(c.Post(path, file(no_face())), 400, "no_face");
  expect_problem(c.Post(path, file(slurp(kDlibFaces / "bald_guys.jpg"))), 400, "invalid_argument");  // many faces
  expect_problem(c.Post("/api/v1/recognition/faces", file(jpeg)), 400, "invalid_argument");          // no subject
  // A PNG whose header claims 100,000 x 100,000 pixels: refused from the header, before decoding.
  std::vector<uchar> small;
  cv::imencode(".png", cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3)), small);
  std::string bomb(small.begin(), small.end());
  auto be32 = [&](size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) bomb[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  };
  be32(16, 100000);
  be32(20, 100000);
  expect_problem(c.Post(path, file(bomb, "file", "bomb.png")), 413, "image_too_large");
  // 20 MB body: over the 10 MiB limit.
  expect_problem(c.Post(path, std::string(20u << 20, 'x'), "application/octet-stream"), 413, "body_too_large");
  // A 100 KB header: refused by the HTTP layer, and the server keeps serving.
  httplib::Headers huge{{"x-api-key", admin}, {"x-filler", std::string(100000, 'a')}};
  auto h = c.Get("/api/v1/recognition/subjects", huge);
  EXPECT_TRUE(!h || h->status >= 400);
  EXPECT_EQ(revision(), rev);
  EXPECT_EQ(body(c.Get("/api/v1/recognition/subjects"))["subjects"], json::array({"Keep"}));
}

TEST_F(Api, EnrolThenRecognizeUnderConcurrency) {
  remove_all();
  const auto& groups = actors().groups;
  std::atomic<int> failures{0}, answers{0};
  std::vector<std::thread> threads;
  // Each writer enrols one actor under its own name and at once recognizes another photo of them, while
  // readers recognize the collage: every answer must be 200, and a writer must see its own enrolment.
  for (size_t g = 0; g < std::min<size_t>(groups.size(), 4); ++g) {
    threads.emplace_back([&, g] {
      const std::string name = "Actor " + std::to_string(g);
      auto c = client();
      for (size_t k = 0; k + 1 < std::min<size_t>(groups[g].size(), 3); ++k) {
        auto r = c.Post("/api/v1/recognition/faces?subject=" + url_encode(name),
                        file(slurp(groups[g][k])));
        if (!r || r->status != 201) ++failures;
        auto q = c.Post("/api/v1/recognition/recognize", file(slurp(groups[g][k + 1])));
        if (!q || q->status != 200) {
          ++failures;
          continue;
        }
        const json j = json::parse(q->body);
        if (j["result"].size() != 1 || j["result"][0]["subjects"][0]["subject"] != name) {
          ++failures;
          ADD_FAILURE() << name << ": " << q->body.substr(0, 300);
        }
        ++answers;
      }
    });
  }
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] {
      auto c = client();
      for (int i = 0; i < 4; ++i) {
        auto q = c.Post("/api/v1/recognition/recognize", file(slurp(kDlibFaces / "bald_guys.jpg")));
        if (!q || q->status != 200) ++failures;
        ++answers;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_GE(answers, 8);
}

TEST_F(Api, FullQueueAnswers503) {
  // A second server with one worker and no queue: of concurrent requests, those that find the worker busy are
  // shed at once. Its engine does not batch, so that a request holds the worker for its whole model work
  // (detection and 24 embeddings: long enough for the others to find it busy).
  facekit::EngineOptions eo = engine->options();
  eo.pipeline.embedding.batch_across_calls = false;
  facekit::Engine plain(eo);
  facekit::server::ServerOptions so;
  so.port = 0;
  so.workers = 1;
  so.queue = 0;
  so.state = dir / "shed.server.db";
  so.admin_key_file = dir / "shed.admin-key";
  facekit::server::Server shed(plain, so);
  const int p = shed.start();
  for (int i = 0; i < 600 && !shed.ready(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::string key = slurp(dir / "shed.admin-key");
  key.pop_back();
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::vector<std::thread> ts;
  const std::string photo = slurp(kDlibFaces / "bald_guys.jpg");
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&] {
      httplib::Client c("127.0.0.1", p);
      c.set_default_headers({{"x-api-key", key}});
      c.set_read_timeout(120, 0);
      auto r = c.Post("/api/v1/recognition/recognize", file(photo));
      if (r && r->status == 200) ++ok;
      else if (r && r->status == 503 && r->get_header_value("Retry-After") == "1") ++busy;
      else ++other;
    });
  for (auto& t : ts) t.join();
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(other, 0);
  shed.stop();
}

TEST_F(Api, ReadyzSaysWhyWhenWarmUpFails) {
  // A spoof checker that does not exist fails the warm-up: /readyz answers 503 naming it, /healthz stays 200.
  facekit::EngineOptions eo = engine->options();
  eo.spoof_checker = "no-such-checker";
  facekit::Engine broken(eo);
  facekit::server::ServerOptions so;
  so.port = 0;
  so.state = dir / "broken.server.db";
  so.admin_key_file = dir / "broken.admin-key";
  facekit::server::Server srv(broken, so);
  const int p = srv.start();
  httplib::Client c("127.0.0.1", p);
  std::string detail;
  for (int i = 0; i < 600; ++i) {
    auto r = c.Get("/readyz");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 503);
    detail = json::parse(r->body).value("detail", "");
    if (detail.find("warm-up failed") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(detail.find("no-such-checker"), std::string::npos) << detail;
  EXPECT_FALSE(srv.ready());
  EXPECT_EQ(c.Get("/healthz")->status, 200);
  srv.stop();
}

TEST_F(Api, RoutesMatchTheOpenApiDocument) {
  const json doc = json::parse(slurp(facekit::share_dir() / "server/openapi.json"));
  std::set<std::pair<std::string, std::string>> in_doc, served;
  for (const auto& [path, ops] : doc["paths"].items())
    for (const auto& [method, op] : ops.items())
      if (method != "parameters") in_doc.insert({method, path});
  for (const auto& r : facekit::server::Server::routes()) {
    std::string m = r.method;
    for (auto& ch : m) ch = static_cast<char>(std::tolower(ch));
    served.insert({m, r.path});
    const json& op = doc["paths"][r.path][m];
    if (r.scope) {
      EXPECT_TRUE(op.contains("x-facekit-scope")) << r.method << " " << r.path;
      EXPECT_EQ(op.value("x-facekit-scope", ""), facekit::server::scopes_to_string(r.scope)) << r.path;
    } else {
      EXPECT_EQ(op["security"], json::array()) << r.method << " " << r.path << " is public";
    }
  }
  EXPECT_EQ(in_doc, served);
}

}  // namespace
