// ReaderPool: every connection is made up front, a checkout waits while all are leased, and a lease
// gives its connection back when it ends.
#include "store/reader_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

namespace possync {
namespace {

struct FakeConn {
  int id;
};

ReaderPool<FakeConn> make_pool(std::size_t n) {
  int next = 0;
  return ReaderPool<FakeConn>(n, [&] { return std::make_unique<FakeConn>(FakeConn{next++}); });
}

TEST(ReaderPool, MakesTheConnectionsUpFrontAndAtLeastOne) {
  int made = 0;
  ReaderPool<FakeConn> three(3, [&] { return std::make_unique<FakeConn>(FakeConn{made++}); });
  EXPECT_EQ(made, 3);
  EXPECT_EQ(three.idle(), 3u);
  ReaderPool<FakeConn> none_asked(0, [&] { return std::make_unique<FakeConn>(FakeConn{made++}); });
  EXPECT_EQ(none_asked.idle(), 1u);
}

TEST(ReaderPool, LeasesDistinctConnectionsAndTakesThemBack) {
  auto pool = make_pool(2);
  {
    auto a = pool.checkout();
    auto b = pool.checkout();
    EXPECT_NE(a->id, b->id);
    EXPECT_EQ(pool.idle(), 0u);
  }
  EXPECT_EQ(pool.idle(), 2u);
}

TEST(ReaderPool, AMovedLeaseReturnsItsConnectionOnce) {
  auto pool = make_pool(1);
  {
    auto a = pool.checkout();
    auto b = std::move(a);
    EXPECT_EQ(pool.idle(), 0u);
  }
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(ReaderPool, CheckoutWaitsUntilALeaseEnds) {
  auto pool = make_pool(1);
  std::atomic<bool> got{false};
  std::thread waiter;
  {
    auto held = pool.checkout();
    waiter = std::thread([&] {
      auto lease = pool.checkout();
      got = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(got) << "a checkout must wait while every connection is leased";
  }
  waiter.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(ReaderPool, ManyThreadsNeverShareAConnection) {
  auto pool = make_pool(3);
  std::atomic<int> in_use[3] = {};
  std::atomic<bool> shared{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto lease = pool.checkout();
        if (in_use[lease->id].fetch_add(1) != 0) shared = true;
        std::this_thread::yield();
        in_use[lease->id].fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(shared);
  EXPECT_EQ(pool.idle(), 3u);
}

}  // namespace
}  // namespace possync
