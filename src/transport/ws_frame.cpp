#include "transport/ws_frame.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace possync::ws {
namespace {

bool is_control(std::uint8_t opcode) {
  return (opcode & 0x8) != 0;
}

bool is_known(std::uint8_t opcode) {
  return opcode <= 0x2 || (opcode >= 0x8 && opcode <= 0xA);
}

// XORs `data` with the 4-byte masking key, eight bytes at a time where it can.
void unmask(char* data, std::size_t size, const std::uint8_t key[4]) {
  std::uint64_t key8 = 0;
  for (int i = 0; i < 8; ++i) key8 |= static_cast<std::uint64_t>(key[i % 4]) << (8 * i);
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    std::uint64_t chunk = 0;
    std::memcpy(&chunk, data + i, 8);
    // key8 is laid out for a little-endian load; on big-endian hosts fall back below.
    if constexpr (std::endian::native == std::endian::little) {
      chunk ^= key8;
      std::memcpy(data + i, &chunk, 8);
    } else {
      break;
    }
  }
  for (; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[i % 4]);
}

}  // namespace

std::size_t write_header(std::uint8_t* out, Opcode opcode, std::uint64_t payload_bytes) {
  out[0] = static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(opcode));
  if (payload_bytes < 126) {
    out[1] = static_cast<std::uint8_t>(payload_bytes);
    return 2;
  }
  if (payload_bytes <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(payload_bytes >> 8);
    out[3] = static_cast<std::uint8_t>(payload_bytes);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(payload_bytes >> (56 - 8 * i));
  return 10;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
  constexpr std::size_t kMaxReason = 125 - 2;
  if (reason.size() > kMaxReason) {
    std::size_t cut = kMaxReason;
    // Back up to the start of a UTF-8 character.
    while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
    reason = reason.substr(0, cut);
  }
  std::string out;
  out.reserve(2 + reason.size());
  out.push_back(static_cast<char>(code >> 8));
  out.push_back(static_cast<char>(code & 0xFF));
  out.append(reason);
  return out;
}

bool is_valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

void FrameReader::feed(std::span<char> data) {
  if (!kept_.empty()) {
    kept_.append(data.data(), data.size());
    input_ = std::span<char>(kept_.data(), kept_.size());
    from_kept_ = true;
  } else {
    input_ = data;
    from_kept_ = false;
  }
  pos_ = 0;
}

std::optional<Event> FrameReader::fail(std::uint16_t code, std::string_view reason) {
  // An oversized frame can be skipped and the frames after it still read; after anything else the
  // framing cannot be trusted any more.
  state_ = code == kCloseTooBig ? State::draining : State::dead;
  message_.clear();
  in_message_ = false;
  Event e;
  e.kind = Event::Kind::error;
  e.code = code;
  e.reason = reason;
  return e;
}

void FrameReader::compact() {
  const std::size_t left = input_.size() - pos_;
  if (from_kept_) {
    kept_.erase(0, pos_);
  } else if (left > 0) {
    kept_.assign(input_.data() + pos_, left);
  }
  if (kept_.empty()) std::string().swap(kept_);
  input_ = {};
  pos_ = 0;
  from_kept_ = false;
}

std::optional<Event> FrameReader::next() {
  if (release_message_) {
    release_message_ = false;
    std::string().swap(message_);
  }
  for (;;) {
    if (state_ == State::dead) {
      pos_ = input_.size();
      compact();
      return std::nullopt;
    }
    if (skip_ > 0) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(skip_, input_.size() - pos_));
      pos_ += n;
      skip_ -= n;
      if (skip_ > 0) {
        compact();
        return std::nullopt;
      }
    }
    const std::size_t avail = input_.size() - pos_;
    const auto* h = reinterpret_cast<const std::uint8_t*>(input_.data() + pos_);
    if (avail < 2) break;
    const bool fin = (h[0] & 0x80) != 0;
    const std::uint8_t rsv = h[0] & 0x70;
    const std::uint8_t opcode = h[0] & 0x0F;
    const bool masked = (h[1] & 0x80) != 0;
    std::uint64_t length = h[1] & 0x7F;
    std::size_t header = 2;
    if (length == 126) {
      header = 4;
    } else if (length == 127) {
      header = 10;
    }
    if (masked) header += 4;
    if (avail < header) break;
    if (length == 126) {
      length = (static_cast<std::uint64_t>(h[2]) << 8) | h[3];
    } else if (length == 127) {
      length = 0;
      for (int i = 0; i < 8; ++i) length = (length << 8) | h[2 + i];
    }
    const bool draining = state_ == State::draining;
    if (rsv != 0 || !masked || !is_known(opcode) || (length >> 63) != 0) {
      if (draining) {
        state_ = State::dead;
        continue;
      }
      return fail(kCloseProtocolError, rsv != 0       ? "reserved bits set"
                                       : !masked      ? "client frames must be masked"
                                       : length >> 63 ? "invalid frame length"
                                                      : "unknown opcode");
    }
    if (is_control(opcode) && (!fin || length > 125)) {
      if (draining) {
        state_ = State::dead;
        continue;
      }
      return fail(kCloseProtocolError, "control frames must be final and at most 125 bytes");
    }
    if (!is_control(opcode)) {
      if (draining) {  // skip data frames without looking at them
        pos_ += header;
        skip_ = length;
        continue;
      }
      if (opcode == 0 && !in_message_) {
        return fail(kCloseProtocolError, "continuation frame without a message");
      }
      if (opcode != 0 && in_message_) {
        return fail(kCloseProtocolError, "new message inside a fragmented message");
      }
      if (length > max_message_ || message_.size() + length > max_message_) {
        pos_ += header;
        skip_ = length;
        return fail(kCloseTooBig, "message too big");
      }
    }
    if (avail - header < length) break;  // the payload is not all here yet
    std::uint8_t key[4];
    std::memcpy(key, h + header - 4, 4);
    char* payload = input_.data() + pos_ + header;
    const auto size = static_cast<std::size_t>(length);
    unmask(payload, size, key);
    pos_ += header + size;
    const std::string_view view(payload, size);

    if (opcode == static_cast<std::uint8_t>(Opcode::close)) {
      Event e;
      e.kind = Event::Kind::close;
      e.code = kCloseNoStatus;
      const bool was_open = state_ == State::open;
      state_ = State::draining;
      if (size == 1) {
        if (was_open) return fail(kCloseProtocolError, "close frame with a one-byte payload");
        return e;
      }
      if (size >= 2) {
        e.code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                            static_cast<std::uint8_t>(payload[1]));
        e.reason = view.substr(2);
        if (was_open && !is_valid_close_code(e.code)) {
          return fail(kCloseProtocolError, "invalid close code");
        }
        if (was_open && !is_valid_utf8(e.reason)) {
          return fail(kCloseInvalidPayload, "close reason is not valid UTF-8");
        }
      }
      return e;
    }
    if (draining) continue;  // pings and pongs after a close are not answered
    if (opcode == static_cast<std::uint8_t>(Opcode::ping) ||
        opcode == static_cast<std::uint8_t>(Opcode::pong)) {
      Event e;
      e.kind =
          opcode == static_cast<std::uint8_t>(Opcode::ping) ? Event::Kind::ping : Event::Kind::pong;
      e.payload = view;
      return e;
    }
    // A data frame.
    if (opcode != 0) message_text_ = opcode == static_cast<std::uint8_t>(Opcode::text);
    std::string_view whole = view;
    if (!fin || in_message_) {
      message_.append(view);
      in_message_ = !fin;
      if (!fin) continue;
      whole = message_;
      release_message_ = true;
    }
    if (message_text_ && !is_valid_utf8(whole)) {
      return fail(kCloseInvalidPayload, "text message is not valid UTF-8");
    }
    Event e;
    e.kind = Event::Kind::message;
    e.text = message_text_;
    e.payload = whole;
    return e;
  }
  compact();
  return std::nullopt;
}

}  // namespace possync::ws
