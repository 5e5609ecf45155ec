// Roles and permissions: which role may make which change.
//
// A device's role comes from its token. A PermissionTable holds, per role and data type, at most
// one PermissionRule; check(role, change) allows the change if the rule for its data type exists
// and admits the change's action and data:
// - no rule for the data type: forbidden;
// - `actions`: if set, the change's action must be one of them;
// - for a deletion (`deleted`, `removed`, `item_removed`: the data is not applied to the record)
//   the action decides alone; for every other (merging) action the data is checked too:
//   - `fields`: if set, every top-level member of data must be one of them (members set to null
//     count: removing a field is changing it);
//   - `deny_fields`: no member of data, at any depth (nested objects, objects inside arrays), may
//     have one of these names.
// The check needs nothing but the change: no record state, no I/O.
//
// Default table (defaults(), and docs/permissions.default.json with the same meaning):
// - admin, manager: everything, on all six data types;
// - pos: orders, inventory, tables, printers: everything (so also order lines, stock `adjust`,
//   `print_job` and `reprint`); menu_items: everything except a change whose data carries `price`
//   (so also no creating priced items); users: nothing;
// - kds: orders, actions `updated` and `status_changed`, with data fields `status` and the
//   bookkeeping fields `id`, `updated_at`, `version` (which the server overwrites anyway);
//   printers: `reprint` only (a kitchen asks for a ticket again; it neither prints new tickets
//   nor adjusts stock).
//
// File format (--permissions-file), a JSON object with every role as a member; a file replaces the
// defaults as a whole:
//   {
//     "pos":     {"orders": {}, "menu_items": {"deny_fields": ["price"]}, ...},
//     "kds":     {"orders": {"actions": ["updated", "status_changed"],
//                            "fields": ["status", "id", "updated_at", "version"]}},
//     "manager": {...},
//     "admin":   {...}
//   }
// A role maps data type names to rules; a data type left out is forbidden to that role (a role
// with `{}` may do nothing). A rule is an object with the optional members `actions`, `fields` and
// `deny_fields`, each a non-empty array of non-empty strings; `{}` allows every change to that
// data type. Unknown roles, data types or rule members, a missing role and wrong types are
// errors that name where they are (e.g. `kds.orders.actions[1]`). A member given twice in one
// object is not detected: the JSON parser keeps the last.
//
// Thread-safety: a PermissionTable is immutable after construction; check() may be called from any
// thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/error.h"
#include "model/change.h"
#include "model/role.h"

namespace possync {

// What one role may do to one data type (see the top of this file).
struct PermissionRule {
  using Names = std::set<std::string, std::less<>>;
  std::optional<Names> actions;  // nullopt: any action
  std::optional<Names> fields;   // nullopt: any top-level field
  Names deny_fields;             // names forbidden at any depth of data
  bool operator==(const PermissionRule&) const = default;
};

// The answer of PermissionTable::check. When not allowed, `reason` says why in words fit for the
// `forbidden` error sent to the device (it names role, data type, action or field; never values).
struct Decision {
  bool allowed = false;
  std::string reason;
  explicit operator bool() const { return allowed; }
};

class PermissionTable {
 public:
  // The built-in table (top of this file).
  static PermissionTable defaults();
  // A table from the JSON file format; `invalid_json` or `invalid_field` with a message that
  // starts with "permissions: " and names the offending member.
  static Result<PermissionTable> parse(std::string_view json_text);

  Decision check(Role role, const Change& change) const;

  // The rule for `role` on `type`, or nullptr if that role may not change that type at all.
  const PermissionRule* rule(Role role, DataType type) const;

  bool operator==(const PermissionTable&) const = default;

 private:
  PermissionTable() = default;  // allows nothing
  std::array<std::array<std::optional<PermissionRule>, kDataTypes.size()>, kRoles.size()> rules_;
};

}  // namespace possync
