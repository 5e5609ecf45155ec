#include "app/store_commands.h"

#include <fmt/format.h>
#include <cstdio>
#include <filesystem>

#include "store/open_store.h"
#include "store/sqlite_backup.h"
#include "store/sqlite_store_lock.h"
#include "store/sqlite_verify.h"

namespace possync {
namespace {

const char* command_name(StoreCommand::Kind kind) {
  switch (kind) {
    case StoreCommand::Kind::backup:
      return "backup";
    case StoreCommand::Kind::restore:
      return "restore";
    case StoreCommand::Kind::verify:
      return "verify";
  }
  return "";
}

void print_error(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
}

std::string describe(const StoreFileSummary& s) {
  return fmt::format("{} restaurants, {} log entries, {} records, {} bytes", s.restaurants,
                     s.log_entries, s.records, s.bytes);
}

int backup(const std::string& db_path, const std::string& to) {
  auto done = backup_sqlite_store(db_path, to);
  if (!done) {
    print_error(done.error().message);
    return 1;
  }
  std::printf("backup of sqlite:%s written to %s: %s\n", db_path.c_str(), to.c_str(),
              describe(*done).c_str());
  return 0;
}

int restore(const std::string& from, const std::string& db_path) {
  auto done = restore_sqlite_store(from, db_path);
  if (!done) {
    print_error(done.error().message);
    return 1;
  }
  std::printf("restored sqlite:%s from %s: %s\n", db_path.c_str(), from.c_str(),
              describe(done->restored).c_str());
  if (!done->previous.empty()) {
    std::printf("the replaced store is kept as %s (delete it once the restored store serves)\n",
                done->previous.c_str());
  }
  if (!done->note.empty()) std::printf("note: %s\n", done->note.c_str());
  return 0;
}

int verify(const std::string& path, bool is_store) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    print_error(fmt::format("no {} at {}", is_store ? "store" : "file", path));
    return 2;
  }
  // The store itself only while no server runs on it; a backup is nobody's.
  std::optional<SqliteStoreLock> lock;
  if (is_store) {
    auto taken = SqliteStoreLock::acquire(path);
    if (!taken) {
      print_error(fmt::format(
          "{}; verify needs the server stopped (or verify a fresh backup: `possync-server backup "
          "--to FILE`, then `possync-server verify --file FILE`)",
          taken.error().message));
      return 2;
    }
    lock.emplace(std::move(*taken));
  }
  auto result = verify_sqlite_store(path);
  if (!result) {
    print_error(result.error().message);
    return 2;
  }
  const VerifySummary& s = result->summary;
  const std::string counts = fmt::format(
      "{} restaurants ({} with their records replayed from seq 1, {} with pruned history), "
      "{} log entries, {} change ids, {} records",
      s.restaurants, s.replayed, s.restaurants - s.replayed, s.log_entries, s.change_ids,
      s.records);
  if (result->difference) {
    std::printf("checked so far: %s\n", counts.c_str());
    print_error(fmt::format("verify of {} FAILED: {}", path, *result->difference));
    return 1;
  }
  std::printf("verified %s: %s: consistent\n", path.c_str(), counts.c_str());
  return 0;
}

}  // namespace

int run_store_command(const Config& config, const StoreCommand& command) {
  const auto db_path = sqlite_store_path(config.store);
  if (!db_path) {
    if (is_postgres_store_uri(config.store)) {
      print_error(fmt::format(
          "possync-server {} works on SQLite stores; for a PostgreSQL store use PostgreSQL's own "
          "tools (pg_dump / pg_restore, pg_basebackup): see docs/operations.md, \"Backup and "
          "restore\"",
          command_name(command.kind)));
    } else {
      print_error(
          fmt::format("possync-server {} works on SQLite stores (--store sqlite:PATH), "
                      "not on '{}'",
                      command_name(command.kind), config.store));
    }
    return 2;
  }
  switch (command.kind) {
    case StoreCommand::Kind::backup:
      return backup(*db_path, command.file);
    case StoreCommand::Kind::restore:
      return restore(command.file, *db_path);
    case StoreCommand::Kind::verify:
      return command.file.empty() ? verify(*db_path, true) : verify(command.file, false);
  }
  return 2;
}

}  // namespace possync
