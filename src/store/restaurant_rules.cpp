#include "store/restaurant_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>
#include <optional>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace json = boost::json;

namespace possync {
namespace {

// The default rules, in the file format. docs/rules.default.json has the same meaning (a unit
// test checks that they agree).
constexpr std::string_view kDefaultRules = R"({
  "orders": {
    "closed": ["completed", "cancelled", "refunded"],
    "transitions": {
      "pending": ["confirmed", "preparing", "ready", "served", "completed", "cancelled"],
      "confirmed": ["pending", "preparing", "ready", "served", "completed", "cancelled"],
      "preparing": ["confirmed", "ready", "served", "completed", "cancelled"],
      "ready": ["preparing", "served", "completed", "cancelled"],
      "served": ["completed", "cancelled"],
      "completed": [{"to": "refunded", "roles": ["manager", "admin"]}],
      "cancelled": [],
      "refunded": []
    }
  }
})";

Error invalid(std::string message) {
  return {errc::kInvalidField, "rules: " + std::move(message)};
}

std::uint8_t bit(Role role) {
  return static_cast<std::uint8_t>(1u << static_cast<unsigned>(role));
}

// Checks that `object` has no members but `allowed`.
std::optional<Error> only(const json::object& object,
                          std::initializer_list<std::string_view> allowed, std::string_view where) {
  for (const auto& member : object) {
    if (std::find(allowed.begin(), allowed.end(), member.key()) == allowed.end()) {
      return invalid(fmt::format("{}: unknown member '{}'", where, std::string_view(member.key())));
    }
  }
  return std::nullopt;
}

// A non-empty string, at `where`.
Result<std::string> status_name(const json::value& v, const std::string& where) {
  const auto* s = v.if_string();
  if (s == nullptr || s->empty())
    return invalid(fmt::format("{} must be a non-empty string", where));
  return Result<std::string>(boost::system::in_place_value, *s);
}

}  // namespace

const RestaurantRules& RestaurantRules::defaults() {
  static const RestaurantRules rules = parse(kDefaultRules).value();
  return rules;
}

Result<RestaurantRules> RestaurantRules::parse(std::string_view json_text) {
  boost::system::error_code ec;
  const json::value root = json::parse(json_text, ec);
  if (ec) return Error{errc::kInvalidJson, "rules: not valid JSON: " + ec.message()};
  const auto* top = root.if_object();
  if (top == nullptr) return invalid("the rules must be a JSON object");
  if (auto e = only(*top, {"orders"}, "the top level")) return *e;
  const auto* orders_value = top->if_contains("orders");
  if (orders_value == nullptr) return invalid("'orders' is missing");
  const auto* orders = orders_value->if_object();
  if (orders == nullptr) return invalid("orders must be an object");
  if (auto e = only(*orders, {"closed", "transitions"}, "orders")) return *e;

  RestaurantRules rules;
  const auto* transitions = orders->if_contains("transitions");
  if (transitions == nullptr || !transitions->is_object()) {
    return invalid("orders.transitions must be an object (status -> statuses it may move to)");
  }
  for (const auto& member : transitions->get_object()) {
    const std::string from(member.key());
    if (from.empty()) return invalid("orders.transitions: a status must be a non-empty string");
    const std::string where = fmt::format("orders.transitions.{}", from);
    const auto* targets = member.value().if_array();
    if (targets == nullptr) return invalid(fmt::format("{} must be an array", where));
    auto& list = rules.transitions_[from];
    for (std::size_t i = 0; i < targets->size(); ++i) {
      const std::string at = fmt::format("{}[{}]", where, i);
      const json::value& t = (*targets)[i];
      Target target;
      if (t.is_string()) {
        auto name = status_name(t, at);
        if (!name) return name.error();
        target.to = std::move(*name);
      } else if (const auto* o = t.if_object()) {
        if (auto e = only(*o, {"to", "roles"}, at)) return *e;
        const auto* to = o->if_contains("to");
        if (to == nullptr) return invalid(fmt::format("{}.to is missing", at));
        auto name = status_name(*to, at + ".to");
        if (!name) return name.error();
        target.to = std::move(*name);
        if (const auto* roles = o->if_contains("roles")) {
          const auto* array = roles->if_array();
          if (array == nullptr || array->empty()) {
            return invalid(fmt::format("{}.roles must be a non-empty array of roles", at));
          }
          for (std::size_t k = 0; k < array->size(); ++k) {
            const auto* name = (*array)[k].if_string();
            auto role = parse_role(name ? std::string_view(*name) : std::string_view());
            if (!role) return invalid(fmt::format("{}.roles[{}]: {}", at, k, role.error().message));
            target.roles |= bit(*role);
          }
        }
      } else {
        return invalid(fmt::format("{} must be a status or an object {{\"to\", \"roles\"}}", at));
      }
      if (target.to == from) return invalid(fmt::format("{}: a status cannot move to itself", at));
      list.push_back(std::move(target));
    }
  }
  for (const auto& [from, list] : rules.transitions_) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (!rules.transitions_.contains(list[i].to)) {
        return invalid(
            fmt::format("orders.transitions.{}[{}]: '{}' is not a status of the table "
                        "(each status is a member of orders.transitions)",
                        from, i, list[i].to));
      }
    }
  }
  if (const auto* closed = orders->if_contains("closed")) {
    const auto* array = closed->if_array();
    if (array == nullptr) return invalid("orders.closed must be an array of statuses");
    for (std::size_t i = 0; i < array->size(); ++i) {
      const std::string at = fmt::format("orders.closed[{}]", i);
      auto name = status_name((*array)[i], at);
      if (!name) return name.error();
      if (!rules.transitions_.contains(*name)) {
        return invalid(fmt::format("{}: '{}' is not a status of orders.transitions", at, *name));
      }
      rules.closed_.insert(std::move(*name));
    }
  }
  return rules;
}

bool RestaurantRules::knows(std::string_view status) const {
  return transitions_.find(status) != transitions_.end();
}

bool RestaurantRules::closes(std::string_view status) const {
  return closed_.find(status) != closed_.end();
}

RestaurantRules::Move RestaurantRules::move(std::string_view from, std::string_view to,
                                            Role role) const {
  auto it = transitions_.find(from);
  if (it == transitions_.end()) return Move::not_allowed;
  for (const Target& t : it->second) {
    if (t.to != to) continue;
    return t.roles == 0 || (t.roles & bit(role)) != 0 ? Move::allowed : Move::role_required;
  }
  return Move::not_allowed;
}

std::string RestaurantRules::roles_for(std::string_view from, std::string_view to) const {
  std::string out;
  auto it = transitions_.find(from);
  if (it == transitions_.end()) return out;
  for (const Target& t : it->second) {
    if (t.to != to) continue;
    for (const Role role : kRoles) {
      if ((t.roles & bit(role)) == 0) continue;
      if (!out.empty()) out += ", ";
      out += role_name(role);
    }
  }
  return out;
}

}  // namespace possync
