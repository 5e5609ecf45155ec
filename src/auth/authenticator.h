// Authenticator: who is calling, and may they act for the restaurant and device they name.
//
// With `--auth required` (the default) every request except the public health checks carries a
// device token (auth/jwt.h); the token's restaurant and device bound what the caller may read and
// write. A token for another restaurant or device than the request names is refused; only an
// `admin` token (restaurant "*") reaches across restaurants. With `--auth off` every caller is
// anonymous and unrestricted: the legacy open behaviour, for fleets that cannot send tokens yet.
// `--auth mixed` treats tokens exactly as `required`; a request without one is refused here too,
// and the transport then admits it only as an enrolled legacy device (auth/legacy_enrolment.h,
// transport/legacy_devices.h), with a Principal bound to that device like a token's.
//
// A token's role (auth/permissions.h) decides which changes its device may make: permit().
//
// Error codes: unauthorized (no token), token_invalid, token_expired -> HTTP 401; forbidden -> 403.
//
// Thread-safety: immutable after construction; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "auth/permissions.h"
#include "common/error.h"

namespace possync {

enum class AuthMode { required, mixed, off };

// The restaurant claim of an admin token that is not tied to one restaurant.
inline constexpr std::string_view kAnyRestaurant = "*";

struct Principal {
  std::string restaurant_id;
  std::string device_id;
  Role role = Role::admin;
  bool anonymous = false;       // auth off: no token, no restriction
  std::int64_t expires_at = 0;  // seconds since the epoch; 0: no token (auth off, legacy)
  // --auth mixed: admitted without a token as an enrolled legacy device, from `address` (the
  // client address it called from).
  bool legacy = false;
  std::string address;

  bool admin() const { return role == Role::admin; }
};

class Authenticator {
 public:
  Authenticator(AuthMode mode, std::vector<JwtKey> keys,
                PermissionTable permissions = PermissionTable::defaults());

  // The caller behind `token` (empty: the request carried none) at `now_s`.
  Result<Principal> authenticate(std::string_view token, std::int64_t now_s) const;
  // Nothing if `p` may act for `restaurant` as `device` (empty `device`: as any device of it,
  // e.g. to read its data); otherwise a `forbidden` Error saying why.
  std::optional<Error> authorize(const Principal& p, std::string_view restaurant,
                                 std::string_view device) const;
  // Nothing if `p` may use the cross-restaurant (operator) surface.
  std::optional<Error> require_admin(const Principal& p) const;
  // Nothing if `p`'s role may make `change` (always, with auth off); otherwise `forbidden`.
  std::optional<Error> permit(const Principal& p, const Change& change) const;

  AuthMode mode() const { return mode_; }

  // Whether an Error from this class means 401 (not authenticated) rather than 403.
  static bool is_unauthenticated(const Error& e);

 private:
  AuthMode mode_;
  JwtVerifier verifier_;
  PermissionTable permissions_;
};

}  // namespace possync
