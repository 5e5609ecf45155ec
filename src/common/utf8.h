// UTF-8 checks for text that arrives from outside (WebSocket text messages, close reasons) or
// leaves in a format that requires UTF-8 (JSON log lines). Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace possync {

// The length of the longest prefix of `text` that is valid UTF-8 (no overlong forms, surrogates
// or code points over U+10FFFF); text.size() when all of it is.
std::size_t valid_utf8_prefix(std::string_view text);

inline bool is_valid_utf8(std::string_view text) {
  return valid_utf8_prefix(text) == text.size();
}

// `text` with every byte that is not part of valid UTF-8 replaced by U+FFFD.
std::string repair_utf8(std::string_view text);

}  // namespace possync
