#include "auth/rate_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <latch>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace possync {
namespace {

using namespace std::chrono_literals;
using Clock = TokenBucket::Clock;
using std::chrono::seconds;

const Clock::time_point t0 = Clock::now();

TEST(TokenBucket, StartsFullAndAllowsABurst) {
  TokenBucket bucket({.per_second = 2, .burst = 5}, t0);
  EXPECT_TRUE(bucket.full(t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_take(1, t0)) << i;
  EXPECT_FALSE(bucket.try_take(1, t0));
  EXPECT_FALSE(bucket.full(t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 0);
}

TEST(TokenBucket, RefillsAtTheRateUpToTheBurst) {
  TokenBucket bucket({.per_second = 2, .burst = 5}, t0);
  ASSERT_TRUE(bucket.try_take(5, t0));
  EXPECT_FALSE(bucket.try_take(1, t0 + 499ms));
  EXPECT_TRUE(bucket.try_take(1, t0 + 500ms));  // 2 per second: one per 500 ms
  EXPECT_FALSE(bucket.try_take(1, t0 + 500ms));
  EXPECT_DOUBLE_EQ(bucket.available(t0 + 1500ms), 2);
  // Long idle: never more than the burst.
  EXPECT_DOUBLE_EQ(bucket.available(t0 + 1h), 5);
  EXPECT_TRUE(bucket.full(t0 + 1h));
  EXPECT_TRUE(bucket.try_take(5, t0 + 1h));
  EXPECT_FALSE(bucket.try_take(1, t0 + 1h));
}

TEST(TokenBucket, RefusedRequestsTakeNothing) {
  TokenBucket bucket({.per_second = 1, .burst = 3}, t0);
  EXPECT_FALSE(bucket.try_take(4, t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 3);
  ASSERT_TRUE(bucket.try_take(2.5, t0));
  EXPECT_FALSE(bucket.try_take(1, t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 0.5);
  EXPECT_TRUE(bucket.try_take(0, t0));
  EXPECT_TRUE(bucket.try_take(-1, t0));
  EXPECT_DOUBLE_EQ(bucket.available(t0), 0.5);
}

TEST(TokenBucket, RatesThatAreNotExactInBinaryStillRefillOnTime) {
  TokenBucket bucket({.per_second = 10, .burst = 1}, t0);
  auto now = t0;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(bucket.try_take(1, now)) << i;
    ASSERT_FALSE(bucket.try_take(1, now)) << i;
    now += 100ms;
  }
  TokenBucket third({.per_second = 3, .burst = 1}, t0);
  ASSERT_TRUE(third.try_take(1, t0));
  EXPECT_FALSE(third.try_take(1, t0 + 333ms));
  EXPECT_TRUE(third.try_take(1, t0 + 334ms));
}

TEST(TokenBucket, RetryAfterIsWholeSecondsRoundedUp) {
  TokenBucket bucket({.per_second = 2, .burst = 4}, t0);
  EXPECT_EQ(bucket.retry_after(1, t0), seconds{0});
  EXPECT_EQ(bucket.retry_after(4, t0), seconds{0});
  ASSERT_TRUE(bucket.try_take(4, t0));
  EXPECT_EQ(bucket.retry_after(1, t0), seconds{1});       // 0.5 s
  EXPECT_EQ(bucket.retry_after(2, t0), seconds{1});       // exactly 1 s
  EXPECT_EQ(bucket.retry_after(3, t0), seconds{2});       // 1.5 s
  EXPECT_EQ(bucket.retry_after(4, t0), seconds{2});       // 2 s
  EXPECT_EQ(bucket.retry_after(3, t0 + 1s), seconds{1});  // 2 there, 1 missing: 0.5 s
  EXPECT_EQ(bucket.retry_after(1, t0 + 500ms), seconds{0});
  EXPECT_EQ(bucket.retry_after(5, t0), std::nullopt);  // more than the burst: never
  EXPECT_EQ(bucket.retry_after(0, t0), seconds{0});

  TokenBucket slow({.per_second = 0.1, .burst = 1}, t0);
  ASSERT_TRUE(slow.try_take(1, t0));
  EXPECT_EQ(slow.retry_after(1, t0), seconds{10});
  EXPECT_EQ(slow.retry_after(1, t0 + 9001ms), seconds{1});
  EXPECT_EQ(slow.retry_after(1, t0 + 10s), seconds{0});
  // What retry_after promises holds.
  EXPECT_FALSE(slow.try_take(1, t0 + 9999ms));
  EXPECT_TRUE(slow.try_take(1, t0 + 10s));
}

TEST(TokenBucket, TimeGoingBackwardsAddsNothing) {
  TokenBucket bucket({.per_second = 1, .burst = 2}, t0 + 10s);
  ASSERT_TRUE(bucket.try_take(2, t0 + 10s));
  EXPECT_FALSE(bucket.try_take(1, t0));  // an earlier time: no refill, no harm
  EXPECT_DOUBLE_EQ(bucket.available(t0), 0);
  // Refill counts from the latest time seen, not from the earlier one.
  EXPECT_FALSE(bucket.try_take(1, t0 + 10s + 999ms));
  EXPECT_TRUE(bucket.try_take(1, t0 + 11s));
}

TEST(TokenBucket, InvalidLimitsAreRefused) {
  for (const RateLimit limit :
       {RateLimit{0, 1}, RateLimit{-1, 1}, RateLimit{1, 0.5}, RateLimit{1, 0},
        RateLimit{std::nan(""), 1}, RateLimit{1, std::numeric_limits<double>::infinity()}}) {
    EXPECT_THROW(TokenBucket(limit, t0), std::invalid_argument)
        << limit.per_second << " " << limit.burst;
  }
  EXPECT_THROW(KeyedLimiter({.limit = {1, 1}, .max_keys = 0}, t0), std::invalid_argument);
  EXPECT_THROW(KeyedLimiter({.limit = {0, 1}}, t0), std::invalid_argument);
}

TEST(KeyedLimiter, KeysHaveTheirOwnBuckets) {
  KeyedLimiter limiter({.limit = {.per_second = 1, .burst = 2}}, t0);
  EXPECT_TRUE(limiter.try_take("10.0.0.1", t0).allowed);
  EXPECT_TRUE(limiter.try_take("10.0.0.1", t0).allowed);
  const auto refused = limiter.try_take("10.0.0.1", t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds{1});
  EXPECT_TRUE(limiter.try_take("10.0.0.2", t0).allowed);
  EXPECT_EQ(limiter.size(), 2u);
  EXPECT_FALSE(limiter.try_take("10.0.0.1", t0 + 999ms).allowed);
  EXPECT_TRUE(limiter.try_take("10.0.0.1", t0 + 1s).allowed);
}

TEST(KeyedLimiter, RetryAfterIsAtLeastOneSecond) {
  KeyedLimiter limiter({.limit = {.per_second = 100, .burst = 1}}, t0);
  ASSERT_TRUE(limiter.try_take("a", t0).allowed);
  const auto refused = limiter.try_take("a", t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds{1});
}

TEST(KeyedLimiter, FullBucketsAreEvictedWithoutLosingState) {
  // Refill time 4 s: a sweep runs at most every 4 s.
  KeyedLimiter limiter({.limit = {.per_second = 1, .burst = 4}}, t0);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limiter.try_take(std::to_string(i), t0).allowed);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(limiter.try_take("busy", t0 + 3s).allowed);
  EXPECT_EQ(limiter.size(), 101u);
  EXPECT_FALSE(limiter.try_take("busy", t0 + 3s).allowed);

  // At t0 + 4 s the sweep drops the 100 refilled buckets; "busy" (1 token) is not full and keeps
  // its state: one more request, not a fresh burst of four.
  EXPECT_TRUE(limiter.try_take("busy", t0 + 4s).allowed);
  EXPECT_EQ(limiter.size(), 1u);
  const auto refused = limiter.try_take("busy", t0 + 4s);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds{1});

  // No sweep before the interval has passed again.
  ASSERT_TRUE(limiter.try_take("x", t0 + 5s).allowed);
  EXPECT_EQ(limiter.size(), 2u);
  // An evicted key comes back with a full bucket, as if it had never left.
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(limiter.try_take("7", t0 + 5s).allowed) << i;
  EXPECT_FALSE(limiter.try_take("7", t0 + 5s).allowed);
  // After a long quiet time everything is evicted.
  (void)limiter.try_take("y", t0 + 1h);
  EXPECT_EQ(limiter.size(), 1u);
}

TEST(KeyedLimiter, KeysBeyondTheCapShareOneBucket) {
  KeyedLimiter limiter({.limit = {.per_second = 1, .burst = 2}, .max_keys = 3}, t0);
  for (const char* key : {"a", "b", "c"}) {
    ASSERT_TRUE(limiter.try_take(key, t0).allowed);
    ASSERT_TRUE(limiter.try_take(key, t0).allowed);
  }
  EXPECT_EQ(limiter.size(), 3u);
  // New keys share the overflow bucket (burst 2) and are refused once it is empty.
  EXPECT_TRUE(limiter.try_take("d", t0).allowed);
  EXPECT_TRUE(limiter.try_take("e", t0).allowed);
  const auto refused = limiter.try_take("f", t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, seconds{1});
  EXPECT_FALSE(limiter.try_take("d", t0 + 100ms).allowed);
  EXPECT_EQ(limiter.size(), 3u);  // memory stays bounded
  // Tracked keys keep their own buckets.
  EXPECT_FALSE(limiter.try_take("a", t0 + 500ms).allowed);
  EXPECT_TRUE(limiter.try_take("a", t0 + 1s).allowed);
  // The overflow refills at the rate like any bucket.
  EXPECT_TRUE(limiter.try_take("g", t0 + 1s).allowed);
  EXPECT_EQ(limiter.size(), 3u);
  // Once the tracked buckets are full, a sweep makes room: new keys get buckets of their own.
  EXPECT_TRUE(limiter.try_take("h", t0 + 3s).allowed);
  EXPECT_EQ(limiter.size(), 1u);
  EXPECT_TRUE(limiter.try_take("h", t0 + 3s).allowed);
  EXPECT_FALSE(limiter.try_take("h", t0 + 3s).allowed);
}

TEST(KeyedLimiter, ConcurrentTakersGetExactlyTheBurst) {
  KeyedLimiter limiter({.limit = {.per_second = 1, .burst = 50}}, t0);
  std::atomic<int> allowed{0};
  std::latch start(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < 100; ++i) {
        if (limiter.try_take("shared", t0).allowed) ++allowed;
        (void)limiter.try_take("own-" + std::to_string(t), t0);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(allowed.load(), 50);
  EXPECT_EQ(limiter.size(), 9u);
}

TEST(ConnectionCaps, CountsUpToTheMaxPerKey) {
  ConnectionCaps caps(2);
  auto a1 = caps.try_acquire("rest-1");
  auto a2 = caps.try_acquire("rest-1");
  ASSERT_TRUE(a1);
  ASSERT_TRUE(a2);
  EXPECT_FALSE(caps.try_acquire("rest-1"));
  auto b1 = caps.try_acquire("rest-2");
  EXPECT_TRUE(b1);
  EXPECT_EQ(caps.count("rest-1"), 2u);
  EXPECT_EQ(caps.count("rest-2"), 1u);
  EXPECT_EQ(caps.count("rest-3"), 0u);
  EXPECT_EQ(caps.keys(), 2u);
  EXPECT_EQ(caps.count("rest-3"), 0u);
  EXPECT_EQ(caps.keys(), 2u);  // looking does not create entries
}

TEST(ConnectionCaps, LeasesReleaseOnDestructionAndMove) {
  ConnectionCaps caps(1);
  {
    auto lease = caps.try_acquire("ip");
    ASSERT_TRUE(lease);
    EXPECT_FALSE(caps.try_acquire("ip"));
  }
  EXPECT_EQ(caps.count("ip"), 0u);
  EXPECT_EQ(caps.keys(), 0u);  // no entry kept for keys without leases

  auto first = caps.try_acquire("ip");
  ConnectionCaps::Lease moved(std::move(first));
  EXPECT_FALSE(first);  // NOLINT(bugprone-use-after-move): moved-from holds nothing
  EXPECT_TRUE(moved);
  EXPECT_EQ(caps.count("ip"), 1u);
  first.release();  // no-op
  EXPECT_EQ(caps.count("ip"), 1u);

  ConnectionCaps::Lease assigned;
  EXPECT_FALSE(assigned);
  assigned = std::move(moved);
  EXPECT_EQ(caps.count("ip"), 1u);
  auto other = caps.try_acquire("ip2");
  assigned = std::move(other);  // gives back "ip", now holds "ip2"
  EXPECT_EQ(caps.count("ip"), 0u);
  EXPECT_EQ(caps.count("ip2"), 1u);
  assigned.release();
  EXPECT_FALSE(assigned);
  EXPECT_EQ(caps.keys(), 0u);
  assigned.release();  // twice is fine
  EXPECT_EQ(caps.keys(), 0u);
}

TEST(ConnectionCaps, ZeroMeansNoCap) {
  ConnectionCaps caps(0);
  std::vector<ConnectionCaps::Lease> leases;
  for (int i = 0; i < 1000; ++i) {
    leases.push_back(caps.try_acquire("k"));
    ASSERT_TRUE(leases.back());
  }
  EXPECT_EQ(caps.count("k"), 1000u);
  leases.clear();
  EXPECT_EQ(caps.keys(), 0u);
}

TEST(ConnectionCaps, ConcurrentThreadsNeverExceedTheCap) {
  constexpr std::size_t kMax = 3;
  constexpr int kThreads = 8;
  ConnectionCaps caps(kMax);
  std::atomic<int> holding{0};
  std::atomic<int> most{0};
  std::atomic<int> granted{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < 2000; ++i) {
        auto lease = caps.try_acquire("rest-1");
        if (!lease) continue;
        ++granted;
        const int now = ++holding;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::yield();
        --holding;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_LE(most.load(), static_cast<int>(kMax));
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(caps.count("rest-1"), 0u);
  EXPECT_EQ(caps.keys(), 0u);
}

TEST(ConnectionCaps, AllHoldersAtOnceGetExactlyTheMax) {
  constexpr int kThreads = 8;
  ConnectionCaps caps(5);
  std::vector<ConnectionCaps::Lease> leases(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      leases[t] = caps.try_acquire("ip");
    });
  }
  for (auto& thread : threads) thread.join();
  int held = 0;
  for (const auto& lease : leases) held += lease ? 1 : 0;
  EXPECT_EQ(held, 5);
  EXPECT_EQ(caps.count("ip"), 5u);
  leases.clear();
  EXPECT_EQ(caps.count("ip"), 0u);
}

}  // namespace
}  // namespace possync
