// `facekit serve` and `facekit keys` as a user runs them: the first start makes an admin key in a 0600 file and
// says where (never the key itself), keys made, listed and revoked from the CLI take effect on the running
// server at once, and SIGTERM stops it cleanly.
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../e2e/cli_run.hpp"
#include "../test_dir.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using fk_test::slurp;

/// `facekit serve ...` in the background with stderr to a file.
pid_t spawn_serve(std::vector<std::string> args, const fs::path& err) {
  args.insert(args.begin(), "serve");
  return fk_test::spawn_cli(args, err);
}

TEST(ServeCli, FirstStartKeysAndStop) {
  const fs::path dir = fk_test::fresh_test_dir("fk_serve_cli");
  const fs::path gallery = dir / "g.db", port_file = dir / "port", err = dir / "err";
  const pid_t pid = spawn_serve({"--port", "0", "--port-file", port_file.string(), "--gallery", gallery.string()}, err);
  ASSERT_GT(pid, 0);
  for (int i = 0; i < 300 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(fs::exists(port_file)) << slurp(err);
  const int port = std::stoi(slurp(port_file));
  const fs::path key_file = dir / "g.db.admin-key";
  ASSERT_TRUE(fs::exists(key_file));
  EXPECT_EQ(fs::status(key_file).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  std::string admin = slurp(key_file);
  admin.pop_back();
  const std::string said = slurp(err);
  EXPECT_NE(said.find(key_file.string()), std::string::npos) << said;
  EXPECT_EQ(said.find(admin), std::string::npos) << "the key was printed";
  EXPECT_NE(said.find("http://127.0.0.1:" + std::to_string(port) + "/"), std::string::npos) << said;

  httplib::Client c("127.0.0.1", port);
  EXPECT_EQ(c.Get("/healthz")->status, 200);

  const std::string g = " --gallery '" + gallery.string() + "'";
  const auto made = fk_test::run_cli("keys create --name door --scopes recognize,read --json" + g);
  ASSERT_EQ(made.status, 0) << made.err;
  const std::string door = json::parse(made.out)["key"];
  EXPECT_EQ(door.rfind("fk_", 0), 0u);
  const auto list = fk_test::run_cli("keys list --json" + g);
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_EQ(list.out.find(door), std::string::npos);  // never the secret
  const json keys = json::parse(list.out);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[1]["name"], "door");
  EXPECT_EQ(keys[1]["scopes"], "recognize,read");
  EXPECT_EQ(fk_test::run_cli("keys create --name x --scopes everything" + g).status, 3);
  EXPECT_EQ(fk_test::run_cli("keys create --name door" + g).status, 3);  // a live key has that name

  c.set_default_headers({{"x-api-key", door}});
  EXPECT_EQ(c.Get("/api/v1/recognition/subjects")->status, 200);
  EXPECT_EQ(c.Post("/api/v1/recognition/subjects", R"({"subject":"A"})", "application/json")->status, 403);
  ASSERT_EQ(fk_test::run_cli("keys revoke door" + g).status, 0);
  EXPECT_EQ(c.Get("/api/v1/recognition/subjects")->status, 401);  // at once, on the running server
  EXPECT_EQ(fk_test::run_cli("keys revoke door" + g).status, 6);  // no live key of that name
  EXPECT_EQ(fk_test::run_cli("keys revoke nobody" + g).status, 6);

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int st = 0;
  for (int i = 0; i < 200 && ::waitpid(pid, &st, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(WIFEXITED(st)) << "not stopped by SIGTERM";
  EXPECT_EQ(WEXITSTATUS(st), 0);

  // A second start finds the keys and makes no new admin key.
  fs::remove(port_file);
  const pid_t again = spawn_serve({"--port", "0", "--port-file", port_file.string(), "--gallery", gallery.string()}, err);
  for (int i = 0; i < 300 && !fs::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(slurp(key_file), admin + "\n");
  EXPECT_EQ(slurp(err).find("admin API key"), std::string::npos);
  ::kill(again, SIGTERM);
  ::waitpid(again, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  // A port in use (by a socket without SO_REUSEPORT): a clear error.
  const int blocker = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(blocker, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(blocker, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(blocker, reinterpret_cast<sockaddr*>(&addr), &len);
  const int used = ntohs(addr.sin_port);
  const auto busy = fk_test::run_cli("serve --port " + std::to_string(used) + g);
  EXPECT_EQ(busy.status, 3);
  EXPECT_NE(busy.err.find("cannot listen"), std::string::npos) << busy.err;
  ::close(blocker);
  fs::remove_all(dir);
}

}  // namespace
