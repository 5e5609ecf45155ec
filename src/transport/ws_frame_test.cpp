#include "transport/ws_frame.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace possync::ws {
namespace {

// A client frame: masked with a fixed key unless `masked` is false.
std::string client_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         bool masked = true, std::uint8_t rsv = 0) {
  std::string out;
  out.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | opcode));
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    out.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    out.push_back(static_cast<char>(mask_bit | 126));
    out.push_back(static_cast<char>(payload.size() >> 8));
    out.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    out.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 0; i < 8; ++i) {
      out.push_back(static_cast<char>(static_cast<std::uint64_t>(payload.size()) >> (56 - 8 * i)));
    }
  }
  const std::uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  if (masked) out.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i) {
    out.push_back(static_cast<char>(masked ? payload[i] ^ key[i % 4] : payload[i]));
  }
  return out;
}

struct Seen {
  Event::Kind kind;
  bool text = false;
  std::string payload;
  std::uint16_t code = 0;
  std::string reason;
};

// Feeds `input` in pieces of `piece` bytes and collects every event (copied).
std::vector<Seen> read_all(FrameReader& reader, std::string input, std::size_t piece = 1 << 20) {
  std::vector<Seen> seen;
  for (std::size_t at = 0; at < input.size(); at += piece) {
    std::string chunk = input.substr(at, piece);
    reader.feed(std::span<char>(chunk.data(), chunk.size()));
    while (auto e = reader.next()) {
      seen.push_back({e->kind, e->text, std::string(e->payload), e->code, std::string(e->reason)});
    }
  }
  return seen;
}

TEST(WsFrame, HeadersUseTheShortestLengthForm) {
  std::uint8_t h[kMaxHeaderBytes];
  ASSERT_EQ(write_header(h, Opcode::text, 5), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 5);
  ASSERT_EQ(write_header(h, Opcode::text, 126), 4u);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ(h[2], 0);
  EXPECT_EQ(h[3], 126);
  ASSERT_EQ(write_header(h, Opcode::binary, 70000), 10u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ(h[7], 0x01);  // 70000 = 0x011170
  EXPECT_EQ(h[8], 0x11);
  EXPECT_EQ(h[9], 0x70);
  ASSERT_EQ(write_header(h, Opcode::close, 0), 2u);
  EXPECT_EQ(h[0], 0x88);
}

TEST(WsFrame, ReadsMaskedMessagesWholeAndByteByByte) {
  const std::string text(300, 'x');
  const std::string input = client_frame(0x1, "{\"type\":\"heartbeat\"}") +
                            client_frame(0x1, text) + client_frame(0x2, "\x01\x02");
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, input.size()}) {
    FrameReader reader(1024);
    auto seen = read_all(reader, input, piece);
    ASSERT_EQ(seen.size(), 3u) << "piece " << piece;
    EXPECT_EQ(seen[0].kind, Event::Kind::message);
    EXPECT_TRUE(seen[0].text);
    EXPECT_EQ(seen[0].payload, "{\"type\":\"heartbeat\"}");
    EXPECT_EQ(seen[1].payload, text);
    EXPECT_FALSE(seen[2].text);
    EXPECT_EQ(seen[2].payload, "\x01\x02");
    EXPECT_FALSE(reader.holds_data());
  }
}

TEST(WsFrame, AssemblesFragmentsWithControlFramesBetween) {
  FrameReader reader(1024);
  auto seen = read_all(reader, client_frame(0x1, "hel", false) + client_frame(0x9, "p") +
                                   client_frame(0x0, "lo ", false) + client_frame(0x0, "world"));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].kind, Event::Kind::ping);
  EXPECT_EQ(seen[0].payload, "p");
  EXPECT_EQ(seen[1].kind, Event::Kind::message);
  EXPECT_EQ(seen[1].payload, "hello world");
  EXPECT_FALSE(reader.holds_data());
}

TEST(WsFrame, ProtocolViolationsAreErrorsWith1002) {
  const std::vector<std::string> bad = {
      client_frame(0x1, "x", true, false),                     // unmasked
      client_frame(0x1, "x", true, true, 0x40),                // reserved bit
      client_frame(0x3, "x"),                                  // unknown opcode
      client_frame(0x9, std::string(126, 'p')),                // control frame too long
      client_frame(0x9, "p", false),                           // fragmented control frame
      client_frame(0x0, "x"),                                  // continuation without a message
      client_frame(0x1, "a", false) + client_frame(0x1, "b"),  // new message inside one
      client_frame(0x8, "\x03"),                               // one-byte close payload
      client_frame(0x8, std::string("\x03\xed", 2)),           // close code 1005 on the wire
  };
  for (const auto& input : bad) {
    FrameReader reader(1024);
    auto seen = read_all(reader, input + client_frame(0x1, "after"));
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].kind, Event::Kind::error);
    EXPECT_EQ(seen[0].code, kCloseProtocolError);
    EXPECT_TRUE(reader.closing());
  }
}

TEST(WsFrame, InvalidUtf8TextIs1007) {
  FrameReader reader(1024);
  auto seen = read_all(reader, client_frame(0x1, "ok \xC3\x28"));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, Event::Kind::error);
  EXPECT_EQ(seen[0].code, kCloseInvalidPayload);
}

TEST(WsFrame, OversizedFrameIsRefusedFromItsHeaderAndThePeersCloseIsStillFound) {
  FrameReader reader(1000);
  const std::string input = client_frame(0x1, std::string(5000, 'a')) +
                            client_frame(0x1, "ignored after the error") +
                            client_frame(0x8, std::string("\x03\xe8", 2) + "bye");
  // The error comes with the first bytes, before the payload has arrived.
  std::string first = input.substr(0, 20);
  reader.feed(std::span<char>(first.data(), first.size()));
  auto e = reader.next();
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kind, Event::Kind::error);
  EXPECT_EQ(e->code, kCloseTooBig);
  EXPECT_FALSE(reader.next().has_value());
  // The rest of the frame is skipped without being kept; the next data message is ignored; the
  // close frame is reported.
  auto rest = read_all(reader, input.substr(20), 333);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].kind, Event::Kind::close);
  EXPECT_EQ(rest[0].code, 1000);
  EXPECT_EQ(rest[0].reason, "bye");
  EXPECT_FALSE(reader.holds_data());
}

TEST(WsFrame, FragmentsAddingUpOverTheLimitAre1009) {
  FrameReader reader(10);
  auto seen = read_all(reader, client_frame(0x1, "123456", false) + client_frame(0x0, "789012"));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].code, kCloseTooBig);
}

TEST(WsFrame, CloseFramesCarryCodeAndReason) {
  FrameReader reader(1024);
  auto seen = read_all(reader, client_frame(0x8, ""));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].kind, Event::Kind::close);
  EXPECT_EQ(seen[0].code, kCloseNoStatus);

  FrameReader other(1024);
  seen = read_all(other, client_frame(0x8, std::string("\x0f\xa1", 2) + "done"));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].code, 4001);
  EXPECT_EQ(seen[0].reason, "done");
}

TEST(WsFrame, LargeLengthForms) {
  FrameReader reader(1 << 20);
  const std::string big(70000, 'z');
  auto seen = read_all(reader, client_frame(0x1, big), 4096);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].payload, big);
}

TEST(WsFrame, Utf8Validation) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii text that is longer than eight bytes"));
  EXPECT_TRUE(is_valid_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8D\x95"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // over U+10FFFF
  EXPECT_FALSE(is_valid_utf8("abc\xE2\x82"));       // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));              // stray continuation
}

TEST(WsFrame, ClosePayloadFitsAControlFrame) {
  EXPECT_EQ(close_payload(1009, "too big"), std::string("\x03\xf1too big", 9));
  std::string long_reason(200, 'a');
  long_reason[122] = '\xC3';  // a two-byte character straddling the cut
  long_reason[123] = '\xA9';
  const auto p = close_payload(1000, long_reason);
  EXPECT_LE(p.size(), 125u);
  EXPECT_TRUE(is_valid_utf8(std::string_view(p).substr(2)));
  EXPECT_TRUE(is_valid_close_code(4029));
  EXPECT_FALSE(is_valid_close_code(1005));
  EXPECT_FALSE(is_valid_close_code(999));
}

}  // namespace
}  // namespace possync::ws
