// Backup and restore of a SQLite store: `possync-server backup` and `restore`
// (app/store_commands.h; docs/operations.md, "Backup and restore").
//
// backup_sqlite_store copies a store while a server may be committing to it. SQLite's online
// backup copies every page in one step, inside one read transaction of the store, so the copy is
// the store as it was after one commit, with every change acknowledged before the backup began;
// the server's commits go on meanwhile (WAL readers do not block the writer). The copy is written
// under a temporary name beside the target, switched from WAL to a rollback journal (one
// self-contained file, readable from read-only media), synced, and renamed over the target, whose
// directory is synced too: after a crash the target is either as it was or the whole backup.
//
// restore_sqlite_store replaces the store at a path with a backup while no server runs on it: it
// takes the store's lock (refused while a server holds it) and checks that the backup is an intact
// possync store before it touches anything. The current store, if any, first has its WAL folded
// into its database file and is kept as PATH.before-restore (a hard link: no copy, and PATH stays
// the old store until the end); then a copy of the backup, synced, is renamed over PATH. So PATH is
// at every moment either the old store or the restored one, never a mix and never absent.
//
// Thread-safety: plain functions; each works on connections of its own.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace possync {

// What a store file holds.
struct StoreFileSummary {
  std::uint64_t restaurants = 0;
  std::uint64_t log_entries = 0;
  std::uint64_t records = 0;
  std::uint64_t bytes = 0;  // of the file
};

// Copies the store at `db_path` to `to`. `to` may exist (it is replaced) but must not be the store
// itself or a database in use.
Result<StoreFileSummary> backup_sqlite_store(const std::string& db_path, const std::string& to);

struct RestoreSummary {
  StoreFileSummary restored;
  std::string previous;  // where the replaced store was kept; empty if there was none
  std::string note;      // something the operator should know, empty if all went as planned
};

// Replaces the store at `db_path` with the backup `from` (which is left as it was).
Result<RestoreSummary> restore_sqlite_store(const std::string& from, const std::string& db_path);

}  // namespace possync
