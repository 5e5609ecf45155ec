// PostgresStore against a real PostgreSQL server (ctest label `postgres`): the conformance suite
// (store_conformance_test.cpp) plus what only a shared database has: several stores (nodes)
// committing to the same restaurants, schema migrations run by nodes starting together, commit
// notices, and reconnecting after the server dropped the connections.
//
// The server's URL comes from POSSYNC_TEST_PG_URL (scripts/pg-test-cluster starts a throwaway
// one); every test fails if it is unset. Each test gets a database of its own, dropped at its end.
#include <libpq-fe.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "store/pg_connection.h"
#include "store/postgres_store.h"
#include "store/store_conformance_test.h"

namespace possync::store_test {
namespace {

std::string base_url() {
  const char* url = std::getenv("POSSYNC_TEST_PG_URL");
  return url ? url : "";
}

// `url` with its database name replaced by `database`.
std::string url_with_database(const std::string& url, const std::string& database) {
  const auto scheme = url.find("://");
  const auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const auto query = url.find('?');
  const std::string head = url.substr(0, std::min(slash, query));
  const std::string tail = query == std::string::npos ? "" : url.substr(query);
  return head + "/" + database + tail;
}

// Runs one statement on the server's maintenance database.
void admin(const std::string& sql) {
  PgConnection c(base_url());
  c.ensure();
  c.exec(sql.c_str());
}

// A fresh database for one test, dropped (with any connection still open) on destruction.
class TestDatabase {
 public:
  TestDatabase() {
    static std::atomic<int> counter{0};
    name_ = "possync_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    admin("CREATE DATABASE " + name_);
    url_ = url_with_database(base_url(), name_);
  }
  ~TestDatabase() {
    try {
      admin("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception& e) {
      ADD_FAILURE() << "cannot drop " << name_ << ": " << e.what();
    }
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_, url_;
};

std::unique_ptr<Store> open_at(const std::string& url, std::size_t readers = 2) {
  auto store = open_postgres_store({url, readers});
  if (!store) {
    ADD_FAILURE() << "open_postgres_store: " << store.error().message;
    return nullptr;
  }
  return std::move(*store);
}

// The conformance suite's store: a PostgresStore on a database of its own, which goes with it.
class StoreOnOwnDatabase final : public Store {
 public:
  StoreOnOwnDatabase() : store_(open_at(db_.url())) {}
  bool ok() const { return store_ != nullptr; }
  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    return store_->commit(batch, options);
  }
  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    return store_->read_log(r, after, limit);
  }
  Result<Snapshot> snapshot(std::string_view r) override { return store_->snapshot(r); }
  Result<LogHead> head(std::string_view r) override { return store_->head(r); }
  Result<bool> put_legacy_device(const LegacyDevice& d) override {
    return store_->put_legacy_device(d);
  }
  Result<bool> remove_legacy_device(std::string_view r, std::string_view d) override {
    return store_->remove_legacy_device(r, d);
  }
  Result<std::vector<LegacyDevice>> legacy_devices(std::string_view r) override {
    return store_->legacy_devices(r);
  }
  Result<std::vector<LegacyDevice>> all_legacy_devices() override {
    return store_->all_legacy_devices();
  }
  std::string describe() const override { return store_->describe(); }

 private:
  TestDatabase db_;  // declared first: dropped after the store is closed
  std::unique_ptr<Store> store_;
};

std::unique_ptr<Store> open_postgres_for_test(const fs::path&) {
  if (base_url().empty()) {
    ADD_FAILURE() << "POSSYNC_TEST_PG_URL is not set (scripts/pg-test-cluster start sets it)";
    return nullptr;
  }
  auto store = std::make_unique<StoreOnOwnDatabase>();
  if (!store->ok()) return nullptr;
  return store;
}

INSTANTIATE_TEST_SUITE_P(PostgresStores, StoreConformance,
                         testing::Values(StoreFactory{"Postgres", open_postgres_for_test}),
                         [](const testing::TestParamInfo<StoreFactory>& info) {
                           return std::string(info.param.name);
                         });

// ---- PostgreSQL only ----

class PostgresStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(base_url().empty())
        << "POSSYNC_TEST_PG_URL is not set (scripts/pg-test-cluster start sets it)";
    db_ = std::make_unique<TestDatabase>();
  }
  void TearDown() override { db_.reset(); }
  const std::string& url() const { return db_->url(); }
  static std::vector<Outcome> commit(Store& s, std::vector<ChangeRequest> batch) {
    auto r = s.commit(batch, {kNow, 0});
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    return r ? std::move(*r) : std::vector<Outcome>{};
  }
  // `count` stores on this test's database, as `count` nodes (null where one could not open).
  std::vector<std::unique_ptr<Store>> open_nodes(int count) const {
    std::vector<std::unique_ptr<Store>> nodes;
    for (int i = 0; i < count; ++i) nodes.push_back(open_at(url()));
    return nodes;
  }
  // Runs SQL on this test's database.
  void sql(const std::string& statement) {
    PgConnection c(url());
    c.ensure();
    c.exec(statement.c_str());
  }
  std::unique_ptr<TestDatabase> db_;
};

TEST_F(PostgresStoreTest, TestDatabaseUrlIsSet) {
  EXPECT_FALSE(base_url().empty());
}

TEST_F(PostgresStoreTest, DescribeHidesThePassword) {
  EXPECT_EQ(redact_pg_url("postgresql://u:secret@h:5/db"), "postgresql://u:***@h:5/db");
  EXPECT_EQ(redact_pg_url("postgres://u@h/db"), "postgres://u@h/db");
  auto store = open_at(url());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->describe(), url());
}

TEST_F(PostgresStoreTest, OpenFailsWhenTheServerIsUnreachable) {
  // Port 1: nothing listens there.
  const std::string url = "postgresql://postgres@127.0.0.1:1/possync?connect_timeout=2";
  auto store = open_postgres_store({url, 1});
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error().code, "store_unavailable");
}

TEST_F(PostgresStoreTest, DataSurvivesCloseAndReopen) {
  {
    auto store = open_at(url());
    ASSERT_NE(store, nullptr);
    commit(*store, {upd("c1", "o1", R"({"n":1})"), upd("c2", "o2")});
  }
  auto store = open_at(url());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->head("r1")->seq, 2u);
  const auto outcomes = commit(*store, {upd("c1", "o1"), upd("c3", "o1")});
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[0].seq, 1u);
  EXPECT_EQ(outcomes[1].seq, 3u);
}

TEST_F(PostgresStoreTest, NodesStartingTogetherMigrateOnce) {
  constexpr int kNodes = 6;
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  std::vector<std::string> errors(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    threads.emplace_back([&, i] {
      auto store = open_postgres_store({url(), 1});
      if (store) {
        ++opened;
      } else {
        errors[i] = store.error().message;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(opened.load(), kNodes);
  PgConnection c(url());
  c.ensure();
  const auto rows = c.exec("SELECT version FROM schema_migrations ORDER BY version");
  ASSERT_EQ(rows.rows(), 2);  // each version once
  EXPECT_EQ(rows.int64(0, 0), 1);
  EXPECT_EQ(rows.int64(1, 0), 2);
}

TEST_F(PostgresStoreTest, NewerSchemaIsRefused) {
  ASSERT_NE(open_at(url()), nullptr);
  sql("INSERT INTO schema_migrations(version) VALUES(999)");
  auto store = open_postgres_store({url(), 1});
  ASSERT_FALSE(store.has_value());
  EXPECT_NE(store.error().message.find("999"), std::string::npos) << store.error().message;
}

// Two stores are two nodes: their commits to the same restaurants interleave, yet seqs stay
// gapless and a change id sent to both is applied once.
TEST_F(PostgresStoreTest, ConcurrentNodesKeepSeqsGaplessAndChangeIdsUnique) {
  constexpr int kNodes = 3;
  constexpr int kBatches = 40;
  auto nodes = open_nodes(kNodes);
  for (const auto& node : nodes) ASSERT_NE(node, nullptr);
  std::vector<std::vector<Outcome>> outcomes(kNodes);
  std::vector<std::string> errors;
  std::mutex errors_mutex;
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      for (int b = 0; b < kBatches; ++b) {
        // Each batch touches both restaurants, in an order that differs between nodes, and one
        // change id that every node sends.
        std::vector<ChangeRequest> batch;
        const std::string first = n % 2 ? "A" : "B", second = n % 2 ? "B" : "A";
        batch.push_back(upd(fmt::format("n{}-b{}-1", n, b), "o1", "{}", first));
        batch.push_back(upd(fmt::format("shared-{}", b), "o2", "{}", "A"));
        batch.push_back(upd(fmt::format("n{}-b{}-2", n, b), "o3", "{}", second));
        auto r = nodes[n]->commit(batch, {kNow, 0});
        if (!r) {
          std::lock_guard lock(errors_mutex);
          errors.push_back(r.error().message);
          continue;
        }
        outcomes[n].insert(outcomes[n].end(), r->begin(), r->end());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();

  for (const char* restaurant : {"A", "B"}) {
    SCOPED_TRACE(restaurant);
    auto page = nodes[0]->read_log(restaurant, 0, 100000);
    ASSERT_TRUE(page.has_value());
    std::set<std::string> ids;
    for (std::size_t i = 0; i < page->entries.size(); ++i) {
      EXPECT_EQ(page->entries[i].seq, i + 1);
      EXPECT_TRUE(ids.insert(page->entries[i].change.change_id).second)
          << page->entries[i].change.change_id << " is in the log twice";
    }
    EXPECT_EQ(page->head.seq, page->entries.size());
  }
  // Every shared change id was applied by exactly one node; the others got its seq.
  std::map<std::string, std::uint64_t> applied_seq;
  std::map<std::string, int> applied_count;
  for (const auto& node : outcomes) {
    for (const auto& o : node) {
      if (o.status == OutcomeStatus::applied) {
        ++applied_count[o.change_id];
        applied_seq[o.change_id] = o.seq;
      }
    }
  }
  for (int b = 0; b < kBatches; ++b) {
    EXPECT_EQ(applied_count[fmt::format("shared-{}", b)], 1) << b;
  }
  for (const auto& node : outcomes) {
    for (const auto& o : node) {
      EXPECT_NE(o.status, OutcomeStatus::rejected) << o.change_id << ": " << o.error.message;
      if (o.status == OutcomeStatus::duplicate) {
        EXPECT_EQ(o.seq, applied_seq[o.change_id]);
      }
    }
  }
  // Each batch adds one own change to each restaurant, and A gets the shared one once.
  EXPECT_EQ(nodes[1]->head("A")->seq, static_cast<std::uint64_t>(kNodes * kBatches + kBatches));
  EXPECT_EQ(nodes[2]->head("B")->seq, static_cast<std::uint64_t>(kNodes * kBatches));
}

// The server ends a session of ours that a vanished node left idle inside a transaction (holding
// head locks every other node waits for), long before its TCP keepalive would.
TEST_F(PostgresStoreTest, SessionsLeftIdleInATransactionAreEndedByTheServer) {
  PgConnection c(url());
  c.ensure();
  EXPECT_EQ(c.exec("SHOW idle_in_transaction_session_timeout").text(0, 0), "10s");
}

// A database whose transactions default to REPEATABLE READ (a DBA's choice) changes nothing: the
// writer asks for READ COMMITTED, so a node that waited for another's head lock goes on from what
// that node committed instead of failing with a serialization error.
TEST_F(PostgresStoreTest, ConcurrentNodesCommitUnderAStricterDefaultIsolation) {
  sql("ALTER DATABASE " + db_->name() + " SET default_transaction_isolation = 'repeatable read'");
  constexpr int kNodes = 3;
  constexpr int kBatches = 30;
  auto nodes = open_nodes(kNodes);
  for (const auto& node : nodes) ASSERT_NE(node, nullptr);
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex mutex;
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<ChangeRequest> batch{upd(fmt::format("n{}-b{}", n, b), "o1", "{}", "A")};
        if (auto r = nodes[n]->commit(batch, {kNow, 0}); !r) {
          std::lock_guard lock(mutex);
          if (failures++ == 0) first_failure = r.error().message;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_EQ(nodes[0]->head("A")->seq, static_cast<std::uint64_t>(kNodes * kBatches));
}

// The restaurant rules across nodes: every node's adjustments count, each ticket prints once, a
// table gets one party, and there is one alert per crossing, as the log (in seq order) shows.
TEST_F(PostgresStoreTest, ConcurrentNodesHoldTheRestaurantRules) {
  constexpr int kNodes = 3;
  constexpr int kBatches = 30;
  auto nodes = open_nodes(kNodes);
  for (const auto& node : nodes) ASSERT_NE(node, nullptr);
  auto make = [](DataType type, std::string action, std::string change_id, std::string record,
                 json::object data) {
    ChangeSpec s;
    s.restaurant = "A";
    s.type = type;
    s.action = std::move(action);
    s.change_id = std::move(change_id);
    s.record_id = std::move(record);
    s.data = json::serialize(data);
    return request(s);
  };
  commit(*nodes[0], {make(DataType::inventory, "item_added", "init", "i1",
                          {{"current_stock", 20}, {"min_stock", 10}}),
                     make(DataType::orders, "created", "o-a", "oa", {{"status", "pending"}}),
                     make(DataType::orders, "created", "o-b", "ob", {{"status", "pending"}}),
                     make(DataType::orders, "created", "o-c", "oc", {{"status", "pending"}})});
  std::atomic<std::int64_t> sum{20};
  std::vector<std::vector<Outcome>> outcomes(kNodes);
  std::vector<std::thread> threads;
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&, n] {
      for (int b = 0; b < kBatches; ++b) {
        // Deltas that cross the minimum and zero often: -3 .. +2 around 20.
        const std::int64_t delta = ((n * 7 + b * 5) % 6) - 3;
        std::vector<ChangeRequest> batch;
        batch.push_back(make(DataType::inventory, "adjust", fmt::format("n{}-a{}", n, b), "i1",
                             {{"delta", delta}}));
        batch.push_back(make(DataType::printers, "print_job", fmt::format("n{}-p{}", n, b), "p1",
                             {{"ticket_id", fmt::format("T{}", b)}}));
        const std::string party = std::string("o") + "abc"[n];
        batch.push_back(make(DataType::tables, "occupied", fmt::format("n{}-t{}", n, b), "t1",
                             {{"status", "occupied"}, {"order_id", party}}));
        auto r = nodes[n]->commit(batch, {kNow, 0});
        ASSERT_TRUE(r.has_value()) << r.error().message;
        sum += delta;
        outcomes[n].insert(outcomes[n].end(), r->begin(), r->end());
      }
    });
  }
  for (auto& t : threads) t.join();

  auto page = nodes[1]->read_log("A", 0, 100000);
  ASSERT_TRUE(page.has_value());
  std::int64_t stock = 20;
  int low = 0, negative = 0, expected_low = 0, expected_negative = 0, prints = 0;
  std::set<std::string> tickets, seated;
  for (std::size_t i = 0; i < page->entries.size(); ++i) {
    const LogEntry& e = page->entries[i];
    ASSERT_EQ(e.seq, i + 1);
    if (e.change.action == "adjust") {
      const std::int64_t before = stock;
      stock += e.change.data.at("delta").to_number<std::int64_t>();
      EXPECT_EQ(e.change.data.at("current_stock"), json::value(stock)) << e.seq;
      if (before > 10 && stock <= 10) ++expected_low;
      if (before >= 0 && stock < 0) ++expected_negative;
    }
    if (e.change.action == "low_stock_alert") ++low;
    if (e.change.action == "negative_stock") ++negative;
    if (e.change.action == "print_job") {
      ++prints;
      EXPECT_TRUE(tickets.insert(std::string(e.change.data.at("ticket_id").as_string())).second);
    }
    if (e.change.data_type == DataType::tables) {
      seated.insert(std::string(e.change.data.at("order_id").as_string()));
    }
  }
  EXPECT_EQ(stock, sum.load());
  EXPECT_EQ(field_of(*nodes[2], "A", DataType::inventory, "i1", "current_stock"),
            json::value(sum.load()));
  EXPECT_EQ(low, expected_low);
  EXPECT_EQ(negative, expected_negative);
  EXPECT_GT(expected_low, 0);
  EXPECT_EQ(prints, kBatches);
  EXPECT_EQ(seated.size(), 1u);  // the first party seated keeps the table
  int occupied = 0;
  for (const auto& node : outcomes) {
    for (const auto& o : node) {
      if (o.error.code == "table_occupied") ++occupied;
      if (o.status == OutcomeStatus::rejected) {
        EXPECT_EQ(o.error.code, "table_occupied");
      }
    }
  }
  EXPECT_GT(occupied, 0);
}

// The first wait of a feed connects it, and reports that anything before may have been missed.
void connect_feed(ChangeFeed* feed) {
  ASSERT_NE(feed, nullptr);
  FeedEvents first;
  for (int i = 0; i < 50 && !first.resync; ++i) first = feed->wait(std::chrono::milliseconds(100));
  ASSERT_TRUE(first.resync);
}

TEST_F(PostgresStoreTest, CommitsAreAnnouncedOnTheChangeFeed) {
  auto writer = open_at(url());
  auto reader = open_at(url());
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  auto feed = reader->open_change_feed();
  ASSERT_NO_FATAL_FAILURE(connect_feed(feed.get()));

  commit(*writer,
         {upd("c1", "o1", "{}", "R1"), upd("c2", "o1", "{}", "R2"), upd("c3", "o2", "{}", "R1")});
  commit(*writer, {upd("c4", "o1", "{}", "R1")});
  commit(*writer, {upd("c4", "o1", "{}", "R1")});  // a duplicate: no notice
  std::vector<CommitNotice> got;
  for (int i = 0; i < 50 && got.size() < 3; ++i) {
    auto ev = feed->wait(std::chrono::milliseconds(100));
    EXPECT_FALSE(ev.resync);
    got.insert(got.end(), ev.notices.begin(), ev.notices.end());
  }
  auto quiet = feed->wait(std::chrono::milliseconds(300));
  got.insert(got.end(), quiet.notices.begin(), quiet.notices.end());
  ASSERT_EQ(got.size(), 3u);
  std::map<std::string, std::vector<std::pair<std::uint64_t, std::uint64_t>>> by_restaurant;
  for (const auto& n : got) by_restaurant[n.restaurant].emplace_back(n.first_seq, n.last_seq);
  using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;
  EXPECT_EQ(by_restaurant["R1"], (Ranges{{1, 2}, {3, 3}}));
  EXPECT_EQ(by_restaurant["R2"], (Ranges{{1, 1}}));
}

TEST_F(PostgresStoreTest, LegacyDeviceChangesAreAnnouncedOnTheirOwnFeed) {
  auto writer = open_at(url());
  auto reader = open_at(url());
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  auto feed = reader->open_legacy_device_feed();
  ASSERT_NO_FATAL_FAILURE(connect_feed(feed.get()));

  ASSERT_TRUE(writer->put_legacy_device({"R1", "pos-1", {"10.0.0.0/8"}, "pos", kNow}).value());
  commit(*writer, {upd("c1", "o1", "{}", "R2")});  // a commit: not on this feed
  ASSERT_TRUE(writer->remove_legacy_device("R1", "pos-1").value());
  EXPECT_FALSE(writer->remove_legacy_device("R3", "none").value());  // still announced
  std::vector<CommitNotice> got;
  for (int i = 0; i < 50 && got.size() < 3; ++i) {
    auto ev = feed->wait(std::chrono::milliseconds(100));
    got.insert(got.end(), ev.notices.begin(), ev.notices.end());
  }
  auto quiet = feed->wait(std::chrono::milliseconds(300));
  got.insert(got.end(), quiet.notices.begin(), quiet.notices.end());
  std::vector<std::string> restaurants;
  for (const auto& n : got) {
    restaurants.push_back(n.restaurant);
    EXPECT_EQ(n.first_seq, 0u);
    EXPECT_EQ(n.last_seq, 0u);
  }
  EXPECT_EQ(restaurants, (std::vector<std::string>{"R1", "R1", "R3"}));

  // What one node wrote, the other reads at once.
  ASSERT_TRUE(writer->put_legacy_device({"R1", "pos-2", {}, "kds", kNow}).value());
  auto seen = reader->legacy_devices("R1");
  ASSERT_TRUE(seen.has_value()) << seen.error().message;
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ(seen->at(0).role, "kds");
}

TEST_F(PostgresStoreTest, ReconnectsAfterTheServerDroppedItsConnections) {
  auto store = open_at(url());
  ASSERT_NE(store, nullptr);
  commit(*store, {upd("c1", "o1")});
  ASSERT_TRUE(store->head("r1").has_value());
  auto terminate_all = [&] {
    admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db_->name() +
          "' AND pid <> pg_backend_pid()");
  };
  terminate_all();
  // Nothing was in flight: the next calls reconnect by themselves.
  auto r = store->commit(std::vector<ChangeRequest>{upd("c2", "o1")}, {kNow, 0});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->at(0).seq, 2u);
  auto h = store->head("r1");
  ASSERT_TRUE(h.has_value()) << h.error().message;
  EXPECT_EQ(h->seq, 2u);
  EXPECT_TRUE(store->ping().has_value());

  // While the database refuses connections, commits and reads fail with a retryable error...
  admin("ALTER DATABASE " + db_->name() + " ALLOW_CONNECTIONS false");
  terminate_all();
  auto failed = store->commit(std::vector<ChangeRequest>{upd("c3", "o1")}, {kNow, 0});
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code, "store_unavailable");
  auto failed_read = store->read_log("r1", 0, 10);
  ASSERT_FALSE(failed_read.has_value());
  EXPECT_EQ(failed_read.error().code, "store_unavailable");
  EXPECT_FALSE(store->ping().has_value());

  // ...and once it accepts them again, the store carries on where it was.
  admin("ALTER DATABASE " + db_->name() + " ALLOW_CONNECTIONS true");
  auto again = store->commit(std::vector<ChangeRequest>{upd("c3", "o1")}, {kNow, 0});
  ASSERT_TRUE(again.has_value()) << again.error().message;
  EXPECT_EQ(again->at(0).status, OutcomeStatus::applied);
  EXPECT_EQ(again->at(0).seq, 3u);
  auto page = store->read_log("r1", 0, 10);
  ASSERT_TRUE(page.has_value()) << page.error().message;
  EXPECT_EQ(seqs_of(*page), (Seqs{1, 2, 3}));
}

TEST_F(PostgresStoreTest, ChangeFeedResyncsAfterItsConnectionDropped) {
  auto store = open_at(url());
  ASSERT_NE(store, nullptr);
  auto feed = store->open_change_feed();
  FeedEvents ev;
  for (int i = 0; i < 50 && !ev.resync; ++i) ev = feed->wait(std::chrono::milliseconds(100));
  ASSERT_TRUE(ev.resync);
  admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + db_->name() +
        "' AND pid <> pg_backend_pid()");
  bool resynced = false;
  for (int i = 0; i < 100 && !resynced; ++i) {
    resynced = feed->wait(std::chrono::milliseconds(100)).resync;
  }
  EXPECT_TRUE(resynced);
}

}  // namespace
}  // namespace possync::store_test
