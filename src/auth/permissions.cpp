#include "auth/permissions.h"

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace json = boost::json;

namespace possync {
namespace {

// The default table, in the file format. docs/permissions.default.json has the same meaning (a
// unit test checks that they agree).
constexpr std::string_view kDefaultTable = R"({
  "pos": {
    "orders": {},
    "menu_items": {"deny_fields": ["price"]},
    "inventory": {},
    "tables": {},
    "printers": {}
  },
  "kds": {
    "orders": {"actions": ["updated", "status_changed"],
               "fields": ["status", "id", "updated_at", "version"]},
    "printers": {"actions": ["reprint"]}
  },
  "manager": {
    "orders": {}, "menu_items": {}, "inventory": {}, "tables": {}, "users": {}, "printers": {}
  },
  "admin": {
    "orders": {}, "menu_items": {}, "inventory": {}, "tables": {}, "users": {}, "printers": {}
  }
})";

Error invalid(std::string message) {
  return {errc::kInvalidField, "permissions: " + std::move(message)};
}

std::string join(const PermissionRule::Names& names) {
  return fmt::format("{}", fmt::join(names, ", "));
}

std::string data_type_names() {
  std::string out;
  for (const auto& d : kDataTypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

// A non-empty array of non-empty strings, at `where`.
Result<PermissionRule::Names> parse_names(const json::value& value, const std::string& where) {
  const auto* array = value.if_array();
  if (array == nullptr || array->empty()) {
    return invalid(fmt::format("{} must be a non-empty array of names", where));
  }
  PermissionRule::Names names;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const auto* name = (*array)[i].if_string();
    if (name == nullptr || name->empty()) {
      return invalid(fmt::format("{}[{}] must be a non-empty string", where, i));
    }
    names.emplace(*name);
  }
  return names;
}

Result<PermissionRule> parse_rule(const json::value& value, const std::string& where) {
  const auto* object = value.if_object();
  if (object == nullptr) {
    return invalid(fmt::format("{} must be an object (a rule; {{}} allows everything)", where));
  }
  PermissionRule rule;
  for (const auto& member : *object) {
    const std::string_view key = member.key();
    if (key != "actions" && key != "fields" && key != "deny_fields") {
      return invalid(fmt::format("{}: unknown member '{}' (expected actions, fields, deny_fields)",
                                 where, key));
    }
    auto names = parse_names(member.value(), fmt::format("{}.{}", where, key));
    if (!names) return names.error();
    if (key == "actions") rule.actions = std::move(*names);
    if (key == "fields") rule.fields = std::move(*names);
    if (key == "deny_fields") rule.deny_fields = std::move(*names);
  }
  return rule;
}

std::optional<std::string_view> find_member_below(const json::value& value,
                                                  const PermissionRule::Names& names);

// The first member of `data` at any depth (nested objects, objects in arrays) named in `names`.
std::optional<std::string_view> find_member(const json::object& data,
                                            const PermissionRule::Names& names) {
  for (const auto& member : data) {
    if (names.contains(member.key())) return member.key();
    if (auto found = find_member_below(member.value(), names)) return found;
  }
  return std::nullopt;
}

std::optional<std::string_view> find_member_below(const json::value& value,
                                                  const PermissionRule::Names& names) {
  if (const auto* object = value.if_object()) return find_member(*object, names);
  if (const auto* array = value.if_array()) {
    for (const auto& element : *array) {
      if (auto found = find_member_below(element, names)) return found;
    }
  }
  return std::nullopt;
}

Decision forbid(std::string reason) {
  return {false, std::move(reason)};
}

}  // namespace

PermissionTable PermissionTable::defaults() {
  return parse(kDefaultTable).value();
}

Result<PermissionTable> PermissionTable::parse(std::string_view json_text) {
  boost::system::error_code ec;
  const json::value root = json::parse(json_text, ec);
  if (ec) return Error{errc::kInvalidJson, "permissions: not valid JSON: " + ec.message()};
  const auto* roles = root.if_object();
  if (roles == nullptr) return invalid("the table must be a JSON object with one member per role");

  PermissionTable table;
  std::array<bool, kRoles.size()> seen{};
  for (const auto& role_member : *roles) {
    const std::string_view role_key = role_member.key();
    auto role = parse_role(role_key);
    if (!role) return invalid(role.error().message);
    seen[static_cast<std::size_t>(*role)] = true;
    const auto* types = role_member.value().if_object();
    if (types == nullptr) {
      return invalid(
          fmt::format("{} must be an object of data types ({{}} allows nothing)", role_key));
    }
    for (const auto& type_member : *types) {
      const std::string_view type_key = type_member.key();
      const auto* type = data_type_by_name(type_key);
      if (type == nullptr) {
        return invalid(fmt::format("{}: unknown data type '{}': expected one of {}", role_key,
                                   type_key, data_type_names()));
      }
      auto rule = parse_rule(type_member.value(), fmt::format("{}.{}", role_key, type_key));
      if (!rule) return rule.error();
      table.rules_[static_cast<std::size_t>(*role)][static_cast<std::size_t>(type->type)] =
          std::move(*rule);
    }
  }
  for (const Role role : kRoles) {
    if (!seen[static_cast<std::size_t>(role)]) {
      return invalid(fmt::format("role '{}' is missing ({{}} allows it nothing)", role_name(role)));
    }
  }
  return table;
}

const PermissionRule* PermissionTable::rule(Role role, DataType type) const {
  const auto& rule = rules_[static_cast<std::size_t>(role)][static_cast<std::size_t>(type)];
  return rule ? &*rule : nullptr;
}

Decision PermissionTable::check(Role role, const Change& change) const {
  const std::string_view type = info(change.data_type).name;
  const PermissionRule* r = rule(role, change.data_type);
  if (r == nullptr) {
    return forbid(fmt::format("role '{}' may not change {}", role_name(role), type));
  }
  if (r->actions && !r->actions->contains(change.action)) {
    return forbid(fmt::format("role '{}' may not do '{}' on {} (allowed actions: {})",
                              role_name(role), change.action, type, join(*r->actions)));
  }
  if (is_deletion(change.action)) return {true, {}};
  if (r->fields) {
    for (const auto& member : change.data) {
      if (!r->fields->contains(member.key())) {
        return forbid(fmt::format("role '{}' may not change '{}' of {} (allowed fields: {})",
                                  role_name(role), member.key(), type, join(*r->fields)));
      }
    }
  }
  if (r->deny_fields.empty()) return {true, {}};
  if (auto denied = find_member(change.data, r->deny_fields)) {
    return forbid(
        fmt::format("role '{}' may not change '{}' of {}", role_name(role), *denied, type));
  }
  return {true, {}};
}

}  // namespace possync
