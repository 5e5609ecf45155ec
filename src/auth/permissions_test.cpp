#include "auth/permissions.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace possync {
namespace {

namespace json = boost::json;

Change change(DataType type, std::string action, std::string_view data = "{}") {
  Change c;
  c.restaurant_id = "r1";
  c.device_id = "d1";
  c.change_id = "c1";
  c.data_type = type;
  c.action = std::move(action);
  c.record_id = "x1";
  c.data = json::parse(data).as_object();
  return c;
}

// Every action today's app uses, per data type (docs/protocol.md), plus a made-up one.
std::vector<std::string> actions_of(DataType type) {
  switch (type) {
    case DataType::orders:
      return {"created", "updated", "status_changed", "completed", "other"};
    case DataType::menu_items:
      return {"created", "updated", "deleted", "availability_changed", "other"};
    case DataType::inventory:
      return {"stock_changed", "item_added", "item_removed", "low_stock_alert", "other"};
    case DataType::tables:
      return {"occupied", "available", "reserved", "cleaning", "other"};
    case DataType::users:
      return {"created", "updated", "deleted", "role_changed", "other"};
    case DataType::printers:
      return {"added", "removed", "configured", "assignment_changed", "other"};
  }
  return {};
}

const PermissionTable& defaults() {
  static const PermissionTable table = PermissionTable::defaults();
  return table;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Roles, NamesRoundTripAndOthersAreRejected) {
  for (const Role role : kRoles) {
    auto parsed = parse_role(role_name(role));
    ASSERT_TRUE(parsed) << role_name(role);
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_EQ(role_name(Role::pos), "pos");
  EXPECT_EQ(role_name(Role::kds), "kds");
  EXPECT_EQ(role_name(Role::manager), "manager");
  EXPECT_EQ(role_name(Role::admin), "admin");
  for (const char* bad : {"", "POS", "Manager", "owner", "admin ", "kitchen"}) {
    auto parsed = parse_role(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, errc::kInvalidField);
  }
}

TEST(DefaultPermissions, AdminAndManagerMayDoEverything) {
  for (const Role role : {Role::admin, Role::manager}) {
    for (const auto& d : kDataTypes) {
      for (const auto& action : actions_of(d.type)) {
        for (const char* data : {"{}", R"({"price":12.5,"pin":"1234","role":"admin"})",
                                 R"({"status":"ready","nested":{"price":1}})"}) {
          const Decision decision = defaults().check(role, change(d.type, action, data));
          EXPECT_TRUE(decision) << role_name(role) << " " << d.name << " " << action << " " << data
                                << ": " << decision.reason;
          EXPECT_TRUE(decision.reason.empty());
        }
      }
    }
  }
}

TEST(DefaultPermissions, OnlyManagerAndAdminChangeUsers) {
  for (const Role role : {Role::pos, Role::kds}) {
    for (const auto& action : actions_of(DataType::users)) {
      for (const char* data : {"{}", R"({"name":"Anna"})", R"({"pin":"1234"})"}) {
        const Decision decision = defaults().check(role, change(DataType::users, action, data));
        EXPECT_FALSE(decision) << role_name(role) << " " << action << " " << data;
        EXPECT_EQ(decision.reason,
                  "role '" + std::string(role_name(role)) + "' may not change users");
      }
    }
  }
}

TEST(DefaultPermissions, PosMayDoTheDayToDayWork) {
  for (const DataType type :
       {DataType::orders, DataType::inventory, DataType::tables, DataType::printers}) {
    for (const auto& action : actions_of(type)) {
      // Orders carry line prices: only menu prices are reserved to managers.
      for (const char* data : {"{}", R"({"status":"open","total_amount":25.5})",
                               R"({"items":[{"name":"Pizza","price":9.5}],"price":9.5})"}) {
        const Decision decision = defaults().check(Role::pos, change(type, action, data));
        EXPECT_TRUE(decision) << info(type).name << " " << action << " " << data << ": "
                              << decision.reason;
      }
    }
  }
  for (const auto& action : actions_of(DataType::menu_items)) {
    for (const char* data : {"{}", R"({"name":"Margherita","available":false})",
                             R"({"name":"Margherita","prices_note":"x","id":"m-3"})"}) {
      EXPECT_TRUE(defaults().check(Role::pos, change(DataType::menu_items, action, data)))
          << action << " " << data;
    }
  }
}

TEST(DefaultPermissions, OnlyManagerAndAdminChangeMenuPrices) {
  for (const auto& action : {"created", "updated", "availability_changed", "other"}) {
    for (const char* data : {R"({"price":9})", R"({"name":"Margherita","price":9})",
                             R"({"price":null})", R"({"sizes":{"large":{"price":12}}})",
                             R"({"modifiers":[{"name":"cheese","price":1}]})"}) {
      const Decision pos = defaults().check(Role::pos, change(DataType::menu_items, action, data));
      EXPECT_FALSE(pos) << action << " " << data;
      EXPECT_EQ(pos.reason, "role 'pos' may not change 'price' of menu_items") << data;
      EXPECT_FALSE(defaults().check(Role::kds, change(DataType::menu_items, action, data)));
      EXPECT_TRUE(defaults().check(Role::manager, change(DataType::menu_items, action, data)));
      EXPECT_TRUE(defaults().check(Role::admin, change(DataType::menu_items, action, data)));
    }
  }
  // A deletion's data is not applied, so it changes no price: the action decides.
  EXPECT_TRUE(
      defaults().check(Role::pos, change(DataType::menu_items, "deleted", R"({"price":9})")));
  // Field names are exact: "Price" or "price_note" is not the price.
  EXPECT_TRUE(defaults().check(
      Role::pos, change(DataType::menu_items, "updated", R"({"Price":9,"price_note":"x"})")));
}

TEST(DefaultPermissions, KdsMayOnlyChangeOrderStatus) {
  for (const char* action : {"updated", "status_changed"}) {
    for (const char* data :
         {R"({"status":"ready"})", R"({"status":"preparing","id":"o-1"})",
          R"({"status":"ready","id":"o-1","updated_at":"2025-06-10T14:06:02.113Z","version":3})",
          R"({"status":null})", "{}"}) {
      const Decision decision = defaults().check(Role::kds, change(DataType::orders, action, data));
      EXPECT_TRUE(decision) << action << " " << data << ": " << decision.reason;
    }
    for (const char* data :
         {R"({"status":"ready","total_amount":0})", R"({"items":[]})", R"({"note":null})",
          R"({"status":"ready","order_number":"1001"})", R"({"Status":"ready"})"}) {
      const Decision decision = defaults().check(Role::kds, change(DataType::orders, action, data));
      EXPECT_FALSE(decision) << action << " " << data;
      EXPECT_NE(decision.reason.find("role 'kds' may not change '"), std::string::npos)
          << decision.reason;
      EXPECT_NE(decision.reason.find("allowed fields: id, status, updated_at, version"),
                std::string::npos)
          << decision.reason;
    }
  }
  for (const char* action : {"created", "completed", "deleted", "other"}) {
    const Decision decision =
        defaults().check(Role::kds, change(DataType::orders, action, R"({"status":"ready"})"));
    EXPECT_FALSE(decision) << action;
    EXPECT_EQ(decision.reason, "role 'kds' may not do '" + std::string(action) +
                                   "' on orders (allowed actions: status_changed, updated)");
  }
  for (const auto& d : kDataTypes) {
    if (d.type == DataType::orders) continue;
    for (const auto& action : actions_of(d.type)) {
      const Decision decision = defaults().check(Role::kds, change(d.type, action, "{}"));
      EXPECT_FALSE(decision) << d.name << " " << action;
      if (d.type == DataType::printers) {
        EXPECT_EQ(decision.reason,
                  "role 'kds' may not do '" + action + "' on printers (allowed actions: reprint)");
      } else {
        EXPECT_EQ(decision.reason, "role 'kds' may not change " + std::string(d.name));
      }
    }
  }
}

// Restaurant rules' actions (docs/protocol.md, "Restaurant rules"): who may adjust stock, print a
// ticket, reprint one, edit order lines.
TEST(DefaultPermissions, RuleActions) {
  struct Case {
    DataType type;
    const char* action;
    const char* data;
  };
  const Case adjust{DataType::inventory, "adjust", R"({"delta":-1,"reason":"sale"})"};
  const Case print{DataType::printers, "print_job", R"({"ticket_id":"t-1"})"};
  const Case reprint{DataType::printers, "reprint", R"({"ticket_id":"t-1"})"};
  const Case line{DataType::orders, "line_added", R"({"line":{"line_id":"l-1"}})"};
  for (const Role role : {Role::pos, Role::manager, Role::admin}) {
    for (const Case& c : {adjust, print, reprint, line}) {
      EXPECT_TRUE(defaults().check(role, change(c.type, c.action, c.data)))
          << role_name(role) << " " << c.action;
    }
  }
  EXPECT_TRUE(defaults().check(Role::kds, change(reprint.type, reprint.action, reprint.data)));
  for (const Case& c : {adjust, print, line}) {
    EXPECT_FALSE(defaults().check(Role::kds, change(c.type, c.action, c.data))) << c.action;
  }
}

TEST(DefaultPermissions, DocumentedFileMeansTheSame) {
  const auto path =
      std::filesystem::path(__FILE__).parent_path() / "../../docs" / "permissions.default.json";
  const std::string text = read_file(path);
  ASSERT_FALSE(text.empty()) << "cannot read " << path;
  auto parsed = PermissionTable::parse(text);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_TRUE(*parsed == defaults());
}

TEST(PermissionFile, RulesAreReadAsWritten) {
  auto table = PermissionTable::parse(R"({
    "pos": {"tables": {"actions": ["occupied"]}},
    "kds": {"menu_items": {"actions": ["availability_changed"], "fields": ["available", "id"]},
            "orders": {"deny_fields": ["total_amount", "items"]}},
    "manager": {},
    "admin": {"users": {}}})");
  ASSERT_TRUE(table) << table.error().message;

  const PermissionRule* kds_menu = table->rule(Role::kds, DataType::menu_items);
  ASSERT_NE(kds_menu, nullptr);
  EXPECT_EQ(kds_menu->actions, (PermissionRule::Names{"availability_changed"}));
  EXPECT_EQ(kds_menu->fields, (PermissionRule::Names{"available", "id"}));
  EXPECT_TRUE(kds_menu->deny_fields.empty());
  EXPECT_EQ(table->rule(Role::pos, DataType::orders), nullptr);
  EXPECT_EQ(table->rule(Role::manager, DataType::orders), nullptr);
  EXPECT_NE(table->rule(Role::admin, DataType::users), nullptr);

  EXPECT_TRUE(table->check(Role::pos, change(DataType::tables, "occupied", R"({"guests":4})")));
  EXPECT_FALSE(table->check(Role::pos, change(DataType::tables, "available")));
  EXPECT_FALSE(table->check(Role::pos, change(DataType::orders, "created")));
  EXPECT_TRUE(table->check(
      Role::kds, change(DataType::menu_items, "availability_changed", R"({"available":false})")));
  EXPECT_FALSE(table->check(Role::kds, change(DataType::menu_items, "availability_changed",
                                              R"({"available":false,"price":1})")));
  EXPECT_TRUE(table->check(Role::kds, change(DataType::orders, "created", R"({"status":"x"})")));
  EXPECT_FALSE(
      table->check(Role::kds, change(DataType::orders, "updated", R"({"lines":[{"items":[]}]})")));
  EXPECT_FALSE(table->check(Role::manager, change(DataType::menu_items, "updated")));
  EXPECT_TRUE(table->check(Role::admin, change(DataType::users, "role_changed")));
  EXPECT_FALSE(table->check(Role::admin, change(DataType::orders, "updated")));
}

TEST(PermissionFile, ErrorsSayWhatAndWhere) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[]", "must be a JSON object"},
      {R"({"pos":{},"kds":{},"manager":{}})", "role 'admin' is missing"},
      {R"({"pos":{},"kds":{},"manager":{},"admin":{},"owner":{}})", "unknown role 'owner'"},
      {R"({"pos":[],"kds":{},"manager":{},"admin":{}})", "pos must be an object of data types"},
      {R"({"pos":{"recipes":{}},"kds":{},"manager":{},"admin":{}})",
       "pos: unknown data type 'recipes': expected one of orders, menu_items, inventory, tables, "
       "users, printers"},
      {R"({"pos":{"orders":true},"kds":{},"manager":{},"admin":{}})",
       "pos.orders must be an object"},
      {R"({"pos":{},"kds":{"orders":{"field":["status"]}},"manager":{},"admin":{}})",
       "kds.orders: unknown member 'field' (expected actions, fields, deny_fields)"},
      {R"({"pos":{},"kds":{"orders":{"actions":[]}},"manager":{},"admin":{}})",
       "kds.orders.actions must be a non-empty array"},
      {R"({"pos":{},"kds":{"orders":{"actions":"updated"}},"manager":{},"admin":{}})",
       "kds.orders.actions must be a non-empty array"},
      {R"({"pos":{},"kds":{"orders":{"fields":["status",""]}},"manager":{},"admin":{}})",
       "kds.orders.fields[1] must be a non-empty string"},
      {R"({"pos":{},"kds":{"orders":{"deny_fields":[1]}},"manager":{},"admin":{}})",
       "kds.orders.deny_fields[0] must be a non-empty string"},
  };
  for (const auto& [text, expected] : cases) {
    auto table = PermissionTable::parse(text);
    ASSERT_FALSE(table) << text;
    EXPECT_EQ(table.error().message.rfind("permissions: ", 0), 0u) << table.error().message;
    EXPECT_NE(table.error().message.find(expected), std::string::npos)
        << text << " -> " << table.error().message;
    EXPECT_EQ(table.error().code,
              expected == "not valid JSON" ? errc::kInvalidJson : errc::kInvalidField);
  }
}

TEST(PermissionFile, EmptyRolesAllowNothing) {
  auto table = PermissionTable::parse(R"({"pos":{},"kds":{},"manager":{},"admin":{}})");
  ASSERT_TRUE(table);
  for (const Role role : kRoles) {
    for (const auto& d : kDataTypes) {
      EXPECT_EQ(table->rule(role, d.type), nullptr);
      EXPECT_FALSE(table->check(role, change(d.type, "updated")));
    }
  }
  EXPECT_FALSE(*table == defaults());
}

}  // namespace
}  // namespace possync
