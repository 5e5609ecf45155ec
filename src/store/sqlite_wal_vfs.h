// A SQLite VFS that hands each transaction's WAL frames to the kernel in one write.
//
// SQLite appends a commit to the WAL one frame at a time, with two write() calls per page (the
// 24-byte frame header, then the page); on this kind of machine the system calls, not the bytes,
// are what a commit costs. This VFS wraps the platform's default one: files other than a WAL pass
// through untouched, and a WAL file gathers consecutive writes in a buffer that goes to the file
// (in writes of up to 124 KiB, the most the unix VFS takes at once) when
//   - the page of a commit frame (one whose header carries the database size) has been added, so
//     a transaction is in the file before sqlite3WalFrames() publishes it in the WAL index and
//     COMMIT returns, and a failed write fails the COMMIT the usual way;
//   - a write does not continue the buffer, or the buffer reaches its limit;
//   - SQLite reads, syncs, truncates, sizes, or closes the file, or passes it a file control.
// Uncommitted frames are invisible to readers and to recovery (both stop at the last commit
// frame), so holding them back changes nothing a reader or a crash can observe.
//
// Only the connection that writes needs it; readers of the same database use the default VFS.
// Thread-safety: registration is; each file is used by its connection's thread, like any VFS file.
#pragma once

#include <cstdint>

namespace possync {

// Registers the VFS (once; later calls return the same name) and returns the name to give
// sqlite3_open_v2(). Throws std::runtime_error if SQLite cannot register it.
const char* sqlite_wal_vfs_name();

// Counters of the WAL files opened through the VFS, for tests and diagnostics.
struct SqliteWalVfsStats {
  std::uint64_t writes_gathered = 0;  // writes SQLite made to a WAL file
  std::uint64_t flushes = 0;          // times gathered writes went to the file
  std::uint64_t writes_issued = 0;    // writes of the wrapped file made for them
};
SqliteWalVfsStats sqlite_wal_vfs_stats();

}  // namespace possync
