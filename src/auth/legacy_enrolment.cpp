#include "auth/legacy_enrolment.h"

#include <fmt/format.h>
#include <algorithm>

namespace possync {

bool LegacyEnrolment::admits(const std::optional<boost::asio::ip::address>& address) const {
  if (networks.empty()) return true;
  if (!address) return false;
  return std::any_of(networks.begin(), networks.end(),
                     [&](const Network& n) { return n.contains(*address); });
}

Result<LegacyEnrolment> make_legacy_enrolment(const std::vector<std::string>& networks,
                                              std::string_view role) {
  LegacyEnrolment e;
  if (!role.empty()) {
    auto parsed = parse_role(role);
    if (!parsed) {
      return Error{errc::kInvalidRole,
                   fmt::format("unknown role '{}'; a legacy device is pos, kds or manager", role)};
    }
    if (*parsed == Role::admin) {
      return Error{errc::kInvalidRole,
                   "a legacy device cannot be admin: operators use an admin token"};
    }
    e.role = *parsed;
  }
  if (networks.size() > kMaxLegacyNetworks) {
    return Error{errc::kInvalidField,
                 fmt::format("at most {} networks per legacy device", kMaxLegacyNetworks)};
  }
  for (const auto& text : networks) {
    auto n = Network::parse(text);
    if (!n) return n.error();
    if (std::find(e.networks.begin(), e.networks.end(), *n) == e.networks.end()) {
      e.networks.push_back(*n);
    }
  }
  return e;
}

std::vector<std::string> network_texts(const LegacyEnrolment& enrolment) {
  std::vector<std::string> out;
  out.reserve(enrolment.networks.size());
  for (const auto& n : enrolment.networks) out.push_back(n.to_string());
  return out;
}

LegacyDecision admit_legacy(const LegacyEnrolment* enrolment, std::string_view restaurant,
                            std::string_view device, std::string_view address) {
  LegacyDecision d;
  if (enrolment == nullptr) {
    d.refusal = LegacyRefusal::not_enrolled;
    return d;
  }
  if (!enrolment->admits(parse_client_address(address))) {
    d.refusal = LegacyRefusal::network;
    return d;
  }
  Principal p;
  p.restaurant_id = restaurant;
  p.device_id = device;
  p.role = enrolment->role;
  p.legacy = true;
  p.address = address;
  d.principal = std::move(p);
  return d;
}

Error legacy_refused_error() {
  return Error{errc::kUnauthorized,
               "a device token is required (Authorization: Bearer, ?token= or "
               "Sec-WebSocket-Protocol bearer.<token>); without one, only devices enrolled as "
               "legacy devices are admitted, from their enrolled networks"};
}

}  // namespace possync
