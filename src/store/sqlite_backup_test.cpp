// backup_sqlite_store and restore_sqlite_store: a backup taken while a store commits holds a
// consistent state with everything durable before it began, and verifies; a restore refuses a
// store in use and a file that is no intact possync store without touching anything, and
// otherwise replaces the store whole, keeping the one it replaced.
#include "store/sqlite_backup.h"

#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "store/sqlite_store.h"
#include "store/sqlite_verify.h"
#include "store/store_conformance_test.h"

namespace possync::store_test {
namespace {

class SqliteBackupTest : public testing::Test {
 protected:
  std::string path(const char* name) const { return (dir_.path() / name).string(); }
  static std::unique_ptr<Store> open(const std::string& db) {
    auto store = open_sqlite_store({db, 1});
    EXPECT_TRUE(store.has_value()) << (store ? "" : store.error().message);
    return store ? std::move(*store) : nullptr;
  }
  static void commit(Store& store, std::vector<ChangeRequest> batch) {
    auto r = store.commit(batch, {kNow, 0});
    ASSERT_TRUE(r.has_value()) << r.error().message;
    wait_durable(store);
  }
  // A store at `db` with `batch` committed, closed again.
  static void write_store(const std::string& db, std::vector<ChangeRequest> batch) {
    auto store = open(db);
    ASSERT_NE(store, nullptr);
    commit(*store, std::move(batch));
  }
  static std::uint64_t head_of(const std::string& db, const char* restaurant = "r1") {
    auto store = open(db);
    if (!store) return 0;
    auto head = store->head(restaurant);
    return head ? head->seq : 0;
  }
  static void expect_verified(const std::string& db) {
    auto result = verify_sqlite_store(db);
    ASSERT_TRUE(result.has_value()) << result.error().message;
    EXPECT_FALSE(result->difference.has_value()) << *result->difference;
  }
  // The names in the test directory (no temporary left behind).
  std::set<std::string> files() const {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path())) out.insert(e.path().filename());
    return out;
  }

  TempDir dir_;
};

TEST_F(SqliteBackupTest, ABackupTakenWhileCommitsGoOnIsConsistentAndComplete) {
  const std::string db = path("store.db");
  const std::string to = path("backup.db");
  auto store = open(db);
  ASSERT_NE(store, nullptr);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> durable{0};  // changes committed and synced so far
  std::thread writer([&] {
    for (std::uint64_t i = 1; !stop; ++i) {
      const std::string id = std::to_string(i);
      std::vector<ChangeRequest> batch{
          upd("c" + id, "o" + std::to_string(i % 50), R"({"n":)" + id + "}"),
          upd("d" + id, "p" + id, "{}", "r2")};
      auto r = store->commit(batch, {kNow + static_cast<std::int64_t>(i), 0});
      if (!r) {
        ADD_FAILURE() << r.error().message;
        return;
      }
      wait_durable(*store);
      durable = i;
    }
  });
  while (durable < 200) std::this_thread::yield();
  const std::uint64_t before = durable;
  auto summary = backup_sqlite_store(db, to);
  const std::uint64_t after = durable;
  while (durable < after + 50) std::this_thread::yield();  // commits went on
  stop = true;
  writer.join();
  ASSERT_TRUE(summary.has_value()) << summary.error().message;
  EXPECT_EQ(summary->restaurants, 2u);
  EXPECT_GE(summary->log_entries, 2 * before);
  EXPECT_GT(summary->bytes, 0u);
  EXPECT_EQ(files(), (std::set<std::string>{"store.db", "store.db-shm", "store.db-wal",
                                            "store.db.lock", "backup.db"}));

  expect_verified(to);
  // Everything durable before the backup began, and one state: both restaurants at one commit.
  const std::uint64_t r1 = head_of(to, "r1");
  EXPECT_GE(r1, before);
  EXPECT_LE(r1, after + 1);
  EXPECT_EQ(head_of(to, "r2"), r1);
  EXPECT_EQ(summary->log_entries, 2 * r1);
}

TEST_F(SqliteBackupTest, ABackupReplacesItsTargetAndRefusesTheStoreItself) {
  const std::string db = path("store.db");
  const std::string to = path("backup.db");
  write_store(db, {upd("c1", "o1")});
  std::ofstream(to) << "an old backup";
  ASSERT_TRUE(backup_sqlite_store(db, to).has_value());
  EXPECT_EQ(head_of(to), 1u);

  auto itself = backup_sqlite_store(db, db);
  ASSERT_FALSE(itself.has_value());
  EXPECT_NE(itself.error().message.find("is the store itself"), std::string::npos);
  // A database in use (a -wal beside it) is not overwritten.
  auto other = path("other.db");
  std::ofstream(other + "-wal") << "";
  auto live = backup_sqlite_store(db, other);
  ASSERT_FALSE(live.has_value());
  EXPECT_NE(live.error().message.find("in use"), std::string::npos);
  EXPECT_FALSE(backup_sqlite_store(path("absent.db"), path("x.db")).has_value());
  EXPECT_FALSE(fs::exists(path("x.db")));
}

TEST_F(SqliteBackupTest, RestoreRefusesWhileAServerHoldsTheStore) {
  const std::string db = path("store.db");
  const std::string backup = path("backup.db");
  auto store = open(db);
  ASSERT_NE(store, nullptr);
  commit(*store, {upd("c1", "o1")});
  ASSERT_TRUE(backup_sqlite_store(db, backup).has_value());
  commit(*store, {upd("c2", "o1")});

  auto refused = restore_sqlite_store(backup, db);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("stop the server"), std::string::npos)
      << refused.error().message;
  EXPECT_EQ(store->head("r1")->seq, 2u);
  EXPECT_FALSE(fs::exists(db + ".before-restore"));
}

TEST_F(SqliteBackupTest, RestoreRefusesAFileThatIsNoIntactPossyncStore) {
  const std::string db = path("store.db");
  write_store(db, {upd("c1", "o1")});
  const std::string text = path("notes.txt");
  std::ofstream(text) << "not a database at all, but long enough to have a header or two......";
  const std::string other = path("other.db");
  {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(other.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  // A backup with a damaged page: the header of the second page (a table's root) overwritten.
  const std::string damaged = path("damaged.db");
  ASSERT_TRUE(backup_sqlite_store(db, damaged).has_value());
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    const std::string junk(2000, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  for (const auto& bad : {text, other, damaged, path("absent.db")}) {
    auto refused = restore_sqlite_store(bad, db);
    EXPECT_FALSE(refused.has_value()) << bad;
  }
  auto not_store = restore_sqlite_store(other, db);
  ASSERT_FALSE(not_store.has_value());
  EXPECT_NE(not_store.error().message.find("not a possync store"), std::string::npos)
      << not_store.error().message;
  EXPECT_EQ(head_of(db), 1u);
  EXPECT_FALSE(fs::exists(db + ".before-restore"));
  EXPECT_FALSE(fs::exists(db + ".restoring"));
}

TEST_F(SqliteBackupTest, RestoreReplacesTheStoreAndKeepsTheOneItReplaced) {
  const std::string db = path("store.db");
  const std::string backup = path("backup.db");
  {
    auto store = open(db);
    ASSERT_NE(store, nullptr);
    commit(*store, {upd("c1", "o1", R"({"v":1})"), upd("c2", "o2")});
    ASSERT_TRUE(backup_sqlite_store(db, backup).has_value());
    commit(*store, {upd("c3", "o1", R"({"v":3})")});
  }
  // A crash leaves the newest commits in the WAL: restore must not lose them from the copy it
  // keeps, nor let them reach the restored store.
  {
    auto store = open(db);
    ASSERT_NE(store, nullptr);
    commit(*store, {upd("c4", "o1", R"({"v":4})")});
    // The last connection to close leaves the WAL as it is, like a process killed.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &raw), SQLITE_OK);
    ASSERT_EQ(sqlite3_db_config(raw, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw, "SELECT count(*) FROM log", nullptr, nullptr, nullptr), SQLITE_OK);
    store.reset();
    sqlite3_close(raw);
    ASSERT_GT(fs::file_size(db + "-wal"), 0u);
  }

  auto restored = restore_sqlite_store(backup, db);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_EQ(restored->restored.restaurants, 1u);
  EXPECT_EQ(restored->restored.log_entries, 2u);
  EXPECT_EQ(restored->previous, db + ".before-restore");
  EXPECT_TRUE(restored->note.empty()) << restored->note;
  EXPECT_FALSE(fs::exists(db + ".restoring"));

  expect_verified(db);
  expect_verified(restored->previous);
  EXPECT_EQ(head_of(restored->previous), 4u);
  auto store = open(db);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->head("r1")->seq, 2u);
  EXPECT_EQ(field_of(*store, "r1", DataType::orders, "o1", "v"), json::value(1));
  // The restored store goes on from its head, and its change ids are known.
  const auto outcomes =
      store->commit(std::vector<ChangeRequest>{upd("c2", "o2"), upd("c9", "o9")}, {kNow, 0});
  ASSERT_TRUE(outcomes.has_value());
  EXPECT_EQ(outcomes->at(0).status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes->at(1).seq, 3u);
}

TEST_F(SqliteBackupTest, RestoreIntoANewPathCreatesTheStore) {
  const std::string db = path("store.db");
  const std::string backup = path("backup.db");
  write_store(db, {upd("c1", "o1")});
  ASSERT_TRUE(backup_sqlite_store(db, backup).has_value());
  const std::string fresh = path("new/place/store.db");
  auto restored = restore_sqlite_store(backup, fresh);
  ASSERT_TRUE(restored.has_value()) << restored.error().message;
  EXPECT_TRUE(restored->previous.empty());
  EXPECT_EQ(head_of(fresh), 1u);
}

}  // namespace
}  // namespace possync::store_test
