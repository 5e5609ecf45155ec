// SqliteStore: the embedded default Store (`--store sqlite:PATH`).
//
// One write connection, used only by the commit pipeline's writer thread: each batch is one
// transaction in WAL mode with synchronous=FULL, so a commit is fsynced before it returns (group
// commit: many changes share one fsync). Reads use a small pool of separate connections and run
// concurrently with the writer (WAL snapshot isolation). A lock file (PATH.lock) keeps a second
// server process from opening the same database.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace possync {

struct SqliteOptions {
  std::string path;
  std::size_t reader_connections = 4;
};

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options);

}  // namespace possync
