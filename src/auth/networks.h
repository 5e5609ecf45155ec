// Networks: IPv4 and IPv6 address ranges in CIDR notation ("192.168.1.0/24", "2001:db8::/48", or a
// single address, which is a /32 or /128), and the client addresses checked against them. Used
// by legacy-device enrolments (auth/legacy_enrolment.h): a device without a token is admitted only
// from the networks its enrolment names.
//
// An IPv4 client address also arrives as an IPv4-mapped IPv6 address (::ffff:192.0.2.7) from a
// dual-stack socket; parse_client_address() turns it into the IPv4 address, and a network written
// as ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n, so both forms match each other.
//
// Thread-safety: plain values.
#pragma once

#include <array>
#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace possync {

class Network {
 public:
  // "ADDRESS/PREFIX" or a bare ADDRESS. Errors (code invalid_network), each naming `text`: not
  // an address, a prefix that is not a number from 0 to 32 (IPv4) or 128 (IPv6), an IPv6 zone
  // ("%eth0"), host bits set (the message names the network meant, e.g. 10.0.0.0/8 for
  // 10.1.2.3/8).
  static Result<Network> parse(std::string_view text);

  // Whether `address` lies in the network (an IPv4 address never lies in an IPv6 network, nor
  // the other way round; see parse_client_address for mapped addresses).
  bool contains(const boost::asio::ip::address& address) const;

  // The canonical text: "10.0.0.0/8", "2001:db8::/48", "192.0.2.7/32".
  std::string to_string() const;

  bool operator==(const Network&) const = default;

 private:
  std::array<std::uint8_t, 16> bytes_{};  // network address; IPv4 in the first 4 bytes
  bool v6_ = false;
  unsigned prefix_ = 0;
};

// The client address `text` (the peer's, or X-Forwarded-For's with --trust-forwarded-for) as an
// address, an IPv4-mapped IPv6 address as IPv4; nothing if `text` is not an address.
std::optional<boost::asio::ip::address> parse_client_address(std::string_view text);

}  // namespace possync
