// PgConnection: one libpq connection to PostgreSQL that reconnects by itself, with the prepared
// statements its owner registered, and the small helpers the PostgreSQL backend needs (PgResult,
// PgError). Used by PostgresStore (writer and reader pool) and PostgresChangeFeed.
//
// Failures throw PgError; `connection_lost()` tells whether the connection is gone (the next
// ensure() reconnects and prepares the statements again) or the statement itself failed.
//
// Pipeline mode (libpq 14+): queue() sends statements without waiting for their results and
// sync() waits once for all of them, so a group of statements costs one round trip.
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
  int columns() const { return PQnfields(r_); }
  bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  ExecStatusType status() const { return r_ ? PQresultStatus(r_) : PGRES_FATAL_ERROR; }
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

  // Sends a prepared statement (or, with queue_sql, SQL text without parameters) in pipeline mode
  // without waiting. Throws PgError (connection_lost) if it cannot be sent; the connection is then
  // dropped.
  void queue(const std::string& name, std::initializer_list<std::string_view> params);
  void queue_sql(const char* sql);
  // Waits for the results of everything queued since the last sync(), in order, and leaves
  // pipeline mode. If a statement failed, the ones after it were skipped and PgError describes the
  // first failure (thrown after every result was read, so the connection stays usable).
  std::vector<PgResult> sync();

  PGconn* raw() const { return conn_; }

 private:
  PgResult check(PGresult* r, std::string_view what);
  PgError error_of(const PGresult* r, std::string_view what) const;
  void enter_pipeline();
  [[noreturn]] void pipeline_broken(std::string_view what);

  std::string url_;
  std::vector<Statement> statements_;
  PGconn* conn_ = nullptr;
  std::vector<std::string> queued_;  // what each statement queued in pipeline mode is (for errors)
};

// A PostgreSQL array literal of text elements ({"a","b\"c"}), for one `$n::text[]` (or
// `$n::bigint[]`) parameter, so that one statement can take a column of many rows.
class PgArray {
 public:
  void add(std::string_view value);
  void add(std::int64_t value);
  void add(std::uint64_t value);
  std::size_t size() const { return size_; }
  std::string text() const { return text_ + "}"; }

 private:
  std::string text_ = "{";
  std::size_t size_ = 0;
};

// A URL with the password (if any) replaced by "***", for logs.
std::string redact_pg_url(std::string_view url);

}  // namespace possync
