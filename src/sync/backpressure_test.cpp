#include "sync/backpressure.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace possync {
namespace {

TEST(Backpressure, ClosesAtTheChangeLimitAndReopensAtThreeQuarters) {
  Backpressure gate({.max_queued_changes = 8, .max_fanout_backlog = 0});
  gate.changes_queued(7);
  EXPECT_TRUE(gate.open());
  gate.changes_queued(1);
  EXPECT_FALSE(gate.open());
  EXPECT_EQ(gate.closings(), 1u);
  gate.changes_done(1);  // 7: below the limit but above 3/4 of it
  EXPECT_FALSE(gate.open());
  gate.changes_done(1);  // 6 = 3/4
  EXPECT_TRUE(gate.open());
  EXPECT_EQ(gate.queued_changes(), 6u);
}

TEST(Backpressure, ChargesHoldTheFanoutBacklogUntilDestroyed) {
  Backpressure gate({.max_queued_changes = 0, .max_fanout_backlog = 1000});
  std::vector<Backpressure::Charge> held;
  held.emplace_back(gate, 600);
  EXPECT_TRUE(gate.open());
  held.emplace_back(gate, 400);
  EXPECT_FALSE(gate.open());
  EXPECT_EQ(gate.fanout_backlog(), 1000u);
  Backpressure::Charge moved = std::move(held.back());
  held.pop_back();  // the moved-from charge releases nothing
  EXPECT_EQ(gate.fanout_backlog(), 1000u);
  moved = Backpressure::Charge();  // releases its 400 bytes: 600 <= 750
  EXPECT_TRUE(gate.open());
  held.clear();
  EXPECT_EQ(gate.fanout_backlog(), 0u);
}

TEST(Backpressure, ZeroLimitsNeverClose) {
  Backpressure gate({.max_queued_changes = 0, .max_fanout_backlog = 0});
  gate.changes_queued(1'000'000);
  Backpressure::Charge big(gate, std::size_t{1} << 40);
  EXPECT_TRUE(gate.open());
}

TEST(Backpressure, WhenOpenRunsAtOnceOrOnReopening) {
  Backpressure gate({.max_queued_changes = 4, .max_fanout_backlog = 0});
  int runs = 0;
  gate.when_open([&] { ++runs; });
  EXPECT_EQ(runs, 1);
  gate.changes_queued(4);
  gate.when_open([&] { ++runs; });
  gate.when_open([&] { ++runs; });
  EXPECT_EQ(runs, 1);
  gate.changes_done(1);  // 3 = 3/4: reopens, both waiters run once
  EXPECT_EQ(runs, 3);
  gate.changes_done(3);
  EXPECT_EQ(runs, 3);
}

// Producers pause on a closed gate and are resumed by consumers: every waiter runs exactly once,
// nobody is left waiting, and the counts return to zero.
TEST(Backpressure, ConcurrentProducersAndConsumersNeverStrandAWaiter) {
  Backpressure gate({.max_queued_changes = 64, .max_fanout_backlog = 4096});
  constexpr int kProducers = 4;
  constexpr int kItems = 20000;
  std::atomic<int> produced{0}, consumed{0}, waits{0}, resumes{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&] {
      for (int i = 0; i < kItems; ++i) {
        if (!gate.open()) {
          auto flag = std::make_shared<std::atomic<bool>>(false);
          waits.fetch_add(1);
          gate.when_open([&, flag] {
            resumes.fetch_add(1);
            flag->store(true);
          });
          while (!flag->load()) std::this_thread::yield();
        }
        gate.changes_queued(1);
        produced.fetch_add(1);
      }
    });
  }
  std::thread consumer([&] {
    while (!done.load() || consumed.load() < produced.load()) {
      if (consumed.load() < produced.load()) {
        Backpressure::Charge c(gate, 100);
        gate.changes_done(1);
        consumed.fetch_add(1);
      } else {
        std::this_thread::yield();
      }
    }
  });
  for (auto& t : threads) t.join();
  done.store(true);
  consumer.join();
  EXPECT_EQ(consumed.load(), kProducers * kItems);
  EXPECT_EQ(waits.load(), resumes.load());
  EXPECT_EQ(gate.queued_changes(), 0u);
  EXPECT_EQ(gate.fanout_backlog(), 0u);
  EXPECT_TRUE(gate.open());
}

}  // namespace
}  // namespace possync
