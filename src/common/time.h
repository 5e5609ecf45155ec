// Wall-clock helpers. Timestamps on the wire are ISO-8601 UTC with milliseconds, as today's app
// expects ("2026-11-26T03:45:41.123Z").
#pragma once

#include <cstdint>
#include <string>

namespace possync {

// Milliseconds since the Unix epoch, from the system clock.
std::int64_t now_ms();

// "YYYY-MM-DDTHH:MM:SS.mmmZ" for a millisecond timestamp.
std::string iso8601_utc(std::int64_t epoch_ms);

}  // namespace possync
