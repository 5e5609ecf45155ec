// The conformance suite (store_conformance_test.cpp) against MemoryStore and SqliteStore, and
// SQLite-only behaviour (durability across reopen, the lock file).
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "store/store_conformance_test.h"

namespace possync::store_test {
namespace {

std::unique_ptr<Store> open_sqlite_at(const fs::path& dir) {
  auto store = open_sqlite_store({(dir / "possync.db").string(), 2});
  if (!store) {
    ADD_FAILURE() << "open_sqlite_store: " << store.error().code << ": " << store.error().message;
    return nullptr;
  }
  return std::move(*store);
}

INSTANTIATE_TEST_SUITE_P(
    AllStores, StoreConformance,
    testing::Values(StoreFactory{"Memory", [](const fs::path&) { return make_memory_store(); }},
                    StoreFactory{"Sqlite", open_sqlite_at}),
    [](const testing::TestParamInfo<StoreFactory>& info) { return std::string(info.param.name); });

// ---- SQLite only ----

class SqliteStoreTest : public testing::Test {
 protected:
  std::string db_path() const { return (dir_.path() / "possync.db").string(); }
  std::unique_ptr<Store> open() {
    auto store = open_sqlite_store({db_path(), 2});
    EXPECT_TRUE(store.has_value()) << (store ? "" : store.error().message);
    return store ? std::move(*store) : nullptr;
  }
  static std::vector<Outcome> commit(Store& s, std::vector<ChangeRequest> batch,
                                     std::uint64_t retain = 0) {
    auto r = s.commit(batch, {kNow, retain});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    wait_durable(s);
    return r ? std::move(*r) : std::vector<Outcome>{};
  }
  // Runs SQL on the open store through a connection of its own (SQLite's own locking, not the
  // lock file, applies to it): failures injected underneath the store.
  void exec_beside(const char* sql) {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &raw), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(raw, sql, nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    sqlite3_close(raw);
  }
  TempDir dir_;
};

TEST_F(SqliteStoreTest, DescribeNamesThePath) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->describe(), "sqlite:" + db_path());
}

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    ChangeSpec del;
    del.change_id = "d1";
    del.record_id = "o2";
    del.action = "deleted";
    commit(*store, {upd("c1", "o1", R"({"status":"open","n":[1,2]})"), upd("c2", "o2"),
                    request(del), upd("b1", "o1", R"({"b":true})", "B")});
  }
  auto store = open();
  ASSERT_NE(store, nullptr);

  auto head = store->head("r1");
  ASSERT_TRUE(head.has_value());
  EXPECT_TRUE(head->exists);
  EXPECT_EQ(head->seq, 3u);

  auto page = store->read_log("r1", 0, 100);
  ASSERT_TRUE(page.has_value());
  ASSERT_EQ(page->entries.size(), 3u);
  EXPECT_EQ(page->entries[0].change.change_id, "c1");
  EXPECT_EQ(page->entries[0].change.data, json::parse(R"({"status":"open","n":[1,2]})"));
  EXPECT_EQ(page->entries[0].change.device_id, "dev-1");
  EXPECT_EQ(page->entries[0].change.user_id, "user-1");
  EXPECT_EQ(page->entries[0].committed_at_ms, kNow);
  EXPECT_EQ(page->entries[2].change.action, "deleted");

  auto snap = store->snapshot("r1");
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(record_count(*snap), 1u);
  const json::object* r = find_record(*snap, DataType::orders, "o1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(*r, json::parse(R"({"status":"open","n":[1,2],"id":"o1","version":1,
                               "updated_at":"2026-11-26T03:45:41.123Z"})"));

  // New commits continue the sequence.
  const auto outcomes = commit(*store, {upd("c4", "o1")});
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].seq, 4u);
  EXPECT_EQ(store->head("B")->seq, 1u);
}

TEST_F(SqliteStoreTest, SecondOpenWhileOpenFails) {
  auto first = open();
  ASSERT_NE(first, nullptr);
  auto second = open_sqlite_store({db_path(), 2});
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, "store_unavailable");
  EXPECT_FALSE(second.error().message.empty());
  EXPECT_TRUE(fs::exists(db_path() + ".lock"));

  // The first store is unaffected, and once it is closed the path can be opened again.
  EXPECT_EQ(commit(*first, {upd("c1", "o1")}).at(0).status, OutcomeStatus::applied);
  first.reset();
  auto third = open();
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->head("r1")->seq, 1u);
}

TEST_F(SqliteStoreTest, ReopenPreservesDedupeAndTwinAliases) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    commit(*store, {upd("c1", "o1", R"({"v":1})")});
    ChangeSpec twin;
    twin.change_id = "client-dc";
    twin.record_id = "o1";
    twin.twin_of = "c1";
    EXPECT_EQ(commit(*store, {request(twin)}).at(0).status, OutcomeStatus::duplicate);
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  const auto outcomes =
      commit(*store, {upd("c1", "o1", R"({"v":2})"), upd("client-dc", "o1", R"({"v":3})")});
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[0].seq, 1u);
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[1].seq, 1u);
  EXPECT_EQ(store->head("r1")->seq, 1u);
  EXPECT_EQ(field_of(*store, "r1", DataType::orders, "o1", "v"), json::value(1));
}

TEST_F(SqliteStoreTest, ReopenPreservesPruning) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    for (int i = 1; i <= 10; ++i) commit(*store, {upd("c" + std::to_string(i), "o1")}, 4);
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto page = store->read_log("r1", 0, 100);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->head.pruned_seq, 6u);
  EXPECT_EQ(seqs_of(*page), (Seqs{7, 8, 9, 10}));
}

TEST_F(SqliteStoreTest, OpenCreatesMissingParentDirectories) {
  const std::string nested = (dir_.path() / "a" / "b" / "db.sqlite").string();
  auto store = open_sqlite_store({nested, 1});
  ASSERT_TRUE(store.has_value()) << store.error().message;
  EXPECT_TRUE(fs::exists(nested));
}

// Store contract: "when it returns an Error, nothing of the batch was stored and every request in
// it may be retried". A failing statement is injected with a trigger.
TEST_F(SqliteStoreTest, FailedCommitStoresNothingAndTheStoreKeepsWorking) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  commit(*store, {upd("c1", "o1")});
  exec_beside(
      "CREATE TRIGGER fail_boom BEFORE INSERT ON log WHEN NEW.record_id = 'boom' "
      "BEGIN SELECT RAISE(ABORT, 'injected'); END;");

  auto failed =
      store->commit(std::vector<ChangeRequest>{upd("c2", "o2"), upd("c3", "boom")}, {kNow, 0});
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, "store_unavailable");
  EXPECT_EQ(store->head("r1")->seq, 1u);
  EXPECT_TRUE(record_of(*store, "r1", DataType::orders, "o2").is_null());

  // The same requests minus the failing one may be retried and must now succeed.
  auto retried = store->commit(std::vector<ChangeRequest>{upd("c2", "o2")}, {kNow, 0});
  ASSERT_TRUE(retried.has_value()) << retried.error().message;
  EXPECT_EQ(retried->at(0).status, OutcomeStatus::applied);
  EXPECT_EQ(retried->at(0).seq, 2u);
  auto more = store->commit(std::vector<ChangeRequest>{upd("c4", "o4")}, {kNow, 0});
  ASSERT_TRUE(more.has_value()) << more.error().message;
  EXPECT_EQ(more->at(0).seq, 3u);
}

// A store that cannot be written (its disk full, its file read-only; here every write to the log
// and to the meta table fails): a failed commit is rolled back, so there is nothing to sync and
// the syncer does not try (it would abort the process if the WAL could not be opened); ping (the
// server's readiness) fails from then on, also its own test write, until the store can be written
// again, which it notices without a commit having to come first.
TEST_F(SqliteStoreTest, ReadinessFollowsWhetherTheStoreCanBeWritten) {
  std::atomic<int> syncs{0};
  SqliteOptions options{db_path(), 2};
  options.before_sync = [&syncs] { ++syncs; };
  auto opened = open_sqlite_store(options);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  Store& store = **opened;
  commit(store, {upd("c1", "o1")});
  EXPECT_EQ(syncs, 1);
  EXPECT_TRUE(store.ping().has_value());

  exec_beside(
      "CREATE TRIGGER no_log BEFORE INSERT ON log BEGIN SELECT RAISE(ABORT, 'full (injected)'); "
      "END; CREATE TRIGGER no_meta BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, "
      "'full (injected)'); END; CREATE TRIGGER no_meta_update BEFORE UPDATE ON meta BEGIN "
      "SELECT RAISE(ABORT, 'full (injected)'); END;");
  auto failed = store.commit(std::vector<ChangeRequest>{upd("c2", "o2")}, {kNow, 0});
  ASSERT_FALSE(failed.has_value());
  wait_durable(store);
  EXPECT_EQ(syncs, 1) << "a rolled-back commit was synced";
  for (int i = 0; i < 2; ++i) {
    auto ping = store.ping();
    ASSERT_FALSE(ping.has_value());
    EXPECT_EQ(ping.error().code, "store_unavailable");
    EXPECT_NE(ping.error().message.find("a test write failed too: full (injected)"),
              std::string::npos)
        << ping.error().message;
  }
  EXPECT_EQ(store.head("r1")->seq, 1u);  // reads go on

  exec_beside("DROP TRIGGER no_log; DROP TRIGGER no_meta; DROP TRIGGER no_meta_update;");
  EXPECT_TRUE(store.ping().has_value());
  EXPECT_TRUE(store.ping().has_value());
  EXPECT_EQ(commit(store, {upd("c2", "o2")}).at(0).seq, 2u);
  EXPECT_EQ(syncs, 2);
}

TEST_F(SqliteStoreTest, OpensAVersion1DatabaseAndMigratesIt) {
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &raw), SQLITE_OK);
    // The version 1 schema with one committed change (seq 1) and a twin alias of it.
    const char* v1 = R"sql(
      PRAGMA journal_mode=WAL;
      CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE restaurants(id TEXT PRIMARY KEY, head_seq INTEGER NOT NULL,
        pruned_seq INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE log(restaurant TEXT NOT NULL, seq INTEGER NOT NULL, change_id TEXT NOT NULL,
        data_type TEXT NOT NULL, action TEXT NOT NULL, record_id TEXT NOT NULL,
        data TEXT NOT NULL, device_id TEXT NOT NULL, user_id TEXT NOT NULL,
        committed_at INTEGER NOT NULL, PRIMARY KEY(restaurant, seq)) WITHOUT ROWID;
      CREATE TABLE change_ids(restaurant TEXT NOT NULL, change_id TEXT NOT NULL,
        seq INTEGER NOT NULL, PRIMARY KEY(restaurant, change_id)) WITHOUT ROWID;
      CREATE INDEX change_ids_by_seq ON change_ids(restaurant, seq);
      CREATE TABLE records(restaurant TEXT NOT NULL, data_type TEXT NOT NULL,
        record_id TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY(restaurant, data_type, record_id)) WITHOUT ROWID;
      INSERT INTO meta VALUES('schema_version', '1');
      INSERT INTO restaurants VALUES('r1', 1, 0);
      INSERT INTO log VALUES('r1', 1, 'c1', 'orders', 'updated', 'o1', '{"n":1}', 'dev-1',
        'user-1', 1795664741123);
      INSERT INTO change_ids VALUES('r1', 'c1', 1), ('r1', 'twin-of-c1', 1);
      INSERT INTO records VALUES('r1', 'orders', 'o1', 1, '{"id":"o1","n":1,"version":1}');
    )sql";
    char* err = nullptr;
    ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
    sqlite3_close(raw);
  }
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->read_log("r1", 0, 10)->entries.size(), 1u);
    EXPECT_EQ(commit(*store, {upd("c1", "o1")})[0].status, OutcomeStatus::duplicate);
    EXPECT_EQ(commit(*store, {upd("twin-of-c1", "o1")})[0].status, OutcomeStatus::duplicate);
    // Pruning (retain 1) still drops old change ids, twin aliases included.
    for (int i = 2; i <= 40; ++i) commit(*store, {upd("c" + std::to_string(i), "o1")}, 1);
    EXPECT_EQ(commit(*store, {upd("twin-of-c1", "o1")})[0].status, OutcomeStatus::applied);
    // Version 3 added the legacy devices.
    auto added = store->put_legacy_device({"r1", "d1", {"10.0.0.0/8"}, "pos", kNow});
    ASSERT_TRUE(added.has_value()) << added.error().message;
    EXPECT_TRUE(*added);
  }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw,
                               "SELECT (SELECT value FROM meta WHERE key = 'schema_version'), "
                               "(SELECT count(*) FROM sqlite_master WHERE name = "
                               "'change_ids_by_seq')",
                               -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)), "3");
  EXPECT_EQ(sqlite3_column_int(q, 1), 0);
  sqlite3_finalize(q);
  sqlite3_close(raw);
}

// ---- durability after commit (the WAL is synced on a thread of its own) ----

// Holds every fdatasync of the WAL until released.
class SyncGate {
 public:
  void hold() {
    std::unique_lock lock(mutex_);
    ++arrived_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
  }
  void wait_arrived() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return arrived_ > 0; });
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  bool open_ = false;
};

TEST_F(SqliteStoreTest, NothingIsReadOrPublishedBeforeTheSync) {
  auto gate = std::make_shared<SyncGate>();
  SqliteOptions options{db_path(), 2};
  options.before_sync = [gate] { gate->hold(); };
  auto opened = open_sqlite_store(options);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  auto& store = **opened;
  auto raw_commit = [&](ChangeRequest r) {
    std::vector<ChangeRequest> batch{std::move(r)};
    auto result = store.commit(batch, {kNow, 0});
    ASSERT_TRUE(result.has_value()) << result.error().message;
  };

  // The writer commits two restaurants' changes and is held in the sync that follows COMMIT.
  std::atomic<bool> committed{false};
  std::thread writer([&] {
    std::vector<ChangeRequest> batch{upd("c1", "o1"), upd("c2", "o2"), upd("x1", "o1", "{}", "r2")};
    auto result = store.commit(batch, {kNow, 0});
    EXPECT_TRUE(result.has_value());
    committed = true;
  });
  gate->wait_arrived();
  std::atomic<bool> durable{false};
  store.when_durable([&] { durable = true; });  // waits for the commit under way

  // Log reads and heads stop before what is not durable; they do not wait.
  EXPECT_TRUE(store.read_log("r1", 0, 100)->entries.empty());
  EXPECT_EQ(store.read_log("r1", 0, 100)->head.seq, 0u);
  EXPECT_EQ(store.head("r2")->seq, 0u);
  // A snapshot cannot stop at a seq: it waits.
  std::atomic<bool> snapshot_done{false};
  std::thread reader([&] {
    auto snap = store.snapshot("r1");
    EXPECT_TRUE(snap.has_value());
    if (snap) {
      EXPECT_EQ(snap->head.seq, 2u);
    }
    snapshot_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(committed) << "commit returned before its sync";
  EXPECT_FALSE(durable);
  EXPECT_FALSE(snapshot_done) << "a snapshot returned changes that were not durable yet";
  gate->open();
  writer.join();
  reader.join();
  EXPECT_TRUE(durable);
  EXPECT_EQ(store.read_log("r1", 0, 100)->entries.size(), 2u);
  EXPECT_EQ(store.head("r2")->seq, 1u);
  raw_commit(upd("c3", "o3"));  // the next commit syncs on its own
  EXPECT_EQ(store.head("r1")->seq, 3u);
}

TEST_F(SqliteStoreTest, AReadThatSawACommitPrunePastTheHorizonWaitsForItsSync) {
  auto gate = std::make_shared<SyncGate>();
  SqliteOptions options{db_path(), 2};
  std::atomic<bool> hold{false};
  options.before_sync = [gate, &hold] {
    if (hold) gate->hold();
  };
  auto opened = open_sqlite_store(options);
  ASSERT_TRUE(opened.has_value()) << opened.error().message;
  auto& store = **opened;
  constexpr std::uint64_t kRetain = 2;
  auto commit_orders = [&](int from, int to) {
    std::vector<ChangeRequest> batch;
    for (int i = from; i <= to; ++i) {
      batch.push_back(upd("c" + std::to_string(i), "o" + std::to_string(i)));
    }
    auto result = store.commit(batch, {kNow, kRetain});
    EXPECT_TRUE(result.has_value());
  };
  commit_orders(1, 3);  // durable: seqs 1..3, pruned to 1
  ASSERT_EQ(store.head("r1")->pruned_seq, 1u);

  // One commit of five changes (seqs 4..8) prunes to 6, past the durable seq 3; held in its sync.
  hold = true;
  std::thread writer([&] { commit_orders(4, 8); });
  gate->wait_arrived();
  // Cut at seq 3, a read would offer head 3 with the log pruned to 6: it waits for the sync.
  std::atomic<bool> read_done{false};
  std::optional<LogPage> page;
  std::optional<LogHead> head;
  std::thread reader([&] {
    auto read = store.read_log("r1", 3, 100);
    auto got_head = store.head("r1");
    if (read) page = std::move(*read);
    if (got_head) head = *got_head;
    read_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(read_done) << "a read served a head below its pruned seq";
  gate->open();
  writer.join();
  reader.join();
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->head.seq, 8u);
  EXPECT_EQ(page->head.pruned_seq, 6u);
  ASSERT_EQ(page->entries.size(), 2u);
  EXPECT_EQ(page->entries[0].seq, 7u);
  EXPECT_EQ(page->entries[1].seq, 8u);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->seq, 8u);
}

TEST_F(SqliteStoreTest, WhenDurableCallbacksRunInOrder) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  std::mutex mutex;
  std::vector<int> order;
  for (int i = 0; i < 50; ++i) {
    commit(*store, {upd("c" + std::to_string(i), "o" + std::to_string(i))});
    store->when_durable([&, i] {
      std::lock_guard lock(mutex);
      order.push_back(i);
    });
    if (i % 10 == 0) {
      store->when_durable([&, i] {
        std::lock_guard lock(mutex);
        order.push_back(1000 + i);
      });
    }
  }
  std::promise<void> last;
  store->when_durable([&] { last.set_value(); });
  last.get_future().wait();
  std::vector<int> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back(i);
    if (i % 10 == 0) expected.push_back(1000 + i);
  }
  std::lock_guard lock(mutex);
  EXPECT_EQ(order, expected);
}

// ---- checkpoints (a thread of their own; the WAL stays bounded) ----

class SqliteCheckpointTest : public SqliteStoreTest {
 protected:
  static constexpr int kStepFrames = 8;
  static constexpr int kMaxFrames = 64;
  // `max_wait`: how long the writer waits at kMaxFrames for the full checkpoint round before it
  // concludes that a reader holds the pages back.
  std::unique_ptr<Store> open_small_wal(
      std::chrono::milliseconds max_wait = std::chrono::milliseconds(100)) {
    SqliteOptions options{db_path(), 2};
    options.checkpoint_frames = kStepFrames;
    options.max_wal_frames = kMaxFrames;
    options.max_checkpoint_wait = max_wait;
    auto store = open_sqlite_store(options);
    EXPECT_TRUE(store.has_value()) << (store ? "" : store.error().message);
    return store ? std::move(*store) : nullptr;
  }
  // Commits `batches` batches of 5 new records spread over 10 restaurants, starting at `from`.
  static void commit_many(Store& store, int from, int batches) {
    for (int b = from; b < from + batches; ++b) {
      std::vector<ChangeRequest> batch;
      for (int i = 0; i < 5; ++i) {
        const int n = b * 5 + i;
        batch.push_back(upd("c" + std::to_string(n), "o" + std::to_string(n),
                            R"({"pad":")" + std::string(300, 'x') + R"("})",
                            "r" + std::to_string(n % 10)));
      }
      commit(store, std::move(batch));
    }
  }
  std::uintmax_t wal_bytes() const {
    std::error_code ec;
    const auto size = fs::file_size(db_path() + "-wal", ec);
    return ec ? 0 : size;
  }
  // Entries of every restaurant, read back through the store.
  static std::size_t entries(Store& store) {
    std::size_t n = 0;
    for (int r = 0; r < 10; ++r) {
      auto page = store.read_log("r" + std::to_string(r), 0, 100000);
      EXPECT_TRUE(page.has_value());
      if (page) n += page->entries.size();
    }
    return n;
  }
};

TEST_F(SqliteCheckpointTest, WalStaysBoundedUnderContinuousCommits) {
  // No reader here, so the round the writer waits for always completes; the wait is long only so
  // that a slow round (a loaded machine's fsync, a ThreadSanitizer build) is not taken for one.
  auto store = open_small_wal(std::chrono::seconds(10));
  ASSERT_NE(store, nullptr);
  // 2,000 changes write far more pages than kMaxFrames; without checkpoints the WAL would hold
  // them all.
  commit_many(*store, 0, 400);
  const std::uintmax_t frame = 4096 + 24;
  // At most the waiting threshold plus the pages of one batch (a handful per restaurant touched).
  EXPECT_LE(wal_bytes(), (kMaxFrames + 64) * frame);
  EXPECT_EQ(entries(*store), 2000u);
  store.reset();
  store = open_small_wal();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(entries(*store), 2000u);
  EXPECT_EQ(store->head("r3")->seq, 200u);
}

TEST_F(SqliteCheckpointTest, ReaderHoldingAnOldSnapshotDelaysCommitsButDoesNotStopThem) {
  auto store = open_small_wal();
  ASSERT_NE(store, nullptr);
  commit_many(*store, 0, 1);
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(db_path().c_str(), &reader), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM log;", nullptr, nullptr, nullptr),
            SQLITE_OK);
  // The reader's snapshot keeps every later page in the WAL: the writer waits (bounded) at
  // kMaxFrames, then only each time the WAL has doubled.
  const auto started = std::chrono::steady_clock::now();
  commit_many(*store, 1, 60);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_GT(wal_bytes(), kMaxFrames * (4096u + 24));
  ASSERT_EQ(sqlite3_exec(reader, "COMMIT;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(reader);
  const auto high_water = wal_bytes();
  // With the reader gone the WAL is copied and starts over at the latest when it reaches the
  // current threshold (twice its size when the writer last gave up waiting): then it stops growing.
  commit_many(*store, 61, 300);
  const auto after = wal_bytes();
  commit_many(*store, 361, 300);
  EXPECT_LE(after, 2 * high_water + 64 * (4096u + 24));
  EXPECT_EQ(wal_bytes(), after);
  EXPECT_EQ(entries(*store), 661u * 5);
}

}  // namespace
}  // namespace possync::store_test
