#include "common/ids.h"

#include <fmt/format.h>

namespace possync {

std::optional<std::string> check_id(std::string_view id, std::size_t max_bytes) {
  if (id.empty()) return "is empty";
  if (id.size() > max_bytes) return fmt::format("is longer than {} bytes", max_bytes);
  for (std::size_t i = 0; i < id.size();) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) return "contains a control character";
    std::size_t len = 1;
    if (c >= 0x80) {
      if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
        len = 2;
      } else if ((c & 0xf0) == 0xe0) {
        len = 3;
      } else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
        len = 4;
      } else {
        return "is not valid UTF-8";
      }
      if (i + len > id.size()) return "is not valid UTF-8";
      for (std::size_t k = 1; k < len; ++k) {
        if ((static_cast<unsigned char>(id[i + k]) & 0xc0) != 0x80) return "is not valid UTF-8";
      }
      const auto c1 = static_cast<unsigned char>(id[i + 1]);
      // Overlong 3- and 4-byte forms, UTF-16 surrogates, and code points above U+10FFFF.
      if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
          (c == 0xf4 && c1 > 0x8f)) {
        return "is not valid UTF-8";
      }
      // C1 control characters (U+0080..U+009F) are encoded as 0xC2 0x80..0x9F.
      if (c == 0xc2 && c1 < 0xa0) return "contains a control character";
    }
    i += len;
  }
  return std::nullopt;
}

}  // namespace possync
