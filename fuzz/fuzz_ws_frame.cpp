// Bytes a client sends -> ws::FrameReader, the first code that sees a WebSocket connection's
// untrusted input. The first input byte picks how the rest is cut into reads (as the socket may
// hand it over in any pieces); the rest is read twice, whole and in those pieces, and both must
// give the same events. Checks what the reader promises of every event: data messages within the
// size limit, text messages valid UTF-8, the first close frame's code valid on the wire and its
// reason valid UTF-8, control payloads of at most 125 bytes, and no data message after an error or
// a close frame.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "transport/ws_frame.h"

namespace {

namespace ws = possync::ws;

constexpr std::size_t kMaxMessage = 512;  // small, so that the size limit is reached often

struct Seen {
  ws::Event::Kind kind;
  bool text;
  std::string payload;
  std::uint16_t code;
  std::string reason;
  bool operator==(const Seen&) const = default;
};

std::string describe(const std::vector<Seen>& events) {
  std::string out;
  for (const auto& e : events) {
    out += std::to_string(static_cast<int>(e.kind)) + ":" + std::to_string(e.payload.size()) + ":" +
           std::to_string(e.code) + " ";
  }
  return out;
}

// Feeds `bytes` in pieces of the given sizes (cycled; 0 = everything at once) and checks every
// event as it comes.
std::vector<Seen> read_all(const std::string& bytes, const std::vector<std::size_t>& pieces) {
  ws::FrameReader reader(kMaxMessage);
  std::vector<Seen> events;
  bool ended = false;  // an error or a close frame was reported
  // Each piece must stay valid until its events are read (payloads are unmasked in place).
  std::vector<char> piece;
  std::size_t at = 0;
  std::size_t turn = 0;
  while (at < bytes.size()) {
    std::size_t n = pieces.empty() ? 0 : pieces[turn++ % pieces.size()];
    if (n == 0 || n > bytes.size() - at) n = bytes.size() - at;
    piece.assign(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                 bytes.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
    reader.feed(piece);
    while (auto event = reader.next()) {
      const ws::Event& e = *event;
      Seen seen{e.kind, e.text, std::string(e.payload), e.code, std::string(e.reason)};
      const std::string context = describe(events);
      switch (e.kind) {
        case ws::Event::Kind::message:
          FUZZ_CHECK(!ended, context);
          FUZZ_CHECK(e.payload.size() <= kMaxMessage, context);
          if (e.text) FUZZ_CHECK(ws::is_valid_utf8(e.payload), context);
          break;
        case ws::Event::Kind::ping:
        case ws::Event::Kind::pong:
          FUZZ_CHECK(e.payload.size() <= 125, context);
          break;
        case ws::Event::Kind::close:
          FUZZ_CHECK(e.reason.size() <= 123, context);
          if (!ended) {  // a later close frame is only drained, not checked
            FUZZ_CHECK(e.code == ws::kCloseNoStatus || ws::is_valid_close_code(e.code), context);
            FUZZ_CHECK(ws::is_valid_utf8(e.reason), context);
          }
          FUZZ_CHECK(reader.closing(), context);
          ended = true;
          break;
        case ws::Event::Kind::error:
          FUZZ_CHECK(e.code == ws::kCloseProtocolError || e.code == ws::kCloseInvalidPayload ||
                         e.code == ws::kCloseTooBig,
                     context + " code " + std::to_string(e.code));
          FUZZ_CHECK(reader.closing(), context);
          ended = true;
          break;
      }
      events.push_back(std::move(seen));
    }
  }
  return events;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // The first byte: piece sizes 1..8 from its bits (0 bits: reads of 1 to 3 bytes).
  const std::uint8_t cut = data[0];
  std::vector<std::size_t> pieces;
  for (int bit = 0; bit < 8; ++bit) {
    if ((cut >> bit) & 1) pieces.push_back(static_cast<std::size_t>(bit) + 1);
  }
  if (pieces.empty()) pieces = {1, 2, 3};
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto whole = read_all(bytes, {});
  const auto cut_up = read_all(bytes, pieces);
  FUZZ_CHECK(whole == cut_up, "whole: " + describe(whole) + "\ncut: " + describe(cut_up));
  return 0;
}
