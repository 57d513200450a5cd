#pragma once
// facekit serve: the Engine behind an HTTP API (CompreFace- and DeepStack-compatible routes, API keys with
// scopes, explicit limits, Prometheus metrics) and the web page. Routes and shapes: docs/server.md.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facekit/engine.hpp"
#include "server/state.hpp"

namespace facekit::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  ///< 0: any free port (start() returns it)
  /// Keys, declared subjects, thumbnails; "" : GALLERY.server.db beside the gallery (for a database gallery,
  /// in the user's data folder, named after the URL).
  std::filesystem::path state;
  /// Where the first start writes the admin key it creates; "": GALLERY.admin-key.
  std::filesystem::path admin_key_file;
  /// The page's files; "": share_dir()/web.
  std::filesystem::path web_dir;
  std::size_t max_body_bytes = 10u << 20;  ///< a larger body: 413
  int max_faces = 20;                      ///< faces per image (the best-scoring kept)
  int workers = 0;                         ///< requests doing model work at once; 0: one per hardware thread
  int queue = 256;                         ///< requests waiting for a worker; one more: 503
  int queue_timeout_ms = 10000;            ///< the longest wait for a worker; then 503
  int http_threads = 256;                  ///< connections served at once
  int read_timeout_s = 10;                 ///< a client sending slower is cut off
  double rate_limit = 0;                   ///< requests/s per key for keys without their own rate; 0: none
  bool public_metrics = false;             ///< /metrics without a key
  /// The longest a change by another server (or process) may take to reach this one when its notification
  /// is lost: the index looks at the gallery at least this often. Notified changes arrive in milliseconds.
  int sync_interval_ms = 1000;
};

std::filesystem::path default_state_path(const std::filesystem::path& gallery);
std::filesystem::path default_admin_key_path(const std::filesystem::path& gallery);

/// One route: its method and OpenAPI path, and the scope it needs (0: public).
struct RouteInfo {
  std::string method, path;
  unsigned scope = 0;
};

class Server {
 public:
  /// The engine must outlive the server. Opens the state file; makes the first admin key when there is none.
  Server(Engine& engine, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and serves on background threads; returns the bound port. Models load and the index is built in
  /// the background (/readyz answers 503 until then). Throws Error(kInvalidArgument) when it cannot bind.
  int start();
  /// Stops accepting, finishes the requests in flight, returns.
  void stop();
  bool ready() const;
  /// The file the admin key was written to, when this start created it.
  std::optional<std::filesystem::path> admin_key_created() const;
  StateStore& state();
  static std::vector<RouteInfo> routes();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace facekit::server
