// RestaurantRules: the configurable part of the restaurant rules (docs/protocol.md, "Restaurant
// rules"), the order life cycle: which status an order may move to from which, and which
// statuses close an order. apply_batch() (store/apply.h) enforces it.
//
// File format (--rules-file; the built-in default is docs/rules.default.json):
//   {
//     "orders": {
//       "closed": ["completed", "cancelled", "refunded"],
//       "transitions": {
//         "pending": ["confirmed", "preparing", ..., "cancelled"],
//         ...
//         "completed": [{"to": "refunded", "roles": ["manager", "admin"]}],
//         "cancelled": []
//       }
//     }
//   }
// Every status the table knows is a member of `transitions`; its array lists the statuses it may
// move to, each a name or an object {"to": name, "roles": [role, ...]} for a move only those
// roles may make. Every target and every `closed` status must be a member of `transitions`.
// Staying in the same status is not a transition. A status the table does not know (as the
// current or the new one) is not checked. Errors name where they are (e.g.
// `orders.transitions.ready[2]`).
//
// Thread-safety: immutable after construction; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/role.h"

namespace possync {

class RestaurantRules {
 public:
  // The built-in rules (docs/rules.default.json has the same meaning).
  static const RestaurantRules& defaults();
  // Rules from the file format; `invalid_json` or `invalid_field` with a message that starts
  // with "rules: " and names the offending member.
  static Result<RestaurantRules> parse(std::string_view json_text);

  // Whether the order life cycle knows `status`.
  bool knows(std::string_view status) const;
  // Whether `status` closes an order.
  bool closes(std::string_view status) const;

  enum class Move : std::uint8_t { allowed, not_allowed, role_required };
  // Whether an order may move from `from` to `to` (two different statuses the table knows).
  Move move(std::string_view from, std::string_view to, Role role) const;
  // The roles that may make a move whose answer is role_required, comma-separated.
  std::string roles_for(std::string_view from, std::string_view to) const;

  bool operator==(const RestaurantRules&) const = default;

 private:
  RestaurantRules() = default;
  struct Target {
    std::string to;
    std::uint8_t roles = 0;  // bit per Role; 0: any role
    bool operator==(const Target&) const = default;
  };
  std::map<std::string, std::vector<Target>, std::less<>> transitions_;
  std::set<std::string, std::less<>> closed_;
};

}  // namespace possync
