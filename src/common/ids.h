// Validation of the identifiers clients send: restaurant, device, user and record ids, change ids.
// An id is 1..max_bytes bytes of valid UTF-8 without control characters. Ids travel in URLs, logs
// and SQL parameters; bounding and cleaning them at the edge keeps every layer below simple.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace possync {

// Returns nothing if `id` is acceptable, else a reason ("is empty", "is longer than 128 bytes",
// ...).
std::optional<std::string> check_id(std::string_view id, std::size_t max_bytes);

}  // namespace possync
