#include "store/sqlite_wal_vfs.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace possync {
namespace {

constexpr const char* kVfsName = "possync-wal";
// A WAL frame's header: page number, then the database size in pages, which only a commit frame
// carries (the WAL file format, https://sqlite.org/fileformat2.html#walformat).
constexpr int kFrameHeaderBytes = 24;
// Reserved once per WAL file; a transaction of more pages is written in parts.
constexpr std::size_t kMaxGathered = 8u << 20;
// The most bytes one write of the wrapped file may carry: the unix VFS writes at most 128 KiB - 1
// bytes per call (and reports a longer write as a full disk).
constexpr std::size_t kMaxWrite = 124u << 10;

std::atomic<std::uint64_t> g_writes_gathered{0};
std::atomic<std::uint64_t> g_flushes{0};
std::atomic<std::uint64_t> g_writes_issued{0};

// The pending writes of a WAL file: bytes for [offset, offset + bytes.size()).
struct Gathered {
  std::vector<unsigned char> bytes;
  sqlite3_int64 offset = 0;
  bool commit_page_next = false;  // the last write was a commit frame's header
};

// The sqlite3_file SQLite allocates for us (szOsFile bytes): ours, then the wrapped file.
struct File {
  sqlite3_file base;  // first: SQLite sees a File* as a sqlite3_file*
  sqlite3_file* real;
  Gathered* wal;  // null for every file but a WAL
};
constexpr int kFileBytes = static_cast<int>((sizeof(File) + 15) & ~std::size_t{15});

File* as_file(sqlite3_file* f) {
  return reinterpret_cast<File*>(f);
}
const sqlite3_io_methods& real_methods(File* f) {
  return *f->real->pMethods;
}

std::uint32_t big_endian32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// Writes what a WAL file has gathered. The bytes are dropped even if the write fails: SQLite
// then fails the transaction they belong to, and never counts frames it could not write.
int flush(File* f) {
  Gathered* g = f->wal;
  if (g == nullptr || g->bytes.empty()) return SQLITE_OK;
  g_flushes.fetch_add(1, std::memory_order_relaxed);
  int rc = SQLITE_OK;
  for (std::size_t done = 0; done < g->bytes.size() && rc == SQLITE_OK; done += kMaxWrite) {
    const std::size_t n = std::min(kMaxWrite, g->bytes.size() - done);
    g_writes_issued.fetch_add(1, std::memory_order_relaxed);
    rc = real_methods(f).xWrite(f->real, g->bytes.data() + done, static_cast<int>(n),
                                g->offset + static_cast<sqlite3_int64>(done));
  }
  g->bytes.clear();
  g->commit_page_next = false;
  return rc;
}

int gather(File* f, const void* data, int amount, sqlite3_int64 offset) {
  Gathered& g = *f->wal;
  g_writes_gathered.fetch_add(1, std::memory_order_relaxed);
  const auto* p = static_cast<const unsigned char*>(data);
  const auto n = static_cast<std::size_t>(amount);
  // Taken before any flush below, which forgets it: a commit frame's page must reach the file
  // before COMMIT returns even when the buffer filled up between the frame's header and its page.
  const bool commit_page = g.commit_page_next;
  if (n > kMaxGathered) {  // never from SQLite's WAL code (it writes a page at a time)
    if (const int rc = flush(f); rc != SQLITE_OK) return rc;
    return real_methods(f).xWrite(f->real, data, amount, offset);
  }
  if (!g.bytes.empty() && (offset != g.offset + static_cast<sqlite3_int64>(g.bytes.size()) ||
                           g.bytes.size() + n > kMaxGathered)) {
    if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  }
  if (g.bytes.empty()) g.offset = offset;
  // Within the capacity reserved at open: no allocation, no copy of what is gathered.
  g.bytes.insert(g.bytes.end(), p, p + n);
  if (commit_page) return flush(f);
  g.commit_page_next = n == kFrameHeaderBytes && big_endian32(p + 4) != 0;
  return SQLITE_OK;
}

// --- sqlite3_io_methods: WAL writes are gathered, everything else is the wrapped file's ---

int file_close(sqlite3_file* file) {
  File* f = as_file(file);
  const int flushed = flush(f);
  const int rc = real_methods(f).xClose(f->real);
  delete f->wal;
  f->wal = nullptr;
  return flushed != SQLITE_OK ? flushed : rc;
}
int file_read(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  File* f = as_file(file);
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xRead(f->real, out, amount, offset);
}
int file_write(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  File* f = as_file(file);
  if (f->wal != nullptr) return gather(f, data, amount, offset);
  return real_methods(f).xWrite(f->real, data, amount, offset);
}
int file_truncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = as_file(file);
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xTruncate(f->real, size);
}
int file_sync(sqlite3_file* file, int flags) {
  File* f = as_file(file);
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xSync(f->real, flags);
}
int file_size(sqlite3_file* file, sqlite3_int64* size) {
  File* f = as_file(file);
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xFileSize(f->real, size);
}
int file_lock(sqlite3_file* file, int level) {
  File* f = as_file(file);
  return real_methods(f).xLock(f->real, level);
}
int file_unlock(sqlite3_file* file, int level) {
  File* f = as_file(file);
  return real_methods(f).xUnlock(f->real, level);
}
int file_check_reserved_lock(sqlite3_file* file, int* out) {
  File* f = as_file(file);
  return real_methods(f).xCheckReservedLock(f->real, out);
}
int file_control(sqlite3_file* file, int op, void* arg) {
  File* f = as_file(file);
  if (const int rc = flush(f); rc != SQLITE_OK) return rc;
  return real_methods(f).xFileControl(f->real, op, arg);
}
int file_sector_size(sqlite3_file* file) {
  File* f = as_file(file);
  return real_methods(f).xSectorSize(f->real);
}
int file_device_characteristics(sqlite3_file* file) {
  File* f = as_file(file);
  return real_methods(f).xDeviceCharacteristics(f->real);
}
int file_shm_map(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  File* f = as_file(file);
  return real_methods(f).xShmMap(f->real, region, size, extend, out);
}
int file_shm_lock(sqlite3_file* file, int offset, int n, int flags) {
  File* f = as_file(file);
  return real_methods(f).xShmLock(f->real, offset, n, flags);
}
void file_shm_barrier(sqlite3_file* file) {
  File* f = as_file(file);
  real_methods(f).xShmBarrier(f->real);
}
int file_shm_unmap(sqlite3_file* file, int delete_flag) {
  File* f = as_file(file);
  return real_methods(f).xShmUnmap(f->real, delete_flag);
}
int file_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  File* f = as_file(file);
  return real_methods(f).xFetch(f->real, offset, amount, out);
}
int file_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
  File* f = as_file(file);
  return real_methods(f).xUnfetch(f->real, offset, page);
}

const sqlite3_io_methods kMethods = {
    3,
    file_close,
    file_read,
    file_write,
    file_truncate,
    file_sync,
    file_size,
    file_lock,
    file_unlock,
    file_check_reserved_lock,
    file_control,
    file_sector_size,
    file_device_characteristics,
    file_shm_map,
    file_shm_lock,
    file_shm_barrier,
    file_shm_unmap,
    file_fetch,
    file_unfetch,
};

// --- sqlite3_vfs: opening wraps the file; the rest is the default VFS's ---

sqlite3_vfs* real_vfs(sqlite3_vfs* vfs) {
  return static_cast<sqlite3_vfs*>(vfs->pAppData);
}

int vfs_open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  File* f = as_file(file);
  f->base.pMethods = nullptr;  // SQLite calls no method of a file that failed to open
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kFileBytes);
  f->wal = nullptr;
  sqlite3_vfs* real = real_vfs(vfs);
  int rc = real->xOpen(real, name, f->real, flags, out_flags);
  if (rc == SQLITE_OK && f->real->pMethods->iVersion < 3) rc = SQLITE_CANTOPEN;  // no WAL support
  if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) != 0) {
    try {
      f->wal = new Gathered;
      f->wal->bytes.reserve(kMaxGathered);
    } catch (const std::bad_alloc&) {
      rc = SQLITE_NOMEM;
    }
  }
  if (rc != SQLITE_OK) {
    if (f->real->pMethods != nullptr) f->real->pMethods->xClose(f->real);
    delete f->wal;
    f->wal = nullptr;
    return rc;
  }
  f->base.pMethods = &kMethods;
  return SQLITE_OK;
}
int vfs_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return real_vfs(vfs)->xDelete(real_vfs(vfs), name, sync_dir);
}
int vfs_access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return real_vfs(vfs)->xAccess(real_vfs(vfs), name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs* vfs, const char* name, int size, char* out) {
  return real_vfs(vfs)->xFullPathname(real_vfs(vfs), name, size, out);
}
void* vfs_dl_open(sqlite3_vfs* vfs, const char* name) {
  return real_vfs(vfs)->xDlOpen(real_vfs(vfs), name);
}
void vfs_dl_error(sqlite3_vfs* vfs, int size, char* out) {
  real_vfs(vfs)->xDlError(real_vfs(vfs), size, out);
}
void (*vfs_dl_sym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return real_vfs(vfs)->xDlSym(real_vfs(vfs), handle, symbol);
}
void vfs_dl_close(sqlite3_vfs* vfs, void* handle) {
  real_vfs(vfs)->xDlClose(real_vfs(vfs), handle);
}
int vfs_randomness(sqlite3_vfs* vfs, int size, char* out) {
  return real_vfs(vfs)->xRandomness(real_vfs(vfs), size, out);
}
int vfs_sleep(sqlite3_vfs* vfs, int microseconds) {
  return real_vfs(vfs)->xSleep(real_vfs(vfs), microseconds);
}
int vfs_current_time(sqlite3_vfs* vfs, double* out) {
  return real_vfs(vfs)->xCurrentTime(real_vfs(vfs), out);
}
int vfs_get_last_error(sqlite3_vfs* vfs, int size, char* out) {
  return real_vfs(vfs)->xGetLastError(real_vfs(vfs), size, out);
}
int vfs_current_time_int64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return real_vfs(vfs)->xCurrentTimeInt64(real_vfs(vfs), out);
}
int vfs_set_system_call(sqlite3_vfs* vfs, const char* name, sqlite3_syscall_ptr call) {
  return real_vfs(vfs)->xSetSystemCall(real_vfs(vfs), name, call);
}
sqlite3_syscall_ptr vfs_get_system_call(sqlite3_vfs* vfs, const char* name) {
  return real_vfs(vfs)->xGetSystemCall(real_vfs(vfs), name);
}
const char* vfs_next_system_call(sqlite3_vfs* vfs, const char* name) {
  return real_vfs(vfs)->xNextSystemCall(real_vfs(vfs), name);
}

const char* register_vfs() {
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr || real->iVersion < 2) {
    throw std::runtime_error("SQLite has no default VFS to wrap");
  }
  static sqlite3_vfs vfs{};
  vfs.iVersion = std::min(real->iVersion, 3);
  vfs.szOsFile = kFileBytes + real->szOsFile;
  vfs.mxPathname = real->mxPathname;
  vfs.zName = kVfsName;
  vfs.pAppData = real;
  vfs.xOpen = vfs_open;
  vfs.xDelete = vfs_delete;
  vfs.xAccess = vfs_access;
  vfs.xFullPathname = vfs_full_pathname;
  vfs.xDlOpen = vfs_dl_open;
  vfs.xDlError = vfs_dl_error;
  vfs.xDlSym = vfs_dl_sym;
  vfs.xDlClose = vfs_dl_close;
  vfs.xRandomness = vfs_randomness;
  vfs.xSleep = vfs_sleep;
  vfs.xCurrentTime = vfs_current_time;
  vfs.xGetLastError = vfs_get_last_error;
  vfs.xCurrentTimeInt64 = vfs_current_time_int64;
  if (vfs.iVersion >= 3) {
    vfs.xSetSystemCall = vfs_set_system_call;
    vfs.xGetSystemCall = vfs_get_system_call;
    vfs.xNextSystemCall = vfs_next_system_call;
  }
  if (const int rc = sqlite3_vfs_register(&vfs, 0); rc != SQLITE_OK) {
    throw std::runtime_error(
        fmt::format("cannot register the SQLite VFS {}: {}", kVfsName, sqlite3_errstr(rc)));
  }
  return kVfsName;
}

}  // namespace

const char* sqlite_wal_vfs_name() {
  static const char* const name = register_vfs();
  return name;
}

SqliteWalVfsStats sqlite_wal_vfs_stats() {
  return {g_writes_gathered.load(std::memory_order_relaxed),
          g_flushes.load(std::memory_order_relaxed),
          g_writes_issued.load(std::memory_order_relaxed)};
}

}  // namespace possync
