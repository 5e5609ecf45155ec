// Metrics: the server's counters and histograms, rendered in the Prometheus text format for
// GET /metrics. Fixed, named members (no dynamic registry): cheap to update from any thread
// (relaxed atomics), read only when scraped.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace possync {

// A cumulative histogram over fixed upper bounds (Prometheus `le` buckets). Thread-safe.
class Histogram {
 public:
  static constexpr std::size_t kMaxBuckets = 24;
  explicit Histogram(std::span<const double> upper_bounds);
  void observe(double value);
  // Appends the `_bucket`, `_sum` and `_count` series of metric `name`.
  void render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  std::array<double, kMaxBuckets> bounds_{};
  std::size_t size_ = 0;
  std::array<std::atomic<std::uint64_t>, kMaxBuckets + 1> counts_{};  // last: +Inf
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Gauges read at scrape time from their owners.
// Error codes counted by name, plus one slot for every other code.
inline constexpr std::size_t kErrorSlots = 40;

struct MetricsGauges {
  std::size_t connections = 0;
  std::size_t restaurants = 0;
  // Back-pressure (sync/backpressure.h): work accepted and not yet done, and how often it
  // closed the gate.
  std::size_t queued_changes = 0;
  std::size_t fanout_backlog_bytes = 0;
  std::uint64_t backpressure_closings = 0;
};

class Metrics {
 public:
  Metrics();

  std::atomic<std::uint64_t> ws_messages_received{0};
  std::atomic<std::uint64_t> ws_messages_sent{0};
  std::atomic<std::uint64_t> http_requests{0};
  std::atomic<std::uint64_t> changes_committed{0};
  std::atomic<std::uint64_t> duplicates_suppressed{0};
  std::atomic<std::uint64_t> conflicts{0};
  std::atomic<std::uint64_t> commit_failures{0};
  std::atomic<std::uint64_t> slow_consumer_disconnects{0};
  // Requests, messages and connections refused by a rate limit or a connection cap.
  std::atomic<std::uint64_t> rate_limited{0};
  // --auth mixed: tokenless requests and connections admitted as enrolled legacy devices, and
  // refused because the device is not enrolled or called from outside its networks.
  std::atomic<std::uint64_t> legacy_admitted{0};
  std::atomic<std::uint64_t> legacy_refused_not_enrolled{0};
  std::atomic<std::uint64_t> legacy_refused_network{0};
  Histogram commit_batch_size;
  Histogram commit_seconds;
  // From the moment a change was received to its write to each recipient's socket.
  Histogram fanout_seconds;

  // Counts one error sent to a client, by its code (common/error.h; others count as "other").
  void count_error(std::string_view code);

  std::string render(const MetricsGauges& gauges) const;

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

 private:
  std::array<std::atomic<std::uint64_t>, kErrorSlots> errors_{};
};

}  // namespace possync
