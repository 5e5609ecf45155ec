// Invariants of a decoded change, shared by fuzz_message and fuzz_change: what every accepted
// change must satisfy, and that it survives being rendered and decoded again.
#pragma once

#include <string>
#include <variant>

#include "common/ids.h"
#include "common/json_text.h"
#include "fuzz_support.h"
#include "protocol/codec.h"

namespace possync::fuzz {

inline const Origin kOrigin{"rest-1", "dev-1", "user-1"};
inline constexpr std::int64_t kCommittedAt = 1795664741123;

inline std::string describe(const Change& c) {
  return "record_id='" + c.record_id + "' action='" + c.action + "' change_id='" + c.change_id +
         "' data=" + show(c.data);
}

// Error codes decoding may produce (docs/protocol.md, section 9).
inline bool is_decode_error(const Error& e) {
  return !e.message.empty() && (e.code == errc::kInvalidJson || e.code == errc::kInvalidMessage ||
                                e.code == errc::kUnknownType || e.code == errc::kMissingField ||
                                e.code == errc::kInvalidField || e.code == errc::kUnknownDataType ||
                                e.code == errc::kUnknownAction || e.code == errc::kDataTooDeep ||
                                e.code == errc::kTooManyFields || e.code == errc::kStringTooLong ||
                                e.code == errc::kInvalidNumber);
}

// Every error renders as an error message that parses back to the same code and message.
inline void check_error_renders(const Error& e) {
  const std::string text = render_error(e, "c-1");
  auto back = parse_object(text);
  FUZZ_CHECK(back.has_value(), text);
  FUZZ_CHECK(back->at("code") == boost::json::value(e.code) &&
                 back->at("message") == boost::json::value(e.message),
             text);
}

// An accepted change carries the connection's identity, the message's data and valid ids.
inline void check_accepted(const ChangeMsg& m, const boost::json::object& msg,
                           const ProtocolLimits& limits) {
  const Change& c = m.change;
  FUZZ_CHECK(c.restaurant_id == kOrigin.restaurant_id && c.device_id == kOrigin.device_id &&
                 c.user_id == kOrigin.user_id,
             describe(c));
  FUZZ_CHECK(
      msg.contains("data") && msg.at("data").is_object() && c.data == msg.at("data").get_object(),
      describe(c));
  const bool empty_user_record = m.record_id_from_user_id && c.record_id.empty();
  FUZZ_CHECK(empty_user_record || !check_id(c.record_id, limits.max_id_bytes), describe(c));
  FUZZ_CHECK(!m.record_id_from_user_id || (m.typed && c.data_type == DataType::users), describe(c));
  FUZZ_CHECK(!check_id(c.action, limits.max_action_bytes), describe(c));
  FUZZ_CHECK(!check_id(c.change_id, limits.max_change_id_bytes()), describe(c));
  if (m.client_change_id) {
    FUZZ_CHECK(msg.contains("change_id") && msg.at("change_id") == boost::json::value(c.change_id),
               describe(c));
  } else {
    FUZZ_CHECK(c.change_id.starts_with("srv-"), describe(c));
  }
  FUZZ_CHECK(c.base_version.has_value() ==
                 (msg.contains("base_version") && !msg.at("base_version").is_null()),
             describe(c));
}

// Decodes a rendered server message (as a device would send it back) and returns the change.
inline ChangeMsg redecode(const std::string& text, const ProtocolLimits& limits) {
  auto parsed = parse_object(text);
  FUZZ_CHECK(parsed.has_value(), text + " -> " + parsed.error().message);
  auto decoded = decode_message(*parsed, kOrigin, limits);
  FUZZ_CHECK(decoded.has_value(), text + " -> " + decoded.error().message);
  FUZZ_CHECK(std::holds_alternative<ChangeMsg>(*decoded), text);
  return std::get<ChangeMsg>(std::move(*decoded));
}

// Whether `a` and `b` are the same JSON with numbers compared by value: a double without a fraction
// is written as an integer (500.0 as 500) and reads back as one.
inline bool same_json(const boost::json::value& a, const boost::json::value& b) {
  if (a.is_number() && b.is_number() && a.kind() != b.kind()) {
    return a.to_number<double>() == b.to_number<double>();
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_object()) {
    const auto& ao = a.get_object();
    const auto& bo = b.get_object();
    if (ao.size() != bo.size()) return false;
    for (const auto& member : ao) {
      const auto* other = bo.if_contains(member.key());
      if (other == nullptr || !same_json(member.value(), *other)) return false;
    }
    return true;
  }
  if (a.is_array()) {
    const auto& aa = a.get_array();
    const auto& ba = b.get_array();
    if (aa.size() != ba.size()) return false;
    for (std::size_t i = 0; i < aa.size(); ++i) {
      if (!same_json(aa[i], ba[i])) return false;
    }
    return true;
  }
  return a == b;
}

// `data` as a device reads it back from the server's JSON text (common/json_text.h): the same
// values, every number exactly (Boost.JSON 1.81's own parser read some 16-17 digit numbers one unit
// in the last place off, e.g. -9.223372036888889E76), with integral doubles turned integers.
inline boost::json::object as_sent(const boost::json::object& data) {
  const std::string written = json_text(data);
  auto text = parse_object(written);
  FUZZ_CHECK(text.has_value(), written);
  FUZZ_CHECK(same_json(data, *text), written + " vs " + show(data));
  return std::move(*text);
}

// A committed change is forwarded as a typed update (render_live_change) and listed as a
// data_change (change_to_json); both must decode back to the same change.
inline void check_round_trip(const ChangeMsg& m, const ProtocolLimits& limits) {
  const Change& c = m.change;
  if (c.record_id.empty()) return;  // a user_update without any id is never committed
  const LogEntry entry{7, kCommittedAt, c};

  const std::string live = render_live_change(entry);
  const ChangeMsg typed = redecode(live, limits);
  FUZZ_CHECK(typed.typed && typed.client_change_id, live);
  FUZZ_CHECK(typed.change.data_type == c.data_type, live);
  FUZZ_CHECK(typed.change.record_id == c.record_id, live + " vs " + describe(c));
  FUZZ_CHECK(typed.change.action == c.action, live);
  FUZZ_CHECK(typed.change.change_id == c.change_id, live);
  const boost::json::object sent = as_sent(c.data);
  FUZZ_CHECK(typed.change.data == sent, live + " vs " + describe(c));
  FUZZ_CHECK(typed.record_id_from_user_id == m.record_id_from_user_id, live);

  const std::string listed = json_text(change_to_json(entry));
  const ChangeMsg generic = redecode(listed, limits);
  boost::json::object data = sent;
  data["id"] = c.record_id;
  FUZZ_CHECK(!generic.typed && generic.client_change_id, listed);
  FUZZ_CHECK(generic.change.data_type == c.data_type, listed);
  FUZZ_CHECK(generic.change.record_id == c.record_id, listed + " vs " + describe(c));
  FUZZ_CHECK(generic.change.action == c.action, listed);
  FUZZ_CHECK(generic.change.change_id == c.change_id, listed);
  FUZZ_CHECK(generic.change.data == data, listed + " vs " + describe(c));
}

}  // namespace possync::fuzz
