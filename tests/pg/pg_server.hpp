#pragma once
// The throw-away PostgreSQL server of the tests (tests/pg/pg_cluster.sh), and a fresh database per test.
//
// Under ctest, the fixture test pg.start starts one server for every test and $FACEKIT_TEST_PG_DIR names its
// folder; a test binary run by hand starts its own and stops it at exit. Tests skip, saying why, only when no
// server can start (PostgreSQL not installed).
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#ifndef FACEKIT_PG_CLUSTER
#error "FACEKIT_PG_CLUSTER must name tests/pg/pg_cluster.sh"
#endif

namespace fk_test {

class PgServer {
 public:
  static PgServer& instance() {
    static PgServer s;
    return s;
  }
  /// "" when no server could start; why() then says why.
  const std::string& url() const { return url_; }
  const std::string& why() const { return why_; }
  const std::string& dir() const { return dir_; }

  /// A new, empty database on the server; its URL.
  std::string fresh_database(const std::string& hint) {
    static std::atomic<int> n{0};
    std::string name = "t_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_";
    for (char c : hint) name += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    name = name.substr(0, 60);
    sql("postgres", "CREATE DATABASE " + name);
    return database_url(name);
  }
  std::string database_url(const std::string& db) const {
    std::string u = url_;
    const auto at = u.find("/postgres?");
    return u.replace(at, 10, "/" + db + "?");
  }
  /// Runs SQL on a database of the server; returns the first value of the result ("" when none).
  std::string sql(const std::string& db, const std::string& statement) {
    PGconn* c = PQconnectdb(database_url(db).c_str());
    std::string out;
    if (PQstatus(c) != CONNECTION_OK) {
      ADD_FAILURE() << "cannot connect: " << PQerrorMessage(c);
    } else {
      PGresult* r = PQexec(c, statement.c_str());
      const auto st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) ADD_FAILURE() << statement << ": " << PQresultErrorMessage(r);
      if (st == PGRES_TUPLES_OK && PQntuples(r) > 0) out = PQgetvalue(r, 0, 0);
      PQclear(r);
    }
    PQfinish(c);
    return out;
  }

 private:
  PgServer() {
    if (const char* d = std::getenv("FACEKIT_TEST_PG_DIR"); d && *d) {
      dir_ = d;
      std::ifstream in(dir_ + "/url");
      std::getline(in, url_);
      if (url_.empty()) why_ = "no PostgreSQL test server in " + dir_ + " (pg.start could not start one; see its output)";
      return;
    }
    dir_ = (std::filesystem::temp_directory_path() / ("facekit-pg-" + std::to_string(::getpid()))).string();
    const std::string cmd = std::string(FACEKIT_PG_CLUSTER) + " start " + dir_ + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (p && std::fgets(buf, sizeof buf, p)) out += buf;
    const int rc = p ? ::pclose(p) : -1;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    if (rc == 0 && out.rfind("postgresql://", 0) == 0) {
      url_ = out;
      owned_ = true;
    } else {
      why_ = "no PostgreSQL test server: " + out;
    }
  }
  ~PgServer() {
    if (owned_) std::system((std::string(FACEKIT_PG_CLUSTER) + " stop " + dir_ + " >/dev/null 2>&1").c_str());
  }
  std::string url_, why_, dir_;
  bool owned_ = false;
};

}  // namespace fk_test

#define FK_REQUIRE_PG()                                                               \
  do {                                                                                \
    if (fk_test::PgServer::instance().url().empty())                                  \
      GTEST_SKIP() << fk_test::PgServer::instance().why();                            \
  } while (0)
