#include "auth/authenticator.h"

#include <fmt/format.h>

namespace possync {

Authenticator::Authenticator(AuthMode mode, std::vector<JwtKey> keys, PermissionTable permissions)
    : mode_(mode), verifier_(std::move(keys)), permissions_(std::move(permissions)) {}

Result<Principal> Authenticator::authenticate(std::string_view token, std::int64_t now_s) const {
  if (mode_ == AuthMode::off) {
    Principal anyone;
    anyone.anonymous = true;
    return anyone;
  }
  if (token.empty()) {
    return Error{errc::kUnauthorized,
                 "a device token is required (Authorization: Bearer, ?token= or "
                 "Sec-WebSocket-Protocol bearer.<token>)"};
  }
  auto claims = verifier_.verify(token, now_s);
  if (!claims) return claims.error();
  auto role = parse_role(claims->role);
  if (!role) {
    return Error{auth_errc::kTokenInvalid,
                 fmt::format("unknown role '{}' in the token", claims->role)};
  }
  if (claims->restaurant_id == kAnyRestaurant && *role != Role::admin) {
    return Error{auth_errc::kTokenInvalid, "only admin tokens may name every restaurant ('*')"};
  }
  Principal p;
  p.restaurant_id = std::move(claims->restaurant_id);
  p.device_id = std::move(claims->device_id);
  p.role = *role;
  p.expires_at = claims->expires_at;
  return p;
}

std::optional<Error> Authenticator::authorize(const Principal& p, std::string_view restaurant,
                                              std::string_view device) const {
  if (p.anonymous || p.admin()) return std::nullopt;
  if (p.restaurant_id != restaurant) {
    return Error{errc::kForbidden, "the token is for another restaurant"};
  }
  if (!device.empty() && p.device_id != device) {
    return Error{errc::kForbidden,
                 fmt::format("the token is for device '{}', not '{}'", p.device_id, device)};
  }
  return std::nullopt;
}

std::optional<Error> Authenticator::require_admin(const Principal& p) const {
  if (p.anonymous || p.admin()) return std::nullopt;
  return Error{errc::kForbidden, "an admin token is required"};
}

std::optional<Error> Authenticator::permit(const Principal& p, const Change& change) const {
  if (p.anonymous) return std::nullopt;
  auto decision = permissions_.check(p.role, change);
  if (decision) return std::nullopt;
  return Error{errc::kForbidden, std::move(decision.reason)};
}

bool Authenticator::is_unauthenticated(const Error& e) {
  return e.code == errc::kUnauthorized || e.code == auth_errc::kTokenInvalid ||
         e.code == auth_errc::kTokenExpired;
}

}  // namespace possync
