#include "auth/networks.h"

#include <gtest/gtest.h>

namespace possync {
namespace {

Network net(std::string_view text) {
  auto n = Network::parse(text);
  EXPECT_TRUE(n.has_value()) << text << ": " << (n ? "" : n.error().message);
  return n ? *n : Network{};
}

bool in(std::string_view network, std::string_view address) {
  auto a = parse_client_address(address);
  EXPECT_TRUE(a.has_value()) << address;
  return a && net(network).contains(*a);
}

TEST(Networks, Ipv4RangesMatchTheirAddressesOnly) {
  EXPECT_TRUE(in("192.168.1.0/24", "192.168.1.0"));
  EXPECT_TRUE(in("192.168.1.0/24", "192.168.1.255"));
  EXPECT_FALSE(in("192.168.1.0/24", "192.168.2.1"));
  EXPECT_FALSE(in("192.168.1.0/24", "192.168.0.255"));
  // A prefix that is not a multiple of 8.
  EXPECT_TRUE(in("10.0.16.0/20", "10.0.31.255"));
  EXPECT_FALSE(in("10.0.16.0/20", "10.0.32.0"));
  EXPECT_FALSE(in("10.0.16.0/20", "10.0.15.255"));
  EXPECT_TRUE(in("0.0.0.0/0", "203.0.113.9"));
  // A bare address is a /32.
  EXPECT_TRUE(in("203.0.113.9", "203.0.113.9"));
  EXPECT_FALSE(in("203.0.113.9", "203.0.113.8"));
  EXPECT_EQ(net("203.0.113.9").to_string(), "203.0.113.9/32");
}

TEST(Networks, Ipv6RangesMatchTheirAddressesOnly) {
  EXPECT_TRUE(in("2001:db8::/32", "2001:db8:ffff::1"));
  EXPECT_FALSE(in("2001:db8::/32", "2001:db9::1"));
  EXPECT_TRUE(in("2001:db8:0:80::/57", "2001:db8:0:ff::1"));
  EXPECT_FALSE(in("2001:db8:0:80::/57", "2001:db8:0:100::1"));
  EXPECT_TRUE(in("::/0", "fe80::1"));
  EXPECT_TRUE(in("2001:DB8::7", "2001:db8::7"));
  EXPECT_EQ(net("2001:DB8:0:0::/48").to_string(), "2001:db8::/48");
  EXPECT_EQ(net("::1").to_string(), "::1/128");
}

TEST(Networks, FamiliesNeverMixButMappedAddressesAreIpv4) {
  EXPECT_FALSE(in("0.0.0.0/0", "2001:db8::1"));
  EXPECT_FALSE(in("::/0", "192.0.2.1"));
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
  EXPECT_TRUE(in("192.0.2.0/24", "::ffff:192.0.2.77"));
  EXPECT_EQ(parse_client_address("::ffff:192.0.2.77")->to_string(), "192.0.2.77");
  // And a network written that way is the IPv4 network.
  EXPECT_EQ(net("::ffff:192.0.2.0/120").to_string(), "192.0.2.0/24");
  EXPECT_TRUE(in("::ffff:192.0.2.0/120", "192.0.2.5"));
}

TEST(Networks, MalformedNetworksAreRefusedWithTheirText) {
  for (const char* bad : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
                          "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0/8", "example.com/24",
                          "2001:db8::/129", "fe80::1%1/128", "10.0.0.0/08x", " 10.0.0.0/8"}) {
    auto n = Network::parse(bad);
    ASSERT_FALSE(n.has_value()) << bad;
    EXPECT_EQ(n.error().code, "invalid_network") << bad;
    EXPECT_NE(n.error().message.find(std::string("'") + bad + "'"), std::string::npos)
        << n.error().message;
  }
}

TEST(Networks, HostBitsSetNameTheNetworkMeant) {
  auto n = Network::parse("10.1.2.3/8");
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message.find("10.0.0.0/8"), std::string::npos) << n.error().message;
  auto v6 = Network::parse("2001:db8::1/32");
  ASSERT_FALSE(v6.has_value());
  EXPECT_NE(v6.error().message.find("2001:db8::/32"), std::string::npos) << v6.error().message;
}

TEST(Networks, ClientAddressesThatAreNotAddresses) {
  for (const char* bad : {"", "unknown", "10.0.0.1:5000", "10.0.0.1, 10.0.0.2", "[::1]"}) {
    EXPECT_FALSE(parse_client_address(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace possync
