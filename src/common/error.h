// Error values that cross module boundaries. Every failure a client can see is an Error with a
// stable machine-readable `code` (documented in docs/protocol.md) and a human-readable `message`.
#pragma once

#include <boost/system/result.hpp>
#include <string>
#include <string_view>

namespace possync {

struct Error {
  std::string code;
  std::string message;
};

// Stable error codes, shared by the WebSocket and REST surfaces.
namespace errc {
inline constexpr const char* kInvalidJson = "invalid_json";
inline constexpr const char* kInvalidMessage = "invalid_message";
inline constexpr const char* kUnknownType = "unknown_type";
inline constexpr const char* kMissingField = "missing_field";
inline constexpr const char* kInvalidField = "invalid_field";
inline constexpr const char* kUnknownDataType = "unknown_data_type";
inline constexpr const char* kConflict = "conflict";
inline constexpr const char* kStoreUnavailable = "store_unavailable";
inline constexpr const char* kShuttingDown = "shutting_down";
inline constexpr const char* kNotFound = "not_found";
inline constexpr const char* kMethodNotAllowed = "method_not_allowed";
inline constexpr const char* kPayloadTooLarge = "payload_too_large";
inline constexpr const char* kBadRequest = "bad_request";
inline constexpr const char* kResetRequired = "reset_required";
inline constexpr const char* kUnauthorized = "unauthorized";
inline constexpr const char* kForbidden = "forbidden";
inline constexpr const char* kRateLimited = "rate_limited";
inline constexpr const char* kTooManyConnections = "too_many_connections";
// The server is carrying as much work as it may (sync/backpressure.h); retry shortly.
inline constexpr const char* kOverloaded = "overloaded";
// A change's `action` is not one its data type accepts.
inline constexpr const char* kUnknownAction = "unknown_action";
// A change's `data` nests objects or arrays too deeply.
inline constexpr const char* kDataTooDeep = "data_too_deep";
// An object in a change's `data` has too many fields, or `data` too many values in total.
inline constexpr const char* kTooManyFields = "too_many_fields";
// A string value or field name in a change's `data` is too long.
inline constexpr const char* kStringTooLong = "string_too_long";
// A number in a change's `data` is not finite (a literal beyond the double range, like 1e999).
inline constexpr const char* kInvalidNumber = "invalid_number";
// A network of a legacy-device enrolment is not an address or CIDR range (auth/networks.h).
inline constexpr const char* kInvalidNetwork = "invalid_network";
// A role that does not exist, or may not be given where it was (an admin legacy device).
inline constexpr const char* kInvalidRole = "invalid_role";

// Restaurant rules (docs/protocol.md, "Restaurant rules"): the order's status may not move from
// its current status to the one asked for.
inline constexpr const char* kInvalidTransition = "invalid_transition";
// The order is closed (completed, cancelled, refunded, ...): only managers and admins change it.
inline constexpr const char* kOrderClosed = "order_closed";
// Another open order holds the table.
inline constexpr const char* kTableOccupied = "table_occupied";
// `line_updated` names a line the order does not have.
inline constexpr const char* kLineNotFound = "line_not_found";

// Whether a rejection with this code carries the record as it is now (`current`): a conflict or
// a restaurant rule's rejection.
bool carries_current(std::string_view code);
}  // namespace errc

// A value or an Error. `value()` on an error throws std::runtime_error (a programming mistake).
template <class T>
using Result = boost::system::result<T, Error>;

// Found by argument-dependent lookup when Result<T>::value() is called on an error.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

}  // namespace possync
