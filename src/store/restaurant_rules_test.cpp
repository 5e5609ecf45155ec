#include "store/restaurant_rules.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace possync {
namespace {

using Move = RestaurantRules::Move;

TEST(RestaurantRules, DefaultsAreTheAppsOrderStatuses) {
  const RestaurantRules& r = RestaurantRules::defaults();
  for (const char* s : {"pending", "confirmed", "preparing", "ready", "served", "completed",
                        "cancelled", "refunded"}) {
    EXPECT_TRUE(r.knows(s)) << s;
  }
  EXPECT_FALSE(r.knows("on_hold"));
  EXPECT_TRUE(r.closes("completed"));
  EXPECT_TRUE(r.closes("cancelled"));
  EXPECT_TRUE(r.closes("refunded"));
  EXPECT_FALSE(r.closes("served"));
  // Forward, skipping allowed.
  EXPECT_EQ(r.move("pending", "completed", Role::pos), Move::allowed);
  EXPECT_EQ(r.move("confirmed", "served", Role::kds), Move::allowed);
  // One step back before served, not two, not from served.
  EXPECT_EQ(r.move("ready", "preparing", Role::kds), Move::allowed);
  EXPECT_EQ(r.move("confirmed", "pending", Role::pos), Move::allowed);
  EXPECT_EQ(r.move("ready", "confirmed", Role::pos), Move::not_allowed);
  EXPECT_EQ(r.move("served", "ready", Role::admin), Move::not_allowed);
  // Any open status may be cancelled; closed ones stay closed but for a refund by a manager.
  for (const char* s : {"pending", "confirmed", "preparing", "ready", "served"}) {
    EXPECT_EQ(r.move(s, "cancelled", Role::pos), Move::allowed) << s;
  }
  EXPECT_EQ(r.move("cancelled", "pending", Role::admin), Move::not_allowed);
  EXPECT_EQ(r.move("completed", "refunded", Role::pos), Move::role_required);
  EXPECT_EQ(r.move("completed", "refunded", Role::kds), Move::role_required);
  EXPECT_EQ(r.move("completed", "refunded", Role::manager), Move::allowed);
  EXPECT_EQ(r.move("completed", "refunded", Role::admin), Move::allowed);
  EXPECT_EQ(r.roles_for("completed", "refunded"), "manager, admin");
  EXPECT_EQ(r.move("refunded", "completed", Role::admin), Move::not_allowed);
}

TEST(RestaurantRules, DocumentedFileMeansTheSame) {
  const auto path = std::filesystem::path(__FILE__).parent_path() / "../../docs/rules.default.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = RestaurantRules::parse(text.str());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_TRUE(*parsed == RestaurantRules::defaults());
}

TEST(RestaurantRules, ErrorsNameWhereTheyAre) {
  const std::pair<const char*, const char*> cases[] = {
      {"[]", "the rules must be a JSON object"},
      {R"({"tables":{}})", "the top level: unknown member 'tables'"},
      {"{}", "'orders' is missing"},
      {R"({"orders":{"closed":[]}})", "orders.transitions must be an object"},
      {R"({"orders":{"transitions":{"a":"b"}}})", "orders.transitions.a must be an array"},
      {R"({"orders":{"transitions":{"a":["b"]}}})",
       "orders.transitions.a[0]: 'b' is not a status of the table"},
      {R"({"orders":{"transitions":{"a":[""]}}})",
       "orders.transitions.a[0] must be a non-empty string"},
      {R"({"orders":{"transitions":{"a":["a"]}}})",
       "orders.transitions.a[0]: a status cannot move to itself"},
      {R"({"orders":{"transitions":{"a":[],"b":[{"to":"a","roles":["owner"]}]}}})",
       "orders.transitions.b[0].roles[0]: unknown role 'owner'"},
      {R"({"orders":{"transitions":{"a":[],"b":[{"to":"a","roles":[]}]}}})",
       "orders.transitions.b[0].roles must be a non-empty array"},
      {R"({"orders":{"transitions":{"a":[],"b":[{"roles":["pos"]}]}}})",
       "orders.transitions.b[0].to is missing"},
      {R"({"orders":{"transitions":{"a":[],"b":[{"to":"a","when":1}]}}})",
       "orders.transitions.b[0]: unknown member 'when'"},
      {R"({"orders":{"transitions":{"a":[7]}}})", "orders.transitions.a[0] must be a status or"},
      {R"({"orders":{"transitions":{"a":[]},"closed":["b"]}})",
       "orders.closed[0]: 'b' is not a status of orders.transitions"},
      {R"({"orders":{"transitions":{"a":[]},"closed":"a"}})", "orders.closed must be an array"},
      {R"({"orders":{"transitions":{},"other":1}})", "orders: unknown member 'other'"},
  };
  for (const auto& [text, expected] : cases) {
    auto parsed = RestaurantRules::parse(text);
    ASSERT_FALSE(parsed.has_value()) << text;
    EXPECT_EQ(parsed.error().code, "invalid_field") << text;
    EXPECT_EQ(parsed.error().message.rfind("rules: ", 0), 0u) << parsed.error().message;
    EXPECT_NE(parsed.error().message.find(expected), std::string::npos)
        << text << " -> " << parsed.error().message;
  }
  auto broken = RestaurantRules::parse("{");
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().code, "invalid_json");
}

TEST(RestaurantRules, AnEmptyTableChecksNothing) {
  auto parsed = RestaurantRules::parse(R"({"orders":{"transitions":{}}})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_FALSE(parsed->knows("pending"));
  EXPECT_FALSE(parsed->closes("completed"));
}

}  // namespace
}  // namespace possync
