#include "store/pg_connection.h"
#include "common/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>

namespace possync {

std::int64_t PgResult::int64(int row, int col) const {
  const std::string_view s = text(row, col);
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    throw PgError(fmt::format("not an integer: '{}'", s), false);
  }
  return v;
}

PgConnection::PgConnection(std::string url, std::vector<Statement> statements)
    : url_(std::move(url)), statements_(std::move(statements)) {}

PgConnection::~PgConnection() {
  disconnect();
}

bool PgConnection::connected() const {
  return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

void PgConnection::disconnect() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  queued_.clear();
}

void PgConnection::ensure() {
  if (connected()) return;
  disconnect();
  // Defaults first: parameters given in the URL (expanded from `dbname`) override them. A server
  // that stops answering is noticed within seconds rather than the kernel's TCP timeouts.
  const char* keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                        "application_name",    "dbname",           nullptr};
  const char* values[] = {"5", "1", "10", "5", "3", "15000", "possync", url_.c_str(), nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    disconnect();
    throw PgError(fmt::format("cannot connect to {}: {}", redact_pg_url(url_), msg), true);
  }
  // Notices and errors the server sends outside a query (e.g. "terminating connection due to
  // administrator command" at a restart) go to the log, not to stderr.
  PQsetNoticeProcessor(
      conn_,
      [](void*, const char* message) {
        slog::debug("postgres notice", {{"notice", message}});
      },
      nullptr);
  try {
    // Every statement possync prepares reads or writes by primary key (or a short key range), so
    // one generic plan is always right. Without this, statements taking arrays (the writer's
    // unnest() batches) are planned again on every execution: the planner's generic estimate of
    // an array parameter is far above the few elements a batch has, so it keeps custom plans.
    //
    // A transaction left open by a node that vanished (power or network lost, no FIN reaching the
    // server) would keep its head locks until the server's TCP keepalive gives up, hours by
    // default, and every other node's writer waits for them: the server ends such a session once
    // it has sat idle inside a transaction for 10 s (possync's own are idle there for
    // milliseconds, between a commit's two round trips).
    check(PQexec(conn_,
                 "SET client_min_messages = warning; SET plan_cache_mode = force_generic_plan; "
                 "SET idle_in_transaction_session_timeout = '10s'"),
          "set up the session");
    for (const auto& s : statements_) {
      check(PQprepare(conn_, s.name.c_str(), s.sql.c_str(), 0, nullptr), s.name);
    }
  } catch (...) {
    disconnect();
    throw;
  }
}

PgError PgConnection::error_of(const PGresult* raw, std::string_view what) const {
  const bool lost = conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK;
  std::string msg = raw ? PQresultErrorMessage(raw) : "";
  if (msg.empty() && conn_ != nullptr) msg = PQerrorMessage(conn_);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  return PgError(fmt::format("{}: {}", what, msg), lost, state ? state : "");
}

PgResult PgConnection::check(PGresult* raw, std::string_view what) {
  PgResult result(raw);
  const auto status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  throw error_of(raw, what);
}

void PgConnection::pipeline_broken(std::string_view what) {
  std::string msg = conn_ ? PQerrorMessage(conn_) : "not connected";
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  disconnect();
  throw PgError(fmt::format("{}: {}", what, msg), true);
}

void PgConnection::enter_pipeline() {
  if (!connected()) throw PgError("not connected", true);
  if (PQpipelineStatus(conn_) == PQ_PIPELINE_OFF && PQenterPipelineMode(conn_) != 1) {
    pipeline_broken("cannot enter pipeline mode");
  }
}

void PgConnection::queue(const std::string& name, std::initializer_list<std::string_view> params) {
  enter_pipeline();
  std::vector<std::string> owned(params.begin(), params.end());
  std::vector<const char*> values;
  values.reserve(owned.size());
  for (const auto& p : owned) values.push_back(p.c_str());
  if (PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                          nullptr, nullptr, 0) != 1) {
    pipeline_broken(name);
  }
  queued_.push_back(name);
}

void PgConnection::queue_sql(const char* sql) {
  enter_pipeline();
  if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
    pipeline_broken(sql);
  }
  queued_.emplace_back(sql);
}

std::vector<PgResult> PgConnection::sync() {
  std::vector<PgResult> results;
  if (queued_.empty()) return results;
  if (PQpipelineSync(conn_) != 1) pipeline_broken("pipeline sync");
  results.reserve(queued_.size());
  std::optional<PgError> failed;
  for (const auto& what : queued_) {
    PGresult* raw = PQgetResult(conn_);
    if (raw == nullptr) pipeline_broken(what);
    const auto status = PQresultStatus(raw);
    if (status == PGRES_FATAL_ERROR && !failed) failed = error_of(raw, what);
    results.emplace_back(raw);
    // Each statement's results end with a null.
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
  }
  PgResult end(PQgetResult(conn_));
  if (end.status() != PGRES_PIPELINE_SYNC || PQexitPipelineMode(conn_) != 1) {
    pipeline_broken("pipeline sync");
  }
  queued_.clear();
  if (failed) throw *failed;
  return results;
}

PgResult PgConnection::exec(const char* sql) {
  if (!connected()) throw PgError("not connected", true);
  return check(PQexec(conn_, sql), "query failed");
}

PgResult PgConnection::run(const std::string& name,
                           std::initializer_list<std::string_view> params) {
  if (!connected()) throw PgError("not connected", true);
  // Text parameters must be NUL-terminated.
  std::vector<std::string> owned(params.begin(), params.end());
  std::vector<const char*> values;
  values.reserve(owned.size());
  for (const auto& p : owned) values.push_back(p.c_str());
  return check(PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                              nullptr, nullptr, 0),
               name);
}

void PgArray::add(std::string_view value) {
  if (size_++ > 0) text_ += ',';
  text_ += '"';
  for (const char ch : value) {
    if (ch == '"' || ch == '\\') text_ += '\\';
    text_ += ch;
  }
  text_ += '"';
}

void PgArray::add(std::int64_t value) {
  if (size_++ > 0) text_ += ',';
  text_ += std::to_string(value);
}

void PgArray::add(std::uint64_t value) {
  add(static_cast<std::int64_t>(
      std::min<std::uint64_t>(value, std::numeric_limits<std::int64_t>::max())));
}

std::string redact_pg_url(std::string_view url) {
  // scheme://user:password@host/...: hide what lies between the first ':' after the scheme and
  // the '@'.
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto at = url.find('@', scheme + 3);
  if (at == std::string_view::npos) return std::string(url);
  const auto colon = url.find(':', scheme + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return fmt::format("{}:***{}", url.substr(0, colon), url.substr(at));
}

}  // namespace possync
