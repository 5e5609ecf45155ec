#include "protocol/codec.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <limits>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace possync {
namespace {

namespace json = boost::json;

const Origin kOrigin{"rest-1", "dev-1", "user-1"};
const ProtocolLimits kLimits{};
constexpr std::int64_t kCommittedAt = 1795664741123;  // 2026-11-26T03:45:41.123Z

json::object obj(std::string_view text) {
  return json::parse(text).as_object();
}

Result<ClientMessage> decode(std::string_view text) {
  return decode_message(obj(text), kOrigin, kLimits);
}

// Decodes a message that must be a change.
ChangeMsg decode_ok_change(std::string_view text) {
  auto r = decode(text);
  if (!r) {
    ADD_FAILURE() << "decode failed: " << r.error().code << ": " << r.error().message << "\n"
                  << text;
    return {};
  }
  if (!std::holds_alternative<ChangeMsg>(*r)) {
    ADD_FAILURE() << "not a change: " << text;
    return {};
  }
  return std::get<ChangeMsg>(std::move(*r));
}

// The error code of a message that must fail to decode.
std::string error_code(std::string_view text) {
  auto r = decode(text);
  if (r) return "<decoded>";
  return r.error().code;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// `s` has the shape of `pattern`, where '#' stands for a digit, 'x' for a lowercase hex digit and
// '*' for one or more digits; every other character stands for itself.
bool has_shape(std::string_view s, std::string_view pattern) {
  std::size_t i = 0;
  for (const char p : pattern) {
    if (p == '*') {
      const std::size_t start = i;
      while (i < s.size() && is_digit(s[i])) ++i;
      if (i == start) return false;
      continue;
    }
    if (i >= s.size()) return false;
    const char c = s[i++];
    if (p == '#' && !is_digit(c)) return false;
    if (p == 'x' && !is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
    if (p != '#' && p != 'x' && p != c) return false;
  }
  return i == s.size();
}

bool is_server_change_id(const std::string& id) {
  return has_shape(id, "srv-*-xxxxxxxxxxxxxxxx");
}

bool is_iso_timestamp(const json::value& v) {
  return v.is_string() && has_shape(v.get_string(), "####-##-##T##:##:##.###Z");
}

TEST(TestHelpers, HasShape) {
  EXPECT_TRUE(has_shape("2026-11-26T03:45:41.123Z", "####-##-##T##:##:##.###Z"));
  EXPECT_FALSE(has_shape("2026-11-26T03:45:41.12Z", "####-##-##T##:##:##.###Z"));
  EXPECT_FALSE(has_shape("2026-11-26T03:45:41.123", "####-##-##T##:##:##.###Z"));
  EXPECT_TRUE(is_server_change_id("srv-1-0123456789abcdef"));
  EXPECT_FALSE(is_server_change_id("srv--0123456789abcdef"));
  EXPECT_FALSE(is_server_change_id("srv-1-0123456789abcdeF"));
  EXPECT_FALSE(is_server_change_id("srv-1-0123456789abcdef0"));
}

json::object parsed(const std::string& text) {
  const json::value v = json::parse(text);
  EXPECT_TRUE(v.is_object()) << text;
  return v.is_object() ? v.get_object() : json::object{};
}

// ---- parse_object ----

TEST(ParseObject, AcceptsAnObject) {
  auto r = parse_object(R"({"type":"heartbeat","n":[1,{"a":null}]})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->at("type"), json::value("heartbeat"));
}

TEST(ParseObject, InvalidJson) {
  for (const char* text :
       {"", "not json", "{", R"({"a":})", "{} trailing", R"({'a':1})", R"({"a":1,})"}) {
    auto r = parse_object(text);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code, "invalid_json") << text;
  }
}

TEST(ParseObject, NonObjectIsInvalidMessage) {
  for (const char* text : {"[]", "[1,2]", "42", R"("text")", "null", "true"}) {
    auto r = parse_object(text);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code, "invalid_message") << text;
  }
}

TEST(ParseObject, RejectsExcessiveNesting) {
  const std::string shallow = R"({"a":)" + std::string(10, '[') + std::string(10, ']') + "}";
  EXPECT_TRUE(parse_object(shallow).has_value());
  const std::string deep = R"({"a":)" + std::string(100, '[') + std::string(100, ']') + "}";
  auto r = parse_object(deep);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "invalid_json");
}

// Found by fuzz_merge_patch (fuzz/corpus/fuzz_merge_patch/regression-nan): Boost.JSON reads
// numbers beyond double's range as infinity or NaN and writes them back as `Infinity` / `NaN`,
// which no JSON parser (today's app, the SQLite store's own reads) accepts. Such a number never
// gets into a change: decode_change rejects it (invalid_number).
TEST(ParseObject, NumbersOutOfRangeNeverReachAChange) {
  for (const char* number : {"1e400", "-1e400", "[1,{\"x\":-1e99999}]"}) {
    auto parsed = parse_object(fmt::format(
        R"({{"type":"order_update","order_id":"o1","action":"updated","data":{{"n":{}}}}})",
        number));
    ASSERT_TRUE(parsed.has_value()) << number;
    auto m = decode_message(*parsed, kOrigin, kLimits);
    ASSERT_FALSE(m.has_value()) << number;
    EXPECT_EQ(m.error().code, "invalid_number") << number;
  }
}

// Zero with any exponent is zero, as JSON.parse reads it (Boost.JSON 1.81's own parser read 0e400
// as NaN and 0.0E14330 as infinity: fuzz/corpus/fuzz_message/regression-out-of-range-number.json,
// fuzz/corpus/fuzz_merge_patch/regression-nan).
TEST(ParseObject, ZeroWithAHugeExponentIsZero) {
  auto parsed = parse_object(R"({"type":"order_update","order_id":"o1","action":"updated",
                                 "data":{"a":0e400,"b":[1,{"x":0.0E14330}],"c":-0e400}})");
  ASSERT_TRUE(parsed.has_value());
  auto m = decode_message(*parsed, kOrigin, kLimits);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  const LogEntry e{1, kCommittedAt, std::get<ChangeMsg>(*m).change};
  EXPECT_NE(render_live_change(e).find(R"("data":{"a":0,"b":[1,{"x":0}],"c":0})"),
            std::string::npos)
      << render_live_change(e);
}

// Numbers go out as JavaScript prints them (common/json_text.h), in every rendering of a change,
// exactly as the device sent them: no exponent form for 25.5, no digit lost or changed.
TEST(ParseObject, NumbersComeBackAsSent) {
  const std::string data =
      R"({"total":25.5,"tax":0.1,"tiny":1e-7,"big":123456789012345680000,"huge":1e+21,)"
      R"("n":9007199254740993,"off_by_one_ulp_in_boost":1238.8249400479617,"neg":-25.5})";
  auto parsed = parse_object(R"({"type":"order_update","order_id":"o1","action":"updated",)"
                             R"("data":)" +
                             data + "}");
  ASSERT_TRUE(parsed.has_value());
  auto m = decode_message(*parsed, kOrigin, kLimits);
  ASSERT_TRUE(m.has_value());
  const LogEntry e{1, kCommittedAt, std::get<ChangeMsg>(*m).change};
  const std::string live = render_live_change(e);
  EXPECT_NE(live.find(R"("data":)" + data), std::string::npos) << live;

  Outcome conflict;
  conflict.change_id = "c1";
  conflict.status = OutcomeStatus::rejected;
  conflict.error = {errc::kConflict, "stale"};
  conflict.current = e.change.data;
  const std::string ack = render_ack(conflict);
  EXPECT_NE(ack.find(R"("current":)" + data), std::string::npos) << ack;
}

TEST(ParseObject, AcceptedChangeRendersAsJson) {
  auto parsed = parse_object(R"({"type":"order_update","order_id":"o1","action":"updated",
                                 "data":{"total":1e308,"tiny":1e-400}})");
  ASSERT_TRUE(parsed.has_value());
  auto m = decode_message(*parsed, kOrigin, kLimits);
  ASSERT_TRUE(m.has_value());
  const LogEntry e{1, kCommittedAt, std::get<ChangeMsg>(*m).change};
  EXPECT_TRUE(parse_object(render_live_change(e)).has_value()) << render_live_change(e);
}

// ---- decode_message: envelope ----

TEST(DecodeMessage, TypeIsRequired) {
  EXPECT_EQ(error_code(R"({"device_id":"d"})"), "missing_field");
  EXPECT_EQ(error_code(R"({"type":null})"), "missing_field");
}

TEST(DecodeMessage, TypeMustBeAString) {
  EXPECT_EQ(error_code(R"({"type":1})"), "invalid_field");
  EXPECT_EQ(error_code(R"({"type":["register"]})"), "invalid_field");
  EXPECT_EQ(error_code(R"({"type":{"x":1}})"), "invalid_field");
}

TEST(DecodeMessage, UnknownTypes) {
  for (const char* type : {"", "hello", "orders", "Register", "sync_update", "ack", "registered"}) {
    EXPECT_EQ(error_code(R"({"type":")" + std::string(type) + R"("})"), "unknown_type") << type;
  }
}

// ---- register / heartbeat / user_changed ----

TEST(DecodeRegister, AsTodaysAppSendsIt) {
  auto r = decode(R"({"type":"register","device_id":"other-dev","restaurant_id":"other-rest",
                      "user_id":"u7","timestamp":"2026-11-26T04:45:41.123"})");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  ASSERT_TRUE(std::holds_alternative<RegisterMsg>(*r));
  const auto& m = std::get<RegisterMsg>(*r);
  EXPECT_EQ(m.user_id, std::optional<std::string>("u7"));
  EXPECT_EQ(m.since, std::nullopt);
}

TEST(DecodeRegister, WithSince) {
  for (const auto& [text, since] : std::vector<std::pair<const char*, std::uint64_t>>{
           {R"({"type":"register","since":42})", 42},
           {R"({"type":"register","since":0})", 0},
           {R"({"type":"register","since":18446744073709551615})", 18446744073709551615ull}}) {
    auto r = decode(text);
    ASSERT_TRUE(r.has_value()) << text;
    EXPECT_EQ(std::get<RegisterMsg>(*r).since, std::optional<std::uint64_t>(since)) << text;
  }
  auto r = decode(R"({"type":"register","since":null})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<RegisterMsg>(*r).since, std::nullopt);
}

TEST(DecodeRegister, SinceMustBeANonNegativeInteger) {
  for (const char* since : {"-1", "1.5", "\"3\"", "true", "[1]", "1e3"}) {
    EXPECT_EQ(error_code(R"({"type":"register","since":)" + std::string(since) + "}"),
              "invalid_field")
        << since;
  }
}

TEST(DecodeRegister, UserIdIsOptional) {
  for (const char* text : {R"({"type":"register"})", R"({"type":"register","user_id":null})",
                           R"({"type":"register","user_id":""})"}) {
    auto r = decode(text);
    ASSERT_TRUE(r.has_value()) << text;
    EXPECT_EQ(std::get<RegisterMsg>(*r).user_id, std::nullopt) << text;
  }
}

TEST(DecodeRegister, InvalidUserIds) {
  EXPECT_EQ(error_code(R"({"type":"register","user_id":5})"), "invalid_field");
  EXPECT_EQ(error_code(R"({"type":"register","user_id":"a\u0001b"})"), "invalid_field");
  const std::string ok(128, 'u');
  EXPECT_EQ(error_code(R"({"type":"register","user_id":")" + ok + R"("})"), "<decoded>");
  EXPECT_EQ(error_code(R"({"type":"register","user_id":")" + ok + R"(u"})"), "invalid_field");
}

TEST(DecodeHeartbeat, Decodes) {
  auto r = decode(R"({"type":"heartbeat","device_id":"d","restaurant_id":"r","timestamp":"t"})");
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(std::holds_alternative<HeartbeatMsg>(*r));
}

TEST(DecodeUserChanged, Decodes) {
  auto r = decode(R"({"type":"user_changed","user_id":"u9","device_id":"d","restaurant_id":"r"})");
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(std::holds_alternative<UserChangedMsg>(*r));
  EXPECT_EQ(std::get<UserChangedMsg>(*r).user_id, "u9");
}

TEST(DecodeUserChanged, EmptyUserIdMeansLoggedOut) {
  auto r = decode(R"({"type":"user_changed","user_id":""})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::get<UserChangedMsg>(*r).user_id, "");
}

TEST(DecodeUserChanged, Errors) {
  EXPECT_EQ(error_code(R"({"type":"user_changed"})"), "missing_field");
  EXPECT_EQ(error_code(R"({"type":"user_changed","user_id":null})"), "missing_field");
  EXPECT_EQ(error_code(R"({"type":"user_changed","user_id":12})"), "invalid_field");
  EXPECT_EQ(error_code(R"({"type":"user_changed","user_id":")" + std::string(129, 'u') + R"("})"),
            "invalid_field");
}

// ---- typed updates ----

struct TypedCase {
  const char* type;
  const char* id_field;
  DataType data_type;
};

void PrintTo(const TypedCase& c, std::ostream* os) {
  *os << c.type;
}

class DecodeTypedUpdate : public testing::TestWithParam<TypedCase> {
 protected:
  // A typed update as today's app sends it, with `extra` members spliced in.
  std::string message(std::string_view id_json = R"("rec-1")", std::string_view extra = "") {
    const TypedCase& c = GetParam();
    std::string m = R"({"type":")" + std::string(c.type) + R"(",")" + c.id_field + R"(":)" +
                    std::string(id_json) +
                    R"(,"action":"created","data":{"name":"Pizza","price":12.5,"tags":["a"]},
                       "device_id":"body-dev","restaurant_id":"body-rest","timestamp":"t")";
    if (c.data_type != DataType::users) m += R"(,"user_id":"body-user")";
    if (!extra.empty()) m += "," + std::string(extra);
    return m + "}";
  }
};

TEST_P(DecodeTypedUpdate, DecodesRecordIdDataAndAction) {
  const ChangeMsg m = decode_ok_change(message());
  EXPECT_TRUE(m.typed);
  EXPECT_FALSE(m.client_change_id);
  EXPECT_EQ(m.change.data_type, GetParam().data_type);
  EXPECT_EQ(m.change.record_id, "rec-1");
  EXPECT_EQ(m.change.action, "created");
  EXPECT_EQ(m.change.data, obj(R"({"name":"Pizza","price":12.5,"tags":["a"]})"));
  EXPECT_FALSE(m.change.base_version.has_value());
}

TEST_P(DecodeTypedUpdate, OriginWinsOverBodyFields) {
  const ChangeMsg m = decode_ok_change(message());
  EXPECT_EQ(m.change.restaurant_id, "rest-1");
  EXPECT_EQ(m.change.device_id, "dev-1");
  EXPECT_EQ(m.change.user_id, "user-1");
}

TEST_P(DecodeTypedUpdate, AssignsAServerChangeIdWhenMissing) {
  const ChangeMsg a = decode_ok_change(message());
  const ChangeMsg b = decode_ok_change(message());
  EXPECT_FALSE(a.client_change_id);
  EXPECT_TRUE(is_server_change_id(a.change.change_id)) << a.change.change_id;
  EXPECT_NE(a.change.change_id, b.change.change_id);
  const ChangeMsg n = decode_ok_change(message(R"("rec-1")", R"("change_id":null)"));
  EXPECT_FALSE(n.client_change_id);
  EXPECT_TRUE(is_server_change_id(n.change.change_id));
}

TEST_P(DecodeTypedUpdate, KeepsAClientChangeId) {
  const ChangeMsg m = decode_ok_change(message(R"("rec-1")", R"("change_id":"1712_dev_rec-1")"));
  EXPECT_TRUE(m.client_change_id);
  EXPECT_EQ(m.change.change_id, "1712_dev_rec-1");
}

TEST_P(DecodeTypedUpdate, IntegerRecordIdBecomesAString) {
  EXPECT_EQ(decode_ok_change(message("42")).change.record_id, "42");
  EXPECT_EQ(decode_ok_change(message("18446744073709551615")).change.record_id,
            "18446744073709551615");
}

TEST_P(DecodeTypedUpdate, RecordIdMustBeAStringOrInteger) {
  for (const char* id : {"1.5", "true", "[1]", R"({"id":1})"}) {
    EXPECT_EQ(error_code(message(id)), "invalid_field") << id;
  }
}

TEST_P(DecodeTypedUpdate, RecordIdLimits) {
  EXPECT_EQ(error_code(message(R"(")" + std::string(128, 'r') + R"(")")), "<decoded>");
  EXPECT_EQ(error_code(message(R"(")" + std::string(129, 'r') + R"(")")), "invalid_field");
  EXPECT_EQ(error_code(message(R"("a\nb")")), "invalid_field");
}

TEST_P(DecodeTypedUpdate, ActionIsRequiredAndBounded) {
  const TypedCase& c = GetParam();
  const std::string base = R"({"type":")" + std::string(c.type) + R"(",")" + c.id_field +
                           R"(":"rec-1","data":{"id":"rec-1"})";
  EXPECT_EQ(error_code(base + "}"), "missing_field");
  EXPECT_EQ(error_code(base + R"(,"action":null})"), "missing_field");
  EXPECT_EQ(error_code(base + R"(,"action":7})"), "invalid_field");
  EXPECT_EQ(error_code(base + R"(,"action":""})"), "invalid_field");
  // 64 bytes pass the length check, and are then not an action the data type knows.
  EXPECT_EQ(error_code(base + R"(,"action":")" + std::string(64, 'a') + R"("})"), "unknown_action");
  EXPECT_EQ(error_code(base + R"(,"action":")" + std::string(65, 'a') + R"("})"), "invalid_field");
}

TEST_P(DecodeTypedUpdate, DataIsARequiredObject) {
  const TypedCase& c = GetParam();
  const std::string base = R"({"type":")" + std::string(c.type) + R"(",")" + c.id_field +
                           R"(":"rec-1","action":"updated")";
  EXPECT_EQ(error_code(base + "}"), "missing_field");
  EXPECT_EQ(error_code(base + R"(,"data":null})"), "missing_field");
  EXPECT_EQ(error_code(base + R"(,"data":[1]})"), "invalid_field");
  EXPECT_EQ(error_code(base + R"(,"data":"x"})"), "invalid_field");
}

INSTANTIATE_TEST_SUITE_P(
    AllButUsers, DecodeTypedUpdate,
    testing::Values(TypedCase{"order_update", "order_id", DataType::orders},
                    TypedCase{"menu_update", "item_id", DataType::menu_items},
                    TypedCase{"inventory_update", "item_id", DataType::inventory},
                    TypedCase{"table_update", "table_id", DataType::tables},
                    TypedCase{"printer_update", "printer_id", DataType::printers}),
    [](const testing::TestParamInfo<TypedCase>& info) { return std::string(info.param.type); });

// user_update carries its record id in user_id: the same key as the sender's user id.
INSTANTIATE_TEST_SUITE_P(Users, DecodeTypedUpdate,
                         testing::Values(TypedCase{"user_update", "user_id", DataType::users}),
                         [](const testing::TestParamInfo<TypedCase>& info) {
                           return std::string(info.param.type);
                         });

TEST(DecodeTypedUpdateErrors, MissingIdField) {
  EXPECT_EQ(error_code(R"({"type":"order_update","action":"created","data":{}})"), "missing_field");
  EXPECT_EQ(error_code(R"({"type":"table_update","table_id":null,"action":"x","data":{}})"),
            "missing_field");
  // The id field of another type does not count.
  EXPECT_EQ(error_code(R"({"type":"menu_update","order_id":"o1","action":"x","data":{}})"),
            "missing_field");
}

TEST(DecodeTypedUpdateErrors, NonUserTypedUpdatesIgnoreDataId) {
  const ChangeMsg m = decode_ok_change(
      R"({"type":"order_update","order_id":"o1","action":"updated","data":{"id":"o2"}})");
  EXPECT_EQ(m.change.record_id, "o1");
}

// ---- user_update ----

TEST(DecodeUserUpdate, RecordIdFromDataId) {
  const ChangeMsg m = decode_ok_change(
      R"({"type":"user_update","user_id":"sender-7","action":"role_changed",
          "data":{"id":"u42","role":"manager"}})");
  EXPECT_TRUE(m.typed);
  EXPECT_EQ(m.change.data_type, DataType::users);
  EXPECT_EQ(m.change.record_id, "u42");
  EXPECT_FALSE(m.record_id_from_user_id);
  EXPECT_EQ(m.change.user_id, "user-1");  // the origin's, not the body's
}

TEST(DecodeUserUpdate, IntegerDataId) {
  const ChangeMsg m =
      decode_ok_change(R"({"type":"user_update","action":"updated","data":{"id":42}})");
  EXPECT_EQ(m.change.record_id, "42");
  EXPECT_FALSE(m.record_id_from_user_id);
}

TEST(DecodeUserUpdate, RecordIdFromUserIdIsFlagged) {
  const ChangeMsg m = decode_ok_change(
      R"({"type":"user_update","user_id":"u42","action":"updated","data":{"name":"Ann"}})");
  EXPECT_EQ(m.change.record_id, "u42");
  EXPECT_TRUE(m.record_id_from_user_id);
}

TEST(DecodeUserUpdate, NullOrMissingUserIdLeavesTheRecordIdEmpty) {
  for (const char* text :
       {R"({"type":"user_update","user_id":null,"action":"updated","data":{"name":"Ann"}})",
        R"({"type":"user_update","action":"updated","data":{"name":"Ann"}})",
        R"({"type":"user_update","user_id":"x","action":"updated","data":{"id":null}})"}) {
    const ChangeMsg m = decode_ok_change(text);
    EXPECT_TRUE(m.record_id_from_user_id) << text;
    if (std::string_view(text).find(R"("user_id":"x")") == std::string_view::npos) {
      EXPECT_EQ(m.change.record_id, "") << text;
    }
  }
}

TEST(DecodeUserUpdate, InvalidUserIdField) {
  EXPECT_EQ(error_code(R"({"type":"user_update","user_id":[1],"action":"x","data":{}})"),
            "invalid_field");
  EXPECT_EQ(error_code(R"({"type":"user_update","user_id":")" + std::string(129, 'u') +
                       R"(","action":"x","data":{}})"),
            "invalid_field");
}

// codec.h: `record_id_from_user_id` marks a user_update "whose record id could only be taken from
// user_id". Whenever the record id does come from user_id, the flag must say so (the session defers
// such changes to pair them with their data_change, which has the true id).
TEST(DecodeUserUpdate, RecordIdTakenFromUserIdIsAlwaysFlagged) {
  auto r = decode(R"({"type":"user_update","user_id":"sender-7","action":"updated",
                      "data":{"id":"","name":"Ann"}})");
  if (!r) {
    SUCCEED() << "rejected: " << r.error().message;  // rejecting an empty data.id is fine too
    return;
  }
  const ChangeMsg& m = std::get<ChangeMsg>(*r);
  if (m.change.record_id == "sender-7") {
    EXPECT_TRUE(m.record_id_from_user_id)
        << "the record id was taken from user_id (the sender's own id) without the flag";
  }
}

// ---- data_change ----

TEST(DecodeDataChange, AsTodaysAppSendsIt) {
  const ChangeMsg m = decode_ok_change(
      R"({"type":"data_change","data_type":"orders","action":"status_changed",
          "data":{"id":"o1","status":"paid"},"device_id":"body-dev","restaurant_id":"body-rest",
          "user_id":"body-user","timestamp":"t","change_id":"1712345678901_dev-1_o1"})");
  EXPECT_FALSE(m.typed);
  EXPECT_TRUE(m.client_change_id);
  EXPECT_FALSE(m.record_id_from_user_id);
  EXPECT_EQ(m.change.change_id, "1712345678901_dev-1_o1");
  EXPECT_EQ(m.change.data_type, DataType::orders);
  EXPECT_EQ(m.change.action, "status_changed");
  EXPECT_EQ(m.change.record_id, "o1");
  EXPECT_EQ(m.change.data, obj(R"({"id":"o1","status":"paid"})"));
  EXPECT_EQ(m.change.restaurant_id, "rest-1");
  EXPECT_EQ(m.change.device_id, "dev-1");
  EXPECT_EQ(m.change.user_id, "user-1");
}

TEST(DecodeDataChange, EveryDataTypeName) {
  for (const auto& d : kDataTypes) {
    const ChangeMsg m =
        decode_ok_change(R"({"type":"data_change","data_type":")" + std::string(d.name) +
                         R"(","action":"updated","data":{"id":"x"}})");
    EXPECT_EQ(m.change.data_type, d.type) << d.name;
    EXPECT_EQ(m.change.record_id, "x");
  }
}

TEST(DecodeDataChange, IntegerDataId) {
  EXPECT_EQ(decode_ok_change(
                R"({"type":"data_change","data_type":"tables","action":"updated","data":{"id":7}})")
                .change.record_id,
            "7");
}

TEST(DecodeDataChange, ServerChangeIdWhenMissing) {
  const ChangeMsg m =
      decode_ok_change(R"({"type":"data_change","data_type":"orders","action":"updated",
                           "data":{"id":"o1"}})");
  EXPECT_FALSE(m.client_change_id);
  EXPECT_TRUE(is_server_change_id(m.change.change_id)) << m.change.change_id;
}

TEST(DecodeDataChange, DataIdIsRequired) {
  EXPECT_EQ(
      error_code(R"({"type":"data_change","data_type":"orders","action":"updated","data":{}})"),
      "missing_field");
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"orders","action":"updated",
                           "data":{"id":null}})"),
            "missing_field");
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"orders","action":"updated",
                           "data":{"id":1.5}})"),
            "invalid_field");
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"orders","action":"updated",
                           "data":{"id":""}})"),
            "invalid_field");
  // A top-level record id field is not data.id.
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"orders","order_id":"o1",
                           "action":"updated","data":{}})"),
            "missing_field");
}

TEST(DecodeDataChange, DataType) {
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"widgets","action":"updated",
                           "data":{"id":"1"}})"),
            "unknown_data_type");
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"order_update","action":"updated",
                           "data":{"id":"1"}})"),
            "unknown_data_type");
  EXPECT_EQ(error_code(R"({"type":"data_change","action":"updated","data":{"id":"1"}})"),
            "missing_field");
  EXPECT_EQ(
      error_code(R"({"type":"data_change","data_type":3,"action":"updated","data":{"id":"1"}})"),
      "invalid_field");
}

// ---- fields common to all changes ----

std::string order_change(std::string_view extra) {
  return R"({"type":"data_change","data_type":"orders","action":"updated","data":{"id":"o1"},)" +
         std::string(extra) + "}";
}

TEST(DecodeChangeFields, ChangeIdLimits) {
  const ProtocolLimits limits;
  const std::string max(limits.max_change_id_bytes(), 'c');
  EXPECT_EQ(error_code(order_change(R"("change_id":")" + max + R"(")")), "<decoded>");
  EXPECT_EQ(error_code(order_change(R"("change_id":")" + max + R"(c")")), "invalid_field");
  EXPECT_EQ(error_code(order_change(R"("change_id":"")")), "invalid_field");
  EXPECT_EQ(error_code(order_change(R"("change_id":12345)")), "invalid_field");
  EXPECT_EQ(error_code(order_change(R"("change_id":"a\u0000b")")), "invalid_field");
}

TEST(DecodeChangeFields, OverLongRecordIdNamesTheField) {
  auto r =
      decode(R"({"type":"data_change","data_type":"orders","action":"updated","data":{"id":")" +
             std::string(129, 'x') + R"("}})");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "invalid_field");
  EXPECT_NE(r.error().message.find("record id"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("128"), std::string::npos) << r.error().message;
}

TEST(DecodeChangeFields, LimitsAreConfigurable) {
  ProtocolLimits small;
  small.max_id_bytes = 4;
  small.max_action_bytes = 6;
  auto ok = decode_message(obj(R"({"type":"order_update","order_id":"abcd","action":"upsert",
                                   "data":{}})"),
                           kOrigin, small);
  EXPECT_TRUE(ok.has_value());
  auto long_id = decode_message(obj(R"({"type":"order_update","order_id":"abcde","action":"updated",
                                        "data":{}})"),
                                kOrigin, small);
  ASSERT_FALSE(long_id.has_value());
  EXPECT_EQ(long_id.error().code, "invalid_field");
  auto long_action = decode_message(obj(R"({"type":"order_update","order_id":"a","action":"updated",
                                            "data":{}})"),
                                    kOrigin, small);
  ASSERT_FALSE(long_action.has_value());
  EXPECT_EQ(long_action.error().code, "invalid_field");
  auto long_change_id =
      decode_message(obj(R"({"type":"order_update","order_id":"a","action":"upsert",
                                               "data":{},"change_id":"12345678901234567"})"),
                     kOrigin, small);  // 17 > 4 * 4
  ASSERT_FALSE(long_change_id.has_value());
  EXPECT_EQ(long_change_id.error().code, "invalid_field");
}

TEST(DecodeChangeFields, BaseVersion) {
  EXPECT_EQ(decode_ok_change(order_change(R"("base_version":3)")).change.base_version,
            std::optional<std::uint64_t>(3));
  EXPECT_EQ(decode_ok_change(order_change(R"("base_version":0)")).change.base_version,
            std::optional<std::uint64_t>(0));
  EXPECT_EQ(decode_ok_change(order_change(R"("base_version":null)")).change.base_version,
            std::nullopt);
  EXPECT_EQ(
      decode_ok_change(order_change(R"("base_version":18446744073709551615)")).change.base_version,
      std::optional<std::uint64_t>(18446744073709551615ull));
}

TEST(DecodeChangeFields, BaseVersionMustBeANonNegativeInteger) {
  for (const char* v : {"-1", "-9223372036854775808", "1.0", "2.5", "\"3\"", "true", "[3]", "{}"}) {
    EXPECT_EQ(error_code(order_change(R"("base_version":)" + std::string(v))), "invalid_field")
        << v;
  }
}

TEST(DecodeChangeFields, OriginWinsForDataChange) {
  Origin other{"rest-9", "dev-9", ""};
  auto r = decode_message(obj(order_change(R"("restaurant_id":"evil","device_id":"evil",
                                              "user_id":"evil")")),
                          other, kLimits);
  ASSERT_TRUE(r.has_value());
  const Change& c = std::get<ChangeMsg>(*r).change;
  EXPECT_EQ(c.restaurant_id, "rest-9");
  EXPECT_EQ(c.device_id, "dev-9");
  EXPECT_EQ(c.user_id, "");
}

// docs/protocol.md: "Fields are checked in this order: type, data, data_type, record id, action,
// change_id, base_version; the first problem is reported."
TEST(DecodeChangeFields, FirstProblemInDocumentedOrderIsReported) {
  struct Case {
    const char* text;
    const char* code;
    const char* mentions;
  };
  for (
      const Case& c : {
          Case{R"({"type":"data_change","data":5,"data_type":"nope","action":7})", "invalid_field",
               "'data'"},
          Case{R"({"type":"data_change","data":{},"data_type":"nope","action":7})",
               "unknown_data_type", "nope"},
          Case{R"({"type":"data_change","data":{},"data_type":"orders","action":7})",
               "missing_field", "data.id"},
          Case{R"({"type":"order_update","data":{},"action":7,"change_id":1})", "missing_field",
               "order_id"},
          Case{R"({"type":"order_update","order_id":"o1","data":{},"action":7,"change_id":1})",
               "invalid_field", "action"},
          Case{R"({"type":"order_update","order_id":"o1","data":{},"action":"updated","change_id":1,
                    "base_version":-1})",
               "invalid_field", "change_id"},
          Case{
              R"({"type":"order_update","order_id":"o1","data":{},"action":"updated","change_id":"c",
                    "base_version":-1})",
              "invalid_field", "base_version"},
      }) {
    auto r = decode(c.text);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_EQ(r.error().code, c.code) << c.text;
    EXPECT_NE(r.error().message.find(c.mentions), std::string::npos)
        << c.text << " -> " << r.error().message;
  }
}

TEST(UserUpdateWithoutId, IsTheDocumentedMissingFieldError) {
  const Error e = user_update_without_id();
  EXPECT_EQ(e.code, "missing_field");
  EXPECT_EQ(e.message, "user_update needs the user's id in 'data.id' or 'user_id'");
}

// ---- decode_change (POST /api/sync entries) ----

TEST(DecodeChange, MissingTypeMeansDataChange) {
  auto r = decode_change(obj(R"({"data_type":"inventory","action":"stock_changed",
                                 "data":{"id":"i1","current_stock":3},"change_id":"c1"})"),
                         kOrigin, kLimits);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_FALSE(r->typed);
  EXPECT_EQ(r->change.data_type, DataType::inventory);
  EXPECT_EQ(r->change.record_id, "i1");
  EXPECT_EQ(r->change.change_id, "c1");
}

TEST(DecodeChange, NonChangeTypeIsUnknown) {
  auto r = decode_change(obj(R"({"type":"register","data":{}})"), kOrigin, kLimits);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "unknown_type");
}

// ---- validation: actions and the contents of `data` ----

// An order_update whose `data` is `data_json`.
std::string order_with_data(std::string_view data_json) {
  return R"({"type":"order_update","order_id":"o1","action":"updated","data":)" +
         std::string(data_json) + "}";
}

// A data value nested `levels` objects deep: {"n":{"n":...{"n":1}}}.
std::string nested_objects(std::size_t levels) {
  std::string v = "1";
  for (std::size_t i = 0; i < levels; ++i) v = R"({"n":)" + v + "}";
  return v;
}

// An object with `count` members "f0", "f1", ... each holding `value`.
std::string object_with_fields(std::size_t count, std::string_view value = "0") {
  std::string v = "{";
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) v += ",";
    v += R"("f)" + std::to_string(i) + R"(":)" + std::string(value);
  }
  return v + "}";
}

// The decode error of `text`, which must fail.
Error decode_error(std::string_view text, const ProtocolLimits& limits = kLimits) {
  auto r = decode_message(obj(text), kOrigin, limits);
  if (r) {
    ADD_FAILURE() << "decoded: " << text.substr(0, 200);
    return {};
  }
  return r.error();
}

// Every action docs/protocol.md lists for each data type (what today's app sends).
TEST(ValidateAction, EveryActionOfTodaysAppIsAcceptedForItsType) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> actions{
      {"orders", {"created", "updated", "status_changed", "completed"}},
      {"menu_items", {"created", "updated", "deleted", "availability_changed"}},
      {"inventory", {"stock_changed", "item_added", "item_removed", "low_stock_alert"}},
      {"tables", {"occupied", "available", "reserved", "cleaning"}},
      {"users", {"created", "updated", "deleted", "role_changed"}},
      {"printers", {"added", "removed", "configured", "assignment_changed", "status_changed"}},
  };
  for (const auto& [name, list] : actions) {
    const DataTypeInfo* d = data_type_by_name(name);
    ASSERT_NE(d, nullptr) << name;
    for (const auto& action : list) {
      SCOPED_TRACE(name + " " + action);
      const ChangeMsg dc =
          decode_ok_change(R"({"type":"data_change","data_type":")" + name + R"(","action":")" +
                           action + R"(","data":{"id":"r1"}})");
      EXPECT_EQ(dc.change.action, action);
      const ChangeMsg typed = decode_ok_change(
          R"({"type":")" + std::string(d->typed_update) + R"(",")" + std::string(d->id_field) +
          R"(":"r1","action":")" + action + R"(","data":{"id":"r1"}})");
      EXPECT_EQ(typed.change.action, action);
    }
  }
}

TEST(ValidateAction, UpsertAndTheLegacyGenericActionsAreAcceptedEverywhere) {
  for (const auto& d : kDataTypes) {
    for (const char* action : {"upsert", "created", "updated", "deleted"}) {
      SCOPED_TRACE(std::string(d.name) + " " + action);
      decode_ok_change(R"({"type":"data_change","data_type":")" + std::string(d.name) +
                       R"(","action":")" + action + R"(","data":{"id":"r1"}})");
      decode_ok_change(R"({"type":")" + std::string(d.typed_update) + R"(",")" +
                       std::string(d.id_field) + R"(":"r1","action":")" + action +
                       R"(","data":{"id":"r1"}})");
    }
  }
}

TEST(ValidateAction, UnknownActionIsRejectedNamingActionAndType) {
  for (const auto& d : kDataTypes) {
    const Error e = decode_error(R"({"type":"data_change","data_type":")" + std::string(d.name) +
                                 R"(","action":"exploded","data":{"id":"r1"}})");
    EXPECT_EQ(e.code, "unknown_action") << d.name;
    EXPECT_NE(e.message.find("'exploded'"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find(d.name), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("upsert"), std::string::npos) << e.message;
  }
  // Another type's action, and the wrong case.
  EXPECT_EQ(decode_error(R"({"type":"table_update","table_id":"t1","action":"completed",
                             "data":{}})")
                .code,
            "unknown_action");
  EXPECT_EQ(decode_error(R"({"type":"order_update","order_id":"o1","action":"item_removed",
                             "data":{}})")
                .code,
            "unknown_action");
  EXPECT_EQ(decode_error(R"({"type":"order_update","order_id":"o1","action":"Updated",
                             "data":{}})")
                .code,
            "unknown_action");
  EXPECT_EQ(decode_error(R"({"type":"order_update","order_id":"o1","action":"updated ",
                             "data":{}})")
                .code,
            "unknown_action");
}

TEST(ValidateAction, AcceptsActionMatchesTheTable) {
  for (const auto& d : kDataTypes) {
    for (const auto action : kCommonActions) EXPECT_TRUE(accepts_action(d.type, action));
    for (const auto action : d.actions) EXPECT_TRUE(accepts_action(d.type, action));
    EXPECT_FALSE(accepts_action(d.type, ""));
    EXPECT_FALSE(accepts_action(d.type, "other"));
  }
  EXPECT_EQ(accepted_actions(DataType::orders),
            "upsert, created, updated, deleted, status_changed, completed, line_added, "
            "line_updated, line_removed");
}

// The restaurant rules' actions (docs/protocol.md, "Restaurant rules") and the data they need.
TEST(ValidateRuleData, WellFormedRuleActionsDecode) {
  for (const char* text : {
           R"({"type":"inventory_update","item_id":"i1","action":"adjust",
               "data":{"delta":-2,"reason":"sale"}})",
           R"({"type":"data_change","data_type":"inventory","action":"adjust",
               "data":{"id":"i1","delta":0.25}})",
           R"({"type":"order_update","order_id":"o1","action":"line_added",
               "data":{"line":{"line_id":"l1","item":"soup","qty":2}}})",
           R"({"type":"order_update","order_id":"o1","action":"line_updated",
               "data":{"line":{"line_id":"l1","qty":3}}})",
           R"({"type":"data_change","data_type":"orders","action":"line_removed",
               "data":{"id":"o1","line_id":"l1"}})",
           R"({"type":"printer_update","printer_id":"p1","action":"print_job",
               "data":{"ticket_id":"T-1","lines":["2x soup"]}})",
           R"({"type":"printer_update","printer_id":"p1","action":"reprint",
               "data":{"ticket_id":"T-1"}})",
       }) {
    SCOPED_TRACE(text);
    decode_ok_change(text);
  }
}

TEST(ValidateRuleData, MalformedRuleDataIsRejectedNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"type":"inventory_update","item_id":"i1","action":"adjust","data":{}})",
       "missing_field data.delta"},
      {R"({"type":"inventory_update","item_id":"i1","action":"adjust","data":{"delta":"2"}})",
       "invalid_field data.delta"},
      {R"({"type":"inventory_update","item_id":"i1","action":"adjust",
           "data":{"delta":1,"reason":5}})",
       "invalid_field data.reason"},
      {R"({"type":"inventory_update","item_id":"i1","action":"adjust",
           "data":{"delta":1,"current_stock":5}})",
       "invalid_field data.current_stock"},
      {R"({"type":"order_update","order_id":"o1","action":"line_added","data":{}})",
       "missing_field data.line"},
      {R"({"type":"order_update","order_id":"o1","action":"line_added","data":{"line":[]}})",
       "invalid_field data.line"},
      {R"({"type":"order_update","order_id":"o1","action":"line_updated",
           "data":{"line":{"qty":1}}})",
       "missing_field data.line.line_id"},
      {R"({"type":"order_update","order_id":"o1","action":"line_added",
           "data":{"line":{"line_id":""}}})",
       "invalid_field data.line.line_id"},
      {R"({"type":"order_update","order_id":"o1","action":"line_added",
           "data":{"line":{"line_id":"l1"},"status":"ready"}})",
       "invalid_field data.status"},
      {R"({"type":"order_update","order_id":"o1","action":"line_removed",
           "data":{"line_id":7}})",
       "invalid_field data.line_id"},
      {R"({"type":"printer_update","printer_id":"p1","action":"print_job","data":{}})",
       "missing_field data.ticket_id"},
      {R"({"type":"printer_update","printer_id":"p1","action":"reprint",
           "data":{"ticket_id":"a\u0001b"}})",
       "invalid_field data.ticket_id"},
  };
  for (const auto& [text, expected] : cases) {
    const Error e = decode_error(text);
    const std::string field = expected.substr(expected.find(' ') + 1);
    EXPECT_EQ(e.code, expected.substr(0, expected.find(' '))) << text << ": " << e.message;
    EXPECT_NE(e.message.find("'" + field + "'"), std::string::npos) << text << ": " << e.message;
  }
  // An id longer than the limit.
  const Error e = decode_error(R"({"type":"printer_update","printer_id":"p1","action":"print_job",
                                   "data":{"ticket_id":")" +
                               std::string(kLimits.max_id_bytes + 1, 't') + R"("}})");
  EXPECT_EQ(e.code, "invalid_field");
  // The server's own alert is not a device's action.
  EXPECT_EQ(decode_error(R"({"type":"inventory_update","item_id":"i1","action":"negative_stock",
                             "data":{}})")
                .code,
            "unknown_action");
}

TEST(ValidateData, DepthSixteenIsAcceptedSeventeenIsNot) {
  // `data` itself is level 1.
  EXPECT_EQ(error_code(order_with_data(nested_objects(16))), "<decoded>");
  const Error e = decode_error(order_with_data(nested_objects(17)));
  EXPECT_EQ(e.code, "data_too_deep");
  EXPECT_NE(e.message.find("16"), std::string::npos) << e.message;
  // The path names the object that is one level too deep.
  std::string path = "data";
  for (int i = 0; i < 16; ++i) path += ".n";
  EXPECT_NE(e.message.find("'" + path + "'"), std::string::npos) << e.message;
}

TEST(ValidateData, ArraysCountAsLevels) {
  std::string arrays = "1";
  for (int i = 0; i < 15; ++i) arrays = "[" + arrays + "]";
  EXPECT_EQ(error_code(order_with_data(R"({"a":)" + arrays + "}")), "<decoded>");
  const Error e = decode_error(order_with_data(R"({"a":[)" + arrays + "]}"));
  EXPECT_EQ(e.code, "data_too_deep");
  EXPECT_NE(e.message.find("'data.a[0]"), std::string::npos) << e.message;
}

TEST(ValidateData, TwoHundredFiftySixFieldsAreAcceptedNotMore) {
  EXPECT_EQ(error_code(order_with_data(object_with_fields(256))), "<decoded>");
  const Error top = decode_error(order_with_data(object_with_fields(257)));
  EXPECT_EQ(top.code, "too_many_fields");
  EXPECT_NE(top.message.find("'data'"), std::string::npos) << top.message;
  EXPECT_NE(top.message.find("256"), std::string::npos) << top.message;
  // In a nested object too.
  EXPECT_EQ(error_code(order_with_data(R"({"items":[{},)" + object_with_fields(256) + "]}")),
            "<decoded>");
  const Error nested =
      decode_error(order_with_data(R"({"items":[{},)" + object_with_fields(257) + "]}"));
  EXPECT_EQ(nested.code, "too_many_fields");
  EXPECT_NE(nested.message.find("'data.items[1]'"), std::string::npos) << nested.message;
}

TEST(ValidateData, DataIdCountsAsAField) {
  // A data_change's data.id is one of its fields.
  std::string data = object_with_fields(255);
  data.insert(1, R"("id":"o1",)");
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"orders","action":"updated","data":)" +
                       data + "}"),
            "<decoded>");
  data.insert(1, R"("x":1,)");
  EXPECT_EQ(error_code(R"({"type":"data_change","data_type":"orders","action":"updated","data":)" +
                       data + "}"),
            "too_many_fields");
}

TEST(ValidateData, TotalValuesAreBounded) {
  // 64 members, each an array of 255 elements: 64 + 64 * 255 = 16384 values.
  std::string elements;
  for (int i = 0; i < 255; ++i) elements += (i > 0 ? ",0" : "0");
  const std::string full = object_with_fields(64, "[" + elements + "]");
  EXPECT_EQ(error_code(order_with_data(full)), "<decoded>");
  std::string over = full;
  over.insert(over.size() - 2, ",0");  // one more element in the last array
  const Error e = decode_error(order_with_data(over));
  EXPECT_EQ(e.code, "too_many_fields");
  EXPECT_NE(e.message.find("16384"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("'data.f63'"), std::string::npos) << e.message;
}

TEST(ValidateData, StringValuesUpTo64KiB) {
  const std::size_t max = ProtocolLimits{}.max_data_string_bytes;
  EXPECT_EQ(max, 65536u);
  EXPECT_EQ(error_code(order_with_data(R"({"note":")" + std::string(max, 'x') + R"("})")),
            "<decoded>");
  const Error e =
      decode_error(order_with_data(R"({"tags":["a",")" + std::string(max + 1, 'x') + R"("]})"));
  EXPECT_EQ(e.code, "string_too_long");
  EXPECT_NE(e.message.find("'data.tags[1]'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("65536"), std::string::npos) << e.message;
}

TEST(ValidateData, FieldNamesUpTo64KiB) {
  const std::size_t max = ProtocolLimits{}.max_data_string_bytes;
  EXPECT_EQ(error_code(order_with_data(R"({")" + std::string(max, 'k') + R"(":1})")), "<decoded>");
  const Error e =
      decode_error(order_with_data(R"({"sub":{")" + std::string(max + 1, 'k') + R"(":1}})"));
  EXPECT_EQ(e.code, "string_too_long");
  EXPECT_NE(e.message.find("'data.sub'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("field name"), std::string::npos) << e.message;
}

TEST(ValidateData, LongFieldNamesAreCutInThePath) {
  // 31 ASCII bytes then a 3-byte character straddling the 32-byte cut.
  const std::string key = std::string(31, 'k') + "\xe2\x82\xac" + "tail";
  const Error e = decode_error(order_with_data(R"({")" + key + R"(":1e999})"));
  EXPECT_EQ(e.code, "invalid_number");
  EXPECT_NE(e.message.find("'data." + std::string(31, 'k') + "...'"), std::string::npos)
      << e.message;
}

TEST(ValidateData, NumbersMustBeFinite) {
  // Boost.JSON reads literals beyond the double range as infinity.
  const std::string huge_integer = "1" + std::string(400, '0');
  for (const std::string& n :
       {std::string("1e999"), std::string("-1e999"), std::string("1E400"), huge_integer}) {
    const Error e = decode_error(order_with_data(R"({"total":[1,{"x":)" + n + "}]}"));
    EXPECT_EQ(e.code, "invalid_number") << n;
    EXPECT_NE(e.message.find("'data.total[1].x'"), std::string::npos) << e.message;
  }
  for (const char* n : {"1e308", "-1.7976931348623157e308", "1e-999", "0.0", "-0", "25.5",
                        "18446744073709551615", "-9223372036854775808"}) {
    EXPECT_EQ(error_code(order_with_data(R"({"total":)" + std::string(n) + "}")), "<decoded>") << n;
  }
}

TEST(ValidateData, NonFiniteDoublesBuiltInMemoryAreRejected) {
  // decode_change also validates objects that did not come from the parser.
  for (const double d :
       {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
        std::numeric_limits<double>::quiet_NaN()}) {
    json::object msg = obj(R"({"type":"order_update","order_id":"o1","action":"updated"})");
    msg["data"] = json::object{{"x", d}};
    auto r = decode_change(msg, kOrigin, kLimits);
    ASSERT_FALSE(r.has_value()) << d;
    EXPECT_EQ(r.error().code, "invalid_number") << d;
  }
}

TEST(ValidateData, LimitsAreConfigurable) {
  ProtocolLimits small;
  small.max_data_depth = 2;
  small.max_data_fields = 3;
  small.max_data_values = 5;
  small.max_data_string_bytes = 4;
  EXPECT_EQ(decode_error(order_with_data(R"({"a":{"b":{}}})"), small).code, "data_too_deep");
  EXPECT_EQ(decode_error(order_with_data(R"({"a":1,"b":2,"c":3,"d":4})"), small).code,
            "too_many_fields");
  EXPECT_EQ(decode_error(order_with_data(R"({"a":[1,2,3],"b":[4,5]})"), small).code,
            "too_many_fields");
  EXPECT_EQ(decode_error(order_with_data(R"({"a":"12345"})"), small).code, "string_too_long");
  EXPECT_EQ(decode_error(order_with_data(R"({"abcde":1})"), small).code, "string_too_long");
  auto ok = decode_message(obj(order_with_data(R"({"a":[1,2],"bcde":"1234"})")), kOrigin, small);
  EXPECT_TRUE(ok.has_value()) << ok.error().message;
}

TEST(ValidateData, AppliesToPostedChanges) {
  auto r = decode_change(obj(R"({"data_type":"orders","action":"updated",
                                 "data":{"id":"o1","x":1e999}})"),
                         kOrigin, kLimits);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, "invalid_number");
  auto a = decode_change(obj(R"({"data_type":"tables","action":"completed","data":{"id":"t1"}})"),
                         kOrigin, kLimits);
  ASSERT_FALSE(a.has_value());
  EXPECT_EQ(a.error().code, "unknown_action");
}

// `data` is checked where docs/protocol.md puts it: after `type`, before `data_type`, record id
// and action.
TEST(ValidateData, ContentsAreCheckedWithData) {
  EXPECT_EQ(decode_error(R"({"type":"data_change","data_type":"nope","action":"exploded",
                             "data":{"x":1e999}})")
                .code,
            "invalid_number");
  EXPECT_EQ(decode_error(R"({"type":"order_update","action":"exploded","data":{"x":1e999}})").code,
            "invalid_number");
  // The action is checked after the record id.
  EXPECT_EQ(decode_error(R"({"type":"order_update","action":"exploded","data":{}})").code,
            "missing_field");
  EXPECT_EQ(decode_error(R"({"type":"order_update","order_id":"o1","action":"exploded",
                             "data":{},"change_id":7})")
                .code,
            "unknown_action");
}

// ---- rendering ----

TEST(Render, Registered) {
  const json::object o = parsed(render_registered(kOrigin, 17));
  EXPECT_EQ(o.at("type"), json::value("registered"));
  EXPECT_EQ(o.at("device_id"), json::value("dev-1"));
  EXPECT_EQ(o.at("restaurant_id"), json::value("rest-1"));
  EXPECT_EQ(o.at("seq"), json::value(17));
  EXPECT_TRUE(is_iso_timestamp(o.at("timestamp"))) << json::serialize(o);
}

TEST(Render, HeartbeatResponse) {
  const json::object o = parsed(render_heartbeat_response("dev-1"));
  EXPECT_EQ(o.at("type"), json::value("heartbeat_response"));
  EXPECT_EQ(o.at("device_id"), json::value("dev-1"));
  EXPECT_TRUE(is_iso_timestamp(o.at("timestamp")));
}

TEST(Render, Error) {
  const json::object with = parsed(render_error({"invalid_field", "bad \"thing\""}, "c1"));
  EXPECT_EQ(with.at("type"), json::value("error"));
  EXPECT_EQ(with.at("code"), json::value("invalid_field"));
  EXPECT_EQ(with.at("message"), json::value("bad \"thing\""));
  EXPECT_EQ(with.at("change_id"), json::value("c1"));
  const json::object without = parsed(render_error({"invalid_json", "m"}));
  EXPECT_FALSE(without.contains("change_id"));
  EXPECT_EQ(without.at("message"), json::value("m"));
}

Outcome outcome(OutcomeStatus status, std::string change_id, std::uint64_t seq) {
  Outcome o;
  o.status = status;
  o.change_id = std::move(change_id);
  o.seq = seq;
  return o;
}

TEST(Render, AckApplied) {
  const json::object o = parsed(render_ack(outcome(OutcomeStatus::applied, "c1", 5)));
  EXPECT_EQ(o.at("type"), json::value("ack"));
  EXPECT_EQ(o.at("change_id"), json::value("c1"));
  EXPECT_EQ(o.at("seq"), json::value(5));
  EXPECT_EQ(o.at("status"), json::value("applied"));
  EXPECT_FALSE(o.contains("error"));
  EXPECT_FALSE(o.contains("current"));
}

TEST(Render, AckDuplicate) {
  const json::object o = parsed(render_ack(outcome(OutcomeStatus::duplicate, "c1", 3)));
  EXPECT_EQ(o.at("status"), json::value("duplicate"));
  EXPECT_EQ(o.at("seq"), json::value(3));
  EXPECT_FALSE(o.contains("error"));
}

TEST(Render, AckConflictCarriesErrorAndCurrent) {
  Outcome out = outcome(OutcomeStatus::rejected, "c1", 0);
  out.error = {"conflict", "base_version 1 does not match the record's version 4"};
  out.current = json::parse(R"({"id":"o1","version":4,"status":"paid"})");
  const json::object o = parsed(render_ack(out));
  EXPECT_EQ(o.at("type"), json::value("ack"));
  EXPECT_EQ(o.at("change_id"), json::value("c1"));
  EXPECT_TRUE(o.at("seq").is_null());
  EXPECT_EQ(o.at("status"), json::value("rejected"));
  EXPECT_EQ(o.at("error").at("code"), json::value("conflict"));
  EXPECT_EQ(o.at("error").at("message"), json::value(out.error.message));
  EXPECT_EQ(o.at("current"), out.current);
}

TEST(Render, AckConflictOnAbsentRecordHasNullCurrent) {
  Outcome out = outcome(OutcomeStatus::rejected, "c1", 0);
  out.error = {"conflict", "m"};
  const json::object o = parsed(render_ack(out));
  ASSERT_TRUE(o.contains("current"));
  EXPECT_TRUE(o.at("current").is_null());
}

TEST(Render, AckOfARuleRejectionCarriesCurrent) {
  for (const char* code :
       {"invalid_transition", "order_closed", "table_occupied", "line_not_found"}) {
    Outcome out = outcome(OutcomeStatus::rejected, "c1", 0);
    out.error = {code, "m"};
    out.current = json::parse(R"({"id":"o1","version":4,"status":"completed"})");
    const json::object o = parsed(render_ack(out));
    EXPECT_EQ(o.at("error").at("code"), json::value(code));
    EXPECT_EQ(o.at("current"), out.current) << code;
    EXPECT_EQ(outcome_to_json(out).at("current"), out.current) << code;
  }
}

TEST(Render, AckOtherRejectionHasNoCurrent) {
  Outcome out = outcome(OutcomeStatus::rejected, "c1", 0);
  out.error = {"store_unavailable", "retry later"};
  const json::object o = parsed(render_ack(out));
  EXPECT_EQ(o.at("error").at("code"), json::value("store_unavailable"));
  EXPECT_FALSE(o.contains("current"));
  EXPECT_TRUE(o.at("seq").is_null());
}

TEST(Render, OutcomeToJsonIsTheAckWithoutType) {
  Outcome out = outcome(OutcomeStatus::applied, "c9", 9);
  json::object o = outcome_to_json(out);
  EXPECT_FALSE(o.contains("type"));
  json::object ack = parsed(render_ack(out));
  ack.erase("type");
  EXPECT_EQ(o, ack);
}

TEST(Render, CaughtUpAndResetRequired) {
  const json::object c = parsed(render_caught_up(12));
  EXPECT_EQ(c.at("type"), json::value("caught_up"));
  EXPECT_EQ(c.at("seq"), json::value(12));
  const json::object r = parsed(render_reset_required(40, "history before 40 was pruned"));
  EXPECT_EQ(r.at("type"), json::value("reset_required"));
  EXPECT_EQ(r.at("seq"), json::value(40));
  EXPECT_EQ(r.at("message"), json::value("history before 40 was pruned"));
}

LogEntry entry(DataType type, std::string record_id, std::string data = R"({"name":"x"})") {
  LogEntry e;
  e.seq = 31;
  e.committed_at_ms = kCommittedAt;
  e.change.restaurant_id = "rest-1";
  e.change.device_id = "dev-2";
  e.change.user_id = "waiter-5";
  e.change.change_id = "chg-31";
  e.change.data_type = type;
  e.change.action = "updated";
  e.change.record_id = std::move(record_id);
  e.change.data = obj(data);
  return e;
}

TEST(RenderLiveChange, EveryNonUserTypeAsTheTypedUpdate) {
  for (const auto& d : kDataTypes) {
    if (d.type == DataType::users) continue;
    SCOPED_TRACE(d.name);
    const json::object o = parsed(render_live_change(entry(d.type, "rec-7")));
    EXPECT_EQ(o.at("type"), json::value(d.typed_update));
    EXPECT_EQ(o.at(d.id_field), json::value("rec-7"));
    EXPECT_EQ(o.at("action"), json::value("updated"));
    EXPECT_EQ(o.at("data"), json::parse(R"({"name":"x"})"));
    EXPECT_EQ(o.at("data_type"), json::value(d.name));
    EXPECT_EQ(o.at("device_id"), json::value("dev-2"));
    EXPECT_EQ(o.at("restaurant_id"), json::value("rest-1"));
    EXPECT_EQ(o.at("user_id"), json::value("waiter-5"));
    EXPECT_EQ(o.at("timestamp"), json::value("2026-11-26T03:45:41.123Z"));
    EXPECT_EQ(o.at("seq"), json::value(31));
    EXPECT_EQ(o.at("change_id"), json::value("chg-31"));
  }
}

TEST(RenderLiveChange, AuthorWithoutUserIsNull) {
  LogEntry e = entry(DataType::orders, "o1");
  e.change.user_id.clear();
  const json::object o = parsed(render_live_change(e));
  ASSERT_TRUE(o.contains("user_id"));
  EXPECT_TRUE(o.at("user_id").is_null()) << json::serialize(o);
}

TEST(RenderLiveChange, UserUpdateCarriesTheRecordIdInUserId) {
  LogEntry e = entry(DataType::users, "u42");
  const json::object o = parsed(render_live_change(e));
  EXPECT_EQ(o.at("type"), json::value("user_update"));
  EXPECT_EQ(o.at("user_id"), json::value("u42"));
  EXPECT_EQ(o.at("data_type"), json::value("users"));
  EXPECT_EQ(o.at("seq"), json::value(31));
  EXPECT_EQ(o.at("change_id"), json::value("chg-31"));
  // The author's user id appears nowhere, even when it is empty.
  e.change.user_id.clear();
  EXPECT_EQ(parsed(render_live_change(e)).at("user_id"), json::value("u42"));
}

TEST(RenderLiveChange, DecodesBackToTheSameChange) {
  for (const auto& d : kDataTypes) {
    SCOPED_TRACE(d.name);
    const LogEntry e = entry(d.type, "rec-7", R"({"n":1,"list":[1,2]})");
    const ChangeMsg m = decode_ok_change(render_live_change(e));
    EXPECT_TRUE(m.typed);
    EXPECT_EQ(m.change.data_type, d.type);
    EXPECT_EQ(m.change.record_id, "rec-7");
    EXPECT_EQ(m.change.action, "updated");
    EXPECT_EQ(m.change.data, e.change.data);
    EXPECT_EQ(m.change.change_id, "chg-31");
  }
}

TEST(ChangeToJson, IsADataChangeWithSeqAndDataId) {
  const json::object o = change_to_json(entry(DataType::menu_items, "m1"));
  EXPECT_EQ(o.at("type"), json::value("data_change"));
  EXPECT_EQ(o.at("seq"), json::value(31));
  EXPECT_EQ(o.at("change_id"), json::value("chg-31"));
  EXPECT_EQ(o.at("data_type"), json::value("menu_items"));
  EXPECT_EQ(o.at("action"), json::value("updated"));
  EXPECT_EQ(o.at("data"), json::parse(R"({"name":"x","id":"m1"})"));
  EXPECT_EQ(o.at("device_id"), json::value("dev-2"));
  EXPECT_EQ(o.at("user_id"), json::value("waiter-5"));
  EXPECT_EQ(o.at("timestamp"), json::value("2026-11-26T03:45:41.123Z"));
  LogEntry anonymous = entry(DataType::menu_items, "m1");
  anonymous.change.user_id.clear();
  EXPECT_TRUE(change_to_json(anonymous).at("user_id").is_null());
  // And it decodes back as a data_change of the same record.
  const ChangeMsg m = decode_ok_change(json::serialize(o));
  EXPECT_FALSE(m.typed);
  EXPECT_EQ(m.change.record_id, "m1");
  EXPECT_EQ(m.change.change_id, "chg-31");
}

}  // namespace
}  // namespace possync
