// Small RAII wrappers over SQLite's C API, shared by SqliteStore and the maintenance of a SQLite
// store (backup, restore, verify): a connection, a prepared statement, and SqliteError, the
// exception they throw. Errors stay exceptions inside the store layer and become Error values at
// its boundary (Store::commit, open_sqlite_store, the maintenance functions).
//
// Also what identifies a possync database: its schema version (meta.schema_version) and tables.
//
// Thread-safety: a Db and its Stmts are used by one thread at a time.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace possync {

struct SqliteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The schema version SqliteStore writes, and the oldest one it still opens (and migrates).
inline constexpr int kSqliteSchemaVersion = 3;
inline constexpr int kOldestSqliteSchemaVersion = 1;

// An open database connection: extended result codes, a 5 s busy timeout.
class Db {
 public:
  Db(const std::string& path, int flags, const char* vfs = nullptr);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const char* sql);
  sqlite3* get() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

// A prepared statement, reset after each use.
class Stmt {
 public:
  Stmt(Db& db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }

  // Steps once: true if a row is available.
  bool step();
  // Steps once and resets, also when the step fails (so the statement stays usable).
  void run();
  void reset();
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::uint64_t uint64(int col) const { return static_cast<std::uint64_t>(int64(col)); }
  std::string_view text(int col) const;

 private:
  void check(int rc);
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when a scope that stepped it ends, even by exception.
struct ResetOnExit {
  Stmt& s;
  ~ResetOnExit() { s.reset(); }
};

// Throws SqliteError, with a message an operator can act on, unless `db` has the tables of a
// possync store and a schema version (meta.schema_version) this build opens.
void check_possync_schema(Db& db);

// The first problem SQLite's own check finds in the database file (`full`: integrity_check,
// which also compares indexes with their tables; else the faster quick_check), or "" if none.
std::string sqlite_integrity_problem(Db& db, bool full);

}  // namespace possync
