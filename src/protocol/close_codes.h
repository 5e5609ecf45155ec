// possync's WebSocket close codes, beside RFC 6455's (1001 going away, 1008 policy, 1009 too big,
// 1013 try again later). Private-use range 4000-4999; docs/protocol.md lists them all.
#pragma once

#include <cstdint>

namespace possync {

inline constexpr std::uint16_t kClosePolicyViolation = 1008;  // e.g. a slow consumer
inline constexpr std::uint16_t kCloseTryAgainLater = 1013;    // e.g. the store cannot be read

inline constexpr std::uint16_t kCloseTokenExpired = 4001;  // reconnect with a fresh token
inline constexpr std::uint16_t kCloseByOperator = 4002;    // an admin disconnected the device
inline constexpr std::uint16_t kCloseRateLimited = 4029;   // kept sending over its rate limit

}  // namespace possync
