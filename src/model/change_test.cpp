#include "model/change.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace possync {
namespace {

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(c)) return false;
  }
  return true;
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_lower_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f');
}

// "srv-<ms>-<16 lowercase hex digits>"
bool is_server_change_id(std::string_view id) {
  if (!id.starts_with("srv-")) return false;
  id.remove_prefix(4);
  const auto dash = id.find('-');
  if (dash == std::string_view::npos) return false;
  return all_of(id.substr(0, dash), is_digit) && id.size() - dash - 1 == 16 &&
         all_of(id.substr(dash + 1), is_lower_hex);
}

struct Expected {
  DataType type;
  const char* name;
  const char* typed_update;
  const char* id_field;
};

// The table of the legacy protocol ("Typed updates, one per data type").
constexpr Expected kExpected[] = {
    {DataType::orders, "orders", "order_update", "order_id"},
    {DataType::menu_items, "menu_items", "menu_update", "item_id"},
    {DataType::inventory, "inventory", "inventory_update", "item_id"},
    {DataType::tables, "tables", "table_update", "table_id"},
    {DataType::users, "users", "user_update", "user_id"},
    {DataType::printers, "printers", "printer_update", "printer_id"},
};

TEST(DataTypes, TableMatchesTheProtocol) {
  ASSERT_EQ(kDataTypes.size(), std::size(kExpected));
  for (const auto& e : kExpected) {
    const DataTypeInfo& d = info(e.type);
    EXPECT_EQ(d.type, e.type) << e.name;
    EXPECT_EQ(d.name, e.name);
    EXPECT_EQ(d.typed_update, e.typed_update) << e.name;
    EXPECT_EQ(d.id_field, e.id_field) << e.name;
  }
}

TEST(DataTypes, TableIsIndexedByEnumValue) {
  for (std::size_t i = 0; i < kDataTypes.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(kDataTypes[i].type), i);
    EXPECT_EQ(&info(kDataTypes[i].type), &kDataTypes[i]);
  }
}

TEST(DataTypes, LookupByName) {
  for (const auto& e : kExpected) {
    const DataTypeInfo* d = data_type_by_name(e.name);
    ASSERT_NE(d, nullptr) << e.name;
    EXPECT_EQ(d->type, e.type) << e.name;
  }
}

TEST(DataTypes, LookupByNameRejectsUnknownAndNearMisses) {
  for (const char* name : {"", "order", "Orders", "ORDERS", "orders ", "menu", "order_update",
                           "user", "data_change"}) {
    EXPECT_EQ(data_type_by_name(name), nullptr) << '"' << name << '"';
  }
}

TEST(DataTypes, LookupByTypedUpdate) {
  for (const auto& e : kExpected) {
    const DataTypeInfo* d = data_type_by_typed_update(e.typed_update);
    ASSERT_NE(d, nullptr) << e.typed_update;
    EXPECT_EQ(d->type, e.type) << e.typed_update;
  }
}

TEST(DataTypes, LookupByTypedUpdateRejectsOtherMessageTypes) {
  for (const char* type : {"", "orders", "data_change", "register", "heartbeat", "user_changed",
                           "Order_update", "order_updates", "menu_items_update", "item_update"}) {
    EXPECT_EQ(data_type_by_typed_update(type), nullptr) << '"' << type << '"';
  }
}

TEST(IsDeletion, DeletionActions) {
  EXPECT_TRUE(is_deletion("deleted"));
  EXPECT_TRUE(is_deletion("removed"));
  EXPECT_TRUE(is_deletion("item_removed"));
}

TEST(IsDeletion, EveryOtherActionMerges) {
  for (const char* action : {"created",
                             "updated",
                             "status_changed",
                             "completed",
                             "availability_changed",
                             "stock_changed",
                             "item_added",
                             "low_stock_alert",
                             "occupied",
                             "available",
                             "reserved",
                             "cleaning",
                             "role_changed",
                             "added",
                             "configured",
                             "assignment_changed",
                             "upsert",
                             "",
                             "Deleted",
                             "DELETED",
                             "delete",
                             "remove",
                             "deleted ",
                             "item_removed_x"}) {
    EXPECT_FALSE(is_deletion(action)) << '"' << action << '"';
  }
}

TEST(OutcomeStatusNames, ToString) {
  EXPECT_EQ(to_string(OutcomeStatus::applied), "applied");
  EXPECT_EQ(to_string(OutcomeStatus::duplicate), "duplicate");
  EXPECT_EQ(to_string(OutcomeStatus::rejected), "rejected");
}

TEST(OutcomeDefaults, DefaultOutcomeIsRejected) {
  const Outcome o;
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_EQ(o.seq, 0u);
  EXPECT_EQ(o.entry, nullptr);
}

TEST(NewChangeId, HasDocumentedShape) {
  const std::string id = new_change_id();
  EXPECT_TRUE(is_server_change_id(id)) << id;
  EXPECT_FALSE(is_server_change_id("srv-12-0123456789abcdeF"));  // the checker itself
  EXPECT_FALSE(is_server_change_id("srv--0123456789abcdef"));
}

TEST(NewChangeId, UniqueOverManyCalls) {
  constexpr int kCount = 100000;
  std::set<std::string> seen;
  for (int i = 0; i < kCount; ++i) seen.insert(new_change_id());
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kCount));
}

TEST(NewChangeId, UniqueAcrossThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 5000;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids, t] {
      for (int i = 0; i < kPerThread; ++i) ids[t].push_back(new_change_id());
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> seen;
  for (const auto& v : ids) seen.insert(v.begin(), v.end());
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace possync
