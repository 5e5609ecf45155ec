// Making files, and their names, survive a crash or power loss: fsync of a file and of the
// directory that holds its name. Used by the SQLite store's syncer and by its backups and restores.
#pragma once

#include <string>

#include "common/error.h"

namespace possync {

// fsync(2) of the file at `path`.
Result<void> sync_file(const std::string& path);

// fsync(2) of the directory holding `path` (its name, a rename to it, its removal).
Result<void> sync_parent_directory(const std::string& path);

// Syncs `from`, renames it to `to` (atomically replacing `to`), then syncs the directory: after a
// crash `to` is either the old file or all of `from`.
Result<void> durable_rename(const std::string& from, const std::string& to);

}  // namespace possync
