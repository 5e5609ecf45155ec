// The rules for applying change requests, written once for every Store backend:
// dedupe by change id, twin aliasing, optimistic concurrency (base_version), JSON Merge Patch or
// deletion, seq assignment, log append and retention; and the restaurant rules (docs/protocol.md,
// "Restaurant rules"):
// - the order life cycle (every change to an order): a status move the RestaurantRules
//   (CommitOptions::rules) do not allow is rejected `invalid_transition`; any other change to a
//   closed order `order_closed`, unless the request's role is manager or admin;
// - order lines (`line_added`, `line_updated`, `line_removed`): one line of the order's `items`,
//   by `line_id`, merge-patched, appended or removed; `line_updated` of a line the order does not
//   have is rejected `line_not_found`;
// - one party per table: a `tables` change naming an `order_id` while another open order holds
//   the table (its `order_id`, status not `available`) is rejected `table_occupied`;
// - stock as deltas (`adjust`): `current_stock` += `delta`; crossing `min_stock` downwards or
//   zero downwards commits a `low_stock_alert` / `negative_stock` change of the server right after
//   it (Outcome::follow_ups);
// - a kitchen ticket prints once: a `print_job` whose ticket was printed before answers
//   `duplicate` with the original seq; `reprint` is always committed; both are counted in the
//   printer's record.
// A rejection carries the record as it is now (Outcome::current), applies nothing and never stops
// the requests after it. Every lookup a rule makes runs inside the transaction, after the
// backend has locked the restaurant (PostgreSQL: its head row), so it holds across nodes.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace possync {

// The operations apply_batch() needs inside one open transaction. Methods may throw to abort the
// transaction; the backend then rolls back and reports an Error for the whole batch.
class StoreTxn {
 public:
  virtual ~StoreTxn() = default;
  virtual LogHead load_head(std::string_view restaurant) = 0;
  virtual void save_head(std::string_view restaurant, const LogHead& head) = 0;
  virtual std::optional<std::uint64_t> find_change(std::string_view restaurant,
                                                   std::string_view change_id) = 0;
  virtual void add_change_id(std::string_view restaurant, std::string_view change_id,
                             std::uint64_t seq) = 0;
  // The stored record (with its id, version and updated_at), if it exists.
  virtual std::optional<boost::json::object> load_record(std::string_view restaurant, DataType type,
                                                         std::string_view record_id) = 0;
  virtual void save_record(std::string_view restaurant, DataType type, std::string_view record_id,
                           boost::json::object record, std::uint64_t version) = 0;
  virtual void delete_record(std::string_view restaurant, DataType type,
                             std::string_view record_id) = 0;
  // The entry is shared with the commit's Outcome (and kept as it is by the memory store).
  virtual void append_log(const std::shared_ptr<const LogEntry>& entry) = 0;
  // Removes log entries and change ids with seq <= up_to_seq.
  virtual void prune(std::string_view restaurant, std::uint64_t up_to_seq) = 0;
};

std::vector<Outcome> apply_batch(StoreTxn& txn, std::span<const ChangeRequest> batch,
                                 const CommitOptions& options);

// For backends that read ahead what apply_batch() will look up: the change id, besides the
// request's own and its twin_of, that it looks up with find_change (a print job's ticket), if any.
std::optional<std::string> rule_lookup_key(const ChangeRequest& request);
// The change id under which a printed ticket is recorded (an alias of its print job's seq, pruned
// with it); no device can send it.
std::string ticket_key(std::string_view ticket_id);

}  // namespace possync
