// The WebSocket framing of RFC 6455 (section 5), without extensions: headers of the frames the
// server sends (unmasked), and FrameReader, which turns the bytes a client sends into messages and
// control frames. No I/O: the session reads the socket and hands the bytes over.
//
// FrameReader checks what the RFC requires of a client (masked frames, known opcodes, no reserved
// bits, control frames of at most 125 bytes and never fragmented, continuation frames only inside
// a fragmented message, valid UTF-8 in text messages and close reasons, valid close codes) and the
// server's message size limit, checked against each frame's declared length before its payload
// arrives. After an error it keeps consuming input so that the connection can be closed the way
// section 7.1.1 describes (the peer's close frame is still found after an oversized frame).
//
// Thread-safety: none; a FrameReader belongs to one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/utf8.h"

namespace possync::ws {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA
};

// Close codes of RFC 6455 section 7.4.1 that the framing itself uses.
inline constexpr std::uint16_t kCloseNormal = 1000;
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseProtocolError = 1002;
inline constexpr std::uint16_t kCloseNoStatus = 1005;  // received without a code; never sent
inline constexpr std::uint16_t kCloseInvalidPayload = 1007;
inline constexpr std::uint16_t kClosePolicy = 1008;
inline constexpr std::uint16_t kCloseTooBig = 1009;

// The longest header of a server frame (2 bytes, 8 of extended length, no mask).
inline constexpr std::size_t kMaxHeaderBytes = 10;

// Writes the header of a final, unmasked frame carrying `payload_bytes` into `out`; returns its
// size (2, 4 or 10 bytes).
std::size_t write_header(std::uint8_t* out, Opcode opcode, std::uint64_t payload_bytes);

// The payload of a close frame: the code (network order), then the reason cut to fit the 125 bytes
// of a control frame (at a UTF-8 character boundary).
std::string close_payload(std::uint16_t code, std::string_view reason);

// Whether `code` may appear in a close frame on the wire (1000-1003, 1007-1014, 3000-4999).
bool is_valid_close_code(std::uint16_t code);

// Whether `text` is valid UTF-8 (common/utf8.h).
using possync::is_valid_utf8;

struct Event {
  enum class Kind {
    message,  // a whole data message: `payload`, `text` tells text from binary
    ping,     // `payload`: to be echoed in a pong
    pong,
    close,  // the peer's close frame: `code` (kCloseNoStatus if it sent none) and `reason`
    error   // the input breaks the protocol or a limit: close with `code`, `reason`
  };
  Kind kind = Kind::message;
  bool text = false;
  std::string_view payload;
  std::uint16_t code = 0;
  std::string_view reason;
};

class FrameReader {
 public:
  explicit FrameReader(std::size_t max_message_bytes) : max_message_(max_message_bytes) {}

  // Makes `data` the input. Bytes kept from a frame that was incomplete come first. `data` may be
  // modified (payloads are unmasked in place) and must stay valid until next() returns nullopt.
  void feed(std::span<char> data);

  // The next event of the input, or nullopt once it is used up; the bytes of an incomplete frame
  // are then kept for the next feed(). Views into the input or the reader stay valid until the
  // next call. After an error or the peer's close, data messages are skipped and only a close
  // frame is still reported; after a protocol error, everything is skipped.
  std::optional<Event> next();

  // Stops reading the current input: its unread bytes are kept and come first at the next feed()
  // (feed an empty span to go on with them alone).
  void keep_rest() { compact(); }

  // Whether bytes of an unfinished frame or message are held (memory an idle connection keeps).
  bool holds_data() const { return !kept_.empty() || !message_.empty(); }
  // Whether an error or a close frame has been seen.
  bool closing() const { return state_ != State::open; }

 private:
  enum class State { open, draining, dead };
  std::optional<Event> fail(std::uint16_t code, std::string_view reason);
  // Releases the memory of a finished message or of kept bytes.
  void compact();

  std::size_t max_message_;
  State state_ = State::open;
  std::string kept_;        // bytes of an incomplete frame, waiting for the rest
  bool from_kept_ = false;  // the current input is kept_ (data was appended to it)
  std::span<char> input_;
  std::size_t pos_ = 0;
  std::string message_;  // the fragments of an unfinished fragmented message
  bool in_message_ = false;
  bool message_text_ = false;
  bool release_message_ = false;  // message_ was handed out as an event: clear it on next()
  std::uint64_t skip_ = 0;  // payload bytes of an oversized frame still to skip while draining
};

}  // namespace possync::ws
