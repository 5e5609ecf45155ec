// The vocabulary of the sync engine: the six data types, a Change, its Outcome, and the LogEntry a
// committed change becomes. Plain values, no I/O; safe to copy between threads.
#pragma once

#include <array>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/role.h"

namespace possync {

enum class DataType : std::uint8_t { orders, menu_items, inventory, tables, users, printers };

// Actions every data type accepts: `upsert`, and the legacy server's generic `created`, `updated`
// and `deleted` (the only actions it applied, to any data type).
inline constexpr std::array<std::string_view, 4> kCommonActions{"upsert", "created", "updated",
                                                                "deleted"};

// The actions today's app sends for each data type (docs/protocol.md, section 2), beyond
// kCommonActions, and those of the restaurant rules (docs/protocol.md, "Restaurant rules"): order
// lines, stock adjustments, print jobs.
inline constexpr std::array<std::string_view, 5> kOrderActions{
    "status_changed", "completed", "line_added", "line_updated", "line_removed"};
inline constexpr std::array<std::string_view, 1> kMenuItemActions{"availability_changed"};
inline constexpr std::array<std::string_view, 5> kInventoryActions{
    "stock_changed", "item_added", "item_removed", "low_stock_alert", "adjust"};
inline constexpr std::array<std::string_view, 4> kTableActions{"occupied", "available", "reserved",
                                                               "cleaning"};
inline constexpr std::array<std::string_view, 1> kUserActions{"role_changed"};
// `status_changed`: the legacy server's README lists printer "status updates".
inline constexpr std::array<std::string_view, 7> kPrinterActions{
    "added",          "removed",   "configured", "assignment_changed",
    "status_changed", "print_job", "reprint"};

// The actions that restaurant rules give a meaning of their own (store/apply.h).
inline constexpr std::string_view kAdjust = "adjust";
inline constexpr std::string_view kLineAdded = "line_added";
inline constexpr std::string_view kLineUpdated = "line_updated";
inline constexpr std::string_view kLineRemoved = "line_removed";
inline constexpr std::string_view kPrintJob = "print_job";
inline constexpr std::string_view kReprint = "reprint";
// Committed by the server itself (never accepted from a device) when an adjustment crosses a
// threshold: `low_stock_alert` (also one of today's app's own actions) and `negative_stock`.
inline constexpr std::string_view kLowStockAlert = "low_stock_alert";
inline constexpr std::string_view kNegativeStock = "negative_stock";
// The device id of changes the server commits itself: empty, which no device can have.
inline constexpr std::string_view kServerDeviceId = "";

// How a data type appears on the wire: its `data_type` name, the typed update message that carries
// it, the field of that message holding the record id, and the actions it accepts besides
// kCommonActions.
struct DataTypeInfo {
  DataType type;
  std::string_view name;                      // "orders"
  std::string_view typed_update;              // "order_update"
  std::string_view id_field;                  // "order_id"
  std::span<const std::string_view> actions;  // {"status_changed", "completed"}
};

inline constexpr std::array<DataTypeInfo, 6> kDataTypes{{
    {DataType::orders, "orders", "order_update", "order_id", kOrderActions},
    {DataType::menu_items, "menu_items", "menu_update", "item_id", kMenuItemActions},
    {DataType::inventory, "inventory", "inventory_update", "item_id", kInventoryActions},
    {DataType::tables, "tables", "table_update", "table_id", kTableActions},
    {DataType::users, "users", "user_update", "user_id", kUserActions},
    {DataType::printers, "printers", "printer_update", "printer_id", kPrinterActions},
}};

const DataTypeInfo& info(DataType t);
const DataTypeInfo* data_type_by_name(std::string_view name);
const DataTypeInfo* data_type_by_typed_update(std::string_view message_type);

// Whether `action` is one `t` accepts: one of kCommonActions or of the type's own actions.
bool accepts_action(DataType t, std::string_view action);
// The actions `t` accepts, comma-separated, for error messages: "upsert, created, ...".
std::string accepted_actions(DataType t);

// Actions that delete the record (leaving a tombstone in the log); every other action merges
// (but those of the restaurant rules, which store/apply.h applies in their own way).
bool is_deletion(std::string_view action);

// One change to one record, as it entered from WebSocket or REST.
struct Change {
  std::string restaurant_id;
  std::string device_id;  // origin device
  std::string user_id;    // origin user (may be empty)
  std::string change_id;  // client-chosen or server-assigned; unique per restaurant
  DataType data_type = DataType::orders;
  std::string action;
  std::string record_id;
  boost::json::object data;                   // JSON Merge Patch (RFC 7386) for the record
  std::optional<std::uint64_t> base_version;  // optimistic concurrency: expected record version
};

// A committed change: the restaurant's log entry with its seq.
struct LogEntry {
  std::uint64_t seq = 0;
  std::int64_t committed_at_ms = 0;
  Change change;
};

// What the commit pipeline is asked to do with one change.
struct ChangeRequest {
  Change change;
  // When set, this change is the data_change twin of an earlier typed update whose
  // (server-assigned) change id this is: if that change was committed, this one is recorded as an
  // alias of it and answered `duplicate`; otherwise it is applied as a change of its own.
  std::string twin_of;
  // When the change entered the server (for the fan-out latency metric; not stored).
  std::chrono::steady_clock::time_point received_at = std::chrono::steady_clock::now();
  // The sender's role (its token's; admin with --auth off): a closed order and some transitions
  // of the order life cycle are open to managers and admins only (store/apply.h). Not stored.
  Role role = Role::pos;
};

enum class OutcomeStatus : std::uint8_t { applied, duplicate, rejected };
std::string_view to_string(OutcomeStatus s);

struct Outcome {
  OutcomeStatus status = OutcomeStatus::rejected;
  std::string change_id;
  std::uint64_t seq = 0;  // the change's seq when applied or duplicate
  Error error;            // when rejected
  // For a `conflict`: the record as it is now (null if it does not exist).
  boost::json::value current;
  // For `applied`: the committed entry, shared with the fan-out.
  std::shared_ptr<const LogEntry> entry;
  // For `applied`: changes the server committed because of this one, in the same transaction,
  // with the seqs right after it (the stock alerts of an `adjust`). Published after `entry`;
  // empty (no allocation) for every other change.
  std::vector<std::shared_ptr<const LogEntry>> follow_ups;
  // Copied from the request by the commit pipeline.
  std::chrono::steady_clock::time_point received_at{};
};

// The highest seq an applied outcome committed (its own or its last follow-up's); `seq` otherwise.
inline std::uint64_t last_seq(const Outcome& o) {
  return o.follow_ups.empty() ? o.seq : o.follow_ups.back()->seq;
}

// Calls fn(const LogEntry&) for every entry an applied outcome committed, in seq order.
template <class Fn>
void for_each_entry(const Outcome& o, Fn&& fn) {
  if (o.status != OutcomeStatus::applied || !o.entry) return;
  fn(*o.entry);
  for (const auto& e : o.follow_ups) fn(*e);
}

// The parts of a rule action's `data` (docs/protocol.md, "Restaurant rules"), each with the
// Error (invalid_field / missing_field) that says what is wrong. The views point into `c.data`.
// - adjust: `delta`, a finite number; `reason` a string if present; no other member but `id`.
Result<const boost::json::value*> adjustment_delta(const Change& c);
// - line_added / line_updated: `line`, an object whose `line_id` is an id; line_removed:
//   `line_id`, an id; no other member but `id`.
Result<std::string_view> line_id_of(const Change& c);
// - print_job / reprint: `ticket_id`, an id (any other members are the ticket's content).
Result<std::string_view> ticket_id_of(const Change& c);
// Nothing if `c` is not a rule action or its data is well-formed (the above; ids at most
// `max_id_bytes`), else the Error. Called where changes are decoded.
std::optional<Error> check_rule_data(const Change& c, std::size_t max_id_bytes);

// A server-assigned change id for changes that arrive without one: "srv-<ms>-<64 random bits>".
std::string new_change_id();

}  // namespace possync
