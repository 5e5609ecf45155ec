#include "auth/networks.h"

#include <fmt/format.h>
#include <algorithm>
#include <charconv>

namespace possync {
namespace ip = boost::asio::ip;
namespace {

// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4; any other address as it is.
ip::address unmapped(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  }
  return a;
}

// The address's bytes, IPv4 in the first four.
std::array<std::uint8_t, 16> bytes_of(const ip::address& a) {
  std::array<std::uint8_t, 16> out{};
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.begin());
  } else {
    out = a.to_v6().to_bytes();
  }
  return out;
}

// Whether the first `prefix` bits of `a` and `b` are equal.
bool same_prefix(const std::array<std::uint8_t, 16>& a, const std::array<std::uint8_t, 16>& b,
                 unsigned prefix) {
  const unsigned whole = prefix / 8;
  if (!std::equal(a.begin(), a.begin() + whole, b.begin())) return false;
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

// `bytes` with every bit after the first `prefix` cleared.
std::array<std::uint8_t, 16> masked(std::array<std::uint8_t, 16> bytes, unsigned prefix) {
  for (unsigned i = 0; i < 16; ++i) {
    if (i * 8 >= prefix) {
      bytes[i] = 0;
    } else if (i * 8 + 8 > prefix) {
      bytes[i] &= static_cast<std::uint8_t>(0xFF << (8 - (prefix - i * 8)));
    }
  }
  return bytes;
}

std::string address_text(const std::array<std::uint8_t, 16>& bytes, bool v6) {
  if (v6) return ip::address_v6(bytes).to_string();
  return ip::address_v4({bytes[0], bytes[1], bytes[2], bytes[3]}).to_string();
}

}  // namespace

Result<Network> Network::parse(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return Error{errc::kInvalidNetwork, fmt::format("network '{}' {}", text, why)};
  };
  const auto slash = text.find('/');
  const std::string_view address_part = text.substr(0, slash);
  boost::system::error_code ec;
  const ip::address address = ip::make_address(std::string(address_part), ec);
  if (ec || address_part.empty()) {
    return invalid("is not an IPv4 or IPv6 address or CIDR range (e.g. 192.168.1.0/24)");
  }
  if (address.is_v6() && address.to_v6().scope_id() != 0) {
    return invalid("names an IPv6 zone; write the network without '%'");
  }
  Network n;
  n.v6_ = address.is_v6();
  const unsigned bits = n.v6_ ? 128 : 32;
  n.prefix_ = bits;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || err != std::errc() || end != p.data() + p.size() || prefix > bits) {
      return invalid(fmt::format("has a prefix length that is not a number from 0 to {}", bits));
    }
    n.prefix_ = prefix;
  }
  n.bytes_ = bytes_of(address);
  if (masked(n.bytes_, n.prefix_) != n.bytes_) {
    return invalid(fmt::format("has host bits set; the network is {}/{}",
                               address_text(masked(n.bytes_, n.prefix_), n.v6_), n.prefix_));
  }
  // ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n (client addresses are unmapped the same way).
  if (n.v6_ && n.prefix_ >= 96 && address.to_v6().is_v4_mapped()) {
    Network v4;
    v4.prefix_ = n.prefix_ - 96;
    v4.bytes_ = bytes_of(unmapped(address));
    return v4;
  }
  return n;
}

bool Network::contains(const ip::address& address) const {
  const ip::address a = unmapped(address);
  if (a.is_v6() != v6_) return false;
  return same_prefix(bytes_of(a), bytes_, prefix_);
}

std::string Network::to_string() const {
  return fmt::format("{}/{}", address_text(bytes_, v6_), prefix_);
}

std::optional<ip::address> parse_client_address(std::string_view text) {
  boost::system::error_code ec;
  const ip::address a = ip::make_address(std::string(text), ec);
  if (ec || text.empty()) return std::nullopt;
  return unmapped(a);
}

}  // namespace possync
