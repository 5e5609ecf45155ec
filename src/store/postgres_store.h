// PostgresStore: a Store in PostgreSQL (`--store postgresql://...`), shared by the server
// processes (nodes) of a cluster.
//
// - One writer connection, used by the commit pipeline's writer thread: each batch is one
//   transaction. It first locks the head rows of the batch's restaurants (INSERT ... ON CONFLICT DO
//   NOTHING, then SELECT ... FOR UPDATE, in sorted order so two nodes never deadlock), so seqs stay
//   gapless per restaurant and change-id dedupe sees every other node's commits; the unique key
//   (restaurant, change_id) backs that up. apply_batch() does the rest, through StoreTxn. Before
//   COMMIT it sends pg_notify('possync_commits', "<first>:<last>:<restaurant>") per restaurant, so
//   every node's PostgresChangeFeed learns of the commit (docs/scaling.md). A batch costs two
//   round trips whatever its size (pipeline mode; the reads and the writes of the whole batch are
//   one statement per table each).
// - Reads use a small pool of connections (ReaderPool), each read one REPEATABLE READ
//   transaction (a consistent snapshot of one restaurant).
// - Connections that break (database restart, network) are reopened by the next call; a call that
//   fails on a broken connection returns store_unavailable (retryable).
// - Legacy devices (--auth mixed) are written on a pooled connection, each write one transaction
//   that also sends pg_notify('possync_legacy_devices', "0:0:<restaurant>").
// - The schema is created and migrated at open, in a transaction holding an advisory lock, so nodes
//   starting together are safe; versions applied are listed in `schema_migrations`.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace possync {

struct PostgresOptions {
  std::string url;  // postgres://... or postgresql://... (libpq connection URI)
  std::size_t reader_connections = 4;
};

// The LISTEN/NOTIFY channels of commit notices and of legacy-device changes.
inline constexpr const char* kCommitChannel = "possync_commits";
inline constexpr const char* kLegacyDeviceChannel = "possync_legacy_devices";

// Opens the store: connects, migrates the schema. Fails if the database cannot be reached.
Result<std::unique_ptr<Store>> open_postgres_store(const PostgresOptions& options);

// The feed of the notices of `channel` on its own connection (what Store::open_change_feed() and
// open_legacy_device_feed() return): "<first>:<last>:<restaurant>" per notice.
std::unique_ptr<ChangeFeed> open_postgres_change_feed(const std::string& url, const char* channel);

}  // namespace possync
