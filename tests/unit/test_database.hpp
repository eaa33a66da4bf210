// A fresh, empty database for one store test, on each backend the run asks for:
// PETREL_TEST_BACKENDS="sqlite,postgresql" (default "sqlite"). PostgreSQL needs
// PETREL_PG_URL_FILE, a file holding an admin URL (tests/pg/pg-server.sh writes one); each
// test gets a database of its own, dropped afterwards.
#pragma once

#include <libpq-fe.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace petrel::testing {

inline std::vector<std::string> test_backends() {
  const char* env = std::getenv("PETREL_TEST_BACKENDS");
  std::string list = env ? env : "sqlite";
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

inline std::string pg_admin_url() {
  const char* file = std::getenv("PETREL_PG_URL_FILE");
  if (!file) throw std::runtime_error("PETREL_PG_URL_FILE is not set");
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  if (url.empty()) throw std::runtime_error(std::string("no URL in ") + file);
  return url;
}

inline void pg_admin(const std::string& sql) {
  PGconn* c = PQconnectdb(pg_admin_url().c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string e = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("admin connection failed: " + e);
  }
  PGresult* r = PQexec(c, sql.c_str());
  auto ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string e = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql + ": " + e);
}

class test_database {
 public:
  explicit test_database(std::string backend) : backend_(std::move(backend)) {
    if (backend_ == "sqlite") {
      url_ = "sqlite:" + (dir_.path / "petrel.db").string();
    } else if (backend_ == "postgresql") {
      std::random_device rd;
      name_ = "petrel_test_" + std::to_string(rd()) + std::to_string(rd());
      pg_admin("CREATE DATABASE " + name_);
      auto admin = pg_admin_url();
      url_ = admin.substr(0, admin.rfind('/') + 1) + name_;
    } else {
      throw std::runtime_error("unknown backend " + backend_);
    }
  }
  ~test_database() {
    if (!name_.empty()) {
      try {
        pg_admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
      } catch (...) {
      }
    }
  }
  const std::string& url() const { return url_; }
  const std::string& backend() const { return backend_; }

 private:
  std::string backend_;
  temp_dir dir_;
  std::string name_;
  std::string url_;
};

}  // namespace petrel::testing
