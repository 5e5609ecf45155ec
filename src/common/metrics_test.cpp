#include "common/metrics.h"

#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

namespace possync {
namespace {

bool contains(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(Histogram, BucketsAreCumulativeWithInfSumAndCount) {
  constexpr std::array<double, 3> bounds{1, 10, 100};
  Histogram h(bounds);
  for (double v : {0.5, 1.0, 5.0, 50.0, 500.0}) h.observe(v);
  std::string out;
  h.render(out, "x", "help text");
  EXPECT_TRUE(contains(out, "# TYPE x histogram"));
  EXPECT_TRUE(contains(out, "x_bucket{le=\"1\"} 2"));  // 0.5 and 1.0 (le is inclusive)
  EXPECT_TRUE(contains(out, "x_bucket{le=\"10\"} 3"));
  EXPECT_TRUE(contains(out, "x_bucket{le=\"100\"} 4"));
  EXPECT_TRUE(contains(out, "x_bucket{le=\"+Inf\"} 5"));
  EXPECT_TRUE(contains(out, "x_sum 556.5"));
  EXPECT_TRUE(contains(out, "x_count 5"));
}

TEST(Histogram, ConcurrentObservationsAreAllCounted) {
  constexpr std::array<double, 1> bounds{1};
  Histogram h(bounds);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.observe(2);
    });
  }
  for (auto& t : threads) t.join();
  std::string out;
  h.render(out, "y", "h");
  EXPECT_TRUE(contains(out, "y_count 40000"));
  EXPECT_TRUE(contains(out, "y_sum 80000"));
  EXPECT_TRUE(contains(out, "y_bucket{le=\"1\"} 0"));
}

TEST(Metrics, RendersCountersGaugesAndErrorsByCode) {
  Metrics m;
  m.changes_committed += 7;
  m.duplicates_suppressed += 2;
  m.count_error("invalid_json");
  m.count_error("invalid_json");
  m.count_error("something_unknown");
  const std::string out = m.render({3, 2});
  EXPECT_TRUE(contains(out, "possync_connections 3"));
  EXPECT_TRUE(contains(out, "possync_restaurants_connected 2"));
  EXPECT_TRUE(contains(out, "possync_changes_committed_total 7"));
  EXPECT_TRUE(contains(out, "possync_duplicates_suppressed_total 2"));
  EXPECT_TRUE(contains(out, "possync_errors_total{code=\"invalid_json\"} 2"));
  EXPECT_TRUE(contains(out, "possync_errors_total{code=\"other\"} 1"));
  EXPECT_TRUE(contains(out, "possync_errors_total{code=\"conflict\"} 0"));
  EXPECT_TRUE(contains(out, "# TYPE possync_commit_duration_seconds histogram"));
}

}  // namespace
}  // namespace possync
