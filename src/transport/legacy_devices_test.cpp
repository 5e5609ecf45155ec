// LegacyDevices against a MemoryStore and a Hub with stand-in connections: admission from the
// replica, refreshes after enrolments change, and which tokenless connections they close.
#include "transport/legacy_devices.h"

#include <gtest/gtest.h>

#include <atomic>

#include "store/memory_store.h"

namespace possync {
namespace {

// A connection as the hub sees it: its status, and whether it was asked to close.
class Connection final : public Subscriber {
 public:
  Connection(std::string device, bool legacy, std::string address = {}, std::string role = {}) {
    status_.device_id = std::move(device);
    status_.legacy = legacy;
    status_.address = std::move(address);
    status_.role = std::move(role);
  }
  void deliver(std::shared_ptr<const DeliveryBatch>) override {}
  DeviceStatus status() const override { return status_; }
  void disconnect(std::uint16_t code, std::string) override { closed_with = code; }
  void notify(std::shared_ptr<const std::string>) override {}

  std::atomic<std::uint16_t> closed_with{0};

 private:
  DeviceStatus status_;
};

class LegacyDevicesTest : public testing::Test {
 protected:
  void SetUp() override {
    auto opened = LegacyDevices::open(*store_, hub_, metrics_);
    ASSERT_TRUE(opened.has_value()) << opened.error().message;
    legacy_ = std::move(*opened);
  }

  void enrol(const std::string& restaurant, const std::string& device,
             std::vector<std::string> networks = {}, std::string role = "pos") {
    ASSERT_TRUE(store_->put_legacy_device({restaurant, device, std::move(networks), role, 1}));
  }
  std::size_t refresh(const std::string& restaurant) {
    auto r = legacy_->refresh(restaurant);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
    return r ? *r : 0;
  }
  std::shared_ptr<Connection> connect(const std::string& restaurant,
                                      std::shared_ptr<Connection> c) {
    hub_.join(restaurant, c);
    return c;
  }

  std::unique_ptr<Store> store_ = make_memory_store();
  Hub hub_{[](const LogEntry&) { return std::string(); }};
  Metrics metrics_;
  std::unique_ptr<LegacyDevices> legacy_;
};

TEST_F(LegacyDevicesTest, AdmitsOnlyWhatTheStoreHeldAtOpenOrSinceARefresh) {
  enrol("r1", "pos-1", {"192.168.1.0/24"});
  // Written after open, not refreshed: not admitted yet.
  EXPECT_FALSE(legacy_->admit({"r1", "pos-1", "192.168.1.5"}).has_value());
  EXPECT_EQ(refresh("r1"), 0u);
  auto p = legacy_->admit({"r1", "pos-1", "192.168.1.5"});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_TRUE(p->legacy);
  EXPECT_EQ(p->role, Role::pos);
  EXPECT_EQ(legacy_->size(), 1u);

  // A second object reads everything at open.
  auto other = LegacyDevices::open(*store_, hub_, metrics_);
  ASSERT_TRUE(other.has_value());
  EXPECT_TRUE((*other)->admit({"r1", "pos-1", "192.168.1.6"}).has_value());
}

TEST_F(LegacyDevicesTest, RefusalsAreCountedByReasonAndLookAlike) {
  enrol("r1", "pos-1", {"192.168.1.0/24"});
  refresh("r1");
  auto outside = legacy_->admit({"r1", "pos-1", "10.0.0.1"});
  auto unknown = legacy_->admit({"r1", "pos-2", "192.168.1.5"});
  auto other_restaurant = legacy_->admit({"r2", "pos-1", "192.168.1.5"});
  ASSERT_FALSE(outside.has_value());
  ASSERT_FALSE(unknown.has_value());
  ASSERT_FALSE(other_restaurant.has_value());
  EXPECT_EQ(outside.error().code, "unauthorized");
  EXPECT_EQ(outside.error().message, unknown.error().message);
  EXPECT_EQ(metrics_.legacy_refused_network.load(), 1u);
  EXPECT_EQ(metrics_.legacy_refused_not_enrolled.load(), 2u);
  EXPECT_TRUE(legacy_->admit({"r1", "pos-1", "192.168.1.9"}).has_value());
  EXPECT_EQ(metrics_.legacy_admitted.load(), 1u);
  const std::string text = metrics_.render({});
  EXPECT_NE(text.find("possync_legacy_refused_total{reason=\"not_enrolled\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("possync_legacy_refused_total{reason=\"network\"} 1"), std::string::npos);
  EXPECT_NE(text.find("possync_legacy_admitted_total 1"), std::string::npos);
}

TEST_F(LegacyDevicesTest, RemovalClosesThatDevicesTokenlessConnectionsOnly) {
  enrol("r1", "pos-1");
  enrol("r1", "pos-2");
  refresh("r1");
  auto tokenless = connect("r1", std::make_shared<Connection>("pos-1", true, "10.0.0.1", "pos"));
  auto with_token = connect("r1", std::make_shared<Connection>("pos-1", false));
  auto neighbour = connect("r1", std::make_shared<Connection>("pos-2", true, "10.0.0.2", "pos"));

  ASSERT_TRUE(store_->remove_legacy_device("r1", "pos-1").value());
  EXPECT_EQ(refresh("r1"), 1u);
  EXPECT_EQ(tokenless->closed_with.load(), 4002);
  EXPECT_EQ(with_token->closed_with.load(), 0);
  EXPECT_EQ(neighbour->closed_with.load(), 0);
  EXPECT_FALSE(legacy_->admit({"r1", "pos-1", "10.0.0.1"}).has_value());

  // The last device of a restaurant removed.
  ASSERT_TRUE(store_->remove_legacy_device("r1", "pos-2").value());
  EXPECT_EQ(refresh("r1"), 2u);  // pos-1's stand-in is still in the hub (it never closes)
  EXPECT_EQ(neighbour->closed_with.load(), 4002);
  EXPECT_EQ(legacy_->size(), 0u);
}

TEST_F(LegacyDevicesTest, NarrowedNetworksOrAnotherRoleCloseWhatNoLongerFits) {
  enrol("r1", "pos-1", {"10.0.0.0/8"});
  refresh("r1");
  auto near = connect("r1", std::make_shared<Connection>("pos-1", true, "10.1.0.1", "pos"));
  auto far = connect("r1", std::make_shared<Connection>("pos-1", true, "10.2.0.1", "pos"));

  enrol("r1", "pos-1", {"10.1.0.0/16"});
  EXPECT_EQ(refresh("r1"), 1u);
  EXPECT_EQ(near->closed_with.load(), 0);
  EXPECT_EQ(far->closed_with.load(), 4002);

  enrol("r1", "pos-1", {"10.1.0.0/16"}, "kds");  // connected as pos: reconnects as kds
  refresh("r1");
  EXPECT_EQ(near->closed_with.load(), 4002);
}

TEST_F(LegacyDevicesTest, RecheckSeesWhatWasInstalledAfterTheAdmission) {
  enrol("r1", "pos-1", {"10.0.0.0/8"});
  refresh("r1");
  auto p = legacy_->admit({"r1", "pos-1", "10.0.0.1"});
  ASSERT_TRUE(p.has_value());
  EXPECT_TRUE(legacy_->recheck(*p));
  enrol("r1", "pos-1", {"10.0.0.0/8"}, "manager");
  refresh("r1");
  EXPECT_FALSE(legacy_->recheck(*p));
  ASSERT_TRUE(store_->remove_legacy_device("r1", "pos-1").value());
  refresh("r1");
  p->role = Role::manager;
  EXPECT_FALSE(legacy_->recheck(*p));
}

TEST_F(LegacyDevicesTest, TokensGoToTheAuthenticatorAndOnlyMixedAdmitsWithoutOne) {
  enrol("r1", "pos-1");
  refresh("r1");
  const JwtKey key{"k1", std::string(32, 'k')};
  const LegacyClaim claim{"r1", "pos-1", "10.0.0.1"};
  const std::int64_t now = 1'800'000'000;
  const std::string token = issue_token(key, {"r1", "pos-9", "kds", now, now + 60, "j"});

  const Authenticator mixed(AuthMode::mixed, {key});
  auto legacy = authenticate_caller(mixed, legacy_.get(), "", claim, now);
  ASSERT_TRUE(legacy.has_value());
  EXPECT_TRUE(legacy->legacy);
  auto with_token = authenticate_caller(mixed, legacy_.get(), token, claim, now);
  ASSERT_TRUE(with_token.has_value());
  EXPECT_FALSE(with_token->legacy);
  EXPECT_EQ(with_token->device_id, "pos-9");  // the token's, not the claim's
  EXPECT_FALSE(authenticate_caller(mixed, legacy_.get(), "bad.token.here", claim, now));

  const Authenticator required(AuthMode::required, {key});
  auto refused = authenticate_caller(required, legacy_.get(), "", claim, now);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, "unauthorized");
}

}  // namespace
}  // namespace possync
