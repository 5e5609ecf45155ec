#include "model/role.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace possync {
namespace {

constexpr std::array<std::string_view, kRoles.size()> kRoleNames{"pos", "kds", "manager", "admin"};

}  // namespace

std::string_view role_name(Role role) {
  return kRoleNames[static_cast<std::size_t>(role)];
}

Result<Role> parse_role(std::string_view name) {
  for (const Role role : kRoles) {
    if (role_name(role) == name) return role;
  }
  return Error{errc::kInvalidField, fmt::format("unknown role '{}': expected one of {}", name,
                                                fmt::join(kRoleNames, ", "))};
}

}  // namespace possync
