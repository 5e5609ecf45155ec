// verify_sqlite_store: a store written by SqliteStore passes, pruned or not; each kind of damage
// done underneath it (a record edited, a log entry gone, a change id unindexed or moved, rows
// without their restaurant, a file that is no possync store) is found and named.
#include "store/sqlite_verify.h"

#include <sqlite3.h>

#include "store/sqlite_store.h"
#include "store/store_conformance_test.h"

namespace possync::store_test {
namespace {

class SqliteVerifyTest : public testing::Test {
 protected:
  std::string db_path() const { return (dir_.path() / "possync.db").string(); }

  // A store with a bit of everything apply_batch does: updates merged into records, a deletion,
  // a deletion of a record that never existed, a twin alias, a duplicate, a conflict, two
  // restaurants, several data types, and commits at different times.
  void write_store(std::uint64_t retain = 0) {
    auto store = open_sqlite_store({db_path(), 1});
    ASSERT_TRUE(store.has_value()) << store.error().message;
    auto commit = [&](std::vector<ChangeRequest> batch, std::int64_t now) {
      auto r = (*store)->commit(batch, {now, retain});
      ASSERT_TRUE(r.has_value()) << r.error().message;
      wait_durable(**store);
    };
    commit({upd("c1", "o1", R"({"status":"open","items":[1,2]})"), upd("c2", "o2")}, kNow);
    commit({request({.change_id = "c1-twin", .record_id = "o1", .twin_of = "c1"}),
            request({.change_id = "c3", .record_id = "o2", .action = "deleted"}),
            request({.change_id = "c4", .record_id = "never", .action = "deleted"}),
            request({.change_id = "c5", .record_id = "o1", .base_version = 99}),
            request({.change_id = "m1",
                     .record_id = "burger",
                     .type = DataType::menu_items,
                     .data = R"({"price":9.5,"name":"Burger"})"}),
            upd("c1", "o1", R"({"status":"dup"})")},
           kNow + 1000);
    commit(
        {upd("c6", "o1", R"({"status":"paid","items":null})"), upd("b1", "o9", R"({"x":1})", "r2")},
        kNow + 2000);
    for (int i = 0; i < 10; ++i) {
      commit({upd("n" + std::to_string(i), "o" + std::to_string(i % 3), R"({"n":1})")},
             kNow + 3000 + i);
    }
  }

  // Runs SQL on the (closed) store through a connection of its own: damage done underneath.
  void damage(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
    sqlite3_free(err);
    EXPECT_GT(sqlite3_changes(db), 0) << "the damage changed nothing: " << sql;
    sqlite3_close(db);
  }

  VerifyResult verify() {
    auto result = verify_sqlite_store(db_path());
    EXPECT_TRUE(result.has_value()) << (result ? "" : result.error().message);
    return result ? *result : VerifyResult{};
  }

  // Verification finds a difference, and its text contains `expected`.
  void expect_difference(const std::string& expected) {
    const auto result = verify();
    ASSERT_TRUE(result.difference.has_value()) << "no difference found, expected: " << expected;
    EXPECT_NE(result.difference->find(expected), std::string::npos) << *result.difference;
  }

  TempDir dir_;
};

TEST_F(SqliteVerifyTest, AStoreWrittenBySqliteStorePasses) {
  write_store();
  const auto result = verify();
  EXPECT_FALSE(result.difference.has_value()) << *result.difference;
  EXPECT_EQ(result.summary.restaurants, 2u);
  EXPECT_EQ(result.summary.replayed, 2u);
  // r1: c1, c2, c3, c4, m1, c6, n0..n9 = 16 entries; r2: b1.
  EXPECT_EQ(result.summary.log_entries, 17u);
  // The logged ids and the twin's alias.
  EXPECT_EQ(result.summary.change_ids, 18u);
  // r1: o0, o1, o2 (deleted, then written again by n2/n5/n8), burger; r2: o9.
  EXPECT_EQ(result.summary.records, 5u);
}

TEST_F(SqliteVerifyTest, APrunedStorePassesWithItsRecordsCheckedOneByOne) {
  write_store(/*retain=*/4);
  const auto result = verify();
  EXPECT_FALSE(result.difference.has_value()) << *result.difference;
  EXPECT_EQ(result.summary.restaurants, 2u);
  EXPECT_EQ(result.summary.replayed, 1u);  // r2 was never pruned
  EXPECT_EQ(result.summary.records, 5u);
  EXPECT_LT(result.summary.log_entries, 17u);
}

TEST_F(SqliteVerifyTest, ARecordEditedUnderneathIsFound) {
  write_store();
  damage(R"(UPDATE records SET body = json_set(body, '$.status', 'void')
            WHERE restaurant = 'r1' AND record_id = 'o1')");
  expect_difference("restaurant 'r1': record orders/o1 differs from a replay of the log");
}

TEST_F(SqliteVerifyTest, ARecordVersionOutOfStepWithItsBodyIsFound) {
  write_store();
  damage("UPDATE records SET version = version + 1 WHERE record_id = 'burger'");
  expect_difference("record menu_items/burger: its version column");
}

TEST_F(SqliteVerifyTest, AMissingOrExtraRecordIsFound) {
  write_store();
  damage("DELETE FROM records WHERE restaurant = 'r2'");
  expect_difference("restaurant 'r2': record orders/o9 is missing");
}

TEST_F(SqliteVerifyTest, ARecordTheLogNeverWroteIsFound) {
  write_store();
  damage(R"(INSERT INTO records VALUES('r1', 'orders', 'ghost', 3,
            '{"id":"ghost","version":3}'))");
  expect_difference("record orders/ghost (version 3) is stored");
}

TEST_F(SqliteVerifyTest, AMissingSeqIsFound) {
  write_store();
  damage("DELETE FROM log WHERE restaurant = 'r1' AND seq = 5");
  expect_difference("restaurant 'r1': seq 5 is missing from the log (the next entry is seq 6)");
}

TEST_F(SqliteVerifyTest, AMissingHeadIsFound) {
  write_store();
  damage("UPDATE restaurants SET head_seq = head_seq + 2 WHERE id = 'r2'");
  expect_difference("restaurant 'r2': seqs 2..3 (up to the head) are missing");
}

TEST_F(SqliteVerifyTest, AChangeIdNotIndexedIsFound) {
  write_store();
  damage("DELETE FROM change_ids WHERE change_id = 'c6'");
  expect_difference("change id 'c6' of seq 6 is not indexed");
}

TEST_F(SqliteVerifyTest, AChangeIdLoggedTwiceIsFound) {
  write_store();
  damage("UPDATE log SET change_id = 'c2' WHERE restaurant = 'r1' AND seq = 7");
  expect_difference("change id 'c2' of seq 7 is indexed at seq 2");
}

TEST_F(SqliteVerifyTest, AnIndexedIdOutsideTheLogIsFound) {
  write_store();
  damage("INSERT INTO change_ids VALUES('r2', 'stray', 40)");
  expect_difference("change id 'stray' is indexed at seq 40");
}

TEST_F(SqliteVerifyTest, RowsOfAnUnknownRestaurantAreFound) {
  write_store();
  damage("DELETE FROM restaurants WHERE id = 'r2'");
  expect_difference("rows of restaurant 'r2'");
}

TEST_F(SqliteVerifyTest, AnUnreadableLogEntryIsFound) {
  write_store();
  damage("UPDATE log SET data = 'not json' WHERE restaurant = 'r1' AND seq = 3");
  expect_difference("the log entry of seq 3 cannot be read");
}

TEST_F(SqliteVerifyTest, AFileThatIsNoPossyncStoreIsAnError) {
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto result = verify_sqlite_store(db_path());
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().message.find("not a possync store"), std::string::npos)
      << result.error().message;
  EXPECT_FALSE(verify_sqlite_store((dir_.path() / "absent.db").string()).has_value());
}

}  // namespace
}  // namespace possync::store_test
