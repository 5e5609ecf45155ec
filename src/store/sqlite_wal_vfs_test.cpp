// The WAL-gathering VFS: a commit reaches the file in one write before COMMIT returns, other
// connections (default VFS) and crash recovery see exactly the committed transactions, and a
// write that fails fails the COMMIT and leaves the database as it was.
#include "store/sqlite_wal_vfs.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <csignal>
#include <filesystem>
#include <string>

#include "store/store_conformance_test.h"

namespace possync {
namespace {

using store_test::TempDir;
namespace fs = std::filesystem;

class Connection {
 public:
  Connection(const fs::path& path, const char* vfs) {
    const int rc =
        sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs);
    EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errstr(rc);
  }
  ~Connection() { sqlite3_close_v2(db_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }
  const char* error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteWalVfsTest : public testing::Test {
 protected:
  // A writer like SqliteStore's: WAL, no sync at COMMIT, no automatic checkpoint.
  std::unique_ptr<Connection> open_writer() {
    auto c = std::make_unique<Connection>(db_, sqlite_wal_vfs_name());
    EXPECT_EQ(c->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                      "PRAGMA wal_autocheckpoint=0; "
                      "CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, v TEXT NOT NULL);"),
              SQLITE_OK)
        << c->error();
    return c;
  }
  // One transaction of `rows` rows of about 1 KB each (four to a 4 KiB page).
  static int insert(Connection& c, int first, int rows) {
    return c.exec("BEGIN IMMEDIATE; WITH RECURSIVE n(i) AS (SELECT " + std::to_string(first) +
                  " UNION ALL SELECT i + 1 FROM n WHERE i < " + std::to_string(first + rows - 1) +
                  ") INSERT INTO t SELECT i, printf('%.1000c', 'x') FROM n; COMMIT;");
  }
  TempDir dir_;
  const fs::path db_ = dir_.path() / "vfs.db";
};

TEST_F(SqliteWalVfsTest, ACommitIsOneWriteAndVisibleWhenCommitReturns) {
  auto writer = open_writer();
  Connection reader(db_, nullptr);
  for (int round = 0; round < 3; ++round) {
    const auto before = sqlite_wal_vfs_stats();
    ASSERT_EQ(insert(*writer, round * 400, 400), SQLITE_OK) << writer->error();
    const auto after = sqlite_wal_vfs_stats();
    // About 100 pages, two writes each (frame header, page), go to the file together.
    EXPECT_GE(after.writes_gathered - before.writes_gathered, 200u);
    EXPECT_EQ(after.flushes - before.flushes, 1u);
    EXPECT_LE(after.writes_issued - before.writes_issued, 4u);
    EXPECT_EQ(reader.text("SELECT count(*) FROM t"), std::to_string((round + 1) * 400));
  }
}

TEST_F(SqliteWalVfsTest, ATransactionLargerThanTheBufferIsWrittenInParts) {
  auto writer = open_writer();
  const auto before = sqlite_wal_vfs_stats();
  ASSERT_EQ(insert(*writer, 0, 12000), SQLITE_OK) << writer->error();  // ~12 MB of pages
  EXPECT_GE(sqlite_wal_vfs_stats().flushes - before.flushes, 2u);
  Connection reader(db_, nullptr);
  EXPECT_EQ(reader.text("SELECT count(*) FROM t"), "12000");
  EXPECT_EQ(reader.text("PRAGMA integrity_check"), "ok");
}

// The buffer holds 8 MiB: with 4 KiB pages, frames of 4,120 bytes, the 2,037th frame of a
// transaction has its header in one write of the file and its page in the next. When that frame
// is the commit frame, its page must be in the file when COMMIT returns, as every other commit's.
TEST_F(SqliteWalVfsTest, ACommitFrameSplitByAFullBufferIsWholeInTheFile) {
  auto writer = open_writer();
  ASSERT_EQ(writer->text("PRAGMA page_size"), "4096");
  constexpr std::uintmax_t kFrameBytes = 24 + 4096;
  constexpr std::uintmax_t kSplitCommitFrame = 2037;
  const std::string wal = db_.string() + "-wal";
  // Inserts `rows` rows of one page each into a new table, in one transaction; returns the
  // frames it added to the WAL, or -1 if the WAL does not end with a whole frame after COMMIT.
  int table = 0;
  auto frames_of_insert = [&](int rows) -> long {
    const std::string name = "p" + std::to_string(table++);
    EXPECT_EQ(writer->exec("CREATE TABLE " + name + "(k INTEGER PRIMARY KEY, v TEXT NOT NULL)"),
              SQLITE_OK);
    const auto before = fs::file_size(wal);
    EXPECT_EQ(writer->exec("BEGIN IMMEDIATE; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
                           "i + 1 FROM n WHERE i < " +
                           std::to_string(rows) + ") INSERT INTO " + name +
                           " SELECT i, printf('%.3000c', 'x') FROM n; COMMIT;"),
              SQLITE_OK)
        << writer->error();
    const auto added = fs::file_size(wal) - before;
    return added % kFrameBytes == 0 ? static_cast<long>(added / kFrameBytes) : -1;
  };
  // A first transaction far from the split tells how many frames beyond its rows one takes (a
  // few more for a larger one: its B-tree has more interior pages).
  const long probe = frames_of_insert(1000);
  ASSERT_GT(probe, 1000);
  const long guess = static_cast<long>(kSplitCommitFrame) - (probe - 1000);
  bool split = false;
  long last_rows = 0;
  for (long r = guess - 8; !split && r <= guess + 2; ++r) {
    const long frames = frames_of_insert(static_cast<int>(r));
    ASSERT_NE(frames, -1) << "a commit of " << r << " rows left part of its last frame unwritten";
    split = frames == static_cast<long>(kSplitCommitFrame);
    last_rows = r;
  }
  EXPECT_TRUE(split) << "no transaction had its commit frame at the buffer's end";
  // What a kill -9 right now leaves on disk holds that last transaction whole.
  const fs::path copy = dir_.path() / "copy";
  fs::create_directory(copy);
  fs::copy_file(db_, copy / "vfs.db");
  fs::copy_file(wal, copy / "vfs.db-wal");
  Connection recovered(copy / "vfs.db", nullptr);
  EXPECT_EQ(recovered.text("SELECT count(*) FROM p" + std::to_string(table - 1)),
            std::to_string(last_rows));
  EXPECT_EQ(recovered.text("PRAGMA integrity_check"), "ok");
}

TEST_F(SqliteWalVfsTest, RecoveryAfterACrashFindsEveryCommit) {
  auto writer = open_writer();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(insert(*writer, i * 100, 100), SQLITE_OK);
  // An uncommitted transaction's frames may be in the WAL too; recovery must ignore them.
  ASSERT_EQ(writer->exec("BEGIN IMMEDIATE; INSERT INTO t VALUES(-1, 'lost');"), SQLITE_OK);
  // A copy of the files while the writer is open is what a kill -9 leaves on disk.
  const fs::path copy = dir_.path() / "copy";
  fs::create_directory(copy);
  fs::copy_file(db_, copy / "vfs.db");
  fs::copy_file(db_.string() + "-wal", copy / "vfs.db-wal");
  Connection recovered(copy / "vfs.db", nullptr);
  EXPECT_EQ(recovered.text("SELECT count(*) FROM t"), "500");
  EXPECT_EQ(recovered.text("SELECT count(*) FROM t WHERE k = -1"), "0");
  EXPECT_EQ(recovered.text("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(writer->exec("ROLLBACK"), SQLITE_OK);
}

TEST_F(SqliteWalVfsTest, AFailedWriteFailsTheCommitAndKeepsTheDatabase) {
  auto writer = open_writer();
  ASSERT_EQ(insert(*writer, 0, 100), SQLITE_OK);
  // Files may not grow past their size now: the next transaction's WAL write fails (EFBIG).
  const auto wal_size = fs::file_size(db_.string() + "-wal");
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto previous_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit limited = old;
  limited.rlim_cur = wal_size + 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  const int rc = insert(*writer, 100, 400);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, previous_handler);

  EXPECT_NE(rc, SQLITE_OK);
  writer->exec("ROLLBACK");  // SQLite may already have rolled back
  Connection reader(db_, nullptr);
  EXPECT_EQ(reader.text("SELECT count(*) FROM t"), "100");
  // The writer goes on once the file may grow again.
  ASSERT_EQ(insert(*writer, 100, 400), SQLITE_OK) << writer->error();
  EXPECT_EQ(reader.text("SELECT count(*) FROM t"), "500");
  EXPECT_EQ(reader.text("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace possync
