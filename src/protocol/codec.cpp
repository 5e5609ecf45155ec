#include "protocol/codec.h"

#include <fmt/format.h>
#include <cmath>

#include "common/ids.h"
#include "common/json_text.h"
#include "common/time.h"

namespace json = boost::json;

namespace possync {
namespace {

Error missing(std::string_view field) {
  return {errc::kMissingField, fmt::format("field '{}' is required", field)};
}
Error wrong_type(std::string_view field, std::string_view expected) {
  return {errc::kInvalidField, fmt::format("field '{}' must be {}", field, expected)};
}

// An optional string field: absent or null gives nothing; another type is an error.
Result<std::optional<std::string>> optional_string(const json::object& o, std::string_view field) {
  const auto* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::string>{};
  if (!v->is_string()) return wrong_type(field, "a string");
  return std::optional<std::string>{std::string(v->get_string())};
}

// An id may be sent as a string or an integer; it is kept as a string.
Result<std::optional<std::string>> optional_id(const json::object& o, std::string_view field) {
  const auto* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::string>{};
  if (v->is_string()) return std::optional<std::string>{std::string(v->get_string())};
  if (v->is_int64()) return std::optional<std::string>{std::to_string(v->get_int64())};
  if (v->is_uint64()) return std::optional<std::string>{std::to_string(v->get_uint64())};
  return wrong_type(field, "a string or an integer");
}

Result<std::optional<std::uint64_t>> optional_seq(const json::object& o, std::string_view field) {
  const auto* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return std::optional<std::uint64_t>{};
  if (v->is_uint64()) return std::optional<std::uint64_t>{v->get_uint64()};
  if (v->is_int64() && v->get_int64() >= 0) {
    return std::optional<std::uint64_t>{static_cast<std::uint64_t>(v->get_int64())};
  }
  return wrong_type(field, "a non-negative integer");
}

// A problem found inside a change's `data`: its error code, what is wrong, and where, as a path
// below `data` (".items[2].name") built while the walk unwinds.
struct DataProblem {
  const char* code;
  std::string what;
  std::string path;
};

// A member name as it appears in a path: at most 32 bytes, cut at a UTF-8 character boundary.
std::string path_member(std::string_view key) {
  constexpr std::size_t kMax = 32;
  if (key.size() <= kMax) return fmt::format(".{}", key);
  std::size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(key[cut]) & 0xc0) == 0x80) --cut;
  return fmt::format(".{}...", key.substr(0, cut));
}

// Checks one value of a change's `data` at nesting level `depth` (`data` itself is level 1)
// against the limits; `values` counts the object members and array elements seen so far. Descends
// at most max_data_depth levels.
std::optional<DataProblem> check_data(const json::value& v, std::size_t depth,
                                      const ProtocolLimits& limits, std::size_t& values) {
  const auto container = [&](std::size_t size) -> std::optional<DataProblem> {
    if (depth > limits.max_data_depth) {
      return DataProblem{errc::kDataTooDeep,
                         fmt::format("is nested more than {} levels deep", limits.max_data_depth),
                         {}};
    }
    values += size;
    if (values > limits.max_data_values) {
      return DataProblem{errc::kTooManyFields,
                         fmt::format("takes 'data' over {} values (object members and array "
                                     "elements) in total",
                                     limits.max_data_values),
                         {}};
    }
    return std::nullopt;
  };
  switch (v.kind()) {
    case json::kind::double_:
      // The parser accepts literals beyond the double range (1e999) as infinity, which cannot be
      // written back as JSON.
      if (!std::isfinite(v.get_double())) {
        return DataProblem{errc::kInvalidNumber, "is not a finite number", {}};
      }
      return std::nullopt;
    case json::kind::string:
      if (v.get_string().size() > limits.max_data_string_bytes) {
        return DataProblem{
            errc::kStringTooLong,
            fmt::format("is a string longer than {} bytes", limits.max_data_string_bytes),
            {}};
      }
      return std::nullopt;
    case json::kind::object: {
      const auto& o = v.get_object();
      if (o.size() > limits.max_data_fields) {
        return DataProblem{errc::kTooManyFields,
                           fmt::format("has more than {} fields", limits.max_data_fields),
                           {}};
      }
      if (auto p = container(o.size())) return p;
      for (const auto& member : o) {
        if (member.key().size() > limits.max_data_string_bytes) {
          return DataProblem{
              errc::kStringTooLong,
              fmt::format("has a field name longer than {} bytes", limits.max_data_string_bytes),
              {}};
        }
        if (auto p = check_data(member.value(), depth + 1, limits, values)) {
          p->path.insert(0, path_member(member.key()));
          return p;
        }
      }
      return std::nullopt;
    }
    case json::kind::array: {
      const auto& a = v.get_array();
      if (auto p = container(a.size())) return p;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (auto p = check_data(a[i], depth + 1, limits, values)) {
          p->path.insert(0, fmt::format("[{}]", i));
          return p;
        }
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

// Writes JSON text straight into a string: no intermediate json::object (and no copy of a
// change's data) for the messages sent for every committed change.
class JsonWriter {
 public:
  explicit JsonWriter(std::string& out) : out_(out) {}
  // Text that is already JSON (punctuation, member names known to need no escaping).
  JsonWriter& raw(std::string_view text) {
    out_.append(text);
    return *this;
  }
  JsonWriter& string(std::string_view s) {
    append_json_string(out_, s);
    return *this;
  }
  JsonWriter& value(const json::object& o) {
    append_json(out_, o);
    return *this;
  }
  JsonWriter& value(const json::value& v) {
    append_json(out_, v);
    return *this;
  }
  JsonWriter& number(std::uint64_t n) {
    append_json_number(out_, n);
    return *this;
  }

 private:
  std::string& out_;
};

json::object envelope(std::string_view type) {
  json::object o;
  o["type"] = type;
  return o;
}

}  // namespace

std::optional<Error> check_id_field(std::string_view field, std::string_view value,
                                    std::size_t max_bytes) {
  if (auto why = check_id(value, max_bytes)) {
    return Error{errc::kInvalidField, fmt::format("field '{}' {}", field, *why)};
  }
  return std::nullopt;
}

json::value user_id_json(const std::string& user_id) {
  return user_id.empty() ? json::value(nullptr) : json::value(user_id);
}

Error user_update_without_id() {
  return {errc::kMissingField, "user_update needs the user's id in 'data.id' or 'user_id'"};
}

Result<json::object> parse_object(std::string_view text) {
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 32;
  auto v = parse_json(text, ec, options);
  if (ec)
    return Error{errc::kInvalidJson, fmt::format("message is not valid JSON: {}", ec.message())};
  if (!v.is_object()) return Error{errc::kInvalidMessage, "message must be a JSON object"};
  return std::move(v.as_object());
}

namespace {

// decode_change(); takes `data` out of `owned` (the same object as `msg`) if given.
Result<ChangeMsg> decode_change_from(const json::object& msg, json::object* owned,
                                     const Origin& origin, const ProtocolLimits& limits) {
  ChangeMsg out;
  Change& c = out.change;
  c.restaurant_id = origin.restaurant_id;
  c.device_id = origin.device_id;
  c.user_id = origin.user_id;

  std::string_view type = "data_change";
  if (const auto* t = msg.if_contains("type"); t != nullptr && !t->is_null()) {
    if (!t->is_string()) return wrong_type("type", "a string");
    type = t->get_string();
  }

  const DataTypeInfo* typed = data_type_by_typed_update(type);
  if (typed == nullptr && type != "data_change") {
    return Error{errc::kUnknownType, fmt::format("unknown change type '{}'", type)};
  }

  const auto* data = msg.if_contains("data");
  if (data == nullptr || data->is_null()) return missing("data");
  if (!data->is_object()) return wrong_type("data", "an object");
  std::size_t values = 0;
  if (auto p = check_data(*data, 1, limits, values)) {
    return Error{p->code, fmt::format("field 'data{}' {}", p->path, p->what)};
  }
  if (owned != nullptr) {
    c.data = std::move(owned->find("data")->value().get_object());
  } else {
    c.data = data->get_object();
  }

  if (typed == nullptr) {
    const auto* v = msg.if_contains("data_type");
    if (v == nullptr || v->is_null()) return missing("data_type");
    if (!v->is_string()) return wrong_type("data_type", "a string");
    const auto* d = data_type_by_name(v->get_string());
    if (d == nullptr) {
      return Error{errc::kUnknownDataType,
                   fmt::format("unknown data_type '{}': expected one of orders, menu_items, "
                               "inventory, tables, users, printers",
                               std::string_view(v->get_string()))};
    }
    c.data_type = d->type;
    auto id = optional_id(c.data, "id");
    if (!id) return Error{errc::kInvalidField, "field 'data.id' must be a string or an integer"};
    if (!*id) return missing("data.id");
    c.record_id = std::move(**id);
  } else {
    const auto* d = typed;
    out.typed = true;
    c.data_type = d->type;
    if (d->type == DataType::users) {
      // Today's app puts the record id in `user_id` and then overwrites that key with the
      // sender's own user id; `data.id` is the reliable record id when present.
      auto id = optional_id(c.data, "id");
      if (id && *id && !(*id)->empty()) {
        c.record_id = std::move(**id);
      } else {
        out.record_id_from_user_id = true;
        auto user = optional_id(msg, d->id_field);
        if (!user) return user.error();
        if (*user) c.record_id = std::move(**user);
      }
    }
    if (c.record_id.empty() && !out.record_id_from_user_id) {
      auto id = optional_id(msg, d->id_field);
      if (!id) return id.error();
      if (!*id) return missing(d->id_field);
      c.record_id = std::move(**id);
    }
  }
  if (!c.record_id.empty() || !out.record_id_from_user_id) {
    if (auto e = check_id_field("record id", c.record_id, limits.max_id_bytes)) return *e;
  }

  auto action = optional_string(msg, "action");
  if (!action) return action.error();
  if (!*action) return missing("action");
  c.action = std::move(**action);
  if (auto e = check_id_field("action", c.action, limits.max_action_bytes)) return *e;
  if (!accepts_action(c.data_type, c.action)) {
    return Error{errc::kUnknownAction,
                 fmt::format("unknown action '{}' for {}: expected one of {}", c.action,
                             info(c.data_type).name, accepted_actions(c.data_type))};
  }

  if (auto e = check_rule_data(c, limits.max_id_bytes)) return *e;

  auto change_id = optional_string(msg, "change_id");
  if (!change_id) return change_id.error();
  if (*change_id) {
    if (auto e = check_id_field("change_id", **change_id, limits.max_change_id_bytes())) return *e;
    c.change_id = std::move(**change_id);
    out.client_change_id = true;
  } else {
    c.change_id = new_change_id();
  }

  auto base = optional_seq(msg, "base_version");
  if (!base) return base.error();
  c.base_version = *base;
  return out;
}

Result<ClientMessage> decode_message_from(const json::object& msg, json::object* owned,
                                          const Origin& origin, const ProtocolLimits& limits) {
  const auto* t = msg.if_contains("type");
  if (t == nullptr || t->is_null()) return missing("type");
  if (!t->is_string()) return wrong_type("type", "a string");
  const std::string_view type = t->get_string();

  if (type == "heartbeat") return ClientMessage{HeartbeatMsg{}};
  if (type == "register") {
    RegisterMsg r;
    auto user = optional_string(msg, "user_id");
    if (!user) return user.error();
    if (*user && !(*user)->empty()) {
      if (auto e = check_id_field("user_id", **user, limits.max_id_bytes)) return *e;
      r.user_id = std::move(**user);
    }
    auto since = optional_seq(msg, "since");
    if (!since) return since.error();
    r.since = *since;
    return ClientMessage{std::move(r)};
  }
  if (type == "auth") {
    auto token = optional_string(msg, "token");
    if (!token) return token.error();
    if (!*token || (*token)->empty()) return missing("token");
    return ClientMessage{AuthMsg{std::move(**token)}};
  }
  if (type == "user_changed") {
    auto user = optional_string(msg, "user_id");
    if (!user) return user.error();
    if (!*user) return missing("user_id");
    if (!(*user)->empty()) {
      if (auto e = check_id_field("user_id", **user, limits.max_id_bytes)) return *e;
    }
    return ClientMessage{UserChangedMsg{std::move(**user)}};
  }
  if (type == "data_change" || data_type_by_typed_update(type) != nullptr) {
    auto change = decode_change_from(msg, owned, origin, limits);
    if (!change) return change.error();
    return ClientMessage{std::move(*change)};
  }
  return Error{errc::kUnknownType, fmt::format("unknown message type '{}'", type)};
}

}  // namespace

Result<ChangeMsg> decode_change(const json::object& msg, const Origin& origin,
                                const ProtocolLimits& limits) {
  return decode_change_from(msg, nullptr, origin, limits);
}

Result<ChangeMsg> decode_change(json::object&& msg, const Origin& origin,
                                const ProtocolLimits& limits) {
  return decode_change_from(msg, &msg, origin, limits);
}

Result<ClientMessage> decode_message(const json::object& msg, const Origin& origin,
                                     const ProtocolLimits& limits) {
  return decode_message_from(msg, nullptr, origin, limits);
}

Result<ClientMessage> decode_message(json::object&& msg, const Origin& origin,
                                     const ProtocolLimits& limits) {
  return decode_message_from(msg, &msg, origin, limits);
}

std::string render_registered(const Origin& origin, std::uint64_t seq) {
  auto o = envelope("registered");
  o["device_id"] = origin.device_id;
  o["restaurant_id"] = origin.restaurant_id;
  o["timestamp"] = iso8601_utc(now_ms());
  o["seq"] = seq;
  return json_text(o);
}

std::string render_auth_ok(std::int64_t expires_at_s) {
  auto o = envelope("auth_ok");
  o["expires_at"] = iso8601_utc(expires_at_s * 1000);
  return json_text(o);
}

std::string render_heartbeat_response(std::string_view device_id) {
  auto o = envelope("heartbeat_response");
  o["device_id"] = device_id;
  o["timestamp"] = iso8601_utc(now_ms());
  return json_text(o);
}

std::string render_error(const Error& error, std::string_view change_id) {
  auto o = envelope("error");
  o["code"] = error.code;
  o["message"] = error.message;
  if (!change_id.empty()) o["change_id"] = change_id;
  return json_text(o);
}

json::object outcome_to_json(const Outcome& outcome) {
  json::object o;
  o["change_id"] = outcome.change_id;
  if (outcome.status == OutcomeStatus::rejected) {
    o["seq"] = nullptr;
  } else {
    o["seq"] = outcome.seq;
  }
  o["status"] = to_string(outcome.status);
  if (outcome.status == OutcomeStatus::rejected) {
    o["error"] = {{"code", outcome.error.code}, {"message", outcome.error.message}};
    if (errc::carries_current(outcome.error.code)) o["current"] = outcome.current;
  }
  return o;
}

std::string render_ack(const Outcome& outcome) {
  // Written straight out (one per change): the members of outcome_to_json, in its order.
  const bool rejected = outcome.status == OutcomeStatus::rejected;
  std::string out;
  out.reserve(96 + outcome.change_id.size());
  JsonWriter w(out);
  w.raw(R"({"type":"ack","change_id":)").string(outcome.change_id).raw(R"(,"seq":)");
  if (rejected) {
    w.raw("null");
  } else {
    w.number(outcome.seq);
  }
  w.raw(R"(,"status":")").raw(to_string(outcome.status)).raw("\"");
  if (rejected) {
    w.raw(R"(,"error":{"code":)").string(outcome.error.code);
    w.raw(R"(,"message":)").string(outcome.error.message).raw("}");
    if (errc::carries_current(outcome.error.code)) {
      w.raw(R"(,"current":)").value(outcome.current);
    }
  }
  w.raw("}");
  return out;
}

std::string render_caught_up(std::uint64_t seq) {
  auto o = envelope("caught_up");
  o["seq"] = seq;
  return json_text(o);
}

std::string render_reset_required(std::uint64_t seq, std::string_view reason) {
  auto o = envelope("reset_required");
  o["seq"] = seq;
  o["message"] = reason;
  return json_text(o);
}

std::string render_live_change(const LogEntry& entry) {
  const Change& c = entry.change;
  const auto& d = info(c.data_type);
  std::string out;
  out.reserve(256);
  JsonWriter w(out);
  // The names in kDataTypes are plain identifiers: they go out as they are.
  w.raw(R"({"type":")").raw(d.typed_update).raw(R"(",")").raw(d.id_field).raw(R"(":)");
  w.string(c.record_id).raw(R"(,"action":)").string(c.action);
  w.raw(R"(,"data":)").value(c.data);
  w.raw(R"(,"data_type":")").raw(d.name).raw(R"(","device_id":)").string(c.device_id);
  w.raw(R"(,"restaurant_id":)").string(c.restaurant_id);
  // For user_update the receiving app reads the record id from `user_id` (set above).
  if (c.data_type != DataType::users) {
    w.raw(R"(,"user_id":)");
    if (c.user_id.empty()) {
      w.raw("null");
    } else {
      w.string(c.user_id);
    }
  }
  w.raw(R"(,"timestamp":)").string(iso8601_utc(entry.committed_at_ms));
  w.raw(R"(,"seq":)").number(entry.seq).raw(R"(,"change_id":)").string(c.change_id).raw("}");
  return out;
}

json::object change_to_json(const LogEntry& entry) {
  const Change& c = entry.change;
  json::object o;
  o["seq"] = entry.seq;
  o["change_id"] = c.change_id;
  o["type"] = "data_change";
  o["data_type"] = info(c.data_type).name;
  o["action"] = c.action;
  json::object data = c.data;
  data["id"] = c.record_id;
  o["data"] = std::move(data);
  o["device_id"] = c.device_id;
  o["user_id"] = user_id_json(c.user_id);
  o["timestamp"] = iso8601_utc(entry.committed_at_ms);
  return o;
}

}  // namespace possync
