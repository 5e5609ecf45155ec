#include "store/sqlite_db.h"

#include <fmt/format.h>

namespace possync {

Db::Db(const std::string& path, int flags, const char* vfs) {
  if (sqlite3_open_v2(path.c_str(), &db_, flags, vfs) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw SqliteError(fmt::format("cannot open {}: {}", path, msg));
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 5000);
}

Db::~Db() {
  sqlite3_close_v2(db_);
}

void Db::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw SqliteError(msg);
  }
}

Stmt::Stmt(Db& db, const char* sql) : db_(db.get()) {
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
    throw SqliteError(fmt::format("prepare failed: {}: {}", sqlite3_errmsg(db_), sql));
  }
}

Stmt::~Stmt() {
  sqlite3_finalize(stmt_);
}

Stmt& Stmt::bind(int i, std::string_view v) {
  check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  return *this;
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  check(sqlite3_bind_int64(stmt_, i, v));
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw SqliteError(sqlite3_errmsg(db_));
}

void Stmt::run() {
  try {
    step();
  } catch (...) {
    reset();
    throw;
  }
  reset();
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string_view Stmt::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string_view(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string_view();
}

void Stmt::check(int rc) {
  if (rc != SQLITE_OK) throw SqliteError(sqlite3_errmsg(db_));
}

void check_possync_schema(Db& db) {
  Stmt tables(db,
              "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
              "('meta', 'restaurants', 'log', 'change_ids', 'records')");
  ResetOnExit tables_guard{tables};
  if (!tables.step() || tables.int64(0) != 5) {
    throw SqliteError("not a possync store (its tables are missing)");
  }
  Stmt version(db, "SELECT value FROM meta WHERE key = 'schema_version'");
  ResetOnExit version_guard{version};
  if (!version.step()) throw SqliteError("not a possync store (no schema version)");
  const std::string found(version.text(0));
  const bool known = found.size() == 1 && found[0] >= '0' + kOldestSqliteSchemaVersion &&
                     found[0] <= '0' + kSqliteSchemaVersion;
  if (!known) {
    throw SqliteError(
        fmt::format("the store's schema version {} is not one this possync-server opens ({}..{})",
                    found, kOldestSqliteSchemaVersion, kSqliteSchemaVersion));
  }
}

std::string sqlite_integrity_problem(Db& db, bool full) {
  Stmt check(db, full ? "PRAGMA integrity_check" : "PRAGMA quick_check");
  ResetOnExit guard{check};
  if (!check.step()) return "the integrity check returned nothing";
  if (check.text(0) == "ok") return "";
  return std::string(check.text(0));
}

}  // namespace possync
