#include "store/sqlite_backup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "store/durable_file.h"
#include "store/sqlite_db.h"
#include "store/sqlite_store_lock.h"

namespace possync {
namespace {

namespace fs = std::filesystem;

Error failure(std::string message) {
  return Error{errc::kStoreUnavailable, std::move(message)};
}

// Whether `a` and `b` name the same file, or would once created.
bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::equivalent(a, b, ec)) return true;
  const auto ca = fs::weakly_canonical(a, ec);
  if (ec) return false;
  const auto cb = fs::weakly_canonical(b, ec);
  return !ec && ca == cb;
}

void remove_quietly(const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
}

StoreFileSummary summarize(const std::string& path) {
  Db db(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
  Stmt counts(db,
              "SELECT (SELECT count(*) FROM restaurants), (SELECT count(*) FROM log), "
              "(SELECT count(*) FROM records)");
  ResetOnExit guard{counts};
  StoreFileSummary summary;
  if (counts.step()) {
    summary.restaurants = counts.uint64(0);
    summary.log_entries = counts.uint64(1);
    summary.records = counts.uint64(2);
  }
  std::error_code ec;
  summary.bytes = fs::file_size(path, ec);
  return summary;
}

// Creates `to` (mode 0600, replacing a leftover of an earlier attempt) and copies `source` into
// it in one step of SQLite's online backup: one read transaction of the source, so one
// consistent state of it. The copy is then switched to a rollback journal, so that it is one
// self-contained file (a WAL-mode file needs its -wal and -shm beside it to be read). Not synced.
void copy_database(Db& source, const std::string& to) {
  remove_quietly(to);
  const int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw SqliteError(fmt::format("cannot create {}: {}", to, std::strerror(errno)));
  ::close(fd);
  Db dest(to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
  // A source busy for a moment (a WAL being recovered by another connection) is waited for.
  for (int attempt = 0;; ++attempt) {
    sqlite3_backup* backup = sqlite3_backup_init(dest.get(), "main", source.get(), "main");
    if (backup == nullptr) {
      throw SqliteError(fmt::format("cannot start the copy: {}", sqlite3_errmsg(dest.get())));
    }
    const int stepped = sqlite3_backup_step(backup, -1);
    const int finished = sqlite3_backup_finish(backup);
    if (stepped == SQLITE_DONE && finished == SQLITE_OK) break;
    const bool busy = stepped == SQLITE_BUSY || stepped == SQLITE_LOCKED;
    if (!busy || attempt >= 50) {
      throw SqliteError(fmt::format("the copy failed: {}",
                                    sqlite3_errstr(stepped != SQLITE_DONE ? stepped : finished)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Stmt mode(dest, "PRAGMA journal_mode=DELETE");
  ResetOnExit guard{mode};
  if (!mode.step() || mode.text(0) != "delete") {
    throw SqliteError(fmt::format("cannot make {} a self-contained file", to));
  }
}

// Gives `file` the owner and mode of `like` (a server running as a dedicated user must be able to
// open the restored store), if `like` exists.
void take_owner_and_mode(const std::string& file, const std::string& like) {
  struct stat st {};
  if (::stat(like.c_str(), &st) != 0) return;
  if (::chown(file.c_str(), st.st_uid, st.st_gid) != 0) {
    throw SqliteError(fmt::format(
        "cannot give {} the owner of {} (uid {}, gid {}): {}; run restore as root or as the "
        "user the server runs as",
        file, like, st.st_uid, st.st_gid, std::strerror(errno)));
  }
  if (::chmod(file.c_str(), st.st_mode & 07777) != 0) {
    throw SqliteError(fmt::format("cannot chmod {}: {}", file, std::strerror(errno)));
  }
}

// Makes the database file at `db_path` the whole store (its WAL folded in, or moved aside with it
// when the store is too damaged for that) and keeps it as `previous`. Returns a note for the
// operator, empty if all went as planned.
std::string keep_previous(const std::string& db_path, const std::string& previous) {
  for (const char* suffix : {"-wal", "-shm", "-journal", ""}) remove_quietly(previous + suffix);
  std::string note;
  try {
    Db old(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
    // Checkpoints every page of the WAL into the file and deletes the WAL.
    old.exec("PRAGMA journal_mode=DELETE;");
  } catch (const SqliteError& e) {
    std::error_code ec;
    if (fs::exists(db_path + "-wal", ec)) {
      fs::rename(db_path + "-wal", previous + "-wal", ec);
      if (ec) {
        throw SqliteError(fmt::format("cannot fold in or move aside {}-wal: {}; {}", db_path,
                                      e.what(), ec.message()));
      }
    }
    note = fmt::format("the replaced store could not be opened ({}); its files were kept as is",
                       e.what());
  }
  if (::link(db_path.c_str(), previous.c_str()) != 0) {
    throw SqliteError(
        fmt::format("cannot keep the current store as {}: {}", previous, std::strerror(errno)));
  }
  if (auto synced = sync_parent_directory(previous); !synced) {
    throw SqliteError(synced.error().message);
  }
  return note;
}

}  // namespace

Result<StoreFileSummary> backup_sqlite_store(const std::string& db_path, const std::string& to) {
  std::error_code ec;
  if (!fs::is_regular_file(db_path, ec)) return failure(fmt::format("no store at {}", db_path));
  if (same_path(db_path, to)) {
    return failure(fmt::format("{} is the store itself; back up to another file", to));
  }
  if (fs::exists(to + "-wal", ec)) {
    return failure(
        fmt::format("{}-wal exists: {} is a database in use; choose another file", to, to));
  }
  const std::string partial = fmt::format("{}.partial-{}", to, ::getpid());
  try {
    {
      // Like a server's own readers: it reads the WAL through the shared index.
      Db source(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
      source.exec("PRAGMA query_only=1;");
      check_possync_schema(source);
      copy_database(source, partial);
    }
    StoreFileSummary summary = summarize(partial);
    if (auto renamed = durable_rename(partial, to); !renamed) {
      remove_quietly(partial);
      return renamed.error();
    }
    return summary;
  } catch (const std::exception& e) {
    remove_quietly(partial);
    remove_quietly(partial + "-journal");
    return failure(fmt::format("backup of {} failed: {}", db_path, e.what()));
  }
}

Result<RestoreSummary> restore_sqlite_store(const std::string& from, const std::string& db_path) {
  std::error_code ec;
  if (!fs::is_regular_file(from, ec)) return failure(fmt::format("no backup at {}", from));
  if (same_path(from, db_path)) {
    return failure(fmt::format("{} is the store itself; restore from a backup file", from));
  }
  auto lock = SqliteStoreLock::acquire(db_path);
  if (!lock) {
    return failure(fmt::format("{}; stop the server before restoring", lock.error().message));
  }
  const std::string partial = db_path + ".restoring";
  try {
    {
      Db backup(from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
      try {
        check_possync_schema(backup);
        if (auto problem = sqlite_integrity_problem(backup, false); !problem.empty()) {
          throw SqliteError("the file is damaged: " + problem);
        }
      } catch (const SqliteError& e) {
        return failure(
            fmt::format("{} cannot be restored: {}; nothing was changed", from, e.what()));
      }
      copy_database(backup, partial);
    }
    take_owner_and_mode(partial, db_path);
    RestoreSummary out;
    out.restored = summarize(partial);
    if (fs::exists(db_path, ec)) {
      out.previous = db_path + ".before-restore";
      out.note = keep_previous(db_path, out.previous);
    }
    if (auto renamed = durable_rename(partial, db_path); !renamed) {
      remove_quietly(partial);
      return renamed.error();
    }
    // A shared-memory index of the replaced store is rebuilt anyway; it goes too.
    remove_quietly(db_path + "-shm");
    return out;
  } catch (const std::exception& e) {
    remove_quietly(partial);
    remove_quietly(partial + "-journal");
    return failure(fmt::format("restore of {} from {} failed: {}", db_path, from, e.what()));
  }
}

}  // namespace possync
