// serve: the HTTP service and web page (src/server); keys create|list|revoke: its API keys.
#include <csignal>
#include <fstream>
#include <iostream>
#include <pthread.h>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "facekit/error.hpp"
#include "server/server.hpp"

namespace facekit::cli {
namespace {

using nlohmann::json;

struct ServeArgs {
  GalleryArgs gallery;
  server::ServerOptions server;
  std::int64_t max_pixels = 40'000'000;
  bool no_batching = false;
  // 0: a pass takes the faces that queued while the previous one ran. Measured on LFW photos with 64 clients on
  // 2 cores: 69.8 photos/s against 69.1 with a 2 ms window (docs/server.md).
  int batch_window_us = 0;
  std::string port_file;
};

int cmd_serve(const Common& c, ServeArgs a) {
  EngineOptions o = gallery_engine_options(c, a.gallery, true);
  o.image_limits.max_pixels = a.max_pixels;
  o.pipeline.embedding.batch_across_calls = !a.no_batching;
  o.pipeline.embedding.batch_window_us = a.batch_window_us;
  o.identify.top_k = 10;
  // SIGINT and SIGTERM are taken by this thread with sigwait; every thread started from here inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Engine engine(o);
  server::Server srv(engine, a.server);
  const int port = srv.start();
  const std::string host = a.server.host.find(':') != std::string::npos ? "[" + a.server.host + "]" : a.server.host;
  std::cerr << "facekit serve: http://" << host << ":" << port << "/  (gallery " << engine.gallery().location()
            << "; models load in the background, /readyz says when they are ready)\n";
  if (const auto f = srv.admin_key_created())
    std::cerr << "facekit serve: made an admin API key for this gallery and wrote it to " << f->string()
              << " (mode 0600); the page and the API take it as x-api-key. More keys: facekit keys create\n";
  if (!a.port_file.empty()) {
    const std::string tmp = a.port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::filesystem::rename(tmp, a.port_file);
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::cerr << "facekit serve: stopping (signal " << sig << ")\n";
  srv.stop();
  return 0;
}

struct KeyArgs {
  GalleryArgs gallery;
  std::string state, name, scopes = "recognize", ref;
  double rate = 0;
  bool as_json = false;
  std::filesystem::path state_path() const {
    return state.empty() ? server::default_state_path(gallery.resolved()) : std::filesystem::path(state);
  }
};

int cmd_keys_create(const KeyArgs& a) {
  server::StateStore st(a.state_path());
  const unsigned scopes = server::parse_scopes(a.scopes);
  const std::string secret = st.create_key(a.name, scopes, a.rate);
  if (a.as_json) {
    std::cout << dump_json({{"name", a.name}, {"scopes", server::scopes_to_string(scopes)}, {"rate", a.rate},
                            {"key", secret}})
              << "\n";
  } else {
    std::cout << secret << "\n";
    std::cerr << "key '" << a.name << "' (" << server::scopes_to_string(scopes)
              << "): shown once, only its hash is stored\n";
  }
  return 0;
}

int cmd_keys_list(const KeyArgs& a) {
  server::StateStore st(a.state_path());
  json out = json::array();
  for (const auto& k : st.keys()) {
    json j{{"id", k.id}, {"name", k.name}, {"prefix", k.prefix}, {"scopes", server::scopes_to_string(k.scopes)},
           {"rate", k.rate}, {"created", json_view::iso_time(k.created_at)}};
    j["revoked"] = k.revoked_at ? json(json_view::iso_time(*k.revoked_at)) : json(nullptr);
    out.push_back(j);
  }
  if (a.as_json) {
    std::cout << dump_json(out) << "\n";
    return 0;
  }
  for (const auto& k : out)
    std::cout << k["id"].get<std::int64_t>() << "  " << k["name"].get<std::string>() << "  "
              << k["prefix"].get<std::string>() << "...  " << k["scopes"].get<std::string>()
              << (k["rate"].get<double>() > 0 ? "  rate " + std::to_string(k["rate"].get<double>()) + "/s" : "")
              << "  created " << k["created"].get<std::string>()
              << (k["revoked"].is_null() ? "" : "  REVOKED " + k["revoked"].get<std::string>()) << "\n";
  return 0;
}

int cmd_keys_revoke(const KeyArgs& a) {
  server::StateStore st(a.state_path());
  const auto k = st.revoke_key(a.ref);
  std::cerr << "revoked key " << k.id << " '" << k.name << "'\n";
  return 0;
}

}  // namespace

void add_serve_commands(CLI::App& app, Common& c, Commands& out) {
  auto sa = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "the HTTP service (CompreFace- and DeepStack-compatible API) and web page");
  add_gallery_option(serve, sa->gallery);
  auto& so = sa->server;
  serve->add_option("--host", so.host, "address to listen on")->capture_default_str();
  serve->add_option("--port", so.port, "port (0: any free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  serve->add_option("--port-file", sa->port_file, "write the port to this file once listening");
  serve->add_option("--state", so.state, "keys, declared subjects and thumbnails (default GALLERY.server.db)");
  serve->add_option("--admin-key-file", so.admin_key_file, "where a first start writes its admin key (default GALLERY.admin-key)");
  serve->add_option("--web-dir", so.web_dir, "the page's files (default the installed share/facekit/web)");
  serve->add_option("--max-body", so.max_body_bytes, "largest request body, bytes")
      ->check(CLI::Range(std::size_t(1024), std::size_t(1) << 31))->capture_default_str();
  serve->add_option("--max-pixels", sa->max_pixels, "largest image, pixels")
      ->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 30))->capture_default_str();
  serve->add_option("--max-faces", so.max_faces, "faces per image (the best-scoring kept)")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  serve->add_option("--workers", so.workers, "requests detecting faces at once (0: one per hardware thread)")
      ->check(CLI::Range(0, 256))->capture_default_str();
  serve->add_option("--queue", so.queue, "requests waiting for a worker before 503")->check(CLI::Range(0, 100000))->capture_default_str();
  serve->add_option("--queue-timeout-ms", so.queue_timeout_ms, "longest wait for a worker before 503")
      ->check(CLI::Range(1, 600000))->capture_default_str();
  serve->add_option("--http-threads", so.http_threads, "connections served at once")->check(CLI::Range(4, 4096))->capture_default_str();
  serve->add_option("--read-timeout-s", so.read_timeout_s, "cut off a client slower than this")
      ->check(CLI::Range(1, 3600))->capture_default_str();
  serve->add_option("--rate-limit", so.rate_limit, "requests/s per key without its own rate (0: none)")
      ->check(finite_range(0, 1e6))->capture_default_str();
  serve->add_flag("--public-metrics", so.public_metrics, "serve /metrics without a key");
  serve->add_option("--sync-interval-ms", so.sync_interval_ms,
                    "look for other servers' changes at least this often (notified ones arrive at once)")
      ->check(CLI::Range(10, 600000))->capture_default_str();
  serve->add_flag("--no-batching", sa->no_batching, "embed each request's faces alone (no dynamic batching)");
  serve->add_option("--batch-window-us", sa->batch_window_us, "how long a batch waits for more faces, microseconds")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  out.emplace_back(serve, [&c, sa] { return cmd_serve(c, *sa); });

  auto ka = std::make_shared<KeyArgs>();
  auto* keys = app.add_subcommand("keys", "API keys of facekit serve (stored as hashes in GALLERY.server.db)");
  keys->require_subcommand(1);
  auto common = [&](CLI::App* cmd) {
    add_gallery_option(cmd, ka->gallery);
    cmd->add_option("--state", ka->state, "the server's state file (default GALLERY.server.db)");
  };
  auto* create = keys->add_subcommand("create", "make a key and print it (once)");
  common(create);
  create->add_option("--name", ka->name, "a name for the key")->required()->check(non_empty());
  create->add_option("--scopes", ka->scopes, "comma-separated: admin, enroll, recognize, read")->capture_default_str();
  create->add_option("--rate", ka->rate, "requests per second (0: the server's --rate-limit)")->check(finite_range(0, 1e6));
  create->add_flag("--json", ka->as_json, "print JSON");
  out.emplace_back(create, [ka] { return cmd_keys_create(*ka); });
  auto* list = keys->add_subcommand("list", "every key (never the secret)");
  common(list);
  list->add_flag("--json", ka->as_json, "print JSON");
  out.emplace_back(list, [ka] { return cmd_keys_list(*ka); });
  auto* revoke = keys->add_subcommand("revoke", "revoke a key by name or id");
  common(revoke);
  revoke->add_option("KEY", ka->ref, "name or id")->required();
  out.emplace_back(revoke, [ka] { return cmd_keys_revoke(*ka); });
}

}  // namespace facekit::cli
