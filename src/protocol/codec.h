// The wire protocol: today's app's messages (docs/protocol.md) and possync's extensions, decoded
// into values and rendered back to JSON text. Pure functions; no I/O, no state.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "common/error.h"
#include "model/change.h"

namespace possync {

struct ProtocolLimits {
  std::size_t max_id_bytes = 128;  // restaurant, device, user and record ids
  std::size_t max_action_bytes = 64;
  // A change's `data`: `data` itself is level 1, each nested object or array one level more.
  std::size_t max_data_depth = 16;
  std::size_t max_data_fields = 256;  // members of any one object in `data`
  // Object members and array elements in all of `data`, at every level.
  std::size_t max_data_values = 16384;
  std::size_t max_data_string_bytes = 64 * 1024;  // any string value or member name in `data`
  std::size_t max_change_id_bytes() const { return max_id_bytes * 4; }
};

// Who a message comes from: the connection's (or REST body's) restaurant, device and user. Ids in a
// message body never override these.
struct Origin {
  std::string restaurant_id;
  std::string device_id;
  std::string user_id;
};

// Decoded client messages.
struct RegisterMsg {
  std::optional<std::string> user_id;
  std::optional<std::uint64_t> since;
};
struct HeartbeatMsg {};
// possync extension: a fresh token for the open connection, before the current one expires.
struct AuthMsg {
  std::string token;
};
struct UserChangedMsg {
  std::string user_id;
};
struct ChangeMsg {
  Change change;
  bool typed = false;             // a typed update (order_update, ...) rather than data_change
  bool client_change_id = false;  // the client chose change_id
  // A typed user_update whose record id could only be taken from `user_id`, which today's app
  // overwrites with the sender's own user id (see docs/protocol.md, "user_update").
  // `change.record_id` may then be empty (the app sent a null user_id).
  bool record_id_from_user_id = false;
};
using ClientMessage = std::variant<RegisterMsg, HeartbeatMsg, AuthMsg, UserChangedMsg, ChangeMsg>;

// Parses text into a JSON object (invalid_json / invalid_message otherwise).
Result<boost::json::object> parse_object(std::string_view text);

// Decodes one WebSocket message.
Result<ClientMessage> decode_message(const boost::json::object& msg, const Origin& origin,
                                     const ProtocolLimits& limits);
// The same, taking a change's `data` out of `msg` instead of copying it (the rest of `msg`, e.g.
// its change_id for an error, stays readable).
Result<ClientMessage> decode_message(boost::json::object&& msg, const Origin& origin,
                                     const ProtocolLimits& limits);

// Decodes a change: a typed update or a data_change (also the entries of POST /api/sync, where a
// missing "type" means data_change). Assigns a server change id when the client gave none.
// Validates the action against the data type (unknown_action) and `data` against `limits`
// (data_too_deep, too_many_fields, string_too_long, invalid_number).
Result<ChangeMsg> decode_change(const boost::json::object& msg, const Origin& origin,
                                const ProtocolLimits& limits);
Result<ChangeMsg> decode_change(boost::json::object&& msg, const Origin& origin,
                                const ProtocolLimits& limits);

// A user id as it goes on the wire: "no user" is null, as today's app sends it.
boost::json::value user_id_json(const std::string& user_id);

// The error for a typed user_update that names no user (neither `data.id` nor `user_id`).
Error user_update_without_id();

// Checks an id field value, naming the field in the error.
std::optional<Error> check_id_field(std::string_view field, std::string_view value,
                                    std::size_t max_bytes);

// ---- rendering (server -> client) ----
std::string render_registered(const Origin& origin, std::uint64_t seq);
std::string render_heartbeat_response(std::string_view device_id);
// The answer to an accepted `auth` message: when the new token expires.
std::string render_auth_ok(std::int64_t expires_at_s);
std::string render_error(const Error& error, std::string_view change_id = {});
std::string render_ack(const Outcome& outcome);
std::string render_caught_up(std::uint64_t seq);
std::string render_reset_required(std::uint64_t seq, std::string_view reason);
// A committed change as the typed update today's app understands, with seq and change_id.
std::string render_live_change(const LogEntry& entry);
// The entry as it appears in GET /api/restaurants/:id/changes: a data_change with seq.
boost::json::object change_to_json(const LogEntry& entry);
// One entry of POST /api/sync's `results` and of sync_update's `changes`.
boost::json::object outcome_to_json(const Outcome& outcome);

}  // namespace possync
