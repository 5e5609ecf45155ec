// SqliteStoreLock: what keeps two processes off one SQLite store. An exclusive flock(2) on
// PATH.lock, taken without waiting: a running server holds it for as long as its store is open
// (open_sqlite_store), and `possync-server restore` and `verify` hold it while they work on the
// store, so neither runs under a server nor lets one start meanwhile. The kernel releases it when
// the holder closes it or exits, kill -9 included.
//
// Thread-safety: a plain value; acquire() may be called from any thread.
#pragma once

#include <string>

#include "common/error.h"

namespace possync {

class SqliteStoreLock {
 public:
  // Creates the lock file (and the store's directory) if missing. `store_unavailable` if another
  // process holds the lock or the file cannot be opened.
  static Result<SqliteStoreLock> acquire(const std::string& db_path);

  SqliteStoreLock(SqliteStoreLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  SqliteStoreLock& operator=(SqliteStoreLock&& other) noexcept;
  SqliteStoreLock(const SqliteStoreLock&) = delete;
  SqliteStoreLock& operator=(const SqliteStoreLock&) = delete;
  ~SqliteStoreLock();

 private:
  explicit SqliteStoreLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace possync
