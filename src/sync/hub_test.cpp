// Hub under concurrency: one publisher (the commit pipeline's writer) fans out while devices join,
// catch up, go live and leave on other threads. What a session relies on must hold whatever the
// interleaving: a device that catches up from the store and then goes live (Room::go_live) sees
// every seq once, in order. Meant to be run under ThreadSanitizer too (the `tsan` preset), which
// checks the locking of rooms, subscribers and back-pressure charges along the way.
#include "sync/hub.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace possync {
namespace {

std::string render(const LogEntry& e) {
  return std::to_string(e.seq);
}

Outcome applied(const std::string& restaurant, std::uint64_t seq) {
  auto entry = std::make_shared<LogEntry>();
  entry->seq = seq;
  entry->change.restaurant_id = restaurant;
  entry->change.device_id = "writer";
  Outcome o;
  o.status = OutcomeStatus::applied;
  o.seq = seq;
  o.entry = std::move(entry);
  return o;
}

// Does with its room what a WsSession does: reads the "store" (every seq committed so far) until
// Room::go_live succeeds, ignores live deliveries until then, and drops anything at or below the
// highest seq it has taken. Deliveries arrive on the publishing thread (a Hub without Loops).
class Device final : public Subscriber {
 public:
  void deliver(std::shared_ptr<const DeliveryBatch> batch) override {
    std::lock_guard lock(mutex_);
    if (!live_) return;  // the store has these: the catch-up reads them
    for (const Delivery& d : *batch) take(d.seq);
  }
  DeviceStatus status() const override { return {"device", "", 0, 0}; }
  void disconnect(std::uint16_t, std::string) override {}
  void notify(std::shared_ptr<const std::string>) override {}

  void catch_up(Room& room, const std::atomic<std::uint64_t>& committed) {
    std::uint64_t cursor = 0;
    for (;;) {
      const std::uint64_t head = committed.load();  // one read of the log, up to its end
      {
        std::lock_guard lock(mutex_);
        for (std::uint64_t seq = cursor + 1; seq <= head; ++seq) take(seq);
      }
      cursor = head;
      if (room.go_live(cursor, [this] {
            std::lock_guard lock(mutex_);
            live_ = true;
          })) {
        return;
      }
    }
  }

  std::vector<std::uint64_t> seqs() const {
    std::lock_guard lock(mutex_);
    return seqs_;
  }

 private:
  void take(std::uint64_t seq) {
    if (seq <= last_) return;
    seqs_.push_back(seq);
    last_ = seq;
  }

  mutable std::mutex mutex_;
  bool live_ = false;
  std::uint64_t last_ = 0;
  std::vector<std::uint64_t> seqs_;
};

TEST(HubConcurrency, DevicesJoiningWhilePublishingSeeEverySeqOnceInOrder) {
  constexpr std::uint64_t kSeqs = 3000;
  constexpr int kDevices = 4;
  Backpressure gate({.max_queued_changes = 0, .max_fanout_backlog = 0});  // counts, never closes
  Hub hub(render, nullptr, &gate);
  std::atomic<std::uint64_t> committed{0};
  std::atomic<bool> done{false};

  // Devices join at different points of the stream, catch up and stay. The first joins before
  // anything is published, so the room exists throughout and its published seq ends at kSeqs
  // (a room made after the last publish would start at 0: no RoomStart here).
  std::vector<std::shared_ptr<Device>> devices;
  for (int d = 0; d < kDevices; ++d) devices.push_back(std::make_shared<Device>());
  auto first = hub.join("R", devices[0]);

  // The writer: commits seqs in small groups, then publishes each group.
  std::thread writer([&] {
    std::mt19937 rng(7);
    std::uint64_t seq = 0;
    while (seq < kSeqs) {
      const std::uint64_t group = std::min<std::uint64_t>(1 + rng() % 4, kSeqs - seq);
      std::vector<Outcome> outcomes;
      for (std::uint64_t i = 0; i < group; ++i) outcomes.push_back(applied("R", seq + i + 1));
      seq += group;
      committed.store(seq);  // durable in the store before it is published
      hub.publish(outcomes);
      if (seq % 64 == 0) std::this_thread::yield();
    }
    done = true;
  });

  std::vector<std::thread> joiners;
  for (int d = 0; d < kDevices; ++d) {
    joiners.emplace_back([&, d] {
      while (committed.load() < kSeqs * d / kDevices) std::this_thread::yield();
      auto membership = d == 0 ? first : hub.join("R", devices[d]);
      devices[d]->catch_up(*membership.room, committed);
    });
  }

  // Others come and go meanwhile (rooms of R and of another restaurant made and dropped) and look
  // at the hub as the admin surface does.
  std::vector<std::thread> churners;
  for (int c = 0; c < 2; ++c) {
    churners.emplace_back([&, c] {
      const std::string restaurant = c == 0 ? "R" : "other";
      while (!done.load()) {
        auto passer = std::make_shared<Device>();
        hub.join(restaurant, passer);
        (void)hub.connection_count();
        (void)hub.rooms();
        (void)hub.all_subscribers();
        hub.leave(restaurant, passer.get());
      }
    });
  }

  writer.join();
  for (auto& t : joiners) t.join();
  for (auto& t : churners) t.join();

  std::vector<std::uint64_t> all(kSeqs);
  for (std::uint64_t i = 0; i < kSeqs; ++i) all[i] = i + 1;
  for (int d = 0; d < kDevices; ++d) EXPECT_EQ(devices[d]->seqs(), all) << "device " << d;
  EXPECT_EQ(hub.connection_count(), static_cast<std::size_t>(kDevices));
  EXPECT_EQ(hub.published_seq("R"), kSeqs);
  EXPECT_FALSE(hub.has_room("other"));
  EXPECT_EQ(gate.fanout_backlog(), 0u);  // every delivery's charge was given back
}

}  // namespace
}  // namespace possync
