// Structured fuzzing of change validation (decode_change). The input picks a form (typed update,
// data_change, or a REST entry without "type"), a data type, an action and ways to write the record
// id, change_id and base_version, over a fuzzed JSON object. An independent model of the rules in
// docs/protocol.md ("Changes", "user_update") predicts the outcome; decode_change must agree.
#include <algorithm>
#include <array>
#include <boost/json/parse.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "change_checks.h"

namespace {

namespace json = boost::json;
using namespace possync;
using namespace possync::fuzz;

// Reads the input front to back: selector bytes, then length-prefixed raw strings.
class Input {
 public:
  explicit Input(std::string_view bytes) : rest_(bytes) {}
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  std::string bytes() {
    const std::size_t n = std::min<std::size_t>(byte(), rest_.size());
    std::string out(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return out;
  }
  std::string_view rest() const { return rest_; }

 private:
  std::string_view rest_;
};

constexpr std::array<std::string_view, 18> kActions{
    "created",       "updated",      "deleted",
    "removed",       "item_removed", "status_changed",
    "stock_changed", "role_changed", "availability_changed",
    "occupied",      "configured",   "low_stock_alert",
    "adjust",        "line_added",   "line_updated",
    "line_removed",  "print_job",    "reprint"};

// A value for an id-like field, chosen by `mode`: a raw string (any bytes, also invalid UTF-8 or
// over the limits), an integer, or a value of a wrong type.
std::optional<json::value> id_value(std::uint8_t mode, Input& in) {
  switch (mode % 10) {
    case 0:
      return std::nullopt;  // absent
    case 1:
      return json::value(nullptr);
    case 2:
      return json::value(in.bytes());
    case 3:
      return json::value(static_cast<std::int64_t>(in.byte()) - 128);
    case 4:
      return json::value(std::uint64_t{18446744073709551615ull});
    case 5:
      return json::value(1.5);
    case 6:
      return json::value(true);
    case 7:
      return json::value(json::array{1});
    case 8:
      return json::value(std::string(in.byte(), 'r'));  // around the length limits
    default:
      return json::value("");
  }
}

void set(json::object& o, std::string_view key, std::optional<json::value> v) {
  if (v) {
    o[key] = std::move(*v);
  } else {
    o.erase(key);
  }
}

// ---- the model: what docs/protocol.md says the outcome is ----

struct Expected {
  std::string error;  // an error code, or empty when the change is accepted
  std::string record_id;
  bool record_id_from_user_id = false;
};

bool absent(const json::value* v) {
  return v == nullptr || v->is_null();
}

// An id given as a string or an integer, as a string; nothing for any other type.
std::optional<std::string> id_text(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  if (v.is_int64()) return std::to_string(v.get_int64());
  if (v.is_uint64()) return std::to_string(v.get_uint64());
  return std::nullopt;
}

// A valid id: 1..max bytes of UTF-8 without C0, DEL or C1 control characters. UTF-8 validity is
// judged by Boost.JSON's parser (a different implementation from check_id's).
bool valid_id(std::string_view id, std::size_t max) {
  if (id.empty() || id.size() > max) return false;
  std::string quoted = "\"";
  for (const char ch : id) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(ch);
  }
  quoted.push_back('"');
  boost::system::error_code ec;
  const json::value parsed = json::parse(quoted, ec);
  if (ec) return false;
  const std::string_view s = parsed.get_string();
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
      return false;  // U+0080..U+009F
    }
  }
  return true;
}

// Any of the codes for a `data` over the limits (docs/protocol.md, "Validation of changes"); which
// one is reported depends on which problem the codec meets first.
constexpr std::string_view kDataProblem = "<data over a limit>";

bool is_data_problem_code(std::string_view code) {
  return code == errc::kDataTooDeep || code == errc::kTooManyFields ||
         code == errc::kStringTooLong || code == errc::kInvalidNumber;
}

// Whether `v` (at nesting `depth`, `data` being 1) breaks a limit; `values` counts members and
// elements in all of `data`.
bool over_limits(const json::value& v, std::size_t depth, const ProtocolLimits& limits,
                 std::size_t& values) {
  if (const auto* d = v.if_double()) return !std::isfinite(*d);
  if (const auto* str = v.if_string()) return str->size() > limits.max_data_string_bytes;
  const auto* o = v.if_object();
  const auto* a = v.if_array();
  if (o == nullptr && a == nullptr) return false;
  if (depth > limits.max_data_depth) return true;
  values += o ? o->size() : a->size();
  if (values > limits.max_data_values) return true;
  if (o) {
    if (o->size() > limits.max_data_fields) return true;
    for (const auto& m : *o) {
      if (m.key().size() > limits.max_data_string_bytes) return true;
      if (over_limits(m.value(), depth + 1, limits, values)) return true;
    }
    return false;
  }
  for (const auto& e : *a) {
    if (over_limits(e, depth + 1, limits, values)) return true;
  }
  return false;
}

// The data the restaurant rules' actions need (docs/protocol.md, "Validation of changes" and
// section 6a), in the order the codec checks it: members beyond the action's own (and `id`), then
// the action's fields. Nothing for any other action.
std::optional<std::string_view> rule_data_error(DataType type, std::string_view action,
                                                const json::object& d, std::size_t max_id) {
  auto only = [&](std::initializer_list<std::string_view> own) {
    return std::all_of(d.begin(), d.end(), [&](const json::key_value_pair& m) {
      return m.key() == "id" || std::find(own.begin(), own.end(), m.key()) != own.end();
    });
  };
  auto id_field = [&](const json::object& o,
                      std::string_view key) -> std::optional<std::string_view> {
    const auto* v = o.if_contains(key);
    if (absent(v)) return errc::kMissingField;
    if (!v->is_string() || !valid_id(v->get_string(), max_id)) return errc::kInvalidField;
    return std::nullopt;
  };
  if (type == DataType::inventory && action == "adjust") {
    if (!only({"delta", "reason"})) return errc::kInvalidField;
    const auto* delta = d.if_contains("delta");
    if (absent(delta)) return errc::kMissingField;
    if (!delta->is_number()) return errc::kInvalidField;
    const auto* reason = d.if_contains("reason");
    if (!absent(reason) && !reason->is_string()) return errc::kInvalidField;
    return std::nullopt;
  }
  if (type == DataType::orders && (action == "line_added" || action == "line_updated")) {
    if (!only({"line"})) return errc::kInvalidField;
    const auto* line = d.if_contains("line");
    if (absent(line)) return errc::kMissingField;
    if (!line->is_object()) return errc::kInvalidField;
    return id_field(line->get_object(), "line_id");
  }
  if (type == DataType::orders && action == "line_removed") {
    if (!only({"line_id"})) return errc::kInvalidField;
    return id_field(d, "line_id");
  }
  if (type == DataType::printers && (action == "print_job" || action == "reprint")) {
    return id_field(d, "ticket_id");
  }
  return std::nullopt;
}

Expected model(const json::object& msg, const ProtocolLimits& limits) {
  Expected e;
  std::string_view type = "data_change";
  if (const auto* t = msg.if_contains("type"); !absent(t)) {
    if (!t->is_string()) return {errc::kInvalidField};
    type = t->get_string();
  }
  const DataTypeInfo* typed = data_type_by_typed_update(type);
  if (typed == nullptr && type != "data_change") return {errc::kUnknownType};

  const auto* data = msg.if_contains("data");
  if (absent(data)) return {errc::kMissingField};
  if (!data->is_object()) return {errc::kInvalidField};
  std::size_t values = 0;
  if (over_limits(*data, 1, limits, values)) return {std::string(kDataProblem)};
  const json::object& d = data->get_object();
  DataType data_type = typed ? typed->type : DataType::orders;

  // Where the record id comes from.
  const json::value* id = nullptr;
  if (typed == nullptr) {
    const auto* dt = msg.if_contains("data_type");
    if (absent(dt)) return {errc::kMissingField};
    if (!dt->is_string()) return {errc::kInvalidField};
    const auto* info = data_type_by_name(dt->get_string());
    if (info == nullptr) return {errc::kUnknownDataType};
    data_type = info->type;
    id = d.if_contains("id");
  } else if (typed->type == DataType::users) {
    // "If its data has an id, that is the record id"; an unusable data.id (empty, or not a string
    // or integer) counts as none, and the record id comes from `user_id`, flagged.
    const auto* data_id = d.if_contains("id");
    const auto text = absent(data_id) ? std::nullopt : id_text(*data_id);
    if (text && !text->empty()) {
      id = data_id;
    } else {
      e.record_id_from_user_id = true;
      id = msg.if_contains("user_id");
    }
  } else {
    id = msg.if_contains(typed->id_field);
  }
  if (absent(id)) {
    if (!e.record_id_from_user_id) return {errc::kMissingField};
  } else {
    const auto text = id_text(*id);
    if (!text) return {errc::kInvalidField};
    e.record_id = *text;
  }
  if (!(e.record_id_from_user_id && e.record_id.empty()) &&
      !valid_id(e.record_id, limits.max_id_bytes)) {
    return {errc::kInvalidField};
  }

  const auto* action = msg.if_contains("action");
  if (absent(action)) return {errc::kMissingField};
  if (!action->is_string() || !valid_id(action->get_string(), limits.max_action_bytes)) {
    return {errc::kInvalidField};
  }
  if (!accepts_action(data_type, action->get_string())) return {errc::kUnknownAction};
  if (auto code = rule_data_error(data_type, action->get_string(), d, limits.max_id_bytes)) {
    return {std::string(*code)};
  }
  if (const auto* c = msg.if_contains("change_id"); !absent(c)) {
    if (!c->is_string() || !valid_id(c->get_string(), limits.max_change_id_bytes())) {
      return {errc::kInvalidField};
    }
  }
  if (const auto* b = msg.if_contains("base_version"); !absent(b)) {
    if (!b->is_uint64() && !(b->is_int64() && b->get_int64() >= 0)) return {errc::kInvalidField};
  }
  return e;
}

}  // namespace

// Input layout: 8 selector bytes (form, data type, action, record id, data.id, change_id and
// base_version, id limit, action limit), the bytes the chosen field values consume, then up to two
// JSON objects: the message to start from and its `data`.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  Input in(std::string_view(reinterpret_cast<const char*>(bytes), size));
  const std::uint8_t form = in.byte();
  const DataTypeInfo& d = kDataTypes[in.byte() % kDataTypes.size()];
  const std::uint8_t action_mode = in.byte();
  const std::uint8_t id_mode = in.byte();
  const std::uint8_t data_id_mode = in.byte();
  const std::uint8_t extra_mode = in.byte();
  ProtocolLimits limits;
  limits.max_id_bytes = 9 + in.byte() % 128;
  limits.max_action_bytes = 1 + in.byte() % 64;

  // Field values to write over the message; mode 0 leaves a field as the fuzzed object has it.
  using Edit = std::optional<std::optional<json::value>>;
  const Edit data_id = data_id_mode != 0 ? Edit(id_value(data_id_mode, in)) : std::nullopt;
  const Edit record_id = id_mode != 0 ? Edit(id_value(id_mode, in)) : std::nullopt;
  Edit action;
  if (action_mode < 2 * kActions.size()) {
    action = json::value(kActions[action_mode % kActions.size()]);
  } else if (action_mode < 240) {
    action = id_value(action_mode, in);
  }
  const Edit change_id =
      (extra_mode & 0x0f) != 0 ? Edit(id_value(extra_mode & 0x0f, in)) : std::nullopt;
  Edit base_version;
  switch (extra_mode >> 4) {
    case 0:
      break;
    case 1:
      base_version = json::value(static_cast<std::int64_t>(in.byte()) - 16);
      break;
    case 2:
      base_version = json::value(std::uint64_t{18446744073709551615ull});
      break;
    default:
      base_version = id_value(extra_mode >> 4, in);
      break;
  }

  // The fuzzed object the message starts from.
  json::object msg;
  json::object data;
  const auto values = json_values(in.rest(), 2);
  if (!values.empty() && values[0].is_object()) msg = values[0].get_object();
  if (values.size() > 1 && values[1].is_object()) data = values[1].get_object();

  switch (form % 4) {
    case 0:
      msg["type"] = d.typed_update;
      break;
    case 1:
      msg["type"] = "data_change";
      msg["data_type"] = d.name;
      break;
    case 2:
      msg.erase("type");  // a POST /api/sync entry
      msg["data_type"] = d.name;
      break;
    default:
      break;  // whatever the fuzzed object says
  }
  if ((form & 0x10) == 0) msg["data"] = data;
  if (auto* o = msg.if_contains("data"); o != nullptr && o->is_object() && data_id) {
    set(o->get_object(), "id", *data_id);
  }
  if (record_id) set(msg, d.id_field, *record_id);
  if (action) set(msg, "action", *action);
  if (change_id) set(msg, "change_id", *change_id);
  if (base_version) set(msg, "base_version", *base_version);

  const Expected expected = model(msg, limits);
  auto got = decode_change(msg, kOrigin, limits);
  const std::string context = show(msg) + " expected " +
                              (expected.error.empty() ? "accepted" : expected.error) + " got " +
                              (got ? "accepted" : got.error().code + ": " + got.error().message);
  if (!expected.error.empty()) {
    FUZZ_CHECK(!got && (got.error().code == expected.error ||
                        (expected.error == kDataProblem && is_data_problem_code(got.error().code))),
               context);
    check_error_renders(got.error());
    return 0;
  }
  FUZZ_CHECK(got.has_value(), context);
  FUZZ_CHECK(got->change.record_id == expected.record_id, context + " " + describe(got->change));
  FUZZ_CHECK(got->record_id_from_user_id == expected.record_id_from_user_id, context);
  FUZZ_CHECK(
      got->typed == (data_type_by_typed_update(msg.contains("type") && msg.at("type").is_string()
                                                   ? std::string_view(msg.at("type").get_string())
                                                   : std::string_view()) != nullptr),
      context);
  check_accepted(*got, msg, limits);
  // Strings built here may be invalid UTF-8 inside `data`, which the codec does not look into; a
  // message from the wire never is (the JSON parser rejects it). Round-trip only those.
  if (parse_object(json_text(msg))) check_round_trip(*got, limits);
  // decode_message agrees whenever the object is a WebSocket message (it has a type).
  if (!absent(msg.if_contains("type"))) {
    auto ws = decode_message(msg, kOrigin, limits);
    FUZZ_CHECK(ws.has_value() && std::holds_alternative<ChangeMsg>(*ws), context);
  }
  return 0;
}
