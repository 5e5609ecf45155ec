// `possync-server backup | restore | verify`: the maintenance of a SQLite store, run against the
// store the configuration names (--store, as for the server). docs/operations.md describes them.
//
// - backup --to FILE: a consistent copy of the store, taken while a server runs on it
//   (store/sqlite_backup.h);
// - restore --from FILE: replaces the store of a stopped server with a backup;
// - verify [--file FILE]: checks the store (its server stopped) or a backup file
//   (store/sqlite_verify.h); exit code 1 and the first difference if it is not consistent.
// PostgreSQL and memory stores are refused with a pointer to what to do instead.
#pragma once

#include "app/config.h"

namespace possync {

// Runs `command` and returns the process's exit code: 0 done (verify: consistent), 1 failed
// (verify: a difference found), 2 cannot run (wrong store, no such file, a server holds the store).
int run_store_command(const Config& config, const StoreCommand& command);

}  // namespace possync
