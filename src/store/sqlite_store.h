// SqliteStore: the embedded default Store (`--store sqlite:PATH`).
//
// One write connection, used only by the commit pipeline's writer thread: each batch is one
// transaction in WAL mode with synchronous=FULL, so a commit is fsynced before it returns (group
// commit: many changes share one fsync). Reads use a small pool of separate connections and run
// concurrently with the writer (WAL snapshot isolation). A lock file (PATH.lock) keeps a second
// server process from opening the same database.
//
// Checkpoints (copying committed pages from the WAL into the database file) run on a thread and
// connection of their own, so a commit does not wait for them: SQLite's automatic checkpoint is
// off. The WAL is bounded: once it holds `max_wal_frames` pages the writer waits until they are all
// copied, and its next transaction starts the WAL over from the beginning.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "store/store.h"

namespace possync {

struct SqliteOptions {
  std::string path;
  std::size_t reader_connections = 4;
  // WAL pages after which the checkpointer starts copying, and at which commits wait for it; how
  // long they wait at most (a reader's old snapshot can keep pages in the WAL).
  int checkpoint_frames = 1000;
  int max_wal_frames = 16000;
  std::chrono::milliseconds max_checkpoint_wait{2000};
};

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options);

}  // namespace possync
