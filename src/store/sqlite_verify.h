// Verification of a SQLite store: `possync-server verify` (app/store_commands.h;
// docs/operations.md, "Verifying a store").
//
// Checks, in one read transaction (one consistent state of the file):
// - SQLite's integrity_check of the file, and that it is a possync store;
// - every log, change id and record row belongs to a restaurant of the restaurants table;
// - per restaurant: the log's seqs run from the retention point (pruned_seq + 1) to the head
//   (head_seq) without a gap; every entry can be read; every entry's change id is indexed, at its
//   own seq (so no change id is logged twice); every indexed change id (aliases of twins included)
//   points into the retained log;
// - per restaurant whose log was never pruned: the records equal a replay of the whole log through
//   apply_batch (the rules every store applies, store/apply.h) in a MemoryStore, each entry at
//   its commit time: same records, same bodies, same versions. A pruned restaurant's records can
//   only be checked one by one (readable, version within the log, id as keyed).
// Stops at the first difference, which names the restaurant and what differs.
//
// Thread-safety: a plain function on a connection of its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/error.h"

namespace possync {

struct VerifySummary {
  std::uint64_t restaurants = 0;
  std::uint64_t replayed = 0;  // restaurants whose records were compared with a replay of the log
  std::uint64_t log_entries = 0;
  std::uint64_t change_ids = 0;
  std::uint64_t records = 0;
};

struct VerifyResult {
  VerifySummary summary;                  // what was checked (up to the difference, if any)
  std::optional<std::string> difference;  // the first one found
};

// Verifies the SQLite store at `path`, opened read-only. The caller makes sure no server writes
// to it (SqliteStoreLock), or that it is a backup. Error: the file cannot be opened or is no
// possync store.
Result<VerifyResult> verify_sqlite_store(const std::string& path);

}  // namespace possync
