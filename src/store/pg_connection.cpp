#include "store/pg_connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>

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
      conn_, [](void*, const char* message) { spdlog::debug("postgres: {}", message); }, nullptr);
  try {
    check(PQexec(conn_, "SET client_min_messages = warning"), "set up the session");
    for (const auto& s : statements_) {
      check(PQprepare(conn_, s.name.c_str(), s.sql.c_str(), 0, nullptr), s.name);
    }
  } catch (...) {
    disconnect();
    throw;
  }
}

PgResult PgConnection::check(PGresult* raw, std::string_view what) {
  PgResult result(raw);
  const auto status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  const bool lost = conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK;
  std::string msg = raw ? PQresultErrorMessage(raw) : "";
  if (msg.empty() && conn_ != nullptr) msg = PQerrorMessage(conn_);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
  throw PgError(fmt::format("{}: {}", what, msg), lost, state ? state : "");
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
