// Admission: the rate limits and connection caps that keep one client from crowding out the
// others (docs/security.md). Limits only ever refuse what has not been accepted yet: a change the
// server acknowledged is never dropped by them.
//
// - per client address: new connections per second, REST requests per second (KeyedLimiter);
// - per client address and per restaurant: open WebSockets (ConnectionCaps);
// - per WebSocket connection: messages and bytes per second (DeviceLimiter, owned by the session).
//
// Thread-safety: Admission's members are thread-safe; a DeviceLimiter belongs to one session.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "auth/rate_limit.h"
#include "transport/transport_options.h"

namespace possync {

struct Admission {
  explicit Admission(const TransportOptions& options);

  std::optional<KeyedLimiter> ip_connects;  // nothing: no limit
  std::optional<KeyedLimiter> ip_requests;
  ConnectionCaps per_ip;
  ConnectionCaps per_restaurant;
};

// The connection-cap slots an open WebSocket holds (given back when the session ends).
struct Admitted {
  ConnectionCaps::Lease ip;
  ConnectionCaps::Lease restaurant;
};

// The message and byte budget of one WebSocket connection.
class DeviceLimiter {
 public:
  explicit DeviceLimiter(const TransportOptions& options);
  // True if a message of `bytes` fits the budget now (and takes it from the budget).
  bool admit(std::size_t bytes);

 private:
  std::optional<TokenBucket> messages_;
  std::optional<TokenBucket> bytes_;
};

}  // namespace possync
