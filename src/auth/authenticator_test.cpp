#include "auth/authenticator.h"

#include <gtest/gtest.h>

namespace possync {
namespace {

const JwtKey kKey{"k1", std::string(32, 'a')};
constexpr std::int64_t kNow = 1'800'000'000;

std::string token(std::string restaurant, std::string device, std::string role,
                  std::int64_t exp = kNow + 60) {
  return issue_token(kKey,
                     {std::move(restaurant), std::move(device), std::move(role), kNow, exp, "jti"});
}

TEST(Authenticator, RequiredModeNeedsAValidToken) {
  const Authenticator auth(AuthMode::required, {kKey});
  auto none = auth.authenticate("", kNow);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, errc::kUnauthorized);
  EXPECT_TRUE(Authenticator::is_unauthenticated(none.error()));

  auto expired = auth.authenticate(token("r1", "d1", "pos", kNow - 1), kNow);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code, auth_errc::kTokenExpired);
  EXPECT_TRUE(Authenticator::is_unauthenticated(expired.error()));

  auto good = auth.authenticate(token("r1", "d1", "pos"), kNow);
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(good->restaurant_id, "r1");
  EXPECT_EQ(good->device_id, "d1");
  EXPECT_EQ(good->role, Role::pos);
  EXPECT_EQ(good->expires_at, kNow + 60);
  EXPECT_FALSE(good->anonymous);
}

TEST(Authenticator, UnknownRoleIsAnInvalidToken) {
  const Authenticator auth(AuthMode::required, {kKey});
  auto chef = auth.authenticate(token("r1", "d1", "chef"), kNow);
  ASSERT_FALSE(chef);
  EXPECT_EQ(chef.error().code, auth_errc::kTokenInvalid);
}

TEST(Authenticator, PermitAppliesTheRolesTable) {
  const Authenticator auth(AuthMode::required, {kKey});
  Change user_change;
  user_change.data_type = DataType::users;
  user_change.action = "updated";
  user_change.record_id = "u1";
  const auto pos = *auth.authenticate(token("r1", "d1", "pos"), kNow);
  auto refused = auth.permit(pos, user_change);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, errc::kForbidden);
  EXPECT_FALSE(refused->message.empty());
  const auto manager = *auth.authenticate(token("r1", "d1", "manager"), kNow);
  EXPECT_FALSE(auth.permit(manager, user_change));
  const Authenticator open(AuthMode::off, {});
  EXPECT_FALSE(open.permit(*open.authenticate("", kNow), user_change));
}

TEST(Authenticator, OnlyAdminTokensMayNameEveryRestaurant) {
  const Authenticator auth(AuthMode::required, {kKey});
  auto pos = auth.authenticate(token("*", "d1", "pos"), kNow);
  ASSERT_FALSE(pos);
  EXPECT_EQ(pos.error().code, auth_errc::kTokenInvalid);
  EXPECT_TRUE(auth.authenticate(token("*", "ops", "admin"), kNow));
}

TEST(Authenticator, AuthorizeBindsRestaurantAndDevice) {
  const Authenticator auth(AuthMode::required, {kKey});
  const auto p = *auth.authenticate(token("r1", "d1", "pos"), kNow);
  EXPECT_FALSE(auth.authorize(p, "r1", "d1"));
  EXPECT_FALSE(auth.authorize(p, "r1", ""));  // any device of its own restaurant: reads
  auto other_restaurant = auth.authorize(p, "r2", "d1");
  ASSERT_TRUE(other_restaurant);
  EXPECT_EQ(other_restaurant->code, errc::kForbidden);
  EXPECT_FALSE(Authenticator::is_unauthenticated(*other_restaurant));
  auto other_device = auth.authorize(p, "r1", "d2");
  ASSERT_TRUE(other_device);
  EXPECT_EQ(other_device->code, errc::kForbidden);
  auto not_admin = auth.require_admin(p);
  ASSERT_TRUE(not_admin);
  EXPECT_EQ(not_admin->code, errc::kForbidden);

  const auto admin = *auth.authenticate(token("*", "ops", "admin"), kNow);
  EXPECT_FALSE(auth.authorize(admin, "r2", "any-device"));
  EXPECT_FALSE(auth.require_admin(admin));
}

TEST(Authenticator, OffModeIsAnonymousAndUnrestricted) {
  const Authenticator auth(AuthMode::off, {});
  auto p = auth.authenticate("", kNow);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->anonymous);
  EXPECT_EQ(p->expires_at, 0);
  EXPECT_FALSE(auth.authorize(*p, "r9", "d9"));
  EXPECT_FALSE(auth.require_admin(*p));
}

}  // namespace
}  // namespace possync
