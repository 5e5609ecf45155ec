#include "common/metrics.h"

#include <fmt/format.h>
#include <algorithm>

#include "common/error.h"

namespace possync {
namespace {

// The error codes counted by name; anything else is "other" (the last slot).
constexpr std::array<std::string_view, 33> kErrorCodes{
    errc::kInvalidJson,       errc::kInvalidMessage,   errc::kUnknownType,
    errc::kMissingField,      errc::kInvalidField,     errc::kUnknownDataType,
    errc::kConflict,          errc::kStoreUnavailable, errc::kShuttingDown,
    errc::kNotFound,          errc::kMethodNotAllowed, errc::kPayloadTooLarge,
    errc::kBadRequest,        errc::kResetRequired,    "message_too_big",
    errc::kUnauthorized,      "token_invalid",         "token_expired",
    errc::kForbidden,         errc::kRateLimited,      errc::kTooManyConnections,
    errc::kOverloaded,        errc::kUnknownAction,    errc::kDataTooDeep,
    errc::kTooManyFields,     errc::kStringTooLong,    errc::kInvalidNumber,
    errc::kInvalidTransition, errc::kOrderClosed,      errc::kTableOccupied,
    errc::kLineNotFound,      errc::kInvalidNetwork,   errc::kInvalidRole};
static_assert(kErrorCodes.size() < kErrorSlots, "one slot is for \"other\"");

constexpr std::array<double, 12> kBatchBounds{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
constexpr std::array<double, 16> kSecondsBounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                1,      2.5,     5,      10};

void counter(std::string& out, std::string_view name, std::string_view help, std::uint64_t v) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name,
                 help, v);
}

void gauge(std::string& out, std::string_view name, std::string_view help, std::uint64_t v) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help,
                 v);
}

}  // namespace

Histogram::Histogram(std::span<const double> upper_bounds)
    : size_(std::min(upper_bounds.size(), kMaxBuckets)) {
  std::copy_n(upper_bounds.begin(), size_, bounds_.begin());
}

void Histogram::observe(double value) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.begin() + size_, value);
  counts_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

void Histogram::render(std::string& out, std::string_view name, std::string_view help) const {
  auto it = std::back_inserter(out);
  fmt::format_to(it, "# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < size_; ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    fmt::format_to(it, "{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_[size_].load(std::memory_order_relaxed);
  fmt::format_to(it, "{}_bucket{{le=\"+Inf\"}} {}\n", name, cumulative);
  fmt::format_to(it, "{}_sum {}\n{}_count {}\n", name, sum_.load(std::memory_order_relaxed), name,
                 cumulative);
}

Metrics::Metrics()
    : commit_batch_size(kBatchBounds),
      commit_seconds(kSecondsBounds),
      fanout_seconds(kSecondsBounds) {}

void Metrics::count_error(std::string_view code) {
  const auto it = std::find(kErrorCodes.begin(), kErrorCodes.end(), code);
  errors_[static_cast<std::size_t>(it - kErrorCodes.begin())].fetch_add(1,
                                                                        std::memory_order_relaxed);
}

std::string Metrics::render(const MetricsGauges& gauges) const {
  std::string out;
  out.reserve(8192);
  gauge(out, "possync_connections", "Open WebSocket connections.", gauges.connections);
  gauge(out, "possync_restaurants_connected", "Restaurants with at least one connected device.",
        gauges.restaurants);
  gauge(out, "possync_queued_changes", "Changes received and not yet committed.",
        gauges.queued_changes);
  gauge(out, "possync_fanout_backlog_bytes",
        "Bytes of committed changes handed to connections and not yet queued to their sockets "
        "(each recipient counted).",
        gauges.fanout_backlog_bytes);
  counter(out, "possync_backpressure_closings_total",
          "Times the server stopped reading from devices because too much work was queued.",
          gauges.backpressure_closings);
  counter(out, "possync_ws_messages_received_total", "WebSocket messages received.",
          ws_messages_received.load());
  counter(out, "possync_ws_messages_sent_total", "WebSocket messages sent.",
          ws_messages_sent.load());
  counter(out, "possync_http_requests_total", "HTTP requests handled (REST).",
          http_requests.load());
  counter(out, "possync_changes_committed_total", "Changes applied and committed.",
          changes_committed.load());
  counter(out, "possync_duplicates_suppressed_total",
          "Repeated changes recognised by change_id or as twins, not applied again.",
          duplicates_suppressed.load());
  counter(out, "possync_conflicts_total", "Changes rejected because base_version did not match.",
          conflicts.load());
  counter(out, "possync_commit_failures_total", "Store transactions that failed.",
          commit_failures.load());
  counter(out, "possync_slow_consumer_disconnects_total",
          "Connections closed because their send queue overflowed.",
          slow_consumer_disconnects.load());
  counter(out, "possync_rate_limited_total",
          "Requests, messages and connections refused by a rate limit or connection cap.",
          rate_limited.load());
  counter(out, "possync_legacy_admitted_total",
          "Requests and connections without a token admitted as enrolled legacy devices "
          "(--auth mixed).",
          legacy_admitted.load());
  auto legacy = std::back_inserter(out);
  fmt::format_to(legacy,
                 "# HELP possync_legacy_refused_total Requests and connections without a token "
                 "refused in --auth mixed: the device is not enrolled as a legacy device, or it "
                 "called from outside its enrolled networks.\n"
                 "# TYPE possync_legacy_refused_total counter\n"
                 "possync_legacy_refused_total{{reason=\"not_enrolled\"}} {}\n"
                 "possync_legacy_refused_total{{reason=\"network\"}} {}\n",
                 legacy_refused_not_enrolled.load(), legacy_refused_network.load());
  commit_batch_size.render(out, "possync_commit_batch_size", "Changes per store transaction.");
  commit_seconds.render(out, "possync_commit_duration_seconds",
                        "Time to commit one transaction, fsync included.");
  fanout_seconds.render(out, "possync_fanout_latency_seconds",
                        "From receipt of a change to its write to each recipient's socket.");
  auto it = std::back_inserter(out);
  fmt::format_to(it,
                 "# HELP possync_errors_total Errors reported to clients, by code.\n"
                 "# TYPE possync_errors_total counter\n");
  for (std::size_t i = 0; i <= kErrorCodes.size(); ++i) {
    fmt::format_to(it, "possync_errors_total{{code=\"{}\"}} {}\n",
                   i < kErrorCodes.size() ? kErrorCodes[i] : "other", errors_[i].load());
  }
  return out;
}

}  // namespace possync
