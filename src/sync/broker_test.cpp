// Broker and Hub::publish_in_order: one restaurant's changes reach a room in seq order, once, when
// this node's commits and other nodes' commits (announced on a ChangeFeed) interleave.
//
// "Other nodes" commit to the same MemoryStore directly; their notices are pushed to a ChangeFeed
// the test controls. The PostgreSQL feed itself is tested in postgres_store_test.cpp and the whole
// against real servers in tests/integration/test_multinode.py.
#include "sync/broker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "store/memory_store.h"

namespace possync {
namespace {

using namespace std::chrono_literals;

ChangeRequest req(std::string restaurant, std::string change_id) {
  ChangeRequest r;
  r.change.restaurant_id = std::move(restaurant);
  r.change.device_id = "dev";
  r.change.change_id = std::move(change_id);
  r.change.data_type = DataType::orders;
  r.change.action = "updated";
  r.change.record_id = "o1";
  return r;
}

// Records the seqs delivered to it.
class Recorder final : public Subscriber {
 public:
  void deliver(std::shared_ptr<const DeliveryBatch> batch) override {
    std::lock_guard lock(mutex_);
    for (const auto& d : *batch) seqs_.push_back(d.seq);
    cv_.notify_all();
  }
  DeviceStatus status() const override { return {"viewer", "", 0, 0}; }
  void disconnect(std::uint16_t, std::string) override {}
  void notify(std::shared_ptr<const std::string>) override {}

  std::vector<std::uint64_t> seqs() const {
    std::lock_guard lock(mutex_);
    return seqs_;
  }
  // Waits until `n` deliveries arrived (or a few seconds passed); returns them.
  std::vector<std::uint64_t> wait_for(std::size_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, 5s, [&] { return seqs_.size() >= n; });
    return seqs_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::uint64_t> seqs_;
};

// A ChangeFeed the test feeds by hand.
class ManualFeed final : public ChangeFeed {
 public:
  void push(FeedEvents ev) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(ev));
    cv_.notify_all();
  }
  FeedEvents wait(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || interrupted_; });
    interrupted_ = false;
    if (queue_.empty()) return {};
    FeedEvents ev = std::move(queue_.front());
    queue_.pop_front();
    return ev;
  }
  void interrupt() override {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<FeedEvents> queue_;
  bool interrupted_ = false;
};

std::string render(const LogEntry& e) {
  return std::to_string(e.seq);
}

std::vector<Outcome> commit(Store& store, std::vector<ChangeRequest> batch) {
  auto r = store.commit(batch, {1, 0});
  EXPECT_TRUE(r.has_value());
  return r ? std::move(*r) : std::vector<Outcome>{};
}

FeedEvents notice(std::string restaurant, std::uint64_t first, std::uint64_t last) {
  FeedEvents ev;
  ev.notices.push_back({std::move(restaurant), first, last});
  return ev;
}

using Seqs = std::vector<std::uint64_t>;

TEST(HubPublishInOrder, SkipsWhatWasPublishedAndStopsAtAGap) {
  auto store = make_memory_store();
  Hub hub(render);
  auto viewer = std::make_shared<Recorder>();
  EXPECT_FALSE(hub.publish_in_order("R", {}).has_value());  // no room
  hub.join("R", viewer);
  const auto outcomes =
      commit(*store, {req("R", "a"), req("R", "b"), req("R", "c"), req("R", "d"), req("R", "e")});
  EXPECT_EQ(hub.publish_in_order("R", std::span(outcomes).subspan(0, 2)), 2u);
  EXPECT_EQ(hub.publish_in_order("R", std::span(outcomes).subspan(3, 2)), 2u);  // gap: 3 missing
  EXPECT_EQ(hub.publish_in_order("R", outcomes), 5u);  // 1, 2 again are skipped
  EXPECT_EQ(viewer->seqs(), (Seqs{1, 2, 3, 4, 5}));
  // Seqs that can no longer be read count as published.
  const auto later = commit(*store, {req("R", "f"), req("R", "g"), req("R", "h")});
  EXPECT_EQ(hub.publish_in_order("R", std::span(later).subspan(2, 1), 7), 8u);
  EXPECT_EQ(viewer->seqs(), (Seqs{1, 2, 3, 4, 5, 8}));
}

TEST(HubPublishInOrder, NewRoomStartsAtTheGivenStart) {
  Hub hub(render);
  hub.set_room_start([](const std::string& r) -> std::optional<std::uint64_t> {
    if (r == "unreadable") return std::nullopt;
    return 41;
  });
  EXPECT_EQ(hub.join("R", std::make_shared<Recorder>()).published_seq, 41u);
  EXPECT_EQ(hub.published_seq("R"), 41u);
  EXPECT_EQ(hub.join("unreadable", std::make_shared<Recorder>()).published_seq, 0u);
}

class BrokerTest : public testing::Test {
 protected:
  BrokerTest() : store_(make_memory_store()), hub_(render) {
    auto feed = std::make_unique<ManualFeed>();
    feed_ = feed.get();
    broker_ = std::make_unique<Broker>(*store_, hub_, std::move(feed), Broker::Options{2});
  }
  ~BrokerTest() override { broker_->stop(); }

  std::unique_ptr<Store> store_;
  Hub hub_;
  ManualFeed* feed_;
  std::unique_ptr<Broker> broker_;
};

TEST_F(BrokerTest, NewRoomStartsAtTheHeadAndOwnCommitsArePublishedAtOnce) {
  commit(*store_, {req("R", "old1"), req("R", "old2")});
  auto viewer = std::make_shared<Recorder>();
  EXPECT_EQ(hub_.join("R", viewer).published_seq, 2u);
  broker_->publish_local(commit(*store_, {req("R", "a"), req("R", "b")}));
  EXPECT_EQ(viewer->seqs(), (Seqs{3, 4}));  // synchronously, on the committing thread
  feed_->push(notice("R", 3, 4));           // its own notice: nothing more
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(viewer->seqs(), (Seqs{3, 4}));
}

TEST_F(BrokerTest, OtherNodesCommitsAreReadFromTheLogInPages) {
  auto viewer = std::make_shared<Recorder>();
  hub_.join("R", viewer);
  commit(*store_, {req("R", "x1"), req("R", "x2"), req("R", "x3"), req("R", "x4"), req("R", "x5")});
  feed_->push(notice("R", 1, 5));
  EXPECT_EQ(viewer->wait_for(5), (Seqs{1, 2, 3, 4, 5}));
  commit(*store_, {req("OTHER", "o1")});
  feed_->push(notice("OTHER", 1, 1));  // no room here: ignored
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(hub_.has_room("OTHER"));
  EXPECT_EQ(viewer->seqs().size(), 5u);
}

// While this node is overloaded, other nodes' changes stay in the log; once the gate opens they are
// read and published, in order, none lost.
TEST(BrokerBackpressure, OtherNodesChangesWaitInTheLogWhileTheGateIsClosed) {
  auto store = make_memory_store();
  Hub hub(render);
  Backpressure gate({.max_queued_changes = 0, .max_fanout_backlog = 100});
  auto feed = std::make_unique<ManualFeed>();
  ManualFeed* manual = feed.get();
  Broker broker(*store, hub, std::move(feed), {.page = 2, .backpressure = &gate});
  auto viewer = std::make_shared<Recorder>();
  hub.join("R", viewer);
  auto load = std::make_unique<Backpressure::Charge>(gate, 100);  // closes the gate
  commit(*store, {req("R", "x1"), req("R", "x2"), req("R", "x3")});
  manual->push(notice("R", 1, 3));
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(viewer->seqs().empty());
  load.reset();  // the backlog drained
  EXPECT_EQ(viewer->wait_for(3), (Seqs{1, 2, 3}));
  broker.stop();
}

TEST_F(BrokerTest, OwnCommitAfterAnUnpublishedOneWaitsForTheGapToBeFilled) {
  auto viewer = std::make_shared<Recorder>();
  hub_.join("R", viewer);
  commit(*store_, {req("R", "other-node")});                    // seq 1, its notice not here yet
  broker_->publish_local(commit(*store_, {req("R", "mine")}));  // seq 2
  // 2 is not published before 1: the broker reads 1 and 2 from the log.
  EXPECT_EQ(viewer->wait_for(2), (Seqs{1, 2}));
  feed_->push(notice("R", 1, 1));  // the late notice changes nothing
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(viewer->seqs(), (Seqs{1, 2}));
}

TEST_F(BrokerTest, ResyncCatchesUpEveryRoom) {
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  hub_.join("A", a);
  hub_.join("B", b);
  commit(*store_, {req("A", "a1"), req("B", "b1"), req("A", "a2")});  // notices lost
  FeedEvents ev;
  ev.resync = true;
  feed_->push(ev);
  EXPECT_EQ(a->wait_for(2), (Seqs{1, 2}));
  EXPECT_EQ(b->wait_for(1), (Seqs{1}));
}

// A store whose head() can be made to fail (as while the database is unreachable).
class HeadlessStore final : public Store {
 public:
  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    return inner_->commit(batch, options);
  }
  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    ++reads;
    if (before_read) std::exchange(before_read, nullptr)();
    return inner_->read_log(r, after, limit);
  }
  Result<Snapshot> snapshot(std::string_view r) override { return inner_->snapshot(r); }
  Result<LogHead> head(std::string_view r) override {
    if (down) return Error{errc::kStoreUnavailable, "down"};
    return inner_->head(r);
  }
  std::string describe() const override { return "headless"; }
  std::atomic<bool> down{false};
  std::atomic<int> reads{0};
  std::function<void()> before_read;  // runs once, at the next read_log

 private:
  std::unique_ptr<Store> inner_ = make_memory_store();
};

// A Broker (pages of 2) on a HeadlessStore, its feed fed by hand.
class BrokerRoomStart : public ::testing::Test {
 protected:
  HeadlessStore store;
  Hub hub{render};
  ManualFeed* feed = nullptr;  // owned by the broker
  Broker broker{store, hub,
                [this] {
                  auto owner = std::make_unique<ManualFeed>();
                  feed = owner.get();
                  return owner;
                }(),
                Broker::Options{2}};
};

TEST_F(BrokerRoomStart, RoomCreatedWhileTheStoreIsDownStartsAtTheHeadOnceItIsBack) {
  commit(store, {req("R", "h1"), req("R", "h2"), req("R", "h3")});  // history

  store.down = true;
  auto viewer = std::make_shared<Recorder>();
  EXPECT_EQ(hub.join("R", viewer).published_seq, 0u);
  EXPECT_TRUE(hub.needs_start("R"));
  store.down = false;
  FeedEvents ev;
  ev.resync = true;  // the feed reconnected
  feed->push(ev);
  for (int i = 0; i < 100 && hub.needs_start("R"); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(hub.needs_start("R"));
  EXPECT_EQ(hub.published_seq("R"), 3u);
  broker.publish_local(commit(store, {req("R", "new")}));
  EXPECT_EQ(viewer->wait_for(1), (Seqs{4}));  // the history was not replayed
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(viewer->seqs(), (Seqs{4}));
  broker.stop();
}

TEST_F(BrokerRoomStart, ARoomMadeAgainWithoutAStartDuringACatchUpDoesNotSpinIt) {
  auto first = std::make_shared<Recorder>();
  hub.join("R", first);  // the room starts at 0
  commit(store, {req("R", "c1"), req("R", "c2"), req("R", "c3"), req("R", "c4")});
  // While the broker reads the first page, the room empties and is made again while the store's
  // head cannot be read: the new room's start is unknown, and it publishes nothing yet.
  auto second = std::make_shared<Recorder>();
  store.before_read = [&] {
    hub.leave("R", first.get());
    store.down = true;
    hub.join("R", second);
    store.down = false;
  };
  feed->push(notice("R", 1, 4));
  // The next pass gives the room its start (the head, 4); the broker does not read forever.
  for (int i = 0; i < 200 && hub.published_seq("R") != 4u; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(store.before_read);
  EXPECT_FALSE(hub.needs_start("R"));
  EXPECT_EQ(hub.published_seq("R"), 4u);
  const int reads = store.reads;
  std::this_thread::sleep_for(100ms);
  EXPECT_LE(store.reads - reads, 2) << "the broker keeps reading the same page";
  broker.publish_local(commit(store, {req("R", "c5")}));
  EXPECT_EQ(second->wait_for(1), (Seqs{5}));
  broker.stop();
}

TEST_F(BrokerTest, NoticeForAnyRestaurantCatchesUpEveryRoom) {
  auto a = std::make_shared<Recorder>();
  hub_.join("A", a);
  commit(*store_, {req("A", "a1")});
  feed_->push(notice("", 1, 1));
  EXPECT_EQ(a->wait_for(1), (Seqs{1}));
}

}  // namespace
}  // namespace possync
