// CatchUp against a real MemoryStore and Hub (no sockets): a device that catches up and goes live
// receives every seq once, in order, whatever is committed while it reads; a resume on a live
// connection skips what it already delivered; a `since` outside the log asks for a reset.
#include "sync/catch_up.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "store/memory_store.h"

namespace possync {
namespace {

constexpr const char* kRestaurant = "r1";

// A device: what a WebSocket session does with its CatchUp, with the messages it would send
// written down instead ("e<seq>" read from the log, "l<seq>" delivered live, "reset", "caught_up").
class Device final : public Subscriber, public CatchUp::Sink {
 public:
  // Sink
  bool has_room() const override { return room_left_ > 0; }
  void entry(const LogEntry& e) override {
    sent.push_back(fmt::format("e{}", e.seq));
    seqs.push_back(e.seq);
    if (room_left_ > 0) --room_left_;
    if (on_entry) on_entry();
  }
  void reset_required(std::uint64_t head_seq, std::string_view) override {
    sent.push_back(fmt::format("reset{}", head_seq));
  }
  void caught_up(std::uint64_t seq) override { sent.push_back(fmt::format("caught_up{}", seq)); }

  // Subscriber: deliveries arrive on the publishing thread (a Hub without loops).
  void deliver(std::shared_ptr<const DeliveryBatch> batch) override {
    for (const Delivery& d : *batch) {
      if (!catch_up.live()) return;
      if (!catch_up.take_live(d.seq)) continue;
      sent.push_back(fmt::format("l{}", d.seq));
      seqs.push_back(d.seq);
    }
  }
  DeviceStatus status() const override { return {"device", "", 0, 0}; }
  void disconnect(std::uint16_t, std::string) override {}
  void notify(std::shared_ptr<const std::string>) override {}

  // Room for `n` more entries before has_room() says no (a bounded outbound queue).
  void give_room(std::size_t n) { room_left_ = n; }

  CatchUp catch_up;
  std::vector<std::string> sent;
  std::vector<std::uint64_t> seqs;  // the changes sent, from the log or live
  std::function<void()> on_entry;

 private:
  std::size_t room_left_ = 1'000'000;
};

class CatchUpTest : public ::testing::Test {
 protected:
  CatchUpTest() {
    // A room created after commits starts at the log's head (as a server's rooms do).
    hub_.set_room_start([this](const std::string& r) -> std::optional<std::uint64_t> {
      auto page = store_->read_log(r, 0, 1);
      if (!page) return std::nullopt;
      return page->head.seq;
    });
  }

  // Commits one change and publishes it, as the commit pipeline does.
  void commit(std::uint64_t retain = 0) {
    ChangeRequest r;
    r.change.restaurant_id = kRestaurant;
    r.change.device_id = "writer";
    r.change.change_id = fmt::format("c{}", ++changes_);
    r.change.data_type = DataType::orders;
    r.change.action = "updated";
    r.change.record_id = fmt::format("o{}", changes_);
    r.change.data["id"] = r.change.record_id;
    std::vector<ChangeRequest> batch;
    batch.push_back(std::move(r));
    auto outcomes = store_->commit(batch, {1, retain});
    ASSERT_TRUE(outcomes);
    hub_.publish(*outcomes);
  }

  std::shared_ptr<Device> connect() {
    auto device = std::make_shared<Device>();
    auto membership = hub_.join(kRestaurant, device);
    room_ = membership.room;
    device->catch_up.joined(membership.published_seq);
    return device;
  }

  void pump(Device& d, std::size_t page = 3) {
    auto failed = d.catch_up.pump(*store_, kRestaurant, page, *room_, d);
    ASSERT_FALSE(failed) << failed->message;
  }

  static std::vector<std::uint64_t> one_to(std::uint64_t n) {
    std::vector<std::uint64_t> v;
    for (std::uint64_t s = 1; s <= n; ++s) v.push_back(s);
    return v;
  }

  std::unique_ptr<Store> store_ = make_memory_store();
  Hub hub_{[](const LogEntry& e) { return std::to_string(e.seq); }};
  std::shared_ptr<Room> room_;
  int changes_ = 0;
};

TEST_F(CatchUpTest, ADeviceThatDoesNotCatchUpIsLiveFromWhereItJoined) {
  for (int i = 0; i < 4; ++i) commit();
  auto d = connect();
  EXPECT_TRUE(d->catch_up.live());
  EXPECT_EQ(d->catch_up.last_sent(), 4u);
  commit();
  commit();
  EXPECT_EQ(d->sent, (std::vector<std::string>{"l5", "l6"}));
}

TEST_F(CatchUpTest, ReadsPageByPageThenGoesLive) {
  for (int i = 0; i < 7; ++i) commit();
  auto d = connect();
  d->catch_up.start(2);
  EXPECT_FALSE(d->catch_up.live());
  EXPECT_FALSE(d->catch_up.take_live(8));  // a catching-up device takes nothing live
  pump(*d);
  EXPECT_TRUE(d->catch_up.live());
  commit();
  EXPECT_EQ(d->sent, (std::vector<std::string>{"e3", "e4", "e5", "e6", "e7", "caught_up7", "l8"}));
}

TEST_F(CatchUpTest, WaitsWhileTheQueueIsFullAndGoesOnWhenItDrains) {
  for (int i = 0; i < 6; ++i) commit();
  auto d = connect();
  d->give_room(4);
  d->catch_up.start(0);
  pump(*d);
  EXPECT_EQ(d->seqs, one_to(4));
  EXPECT_FALSE(d->catch_up.live());
  commit();  // published while the device waits: the log has it, the catch-up reads it
  EXPECT_EQ(d->seqs, one_to(4));
  d->give_room(100);
  pump(*d);
  EXPECT_TRUE(d->catch_up.live());
  commit();
  EXPECT_EQ(d->seqs, one_to(8));
  EXPECT_EQ(d->sent[7], "caught_up7");
}

TEST_F(CatchUpTest, ChangesCommittedWhileReadingAreReadNotMissedOrDoubled) {
  for (int i = 0; i < 5; ++i) commit();
  auto d = connect();
  // A commit lands after every read entry until seq 12: the room is always ahead of the last
  // page, so go_live fails and the catch-up reads on.
  d->on_entry = [&] {
    if (changes_ < 12) commit();
  };
  d->catch_up.start(0);
  pump(*d, 2);
  EXPECT_TRUE(d->catch_up.live());
  commit();
  EXPECT_EQ(d->seqs, one_to(13));
}

TEST_F(CatchUpTest, AResumeOnALiveConnectionSkipsWhatItDeliveredLive) {
  for (int i = 0; i < 3; ++i) commit();
  auto d = connect();
  commit();  // 4 and 5 live
  commit();
  d->catch_up.start(1);  // the device asks again from 1: 2 and 3 come from the log, not 4 and 5
  pump(*d);
  commit();
  EXPECT_EQ(d->sent, (std::vector<std::string>{"l4", "l5", "e2", "e3", "caught_up5", "l6"}));
}

TEST_F(CatchUpTest, SinceAheadOfTheLogAsksForAReset) {
  for (int i = 0; i < 3; ++i) commit();
  auto d = connect();
  d->catch_up.start(10);
  pump(*d);
  EXPECT_TRUE(d->catch_up.live());
  commit();
  EXPECT_EQ(d->sent, (std::vector<std::string>{"reset3", "caught_up3", "l4"}));
}

TEST_F(CatchUpTest, SincePrunedAsksForAReset) {
  for (int i = 0; i < 40; ++i) commit(/*retain=*/8);
  auto d = connect();
  auto page = store_->read_log(kRestaurant, 0, 1);
  ASSERT_TRUE(page);
  ASSERT_GT(page->head.pruned_seq, 1u);
  d->catch_up.start(1);
  pump(*d);
  EXPECT_EQ(d->sent, (std::vector<std::string>{"reset40", "caught_up40"}));
  EXPECT_TRUE(d->catch_up.live());
}

TEST_F(CatchUpTest, HistoryPrunedWhileTheCatchUpWaitsAsksForAReset) {
  for (int i = 0; i < 10; ++i) commit(/*retain=*/8);  // pruned to 2
  auto d = connect();
  d->give_room(2);
  d->catch_up.start(2);
  pump(*d);
  EXPECT_EQ(d->seqs, (std::vector<std::uint64_t>{3, 4}));
  // While the device's queue is full, the log is pruned past where its catch-up stands.
  for (int i = 0; i < 20; ++i) commit(/*retain=*/8);
  auto page = store_->read_log(kRestaurant, 0, 1);
  ASSERT_TRUE(page);
  ASSERT_GT(page->head.pruned_seq, 5u);
  d->give_room(100);
  pump(*d);
  // Not 3, 4 and then the retained tail (a silent gap): a reset to the head.
  EXPECT_EQ(d->sent, (std::vector<std::string>{"e3", "e4", "reset30", "caught_up30"}));
  EXPECT_TRUE(d->catch_up.live());
}

TEST_F(CatchUpTest, ARoomMadeWhileTheStoreWasDownStartsWhereTheCatchUpWentLive) {
  for (int i = 0; i < 3; ++i) commit();
  hub_.set_room_start([](const std::string&) { return std::nullopt; });  // the head unreadable
  auto d = connect();
  ASSERT_TRUE(hub_.needs_start(kRestaurant));
  d->catch_up.start(1);  // the store is readable again when the catch-up runs
  pump(*d);
  EXPECT_TRUE(d->catch_up.live());
  EXPECT_FALSE(hub_.needs_start(kRestaurant));
  // Other nodes' commits 4 and 5, published in order from the log (as the broker does): the room
  // starts at 3, where the device went live, not at the head of a later pass.
  ChangeRequest r;
  r.change.restaurant_id = kRestaurant;
  r.change.device_id = "other node";
  r.change.data_type = DataType::orders;
  r.change.action = "updated";
  for (int i = 4; i <= 5; ++i) {
    r.change.change_id = fmt::format("n{}", i);
    r.change.record_id = fmt::format("o{}", i);
    std::vector<ChangeRequest> batch{r};
    ASSERT_TRUE(store_->commit(batch, {1, 0}));
  }
  auto page = store_->read_log(kRestaurant, 3, 10);
  ASSERT_TRUE(page);
  std::vector<Outcome> outcomes;
  for (auto& e : page->entries) {
    Outcome o;
    o.status = OutcomeStatus::applied;
    o.seq = e.seq;
    o.entry = std::make_shared<const LogEntry>(std::move(e));
    outcomes.push_back(std::move(o));
  }
  hub_.publish_in_order(kRestaurant, outcomes, 0);
  EXPECT_EQ(d->sent, (std::vector<std::string>{"e2", "e3", "caught_up3", "l4", "l5"}));
}

}  // namespace
}  // namespace possync
