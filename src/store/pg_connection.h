// PgConnection: one libpq connection to PostgreSQL that reconnects by itself, with the prepared
// statements its owner registered, and the small helpers the PostgreSQL backend needs (PgResult,
// PgError). Used by PostgresStore (writer and reader pool) and PostgresChangeFeed.
//
// Failures throw PgError; `connection_lost()` tells whether the connection is gone (the next
// ensure() reconnects and prepares the statements again) or the statement itself failed.
//
// Thread-safety: none; one thread uses a connection at a time.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace possync {

struct PgError : std::runtime_error {
  PgError(const std::string& what, bool lost, std::string sqlstate = {})
      : std::runtime_error(what), connection_lost(lost), sqlstate(std::move(sqlstate)) {}
  bool connection_lost;
  std::string sqlstate;  // e.g. "23505" for a unique violation; empty when unknown
};

// A query result; rows and columns as text.
class PgResult {
 public:
  explicit PgResult(PGresult* r = nullptr) : r_(r) {}
  ~PgResult() { PQclear(r_); }
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&& o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const { return PQntuples(r_); }
  std::string_view text(int row, int col) const {
    return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
  }
  std::int64_t int64(int row, int col) const;
  std::uint64_t uint64(int row, int col) const {
    return static_cast<std::uint64_t>(int64(row, col));
  }

  // One row, with the accessor interface log_entry_from_row() expects.
  struct Row {
    const PgResult& r;
    int row;
    std::string_view text(int col) const { return r.text(row, col); }
    std::int64_t int64(int col) const { return r.int64(row, col); }
    std::uint64_t uint64(int col) const { return r.uint64(row, col); }
  };
  Row row(int i) const { return {*this, i}; }

 private:
  PGresult* r_;
};

class PgConnection {
 public:
  struct Statement {
    std::string name;
    std::string sql;
  };
  // `url`: a libpq connection URI. `statements` are prepared on every (re)connect.
  PgConnection(std::string url, std::vector<Statement> statements = {});
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Connects if there is no healthy connection. Throws PgError (connection_lost) if it cannot.
  void ensure();
  bool connected() const;
  // Drops the connection (the next ensure() opens a new one).
  void disconnect();

  // Runs SQL text without parameters (may hold several statements).
  PgResult exec(const char* sql);
  // Runs a prepared statement with text parameters.
  PgResult run(const std::string& name, std::initializer_list<std::string_view> params);

  PGconn* raw() const { return conn_; }

 private:
  PgResult check(PGresult* r, std::string_view what);

  std::string url_;
  std::vector<Statement> statements_;
  PGconn* conn_ = nullptr;
};

// A URL with the password (if any) replaced by "***", for logs.
std::string redact_pg_url(std::string_view url);

}  // namespace possync
