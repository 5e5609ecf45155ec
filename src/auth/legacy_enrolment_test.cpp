#include "auth/legacy_enrolment.h"

#include <gtest/gtest.h>

namespace possync {
namespace {

LegacyEnrolment enrolment(std::vector<std::string> networks, std::string_view role = {}) {
  auto e = make_legacy_enrolment(networks, role);
  EXPECT_TRUE(e.has_value()) << (e ? "" : e.error().message);
  return e ? *e : LegacyEnrolment{};
}

TEST(LegacyEnrolment, DefaultsToPosFromAnywhere) {
  auto e = enrolment({});
  EXPECT_EQ(e.role, Role::pos);
  EXPECT_TRUE(e.networks.empty());
  EXPECT_TRUE(network_texts(e).empty());
}

TEST(LegacyEnrolment, TakesRolesButNeverAdmin) {
  EXPECT_EQ(enrolment({}, "kds").role, Role::kds);
  EXPECT_EQ(enrolment({}, "manager").role, Role::manager);
  for (const char* bad : {"admin", "chef", "POS", " pos"}) {
    auto e = make_legacy_enrolment({}, bad);
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_EQ(e.error().code, "invalid_role") << bad;
  }
}

TEST(LegacyEnrolment, NetworksAreValidatedCanonicalAndKeptOnce) {
  auto e = enrolment({"10.0.0.0/8", "2001:DB8::/32", "10.0.0.0/8", "192.0.2.7"});
  EXPECT_EQ(network_texts(e),
            (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"}));
  auto bad = make_legacy_enrolment({"10.0.0.0/8", "10.0.0.0/40"}, "pos");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "invalid_network");
  std::vector<std::string> many(kMaxLegacyNetworks + 1, "10.0.0.0/8");
  auto too_many = make_legacy_enrolment(many, "pos");
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(too_many.error().code, "invalid_field");
}

TEST(LegacyEnrolment, AnEnrolledDeviceIsAdmittedFromItsNetworksOnly) {
  const auto e = enrolment({"192.168.1.0/24", "2001:db8::/32"}, "kds");
  for (const char* from : {"192.168.1.20", "::ffff:192.168.1.20", "2001:db8::5"}) {
    auto d = admit_legacy(&e, "r1", "pos-1", from);
    ASSERT_TRUE(d.principal.has_value()) << from;
    EXPECT_EQ(d.principal->restaurant_id, "r1");
    EXPECT_EQ(d.principal->device_id, "pos-1");
    EXPECT_EQ(d.principal->role, Role::kds);
    EXPECT_TRUE(d.principal->legacy);
    EXPECT_FALSE(d.principal->anonymous);
    EXPECT_FALSE(d.principal->admin());
    EXPECT_EQ(d.principal->expires_at, 0);
    EXPECT_EQ(d.principal->address, from);
  }
  for (const char* from : {"192.168.2.20", "10.0.0.1", "2001:db9::5", "", "not-an-address"}) {
    auto d = admit_legacy(&e, "r1", "pos-1", from);
    EXPECT_FALSE(d.principal.has_value()) << from;
    EXPECT_EQ(d.refusal, LegacyRefusal::network) << from;
  }
}

TEST(LegacyEnrolment, WithoutNetworksFromAnyAddress) {
  const auto e = enrolment({});
  EXPECT_TRUE(admit_legacy(&e, "r1", "pos-1", "203.0.113.1").principal.has_value());
  EXPECT_TRUE(admit_legacy(&e, "r1", "pos-1", "2001:db8::1").principal.has_value());
}

TEST(LegacyEnrolment, AnUnenrolledDeviceIsRefused) {
  auto d = admit_legacy(nullptr, "r1", "pos-1", "192.168.1.20");
  EXPECT_FALSE(d.principal.has_value());
  EXPECT_EQ(d.refusal, LegacyRefusal::not_enrolled);
  // Every refusal looks the same to the caller: a 401 that does not say which it was.
  const Error e = legacy_refused_error();
  EXPECT_EQ(e.code, "unauthorized");
  EXPECT_TRUE(Authenticator::is_unauthenticated(e));
}

TEST(LegacyEnrolment, TheAuthenticatorTreatsTokensInMixedModeAsInRequired) {
  const JwtKey key{"k1", std::string(32, 'a')};
  const Authenticator auth(AuthMode::mixed, {key});
  EXPECT_EQ(auth.mode(), AuthMode::mixed);
  auto none = auth.authenticate("", 1'800'000'000);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.error().code, "unauthorized");
  auto good = auth.authenticate(
      issue_token(key, {"r1", "d1", "pos", 1'800'000'000, 1'800'000'060, "j"}), 1'800'000'000);
  ASSERT_TRUE(good.has_value()) << good.error().message;
  EXPECT_FALSE(good->legacy);
  EXPECT_EQ(good->device_id, "d1");
  EXPECT_TRUE(auth.authenticate("garbage", 1'800'000'000).has_error());
}

}  // namespace
}  // namespace possync
