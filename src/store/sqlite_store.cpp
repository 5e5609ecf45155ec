#include "store/sqlite_store.h"
#include "common/log.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <fmt/format.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "common/thread_name.h"
#include "store/apply.h"
#include "store/durable_file.h"
#include "store/durable_horizon.h"
#include "store/reader_pool.h"
#include "store/sqlite_db.h"
#include "store/sqlite_store_lock.h"
#include "store/sqlite_wal_vfs.h"
#include "store/stored_rows.h"

namespace possync {
namespace {

// Schema versions (kSqliteSchemaVersion, store/sqlite_db.h): 1: first release. 2: no index
// change_ids_by_seq (pruning scans a restaurant's change ids instead of writing an index entry for
// every change). 3: legacy_devices (--auth mixed).
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS restaurants(
  id TEXT PRIMARY KEY,
  head_seq INTEGER NOT NULL,
  pruned_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log(
  restaurant TEXT NOT NULL,
  seq INTEGER NOT NULL,
  change_id TEXT NOT NULL,
  data_type TEXT NOT NULL,
  action TEXT NOT NULL,
  record_id TEXT NOT NULL,
  data TEXT NOT NULL,
  device_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  committed_at INTEGER NOT NULL,
  PRIMARY KEY(restaurant, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS change_ids(
  restaurant TEXT NOT NULL,
  change_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY(restaurant, change_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records(
  restaurant TEXT NOT NULL,
  data_type TEXT NOT NULL,
  record_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY(restaurant, data_type, record_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS legacy_devices(
  restaurant TEXT NOT NULL,
  device_id TEXT NOT NULL,
  networks TEXT NOT NULL,
  role TEXT NOT NULL,
  enrolled_at INTEGER NOT NULL,
  PRIMARY KEY(restaurant, device_id)
) WITHOUT ROWID;
)sql";

constexpr const char* kSelectHead = "SELECT head_seq, pruned_seq FROM restaurants WHERE id = ?1";

LogHead read_head(Stmt& s, std::string_view restaurant) {
  ResetOnExit guard{s};
  s.bind(1, restaurant);
  LogHead head;
  if (s.step()) {
    head.exists = true;
    head.seq = s.uint64(0);
    head.pruned_seq = s.uint64(1);
  }
  return head;
}

// Copies committed pages from the WAL into the database file on its own connection and thread,
// so that commits do not wait for it (the writer's automatic checkpoint is off). PASSIVE
// checkpoints never block the writer or readers; they copy what no reader still needs. A round
// starts whenever `step_frames` pages were added since the last one copied: small rounds, often.
//
// Under continuous commits a checkpoint never catches up with the end of the WAL, and the WAL
// starts over only when a write transaction begins with every page copied. So once the WAL holds
// `max_frames` pages, the writer waits before its next transaction until a checkpoint has copied
// them all: the WAL file stays bounded. Rounds are small, and back to back over the last eighth
// before the bound, so that wait is short.
class Checkpointer {
 public:
  explicit Checkpointer(const SqliteOptions& options)
      : db_(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX),
        step_frames_(options.checkpoint_frames),
        max_frames_(options.max_wal_frames),
        max_wait_(options.max_checkpoint_wait) {
    db_.exec("PRAGMA synchronous=FULL;");
    thread_ = start_named_thread("sqlite-ckpt", [this] { run(); });
  }
  ~Checkpointer() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Called by the writer after each commit with the number of pages in the WAL. Once they reach
  // the bound, asks for a round that starts after this point and copies everything.
  void committed(int wal_frames) {
    std::unique_lock lock(mutex_);
    if (wal_frames < copied_) {  // the WAL started over
      copied_ = 0;
      wait_at_ = max_frames_;
    }
    wal_frames_ = wal_frames;
    if (wal_frames >= wait_at_) want_complete_ = std::max(want_complete_, started_ + 1);
    const bool wake = has_work();
    lock.unlock();
    if (wake) cv_.notify_all();
  }

  // Called by the writer before each transaction: once the WAL reached the bound, waits for that
  // round, so that this transaction starts the WAL over. The commit before it is already being
  // synced and published. A reader holding an old snapshot (a backup, say) can keep pages in the
  // WAL: then give up after a while and let the WAL double before waiting again.
  void before_transaction() {
    std::unique_lock lock(mutex_);
    if (want_complete_ <= complete_) return;
    const std::uint64_t wanted = want_complete_;
    if (!cv_.wait_for(lock, max_wait_, [&] { return complete_ >= wanted; })) {
      slog::warn("SQLite WAL pages pile up: a reader keeps them from being copied",
                 {{"pages", wal_frames_}});
      wait_at_ = 2 * wal_frames_;
      want_complete_ = complete_;
    }
  }

 private:
  bool has_work() const {
    // Close to the bound, rounds run back to back, so that the round the writer then waits for
    // has little left to copy.
    const bool catching_up = wal_frames_ >= wait_at_ - wait_at_ / 8 && wal_frames_ > copied_;
    return wal_frames_ - copied_ >= step_frames_ || catching_up || want_complete_ > complete_;
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || has_work(); });
      if (stopping_) return;
      const std::uint64_t round = ++started_;
      lock.unlock();
      int log = 0, copied = 0;
      const int rc =
          sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      // A checkpoint fails when the database file cannot be written (a full disk, a read-only
      // file): said once, then retried now and then until it works again. Commits go on into
      // the WAL meanwhile, as long as it can grow.
      const bool failed = rc != SQLITE_OK && rc != SQLITE_BUSY;
      if (failed && !failing_) {
        slog::warn("SQLite checkpoints fail; retrying",
                   {{"error", sqlite3_errmsg(db_.get())}, {"retry_ms", kFailedRetry.count()}});
      } else if (!failed && failing_) {
        slog::info("SQLite checkpoints work again");
      }
      const bool all_copied = rc == SQLITE_OK && copied == log;
      // Pages a reader still needs stay in the WAL; try again shortly rather than spin.
      if (!all_copied && !failed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      lock.lock();
      failing_ = failed;
      if (rc == SQLITE_OK) copied_ = std::max(copied_, copied);
      if (all_copied) complete_ = round;
      cv_.notify_all();
      if (failed) cv_.wait_for(lock, kFailedRetry, [&] { return stopping_; });
    }
  }

  static constexpr std::chrono::milliseconds kFailedRetry{500};

  Db db_;
  const int step_frames_;
  const int max_frames_;
  const std::chrono::milliseconds max_wait_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool failing_ = false;             // the last round failed (not merely blocked by a reader)
  int wal_frames_ = 0;               // pages in the WAL after the writer's last commit
  int copied_ = 0;                   // of those, copied into the database by the last round
  int wait_at_ = max_frames_;        // WAL size at which the writer waits for a full checkpoint
  std::uint64_t started_ = 0;        // checkpoint rounds started
  std::uint64_t complete_ = 0;       // the last round that copied every page of the WAL
  std::uint64_t want_complete_ = 0;  // the writer waits until this round copied everything
  std::thread thread_;
};

// Makes each commit durable at its end, on the writer's thread: the writer connection runs with
// synchronous=NORMAL (SQLite writes a commit's pages to the WAL but does not fsync it), and
// committed() fdatasyncs the WAL, then runs the callbacks waiting for the commit, in order.
// Changes that arrive meanwhile gather in the commit pipeline's queue and form the next group.
// (A thread of its own that synced while the writer committed the next batch cost more CPU for
// the same latency: bench/benchmarks-notes.md.) Each commit is numbered before it starts.
// Checkpoints sync the WAL before copying it, and the WAL starts over only after a checkpoint, so
// every commit this thread has synced survives a crash or power loss.
//
// Nothing is served that a power loss could take back: log reads stop at the DurableHorizon, and
// snapshots wait (wait_durable) until every commit they may contain is durable.
class Syncer {
 public:
  // `synced(n)` runs on the writer's thread once every commit up to `n` is durable.
  Syncer(std::string wal_path, std::function<void()> before_sync,
         std::function<void(std::uint64_t)> synced)
      : wal_path_(std::move(wal_path)),
        before_sync_(std::move(before_sync)),
        synced_(std::move(synced)) {}
  ~Syncer() {
    if (fd_ >= 0) ::close(fd_);
  }
  Syncer(const Syncer&) = delete;
  Syncer& operator=(const Syncer&) = delete;

  // Numbers the writer's next commit; called before it starts, so that a read whose snapshot sees
  // the commit finds its number in begun().
  std::uint64_t begin_commit() { return begun_.fetch_add(1) + 1; }
  std::uint64_t begun() const { return begun_.load(); }

  // The commit numbered `n` ended: committed (`stored`) or rolled back. Syncs it if it was
  // stored and runs the callbacks that waited for it. On the writer's thread. A rolled-back commit
  // left nothing to sync (every commit before it was synced when it ended), and syncing then
  // could only fail for nothing: the WAL may have become unwritable, which is why it failed.
  void committed(std::uint64_t n, bool stored) {
    if (stored) sync();
    synced_(n);
    std::vector<std::function<void()>> ready;
    {
      std::lock_guard lock(mutex_);
      durable_ = n;
      while (!callbacks_.empty() && callbacks_.front().after <= durable_) {
        ready.push_back(std::move(callbacks_.front().done));
        callbacks_.pop_front();
      }
    }
    cv_.notify_all();  // wait_durable()
    for (auto& done : ready) done();
  }

  // Runs `done` once every commit begun before this call is durable, after the callbacks
  // registered before it: at once if none is under way, else where that commit ends.
  void when_durable(std::function<void()> done) {
    {
      std::lock_guard lock(mutex_);
      const std::uint64_t after = begun_.load();
      if (!callbacks_.empty() || after > durable_) {
        callbacks_.push_back({after, std::move(done)});
        return;
      }
    }
    done();
  }

  // Blocks until the commit numbered `n` and all before it are durable.
  void wait_durable(std::uint64_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return durable_ >= n; });
  }

 private:
  struct Waiting {
    std::uint64_t after;  // runs once durable_ >= after
    std::function<void()> done;
  };

  void sync() {
    if (before_sync_) before_sync_();
    const bool first = fd_ < 0;
    if (first) fd_ = ::open(wal_path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd_ < 0 || ::fdatasync(fd_) != 0) {
      // The kernel may have dropped the pages it failed to write: retrying could report success
      // for data that is gone. Stop here; a restart recovers from what is on disk, and nothing
      // of the unsynced commits was acknowledged or served.
      slog::critical("cannot sync the SQLite WAL",
                     {{"path", wal_path_}, {"error", std::strerror(errno)}});
      std::abort();
    }
    // The WAL's directory entry must be durable too. SQLite syncs the directory on its own first
    // sync of a new WAL, which the writer (synchronous=NORMAL) no longer does: once, here.
    if (first) sync_directory();
  }

  void sync_directory() const {
    // Like SQLite, a directory that cannot be synced (some file systems refuse) is not fatal.
    if (auto synced = sync_parent_directory(wal_path_); !synced) {
      slog::warn("cannot sync the directory", {{"error", synced.error().message}});
    }
  }

  const std::string wal_path_;
  const std::function<void()> before_sync_;
  const std::function<void(std::uint64_t)> synced_;
  int fd_ = -1;  // the writer's thread only
  std::atomic<std::uint64_t> begun_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::uint64_t durable_ = 0;  // every commit up to this one is synced
  std::deque<Waiting> callbacks_;
};

// The writer connection and its prepared statements; used by the writer thread only.
class Writer final : public StoreTxn {
 public:
  explicit Writer(const SqliteOptions& options)
      : db_(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
            sqlite_wal_vfs_name()) {
    // NORMAL: COMMIT writes the WAL without syncing it; the Syncer syncs it right after.
    db_.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;");
    db_.exec(fmt::format("PRAGMA cache_size=-{};", options.writer_cache_kib).c_str());
    db_.exec(kSchema);
    migrate();
    checkpointer_ = std::make_unique<Checkpointer>(options);
    // Replaces SQLite's automatic checkpoint: the hook only notes the WAL's size.
    sqlite3_wal_hook(
        db_.get(),
        [](void* self, sqlite3*, const char*, int frames) {
          static_cast<Writer*>(self)->wal_frames_ = frames;
          return SQLITE_OK;
        },
        this);
    begin_ = std::make_unique<Stmt>(db_, "BEGIN IMMEDIATE");
    commit_ = std::make_unique<Stmt>(db_, "COMMIT");
    rollback_ = std::make_unique<Stmt>(db_, "ROLLBACK");
    select_head_ = std::make_unique<Stmt>(db_, kSelectHead);
    upsert_head_ = std::make_unique<Stmt>(
        db_,
        "INSERT INTO restaurants(id, head_seq, pruned_seq) VALUES(?1, ?2, ?3) "
        "ON CONFLICT(id) DO UPDATE SET head_seq = excluded.head_seq, "
        "pruned_seq = excluded.pruned_seq");
    find_change_ = std::make_unique<Stmt>(
        db_, "SELECT seq FROM change_ids WHERE restaurant = ?1 AND change_id = ?2");
    insert_change_ = std::make_unique<Stmt>(
        db_, "INSERT INTO change_ids(restaurant, change_id, seq) VALUES(?1, ?2, ?3)");
    select_record_ = std::make_unique<Stmt>(
        db_,
        "SELECT body FROM records WHERE restaurant = ?1 AND data_type = ?2 AND record_id = ?3");
    upsert_record_ = std::make_unique<Stmt>(
        db_,
        "INSERT INTO records(restaurant, data_type, record_id, version, body) "
        "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(restaurant, data_type, record_id) "
        "DO UPDATE SET version = excluded.version, body = excluded.body");
    delete_record_ = std::make_unique<Stmt>(
        db_, "DELETE FROM records WHERE restaurant = ?1 AND data_type = ?2 AND record_id = ?3");
    insert_log_ = std::make_unique<Stmt>(
        db_,
        "INSERT INTO log(restaurant, seq, change_id, data_type, action, record_id, data, "
        "device_id, user_id, committed_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    prune_log_ = std::make_unique<Stmt>(db_, "DELETE FROM log WHERE restaurant = ?1 AND seq <= ?2");
    // Scans the restaurant's change ids (pruning runs once per 1/16 of the retained window).
    prune_changes_ =
        std::make_unique<Stmt>(db_, "DELETE FROM change_ids WHERE restaurant = ?1 AND seq <= ?2");
  }

  // `before_commit` sees the outcomes just before COMMIT makes them visible.
  Result<std::vector<Outcome>> commit(
      std::span<const ChangeRequest> batch, const CommitOptions& options,
      const std::function<void(std::span<const Outcome>)>& before_commit) {
    checkpointer_->before_transaction();
    try {
      begin_->run();
    } catch (const std::exception& e) {
      return Error{errc::kStoreUnavailable, fmt::format("cannot begin transaction: {}", e.what())};
    }
    try {
      auto outcomes = apply_batch(*this, batch, options);
      before_commit(outcomes);
      commit_->run();
      checkpointer_->committed(wal_frames_);
      return outcomes;
    } catch (const std::exception& e) {
      try {
        rollback_->run();
      } catch (const std::exception&) {
        // The transaction may already have been rolled back by SQLite itself.
      }
      return Error{errc::kStoreUnavailable, fmt::format("commit failed: {}", e.what())};
    }
  }

  LogHead load_head(std::string_view r) override { return read_head(*select_head_, r); }
  void save_head(std::string_view r, const LogHead& head) override {
    upsert_head_->bind(1, r).bind(2, head.seq).bind(3, head.pruned_seq).run();
  }
  std::optional<std::uint64_t> find_change(std::string_view r, std::string_view id) override {
    ResetOnExit guard{*find_change_};
    find_change_->bind(1, r).bind(2, id);
    if (!find_change_->step()) return std::nullopt;
    return find_change_->uint64(0);
  }
  void add_change_id(std::string_view r, std::string_view id, std::uint64_t seq) override {
    insert_change_->bind(1, r).bind(2, id).bind(3, seq).run();
  }
  std::optional<boost::json::object> load_record(std::string_view r, DataType type,
                                                 std::string_view id) override {
    ResetOnExit guard{*select_record_};
    select_record_->bind(1, r).bind(2, info(type).name).bind(3, id);
    if (!select_record_->step()) return std::nullopt;
    return parse_stored_object(select_record_->text(0));
  }
  void save_record(std::string_view r, DataType type, std::string_view id,
                   boost::json::object record, std::uint64_t version) override {
    upsert_record_->bind(1, r)
        .bind(2, info(type).name)
        .bind(3, id)
        .bind(4, version)
        .bind(5, serialize_stored_object(record))
        .run();
  }
  void delete_record(std::string_view r, DataType type, std::string_view id) override {
    delete_record_->bind(1, r).bind(2, info(type).name).bind(3, id).run();
  }
  void append_log(const std::shared_ptr<const LogEntry>& entry) override {
    const LogEntry& e = *entry;
    const Change& c = e.change;
    insert_log_->bind(1, c.restaurant_id)
        .bind(2, e.seq)
        .bind(3, c.change_id)
        .bind(4, info(c.data_type).name)
        .bind(5, c.action)
        .bind(6, c.record_id)
        .bind(7, serialize_stored_object(c.data))
        .bind(8, c.device_id)
        .bind(9, c.user_id)
        .bind(10, e.committed_at_ms)
        .run();
  }
  void prune(std::string_view r, std::uint64_t up_to_seq) override {
    prune_log_->bind(1, r).bind(2, up_to_seq).run();
    prune_changes_->bind(1, r).bind(2, up_to_seq).run();
  }

 private:
  void migrate() {
    Stmt get(db_, "SELECT value FROM meta WHERE key = 'schema_version'");
    if (get.step()) {
      const int found = std::stoi(std::string(get.text(0)));
      get.reset();
      if (found < kOldestSqliteSchemaVersion || found > kSqliteSchemaVersion) {
        throw SqliteError(fmt::format("database schema version {} is not supported (expected {})",
                                      found, kSqliteSchemaVersion));
      }
      if (found == 1) {
        db_.exec(
            "BEGIN IMMEDIATE; DROP INDEX IF EXISTS change_ids_by_seq; "
            "UPDATE meta SET value = '2' WHERE key = 'schema_version'; COMMIT;");
      }
      if (found <= 2) {
        // legacy_devices was created by kSchema (IF NOT EXISTS) before this runs.
        db_.exec("UPDATE meta SET value = '3' WHERE key = 'schema_version';");
      }
      return;
    }
    get.reset();
    Stmt put(db_, "INSERT INTO meta(key, value) VALUES('schema_version', ?1)");
    put.bind(1, std::to_string(kSqliteSchemaVersion)).run();
  }

  Db db_;
  std::unique_ptr<Checkpointer> checkpointer_;
  int wal_frames_ = 0;
  std::unique_ptr<Stmt> begin_, commit_, rollback_, select_head_, upsert_head_, find_change_,
      insert_change_, select_record_, upsert_record_, delete_record_, insert_log_, prune_log_,
      prune_changes_;
};

// A read-only connection with the statements the read API needs.
struct Reader {
  explicit Reader(const std::string& path)
      : db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX),
        begin(db, "BEGIN"),
        end(db, "COMMIT"),
        head(db, kSelectHead),
        log(db, fmt::format("SELECT {} FROM log WHERE restaurant = ?1 AND seq > ?2 ORDER BY seq "
                            "LIMIT ?3",
                            kLogColumns)
                    .c_str()),
        records(db, "SELECT data_type, body FROM records WHERE restaurant = ?1") {
    db.exec("PRAGMA query_only=1;");
  }
  Db db;
  Stmt begin, end, head, log, records;
};

// The legacy devices (store/store.h), on a connection of their own: enrolments are written from
// the I/O threads (the admin API), never by the commit pipeline's writer, and rarely. SQLite lets
// one connection write at a time; a write here waits (busy timeout) while the writer commits.
// synchronous=FULL makes each write durable when it returns; the automatic checkpoint stays off
// (the Checkpointer copies these pages too).
class SqliteLegacyDevices {
 public:
  explicit SqliteLegacyDevices(const std::string& path)
      : db_(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX),
        begin_(db_, "BEGIN IMMEDIATE"),
        commit_(db_, "COMMIT"),
        rollback_(db_, "ROLLBACK"),
        exists_(db_, "SELECT 1 FROM legacy_devices WHERE restaurant = ?1 AND device_id = ?2"),
        upsert_(db_,
                "INSERT INTO legacy_devices(restaurant, device_id, networks, role, enrolled_at) "
                "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(restaurant, device_id) DO UPDATE SET "
                "networks = excluded.networks, role = excluded.role, "
                "enrolled_at = excluded.enrolled_at"),
        delete_(db_, "DELETE FROM legacy_devices WHERE restaurant = ?1 AND device_id = ?2"),
        select_(db_, fmt::format("SELECT {} FROM legacy_devices WHERE restaurant = ?1 ORDER BY "
                                 "device_id",
                                 kLegacyDeviceColumns)
                         .c_str()),
        select_all_(db_, fmt::format("SELECT {} FROM legacy_devices ORDER BY restaurant, device_id",
                                     kLegacyDeviceColumns)
                             .c_str()) {
    db_.exec("PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;");
  }

  Result<bool> put(const LegacyDevice& d) {
    return write([&] {
      const bool existed = exists(d.restaurant_id, d.device_id);
      upsert_.bind(1, d.restaurant_id)
          .bind(2, d.device_id)
          .bind(3, serialize_networks(d.networks))
          .bind(4, d.role)
          .bind(5, d.enrolled_at_ms)
          .run();
      return !existed;
    });
  }

  Result<bool> remove(std::string_view restaurant, std::string_view device) {
    return write([&] {
      const bool existed = exists(restaurant, device);
      delete_.bind(1, restaurant).bind(2, device).run();
      return existed;
    });
  }

  Result<std::vector<LegacyDevice>> list(std::optional<std::string_view> restaurant) {
    std::lock_guard lock(mutex_);
    Stmt& s = restaurant ? select_ : select_all_;
    try {
      ResetOnExit guard{s};
      if (restaurant) s.bind(1, *restaurant);
      std::vector<LegacyDevice> out;
      while (s.step()) out.push_back(legacy_device_from_row(s));
      return out;
    } catch (const std::exception& e) {
      return Error{errc::kStoreUnavailable, fmt::format("legacy devices: {}", e.what())};
    }
  }

 private:
  bool exists(std::string_view restaurant, std::string_view device) {
    ResetOnExit guard{exists_};
    exists_.bind(1, restaurant).bind(2, device);
    return exists_.step();
  }

  // Runs `fn` in one write transaction.
  template <class Fn>
  Result<bool> write(Fn&& fn) {
    std::lock_guard lock(mutex_);
    try {
      begin_.run();
    } catch (const std::exception& e) {
      return Error{errc::kStoreUnavailable, fmt::format("legacy devices: {}", e.what())};
    }
    try {
      const bool result = fn();
      commit_.run();
      return result;
    } catch (const std::exception& e) {
      try {
        rollback_.run();
      } catch (const std::exception&) {
        // Already rolled back by SQLite.
      }
      return Error{errc::kStoreUnavailable, fmt::format("legacy devices: {}", e.what())};
    }
  }

  std::mutex mutex_;  // one caller at a time on the connection
  Db db_;
  Stmt begin_, commit_, rollback_, exists_, upsert_, delete_, select_, select_all_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(const SqliteOptions& options, SqliteStoreLock lock)
      : path_(options.path),
        lock_(std::move(lock)),
        writer_(options),
        syncer_(options.path + "-wal", options.before_sync,
                [this](std::uint64_t n) { horizon_.durable(n); }),
        readers_(options.reader_connections, [&] { return std::make_unique<Reader>(path_); }),
        legacy_(path_) {}

  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    const std::uint64_t n = syncer_.begin_commit();
    auto result = writer_.commit(batch, options, [&](std::span<const Outcome> outcomes) {
      horizon_.committing(n, outcomes);
    });
    if (!result) horizon_.abandoned(n);
    syncer_.committed(n, result.has_value());
    note_commit(result);
    return result;
  }

  void when_durable(std::function<void()> done) override { syncer_.when_durable(std::move(done)); }

  // Ready while a commit can be stored. After a failed commit, and until one succeeds, each ping
  // tries a write transaction of its own: the disk may have been freed, or the file made
  // writable again, while no change arrived to find out.
  Result<void> ping() override {
    if (!commits_failing_.load()) return Store::ping();
    if (auto probed = probe_write(); !probed) {
      std::lock_guard lock(failure_mutex_);
      return Error{errc::kStoreUnavailable,
                   fmt::format("commits fail: {}; a test write failed too: {}", last_failure_,
                               probed.error().message)};
    }
    if (commits_failing_.exchange(false)) {
      slog::info("the store can be written again", {{"store", describe()}});
    }
    return {};
  }

  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    return with_reader<LogPage>([&](Reader& rd) {
      LogPage page;
      page.head = read_head(rd.head, r);
      ResetOnExit guard{rd.log};
      rd.log.bind(1, r).bind(2, after).bind(3, static_cast<std::int64_t>(limit));
      while (rd.log.step()) page.entries.push_back(log_entry_from_row(rd.log, r));
      // After the reads: every commit they saw is registered by now.
      if (auto durable = durable_limit(r, page.head)) {
        std::erase_if(page.entries, [&](const LogEntry& e) { return e.seq > *durable; });
        page.head.seq = std::min(page.head.seq, *durable);
      }
      return page;
    });
  }

  Result<Snapshot> snapshot(std::string_view r) override {
    return with_reader<Snapshot>([&](Reader& rd) {
      Snapshot snap;
      snap.head = read_head(rd.head, r);
      ResetOnExit guard{rd.records};
      rd.records.bind(1, r);
      while (rd.records.step()) {
        const auto type = stored_data_type(rd.records.text(0));
        snap.records[static_cast<std::size_t>(type)].push_back(
            parse_stored_object(rd.records.text(1)));
      }
      // Records cannot be cut at a seq: wait until what the snapshot saw is durable.
      if (horizon_.limit(r)) syncer_.wait_durable(syncer_.begun());
      return snap;
    });
  }

  Result<LogHead> head(std::string_view r) override {
    return with_reader<LogHead>([&](Reader& rd) {
      LogHead head = read_head(rd.head, r);
      if (auto durable = durable_limit(r, head)) head.seq = std::min(head.seq, *durable);
      return head;
    });
  }

  std::string describe() const override { return "sqlite:" + path_; }

  Result<bool> put_legacy_device(const LegacyDevice& device) override {
    return legacy_.put(device);
  }
  Result<bool> remove_legacy_device(std::string_view restaurant, std::string_view device) override {
    return legacy_.remove(restaurant, device);
  }
  Result<std::vector<LegacyDevice>> legacy_devices(std::string_view restaurant) override {
    return legacy_.list(restaurant);
  }
  Result<std::vector<LegacyDevice>> all_legacy_devices() override {
    return legacy_.list(std::nullopt);
  }

 private:
  // The highest seq of `r` a read that saw `head` may serve, or nullopt for all it saw. A read is
  // cut at the durable horizon, except when what it saw pruned the log past it (one commit added
  // more of the restaurant's changes than --retain-changes keeps): cut there, it would offer a
  // head below its own pruned seq. Such a read waits for the sync under way instead.
  std::optional<std::uint64_t> durable_limit(std::string_view r, const LogHead& head) {
    auto durable = horizon_.limit(r);
    if (durable && head.pruned_seq > *durable) {
      syncer_.wait_durable(syncer_.begun());
      return std::nullopt;
    }
    return durable;
  }

  // Runs `fn` in a read transaction on a pooled connection (one consistent snapshot).
  template <class T, class Fn>
  Result<T> with_reader(Fn&& fn) {
    auto reader = readers_.checkout();
    Result<T> result = Error{errc::kStoreUnavailable, "read failed"};
    try {
      reader->begin.run();
      try {
        result = fn(*reader);
      } catch (...) {
        reader->end.run();
        throw;
      }
      reader->end.run();
    } catch (const std::exception& e) {
      result = Error{errc::kStoreUnavailable, fmt::format("read failed: {}", e.what())};
    }
    return result;
  }

  // Tells the operator once when commits start failing and once when they work again.
  void note_commit(const Result<std::vector<Outcome>>& result) {
    if (result) {
      if (commits_failing_.exchange(false)) {
        slog::info("commits work again", {{"store", describe()}});
      }
      return;
    }
    {
      std::lock_guard lock(failure_mutex_);
      last_failure_ = result.error().message;
    }
    if (!commits_failing_.exchange(true)) {
      slog::error(
          "commits fail: changes are rejected with store_unavailable and /api/ready answers 503 "
          "until the store can be written again",
          {{"store", describe()},
           {"code", result.error().code},
           {"error", result.error().message}});
    }
  }

  // One small write transaction on a connection of its own (it waits for the writer's
  // transaction, if any, like a second writer): whether the store can commit now.
  Result<void> probe_write() {
    std::lock_guard lock(probe_mutex_);
    try {
      if (!probe_) {
        auto db = std::make_unique<Db>(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
        // No checkpoint of its own (the checkpointer's job); durability is not what it tests.
        db->exec("PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;");
        sqlite3_busy_timeout(db->get(), 250);
        probe_ = std::move(db);
      }
      probe_->exec(
          "BEGIN IMMEDIATE; INSERT INTO meta(key, value) VALUES('write_probe', "
          "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) ON CONFLICT(key) DO UPDATE SET "
          "value = excluded.value; COMMIT;");
      return {};
    } catch (const std::exception& e) {
      // Opened anew next time: a connection opened while the file could not be written is
      // read-only for good (SQLite falls back to that), and would fail every later probe.
      probe_.reset();
      return Error{errc::kStoreUnavailable, e.what()};
    }
  }

  std::string path_;
  SqliteStoreLock lock_;
  Writer writer_;
  DurableHorizon horizon_;
  Syncer syncer_;
  ReaderPool<Reader> readers_;
  std::atomic<bool> commits_failing_{false};
  std::mutex failure_mutex_;
  std::string last_failure_;  // of the last failed commit; guarded by failure_mutex_
  std::mutex probe_mutex_;
  std::unique_ptr<Db> probe_;  // opened by the first probe; guarded by probe_mutex_
  SqliteLegacyDevices legacy_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const SqliteOptions& options) {
  auto lock = SqliteStoreLock::acquire(options.path);
  if (!lock) return lock.error();
  try {
    return std::unique_ptr<Store>(std::make_unique<SqliteStore>(options, std::move(*lock)));
  } catch (const std::exception& e) {
    return Error{errc::kStoreUnavailable, e.what()};
  }
}

}  // namespace possync
