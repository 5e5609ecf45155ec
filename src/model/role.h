// The roles a device can have (from its token, auth/jwt.h): what it may change is decided by
// auth/permissions.h, and some restaurant rules (store/apply.h) depend on it too, so the role
// travels with each change request.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/error.h"

namespace possync {

enum class Role : std::uint8_t { pos, kds, manager, admin };

inline constexpr std::array<Role, 4> kRoles{Role::pos, Role::kds, Role::manager, Role::admin};

// "pos", "kds", "manager", "admin".
std::string_view role_name(Role role);
// The role with that exact (lower-case) name; `invalid_field` otherwise.
Result<Role> parse_role(std::string_view name);

}  // namespace possync
