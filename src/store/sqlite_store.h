// SqliteStore: the embedded default Store (`--store sqlite:PATH`).
//
// One write connection, used only by the commit pipeline's writer thread: each batch is one
// transaction in WAL mode (group commit: many changes share one fsync), whose WAL frames go to the
// file in a few large writes (store/sqlite_wal_vfs.h) rather than two per page. The writer
// fdatasyncs the WAL right after COMMIT (synchronous=NORMAL, so SQLite itself does not) and then
// runs the when_durable() callbacks; changes arriving meanwhile form the next group. Until the
// sync, log reads stop before the commit (store/durable_horizon.h) and snapshots of its
// restaurants wait for it. Reads
// use a small pool of separate connections and run concurrently with the writer (WAL snapshot
// isolation). A lock file (PATH.lock) keeps a second server process from opening the same
// database.
//
// Checkpoints (copying committed pages from the WAL into the database file) run on a thread and
// connection of their own, so a commit does not wait for them: SQLite's automatic checkpoint is
// off. The WAL is bounded: once it holds `max_wal_frames` pages the writer, before its next
// transaction, waits until they are all copied, and that transaction starts the WAL over.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "store/store.h"

namespace possync {

struct SqliteOptions {
  std::string path;
  std::size_t reader_connections = 4;
  // The writer's page cache. SQLite's default (2 MiB) is smaller than the pages a batch of
  // changes to many restaurants touches; every miss is a read of the WAL or the database file.
  int writer_cache_kib = 32768;
  // New WAL pages after which the checkpointer copies them; WAL pages at which commits wait for
  // it; how long they wait at most (a reader's old snapshot can keep pages in the WAL).
  int checkpoint_frames = 256;
  int max_wal_frames = 16000;
  std::chrono::milliseconds max_checkpoint_wait{2000};
  // Tests only: runs before each fdatasync of the WAL.
  std::function<void()> before_sync;
};

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options);

}  // namespace possync
