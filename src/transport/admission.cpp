#include "transport/admission.h"

namespace possync {
namespace {

using Clock = std::chrono::steady_clock;

std::optional<KeyedLimiter> keyed(double rate, double burst) {
  if (rate <= 0) return std::nullopt;
  return std::optional<KeyedLimiter>(
      std::in_place, KeyedLimiter::Options{{rate, std::max(1.0, burst)}}, Clock::now());
}

std::optional<TokenBucket> bucket(double rate, double burst) {
  if (rate <= 0) return std::nullopt;
  return TokenBucket({rate, std::max(1.0, burst)}, Clock::now());
}

}  // namespace

Admission::Admission(const TransportOptions& c)
    : ip_connects(keyed(c.ip_connect_rate, c.ip_connect_burst)),
      ip_requests(keyed(c.ip_request_rate, c.ip_request_burst)),
      per_ip(c.max_connections_per_ip),
      per_restaurant(c.max_connections_per_restaurant) {}

DeviceLimiter::DeviceLimiter(const TransportOptions& c)
    : messages_(bucket(c.device_message_rate, c.device_message_burst)),
      // The largest message allowed must always fit the byte budget.
      bytes_(bucket(c.device_byte_rate,
                    std::max(c.device_byte_burst, static_cast<double>(c.max_frame_bytes)))) {}

bool DeviceLimiter::admit(std::size_t bytes) {
  const auto now = Clock::now();
  const double size = static_cast<double>(bytes);
  // Check both before taking from either, so a refused message costs nothing.
  if (messages_ && messages_->available(now) < 1) return false;
  if (bytes_ && bytes_->available(now) < size) return false;
  if (messages_) messages_->try_take(1, now);
  if (bytes_) bytes_->try_take(size, now);
  return true;
}

}  // namespace possync
