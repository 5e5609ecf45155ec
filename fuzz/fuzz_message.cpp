// bytes -> parse_object -> decode_message: the whole WebSocket message parser, including change
// validation. Every input must be accepted or rejected with a documented error; an accepted change
// must satisfy the change invariants and survive rendering and decoding again.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "change_checks.h"

namespace {

using namespace possync;
using namespace possync::fuzz;

void check_message(const ClientMessage& msg, const boost::json::object& parsed,
                   const ProtocolLimits& limits) {
  if (const auto* r = std::get_if<RegisterMsg>(&msg)) {
    FUZZ_CHECK(!r->user_id || !check_id(*r->user_id, limits.max_id_bytes), *r->user_id);
  } else if (const auto* u = std::get_if<UserChangedMsg>(&msg)) {
    FUZZ_CHECK(u->user_id.empty() || !check_id(u->user_id, limits.max_id_bytes), u->user_id);
  } else if (const auto* c = std::get_if<ChangeMsg>(&msg)) {
    check_accepted(*c, parsed, limits);
    // decode_message and decode_change (the REST path) agree on every change.
    auto again = decode_change(parsed, kOrigin, limits);
    FUZZ_CHECK(again.has_value(), describe(c->change));
    FUZZ_CHECK(again->change.record_id == c->change.record_id &&
                   again->change.data_type == c->change.data_type && again->typed == c->typed &&
                   again->record_id_from_user_id == c->record_id_from_user_id,
               describe(c->change));
    check_round_trip(*c, limits);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_object(text);
  if (!parsed) {
    FUZZ_CHECK(
        parsed.error().code == errc::kInvalidJson || parsed.error().code == errc::kInvalidMessage,
        parsed.error().code);
    return 0;
  }
  // The default limits, and small ones so that the limit checks are reached often.
  ProtocolLimits small;
  small.max_id_bytes = 9;  // server change ids ("srv-<ms>-<hex>", 34 bytes) fit 4x
  small.max_action_bytes = 8;
  for (const ProtocolLimits& limits : {ProtocolLimits{}, small}) {
    auto msg = decode_message(*parsed, kOrigin, limits);
    if (!msg) {
      FUZZ_CHECK(is_decode_error(msg.error()), msg.error().code + ": " + msg.error().message);
      check_error_renders(msg.error());
      continue;
    }
    check_message(*msg, *parsed, limits);
  }
  return 0;
}
