// Legacy-device enrolment (--auth mixed): a device of a restaurant that may call without a token
// (today's AI POS app sends none), from which networks, and with which role.
//
// The decision, admit_legacy(), is a pure function of the enrolment and the client address:
// - no enrolment for (restaurant, device): refused (not_enrolled);
// - the enrolment names networks and the address lies in none of them (or is not an address):
//   refused (network);
// - otherwise a Principal bound to that restaurant and device, with the enrolment's role, marked
//   `legacy`, without expiry.
// A refusal is reported to the client as one 401 whatever its reason, so that an unknown caller
// cannot tell an enrolled device id from an unknown one; the reason is for metrics and logs.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/authenticator.h"
#include "auth/networks.h"
#include "auth/permissions.h"
#include "common/error.h"

namespace possync {

// Most networks one enrolment may name.
inline constexpr std::size_t kMaxLegacyNetworks = 64;

struct LegacyEnrolment {
  std::vector<Network> networks;  // empty: from any address
  Role role = Role::pos;

  // Whether a caller from `address` (nothing: not an address) is within the networks.
  bool admits(const std::optional<boost::asio::ip::address>& address) const;
  bool operator==(const LegacyEnrolment&) const = default;
};

// An enrolment from an operator's request (or from the store): `networks` in CIDR notation (at
// most kMaxLegacyNetworks; duplicates are kept once), `role` "pos", "kds" or "manager" (empty:
// pos). Errors: invalid_network (auth/networks.h), invalid_role (unknown, or "admin": an admin
// must hold a token), invalid_field (too many networks).
Result<LegacyEnrolment> make_legacy_enrolment(const std::vector<std::string>& networks,
                                              std::string_view role);

// The networks' canonical texts, in order.
std::vector<std::string> network_texts(const LegacyEnrolment& enrolment);

enum class LegacyRefusal { not_enrolled, network };

struct LegacyDecision {
  std::optional<Principal> principal;  // set: admitted
  LegacyRefusal refusal = LegacyRefusal::not_enrolled;
};

// The decision for a tokenless caller naming `device` of `restaurant` from `address` (the client
// address as text) under `enrolment` (null: none).
LegacyDecision admit_legacy(const LegacyEnrolment* enrolment, std::string_view restaurant,
                            std::string_view device, std::string_view address);

// The 401 a refused tokenless caller gets (the same for every reason).
Error legacy_refused_error();

}  // namespace possync
