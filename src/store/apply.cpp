#include "store/apply.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <map>

#include "common/time.h"
#include "model/merge_patch.h"
#include "store/restaurant_rules.h"

namespace possync {
namespace json = boost::json;
namespace {

Outcome duplicate_of(std::string change_id, std::uint64_t seq) {
  Outcome out;
  out.status = OutcomeStatus::duplicate;
  out.change_id = std::move(change_id);
  out.seq = seq;
  return out;
}

// A rejection; it carries the record as it is now (null if there is none) when its code says so
// (errc::carries_current).
Outcome rejected(const Change& change, Error error, const std::optional<json::object>& record) {
  Outcome out;
  out.change_id = change.change_id;
  if (errc::carries_current(error.code) && record) out.current = *record;
  out.error = std::move(error);
  return out;
}

// Heads are loaded once per restaurant per batch and saved once at the end.
class HeadCache {
 public:
  explicit HeadCache(StoreTxn& txn) : txn_(txn) {}
  LogHead& get(const std::string& restaurant) {
    auto it = heads_.find(restaurant);
    if (it == heads_.end()) it = heads_.emplace(restaurant, txn_.load_head(restaurant)).first;
    return it->second;
  }
  void flush(std::uint64_t retain_changes) {
    for (auto& [restaurant, head] : heads_) {
      if (!head.exists) continue;
      // Prune in steps of at least 1/16 of the retained window so pruning is amortized.
      if (retain_changes > 0 && head.seq > retain_changes) {
        const std::uint64_t horizon = head.seq - retain_changes;
        if (horizon >= head.pruned_seq + std::max<std::uint64_t>(1, retain_changes / 16)) {
          txn_.prune(restaurant, horizon);
          head.pruned_seq = horizon;
        }
      }
      txn_.save_head(restaurant, head);
    }
  }

 private:
  StoreTxn& txn_;
  std::map<std::string, LogHead, std::less<>> heads_;
};

struct Context {
  StoreTxn& txn;
  HeadCache& heads;
  const CommitOptions& options;
  const RestaurantRules& rules;
};

// Commits `change` as its restaurant's next seq. `body` is the record's new content (id, version
// and updated_at are set here); without it the record is deleted (if `existed`). `logged`, if
// given, is the data of the log entry instead of the change's own.
Outcome commit_change(Context& ctx, const Change& change, std::optional<json::object> body,
                      bool existed, std::optional<json::object> logged = std::nullopt) {
  LogHead& head = ctx.heads.get(change.restaurant_id);
  head.exists = true;
  const std::uint64_t seq = ++head.seq;

  if (body) {
    json::object& object = *body;
    object["id"] = change.record_id;
    object["version"] = seq;
    object["updated_at"] = iso8601_utc(ctx.options.now_ms);
    ctx.txn.save_record(change.restaurant_id, change.data_type, change.record_id, std::move(object),
                        seq);
  } else if (existed) {
    ctx.txn.delete_record(change.restaurant_id, change.data_type, change.record_id);
  }

  auto entry = std::make_shared<LogEntry>();
  entry->seq = seq;
  entry->committed_at_ms = ctx.options.now_ms;
  entry->change = change;
  entry->change.base_version.reset();
  if (logged) entry->change.data = std::move(*logged);
  ctx.txn.append_log(entry);
  ctx.txn.add_change_id(change.restaurant_id, change.change_id, seq);

  Outcome out;
  out.status = OutcomeStatus::applied;
  out.change_id = change.change_id;
  out.seq = seq;
  out.entry = std::move(entry);
  return out;
}

const json::string* string_member(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v ? v->if_string() : nullptr;
}

// An id held in a record (an order's id in a table): a string, or an integer as its digits.
std::optional<std::string> id_member(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (const auto* s = v->if_string()) {
    if (s->empty()) return std::nullopt;
    return std::string(*s);
  }
  if (v->is_int64()) return std::to_string(v->get_int64());
  if (v->is_uint64()) return std::to_string(v->get_uint64());
  return std::nullopt;
}

bool privileged(Role role) {
  return role == Role::manager || role == Role::admin;
}

// ---- the order life cycle (every change to an order) ----

std::optional<Error> check_order(const Context& ctx, const ChangeRequest& request,
                                 const std::optional<json::object>& record) {
  if (!record) return std::nullopt;
  const json::string* current = string_member(*record, "status");
  if (current == nullptr) return std::nullopt;
  const Change& change = request.change;
  const json::string* next =
      is_deletion(change.action) ? nullptr : string_member(change.data, "status");
  if (next != nullptr && *next != *current && ctx.rules.knows(*current) && ctx.rules.knows(*next)) {
    switch (ctx.rules.move(*current, *next, request.role)) {
      case RestaurantRules::Move::allowed:
        return std::nullopt;  // also out of a closed status
      case RestaurantRules::Move::role_required:
        return Error{errc::kInvalidTransition,
                     fmt::format("order '{}' may move from '{}' to '{}' only with the role {}",
                                 change.record_id, std::string_view(*current),
                                 std::string_view(*next), ctx.rules.roles_for(*current, *next))};
      case RestaurantRules::Move::not_allowed:
        return Error{errc::kInvalidTransition,
                     fmt::format("order '{}' may not move from '{}' to '{}'", change.record_id,
                                 std::string_view(*current), std::string_view(*next))};
    }
  }
  if (ctx.rules.closes(*current) && !privileged(request.role)) {
    return Error{errc::kOrderClosed,
                 fmt::format("order '{}' is {} (closed): only a manager or admin may change it",
                             change.record_id, std::string_view(*current))};
  }
  return std::nullopt;
}

// ---- one party per table ----

std::optional<Error> check_table(Context& ctx, const ChangeRequest& request,
                                 const std::optional<json::object>& record) {
  const Change& change = request.change;
  if (!record || is_deletion(change.action)) return std::nullopt;
  const auto* seated = change.data.if_contains("order_id");
  if (seated == nullptr || seated->is_null()) return std::nullopt;  // no party named
  auto holder = id_member(*record, "order_id");
  if (!holder) return std::nullopt;
  if (auto party = id_member(change.data, "order_id"); party && *party == *holder) {
    return std::nullopt;  // the same order re-seating
  }
  if (const auto* status = string_member(*record, "status"); status && *status == "available") {
    return std::nullopt;
  }
  const auto order = ctx.txn.load_record(change.restaurant_id, DataType::orders, *holder);
  if (!order) return std::nullopt;  // no such order (any more)
  if (const auto* status = string_member(*order, "status"); status && ctx.rules.closes(*status)) {
    return std::nullopt;
  }
  return Error{errc::kTableOccupied,
               fmt::format("table '{}' is held by the open order '{}'", change.record_id, *holder)};
}

// ---- order lines ----

Outcome apply_line(Context& ctx, const ChangeRequest& request, std::optional<json::object> record) {
  const Change& change = request.change;
  auto line_id = line_id_of(change);
  if (!line_id) return rejected(change, line_id.error(), record);
  const bool existed = record.has_value();
  json::object body = existed ? std::move(*record) : json::object{};
  const json::value* items = body.if_contains("items");
  if (items != nullptr && !items->is_null() && !items->is_array()) {
    return rejected(change,
                    {errc::kInvalidField, fmt::format("order '{}' has an 'items' that is not an "
                                                      "array; lines need an array",
                                                      change.record_id)},
                    std::nullopt);
  }
  // The line's place among the order's lines (in the order they were first added).
  std::optional<std::size_t> index;
  if (items != nullptr && items->is_array()) {
    const json::array& lines = items->get_array();
    for (std::size_t i = 0; i < lines.size() && !index; ++i) {
      const auto* o = lines[i].if_object();
      const json::string* id = o ? string_member(*o, "line_id") : nullptr;
      if (id != nullptr && *id == *line_id) index = i;
    }
  }
  if (!index && change.action == kLineUpdated) {
    std::optional<json::object> current;
    if (existed) current = std::move(body);
    return rejected(change,
                    {errc::kLineNotFound,
                     fmt::format("order '{}' has no line '{}'", change.record_id, *line_id)},
                    current);
  }
  json::value& slot = body["items"];
  if (!slot.is_array()) slot.emplace_array();
  json::array& lines = slot.get_array();
  if (change.action == kLineRemoved) {
    if (index) lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(*index));
  } else if (index) {
    merge_patch(lines[*index], change.data.at("line"));
  } else {
    json::value line = json::object{};
    merge_patch(line, change.data.at("line"));
    lines.push_back(std::move(line));
  }
  return commit_change(ctx, change, std::move(body), existed);
}

// ---- stock as deltas ----

// a + b: an integer while both are integers and the sum fits, else a double.
json::value add_numbers(const json::value& a, const json::value& b) {
  std::int64_t sum = 0;
  if (a.is_int64() && b.is_int64() && !__builtin_add_overflow(a.get_int64(), b.get_int64(), &sum)) {
    return sum;
  }
  return a.to_number<double>() + b.to_number<double>();
}

// The change id of an alert caused by `cause`: "<cause's change id>:<action>", unless a device
// has used that id already (then the alert's seq is appended as well).
std::string alert_change_id(Context& ctx, const Change& cause, std::string_view action,
                            std::uint64_t seq) {
  std::string id = fmt::format("{}:{}", cause.change_id, action);
  for (int n = 0; ctx.txn.find_change(cause.restaurant_id, id); ++n) {
    id = n == 0 ? fmt::format("{}:{}:{}", cause.change_id, action, seq)
                : fmt::format("{}:{}:{}.{}", cause.change_id, action, seq, n);
  }
  return id;
}

// Commits an alert the server makes about the inventory item `cause` adjusted: the next seq, a
// change id derived from the cause's, from no device. It does not change the record.
std::shared_ptr<const LogEntry> commit_alert(Context& ctx, const Change& cause,
                                             std::string_view action, json::object data) {
  LogHead& head = ctx.heads.get(cause.restaurant_id);
  const std::uint64_t seq = ++head.seq;
  auto entry = std::make_shared<LogEntry>();
  entry->seq = seq;
  entry->committed_at_ms = ctx.options.now_ms;
  Change& c = entry->change;
  c.restaurant_id = cause.restaurant_id;
  c.device_id = kServerDeviceId;
  c.change_id = alert_change_id(ctx, cause, action, seq);
  c.data_type = DataType::inventory;
  c.action = action;
  c.record_id = cause.record_id;
  c.data = std::move(data);
  ctx.txn.append_log(entry);
  ctx.txn.add_change_id(c.restaurant_id, c.change_id, seq);
  return entry;
}

Outcome apply_adjust(Context& ctx, const ChangeRequest& request,
                     std::optional<json::object> record) {
  const Change& change = request.change;
  const bool existed = record.has_value();
  if (ctx.options.replay) {
    // The logged adjustment carries the stock it resulted in; its alerts follow in the log.
    json::object body = existed ? std::move(*record) : json::object{};
    if (const auto* stock = change.data.if_contains("current_stock")) {
      body["current_stock"] = *stock;
    }
    return commit_change(ctx, change, std::move(body), existed);
  }
  auto delta = adjustment_delta(change);
  if (!delta) return rejected(change, delta.error(), record);
  json::object body = existed ? std::move(*record) : json::object{};
  json::value before = 0;
  if (const auto* stock = body.if_contains("current_stock"); stock && !stock->is_null()) {
    if (!stock->is_number()) {
      return rejected(change,
                      {errc::kInvalidField,
                       fmt::format("inventory item '{}' has a current_stock that is not a number; "
                                   "set it with stock_changed first",
                                   change.record_id)},
                      std::nullopt);
    }
    before = *stock;
  }
  const json::value after = add_numbers(before, **delta);
  body["current_stock"] = after;
  std::optional<json::value> min;
  if (const auto* m = body.if_contains("min_stock"); m && m->is_number()) min = *m;
  const json::string* name = string_member(body, "name");
  json::object alert_data;
  if (name) alert_data["name"] = *name;
  alert_data["current_stock"] = after;

  json::object logged;
  logged["delta"] = **delta;
  if (const auto* reason = change.data.if_contains("reason"); reason && reason->is_string()) {
    logged["reason"] = *reason;
  }
  logged["current_stock"] = after;
  Outcome out = commit_change(ctx, change, std::move(body), existed, std::move(logged));

  const double was = before.to_number<double>();
  const double is = after.to_number<double>();
  if (min && was > min->to_number<double>() && is <= min->to_number<double>()) {
    json::object data = alert_data;
    data["min_stock"] = *min;
    out.follow_ups.push_back(commit_alert(ctx, change, kLowStockAlert, std::move(data)));
  }
  if (was >= 0 && is < 0) {
    out.follow_ups.push_back(commit_alert(ctx, change, kNegativeStock, std::move(alert_data)));
  }
  return out;
}

// ---- a kitchen ticket prints once ----

Outcome apply_print(Context& ctx, const ChangeRequest& request,
                    std::optional<json::object> record) {
  const Change& change = request.change;
  auto ticket = ticket_id_of(change);
  if (!ticket) return rejected(change, ticket.error(), record);
  const bool reprint = change.action == kReprint;
  std::string key;
  if (!reprint) {
    key = ticket_key(*ticket);
    if (auto seq = ctx.txn.find_change(change.restaurant_id, key)) {
      ctx.txn.add_change_id(change.restaurant_id, change.change_id, *seq);
      return duplicate_of(change.change_id, *seq);
    }
  }
  const bool existed = record.has_value();
  json::object body = existed ? std::move(*record) : json::object{};
  json::value& count = body[reprint ? "reprints" : "print_jobs"];
  count = (count.is_int64() ? count.get_int64() : 0) + 1;
  Outcome out = commit_change(ctx, change, std::move(body), existed);
  if (!reprint) ctx.txn.add_change_id(change.restaurant_id, key, out.seq);
  return out;
}

Outcome apply_one(Context& ctx, const ChangeRequest& request) {
  StoreTxn& txn = ctx.txn;
  const Change& change = request.change;
  if (auto seq = txn.find_change(change.restaurant_id, change.change_id)) {
    return duplicate_of(change.change_id, *seq);
  }
  if (!request.twin_of.empty()) {
    if (auto seq = txn.find_change(change.restaurant_id, request.twin_of)) {
      txn.add_change_id(change.restaurant_id, change.change_id, *seq);
      return duplicate_of(change.change_id, *seq);
    }
  }

  auto record = txn.load_record(change.restaurant_id, change.data_type, change.record_id);
  if (change.base_version) {
    const std::uint64_t current_version =
        record ? static_cast<std::uint64_t>(record->at("version").to_number<std::int64_t>()) : 0;
    if (*change.base_version != current_version) {
      Outcome out;
      out.change_id = change.change_id;
      out.error = {errc::kConflict,
                   fmt::format("base_version {} does not match the record's version {}",
                               *change.base_version, current_version)};
      out.current = record ? boost::json::value(*record) : boost::json::value(nullptr);
      return out;
    }
  }

  // The restaurant rules (docs/protocol.md, "Restaurant rules"). A legacy change costs at most a
  // look at the record's and the data's status (orders) or order_id (tables).
  const bool check = !ctx.options.replay;
  if (!check && change.device_id == kServerDeviceId) {
    // A logged alert of the server: it left the records alone (commit_alert).
    return commit_change(ctx, change, std::nullopt, false);
  }
  switch (change.data_type) {
    case DataType::orders:
      if (auto refused = check ? check_order(ctx, request, record) : std::nullopt) {
        return rejected(change, std::move(*refused), record);
      }
      if (change.action == kLineAdded || change.action == kLineUpdated ||
          change.action == kLineRemoved) {
        return apply_line(ctx, request, std::move(record));
      }
      break;
    case DataType::tables:
      if (auto refused = check ? check_table(ctx, request, record) : std::nullopt) {
        return rejected(change, std::move(*refused), record);
      }
      break;
    case DataType::inventory:
      if (change.action == kAdjust) return apply_adjust(ctx, request, std::move(record));
      break;
    case DataType::printers:
      if (change.action == kPrintJob || change.action == kReprint) {
        return apply_print(ctx, request, std::move(record));
      }
      break;
    default:
      break;
  }

  if (is_deletion(change.action)) {
    return commit_change(ctx, change, std::nullopt, record.has_value());
  }
  boost::json::value merged =
      record ? boost::json::value(std::move(*record)) : boost::json::value(boost::json::object{});
  // Room for the data's fields and the three commit_change() sets, at once: the object would
  // otherwise grow (and rehash) a few times on its way.
  merged.get_object().reserve(merged.get_object().size() + change.data.size() + 3);
  merge_patch(merged, change.data);
  return commit_change(ctx, change, std::move(merged.as_object()), true);
}

}  // namespace

std::string ticket_key(std::string_view ticket_id) {
  // A change id no device can send: device ids never hold control characters.
  return fmt::format("\x1fticket:{}", ticket_id);
}

std::optional<std::string> rule_lookup_key(const ChangeRequest& request) {
  const Change& c = request.change;
  if (c.data_type != DataType::printers || c.action != kPrintJob) return std::nullopt;
  auto ticket = ticket_id_of(c);
  if (!ticket) return std::nullopt;
  return ticket_key(*ticket);
}

std::vector<Outcome> apply_batch(StoreTxn& txn, std::span<const ChangeRequest> batch,
                                 const CommitOptions& options) {
  HeadCache heads(txn);
  Context ctx{txn, heads, options, options.rules ? *options.rules : RestaurantRules::defaults()};
  std::vector<Outcome> outcomes;
  outcomes.reserve(batch.size());
  for (const auto& request : batch) outcomes.push_back(apply_one(ctx, request));
  heads.flush(options.retain_changes);
  return outcomes;
}

}  // namespace possync
