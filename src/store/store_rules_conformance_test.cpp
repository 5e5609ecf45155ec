// The restaurant rules of apply_batch (store/apply.h, docs/protocol.md "Restaurant rules"), part
// of the Store conformance suite: every case runs against memory, SQLite and PostgreSQL (each
// backend's test file instantiates StoreConformance).
#include "store/memory_store.h"
#include "store/restaurant_rules.h"
#include "store/store_conformance_test.h"

namespace possync::store_test {
namespace {

ChangeRequest change(DataType type, std::string action, std::string change_id,
                     std::string record_id, std::string data, Role role = Role::pos,
                     std::string device = "dev-1") {
  ChangeSpec s;
  s.type = type;
  s.action = std::move(action);
  s.change_id = std::move(change_id);
  s.record_id = std::move(record_id);
  s.data = std::move(data);
  s.device = std::move(device);
  ChangeRequest r = request(s);
  r.role = role;
  return r;
}

ChangeRequest adjust(std::string change_id, double delta, std::string item = "i1") {
  return change(DataType::inventory, "adjust", std::move(change_id), std::move(item),
                json::serialize(json::object{{"delta", delta}, {"reason", "sale"}}));
}
ChangeRequest adjust_int(std::string change_id, std::int64_t delta, std::string item = "i1") {
  return change(DataType::inventory, "adjust", std::move(change_id), std::move(item),
                json::serialize(json::object{{"delta", delta}}));
}
ChangeRequest order(std::string change_id, std::string id, std::string data, Role role = Role::pos,
                    std::string action = "updated") {
  return change(DataType::orders, std::move(action), std::move(change_id), std::move(id),
                std::move(data), role);
}
ChangeRequest line(std::string action, std::string change_id, std::string data,
                   std::string id = "o1") {
  return change(DataType::orders, std::move(action), std::move(change_id), std::move(id),
                std::move(data));
}
ChangeRequest table(std::string change_id, std::string data, std::string action = "occupied",
                    std::string id = "t1") {
  return change(DataType::tables, std::move(action), std::move(change_id), std::move(id),
                std::move(data));
}
ChangeRequest print(std::string action, std::string change_id, std::string ticket,
                    std::string device = "dev-1", std::string printer = "p1") {
  return change(DataType::printers, std::move(action), std::move(change_id), std::move(printer),
                json::serialize(json::object{{"ticket_id", ticket}, {"lines", "2x soup"}}),
                Role::pos, std::move(device));
}

std::vector<std::string> actions_in(const LogPage& page) {
  std::vector<std::string> out;
  for (const auto& e : page.entries) out.push_back(e.change.action);
  return out;
}

using Actions = std::vector<std::string>;

// ---- stock as deltas ----

TEST_P(StoreConformance, AdjustAddsItsDeltaToTheStock) {
  commit_one(change(DataType::inventory, "stock_changed", "s1", "i1",
                    R"({"name":"Soup","current_stock":10,"min_stock":2})"));
  const Outcome o = commit_one(adjust_int("a1", -3));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(o.seq, 2u);
  EXPECT_TRUE(o.follow_ups.empty());
  commit_one(adjust("a2", 0.5));
  commit_one(adjust_int("a3", 4));
  EXPECT_EQ(field(DataType::inventory, "i1", "current_stock"), json::value(11.5));
  EXPECT_EQ(field(DataType::inventory, "i1", "name"), json::value("Soup"));
  EXPECT_EQ(field(DataType::inventory, "i1", "version"), json::value(4));
  // The log entry carries the delta, the reason and the stock it resulted in.
  const LogPage page = log();
  ASSERT_EQ(page.entries.size(), 4u);
  EXPECT_EQ(page.entries[1].change.data, (json::object{{"delta", -3}, {"current_stock", 7}}));
  EXPECT_EQ(page.entries[2].change.data,
            (json::object{{"delta", 0.5}, {"reason", "sale"}, {"current_stock", 7.5}}));
  // A legacy stock_changed still sets the stock.
  commit_one(change(DataType::inventory, "stock_changed", "s2", "i1", R"({"current_stock":3})"));
  commit_one(adjust_int("a4", -1));
  EXPECT_EQ(field(DataType::inventory, "i1", "current_stock"), json::value(2));
}

TEST_P(StoreConformance, AdjustOfANewItemStartsAtZeroAndMayGoNegative) {
  const Outcome o = commit_one(adjust_int("a1", -2, "new"));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(field(DataType::inventory, "new", "current_stock"), json::value(-2));
  // 0 -> -2 crosses zero: one negative_stock alert (no min_stock, so no low_stock_alert).
  ASSERT_EQ(o.follow_ups.size(), 1u);
  EXPECT_EQ(o.follow_ups[0]->change.action, "negative_stock");
}

TEST_P(StoreConformance, ARepeatedAdjustmentCountsOnce) {
  commit_one(adjust_int("a1", 5));
  const auto outcomes = commit({adjust_int("a1", 5), adjust_int("a2", 1), adjust_int("a2", 1)});
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[0].seq, 1u);
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[2].status, OutcomeStatus::duplicate);
  EXPECT_EQ(commit_one(adjust_int("a1", 5)).status, OutcomeStatus::duplicate);
  EXPECT_EQ(field(DataType::inventory, "i1", "current_stock"), json::value(6));
}

TEST_P(StoreConformance, LowStockAlertOncePerCrossing) {
  commit_one(change(DataType::inventory, "item_added", "s1", "i1",
                    R"({"name":"Soup","current_stock":7,"min_stock":5})"));
  EXPECT_TRUE(commit_one(adjust_int("a1", -1)).follow_ups.empty());  // 6
  const Outcome crossing = commit_one(adjust_int("a2", -1));         // 5: at the minimum
  ASSERT_EQ(crossing.follow_ups.size(), 1u);
  const LogEntry& alert = *crossing.follow_ups[0];
  EXPECT_EQ(alert.seq, crossing.seq + 1);
  EXPECT_EQ(alert.change.action, "low_stock_alert");
  EXPECT_EQ(alert.change.change_id, "a2:low_stock_alert");
  EXPECT_EQ(alert.change.device_id, "");
  EXPECT_EQ(alert.change.user_id, "");
  EXPECT_EQ(alert.change.data_type, DataType::inventory);
  EXPECT_EQ(alert.change.record_id, "i1");
  EXPECT_EQ(alert.change.data,
            (json::object{{"name", "Soup"}, {"current_stock", 5}, {"min_stock", 5}}));
  EXPECT_TRUE(commit_one(adjust_int("a3", -1)).follow_ups.empty());  // 4: still below
  EXPECT_TRUE(commit_one(adjust_int("a4", 10)).follow_ups.empty());  // 14: back above
  // Crossing again, inside a batch with other changes: one more alert, seqs stay gapless.
  const auto outcomes = commit({adjust_int("a5", -9), upd("c1", "o1"), adjust_int("a6", -1)});
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].seq, 7u);
  ASSERT_EQ(outcomes[0].follow_ups.size(), 1u);
  EXPECT_EQ(outcomes[0].follow_ups[0]->seq, 8u);
  EXPECT_EQ(outcomes[1].seq, 9u);
  EXPECT_EQ(outcomes[2].seq, 10u);
  EXPECT_TRUE(outcomes[2].follow_ups.empty());
  EXPECT_EQ(head().seq, 10u);
  EXPECT_EQ(actions_in(log()),
            (Actions{"item_added", "adjust", "adjust", "low_stock_alert", "adjust", "adjust",
                     "adjust", "low_stock_alert", "updated", "adjust"}));
  // The alert is a change of its own (its id is taken) but leaves the record as the adjustment
  // made it.
  EXPECT_EQ(field(DataType::inventory, "i1", "current_stock"), json::value(4));
  EXPECT_EQ(field(DataType::inventory, "i1", "version"), json::value(10));
  EXPECT_EQ(commit_one(upd("a2:low_stock_alert", "o9")).status, OutcomeStatus::duplicate);
}

TEST_P(StoreConformance, NegativeStockAlertWhenTheStockGoesBelowZero) {
  commit_one(change(DataType::inventory, "item_added", "s1", "i1",
                    R"({"current_stock":1,"min_stock":0})"));
  const Outcome o = commit_one(adjust_int("a1", -3));
  ASSERT_EQ(o.follow_ups.size(), 2u);  // below the minimum and below zero
  EXPECT_EQ(o.follow_ups[0]->change.action, "low_stock_alert");
  EXPECT_EQ(o.follow_ups[0]->seq, 3u);
  EXPECT_EQ(o.follow_ups[1]->change.action, "negative_stock");
  EXPECT_EQ(o.follow_ups[1]->change.change_id, "a1:negative_stock");
  EXPECT_EQ(o.follow_ups[1]->seq, 4u);
  EXPECT_EQ(o.follow_ups[1]->change.data, (json::object{{"current_stock", -2}}));
  EXPECT_TRUE(commit_one(adjust_int("a2", -1)).follow_ups.empty());  // sales go on below zero
  EXPECT_EQ(field(DataType::inventory, "i1", "current_stock"), json::value(-3));
  EXPECT_EQ(head().seq, 5u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1, 2, 3, 4, 5}));
}

TEST_P(StoreConformance, AnAlertIdADeviceTookAlreadyGetsAnother) {
  commit_one(upd("a1:negative_stock", "o1"));
  const Outcome o = commit_one(adjust_int("a1", -1));
  ASSERT_EQ(o.follow_ups.size(), 1u);
  EXPECT_EQ(o.follow_ups[0]->change.change_id, "a1:negative_stock:3");
  EXPECT_EQ(seqs_of(log()), (Seqs{1, 2, 3}));
}

TEST_P(StoreConformance, MalformedAdjustmentsAreRejected) {
  commit_one(
      change(DataType::inventory, "stock_changed", "s1", "i1", R"({"current_stock":"a few"})"));
  const auto outcomes =
      commit({change(DataType::inventory, "adjust", "a1", "i2", R"({"delta":"1"})"),
              change(DataType::inventory, "adjust", "a2", "i2", R"({"delta":1,"current_stock":4})"),
              adjust_int("a3", 1), adjust_int("a4", 2, "i2")});
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_EQ(outcomes[0].error.code, "invalid_field");
  EXPECT_EQ(outcomes[1].error.code, "invalid_field");
  EXPECT_EQ(outcomes[2].error.code, "invalid_field");  // the stock is not a number
  EXPECT_NE(outcomes[2].error.message.find("current_stock"), std::string::npos);
  EXPECT_EQ(outcomes[3].status, OutcomeStatus::applied);  // the rest of the batch goes on
  EXPECT_EQ(outcomes[3].seq, 2u);
}

// ---- order lines ----

TEST_P(StoreConformance, LinesOfTwoDevicesBothLandInSeqOrder) {
  commit_one(order("c1", "o1", R"({"status":"pending","total_amount":12})"));
  commit({line("line_added", "l1", R"({"line":{"line_id":"a","item":"soup","qty":1}})"),
          line("line_added", "l2", R"({"line":{"line_id":"b","item":"bread","qty":2}})")});
  commit_one(line("line_updated", "l3", R"({"line":{"line_id":"a","qty":3,"note":"hot"}})"));
  // Added again with the same line_id: an update (merge patch on that line).
  commit_one(line("line_added", "l4", R"({"line":{"line_id":"a","note":null}})"));
  commit_one(line("line_added", "l5", R"({"line":{"line_id":"c","item":"tea","x":null}})"));
  commit_one(line("line_removed", "l6", R"({"line_id":"b"})"));
  // Removing a line that is not there is applied and changes nothing.
  EXPECT_EQ(commit_one(line("line_removed", "l7", R"({"line_id":"zzz"})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(field(DataType::orders, "o1", "items"),
            json::parse(R"([{"line_id":"a","item":"soup","qty":3},{"line_id":"c","item":"tea"}])"));
  EXPECT_EQ(field(DataType::orders, "o1", "total_amount"), json::value(12));
  EXPECT_EQ(field(DataType::orders, "o1", "status"), json::value("pending"));
  EXPECT_EQ(field(DataType::orders, "o1", "version"), json::value(8));
}

TEST_P(StoreConformance, LinesOfAnOrderNotYetStoredMakeIt) {
  commit_one(line("line_added", "l1", R"({"line":{"line_id":"a"}})", "new"));
  EXPECT_EQ(field(DataType::orders, "new", "items"), json::parse(R"([{"line_id":"a"}])"));
}

TEST_P(StoreConformance, UpdatingALineTheOrderDoesNotHaveIsRejected) {
  commit_one(order("c1", "o1", R"({"status":"pending"})"));
  commit_one(line("line_added", "l1", R"({"line":{"line_id":"a"}})"));
  commit_one(line("line_removed", "l2", R"({"line_id":"a"})"));
  const json::value before = record(DataType::orders, "o1");
  const Outcome o = commit_one(line("line_updated", "l3", R"({"line":{"line_id":"a","qty":2}})"));
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_EQ(o.error.code, "line_not_found");
  EXPECT_EQ(o.current, before);
  EXPECT_EQ(record(DataType::orders, "o1"), before);
  EXPECT_EQ(head().seq, 3u);
  // An order that does not exist has no lines: current is null.
  const Outcome none = commit_one(line("line_updated", "l4", R"({"line":{"line_id":"a"}})", "x"));
  EXPECT_EQ(none.error.code, "line_not_found");
  EXPECT_TRUE(none.current.is_null());
}

TEST_P(StoreConformance, LinesNeedAnItemsArray) {
  commit_one(order("c1", "o1", R"({"items":"three soups"})"));
  const Outcome o = commit_one(line("line_added", "l1", R"({"line":{"line_id":"a"}})"));
  EXPECT_EQ(o.error.code, "invalid_field");
  // A legacy whole-array upsert still replaces items.
  commit_one(order("c2", "o1", R"({"items":[{"line_id":"z"}]})"));
  EXPECT_EQ(commit_one(line("line_added", "l2", R"({"line":{"line_id":"a"}})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(field(DataType::orders, "o1", "items"),
            json::parse(R"([{"line_id":"z"},{"line_id":"a"}])"));
}

// ---- the order life cycle ----

TEST_P(StoreConformance, OrderStatusMovesForwardSkippingAndOneStepBackBeforeServed) {
  commit_one(order("c1", "o1", R"({"status":"pending"})", Role::pos, "created"));
  for (const char* status : {"preparing", "confirmed", "ready", "preparing", "ready", "served"}) {
    const Outcome o = commit_one(order(std::string("to-") + status + std::to_string(head().seq),
                                       "o1", json::serialize(json::object{{"status", status}}),
                                       Role::pos, "status_changed"));
    EXPECT_EQ(o.status, OutcomeStatus::applied) << status << ": " << o.error.message;
  }
  const json::value before = record(DataType::orders, "o1");
  for (const char* status : {"ready", "pending", "refunded"}) {
    const Outcome o = commit_one(order(std::string("back-") + status, "o1",
                                       json::serialize(json::object{{"status", status}})));
    EXPECT_EQ(o.status, OutcomeStatus::rejected) << status;
    EXPECT_EQ(o.error.code, "invalid_transition") << status;
    EXPECT_NE(o.error.message.find(std::string("from 'served' to '") + status), std::string::npos)
        << o.error.message;
    EXPECT_EQ(o.current, before);
  }
  EXPECT_EQ(record(DataType::orders, "o1"), before);
  // The same status again is no move; other fields change as before.
  EXPECT_EQ(commit_one(order("same", "o1", R"({"status":"served","tip":2})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(
      commit_one(order("done", "o1", R"({"status":"completed"})", Role::pos, "completed")).status,
      OutcomeStatus::applied);
}

TEST_P(StoreConformance, AnyOpenOrderMayBeCancelledAndStatusesTheTableDoesNotKnowPass) {
  commit_one(order("c1", "o1", R"({"status":"served"})"));
  EXPECT_EQ(commit_one(order("c2", "o1", R"({"status":"cancelled"})")).status,
            OutcomeStatus::applied);
  commit_one(order("c3", "o2", R"({"status":"pending"})"));
  // Unknown statuses (today's app may send its own) are accepted, from and to.
  EXPECT_EQ(commit_one(order("c4", "o2", R"({"status":"on_hold"})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_one(order("c5", "o2", R"({"status":"served"})")).status, OutcomeStatus::applied);
  EXPECT_EQ(commit_one(order("c6", "o2", R"({"status":"pending"})")).error.code,
            "invalid_transition");
}

TEST_P(StoreConformance, AClosedOrderIsReadOnlyButForManagersAndAdmins) {
  commit_one(order("c1", "o1", R"({"status":"completed","total_amount":10})"));
  const json::value before = record(DataType::orders, "o1");
  const auto refused = commit({order("p1", "o1", R"({"total_amount":0})"),
                               line("line_added", "p2", R"({"line":{"line_id":"a"}})"),
                               order("p3", "o1", "{}", Role::pos, "deleted"),
                               order("p4", "o1", R"({"status":"refunded"})"),
                               order("k1", "o1", R"({"status":"completed","note":"x"})", Role::kds),
                               order("p5", "o1", R"({"status":"pending"})")});
  ASSERT_EQ(refused.size(), 6u);
  EXPECT_EQ(refused[0].error.code, "order_closed");
  EXPECT_NE(refused[0].error.message.find("completed"), std::string::npos);
  EXPECT_EQ(refused[0].current, before);
  EXPECT_EQ(refused[1].error.code, "order_closed");
  EXPECT_EQ(refused[2].error.code, "order_closed");
  // completed -> refunded is in the table, for managers and admins only.
  EXPECT_EQ(refused[3].error.code, "invalid_transition");
  EXPECT_NE(refused[3].error.message.find("manager, admin"), std::string::npos)
      << refused[3].error.message;
  EXPECT_EQ(refused[4].error.code, "order_closed");
  EXPECT_EQ(refused[5].error.code, "invalid_transition");  // no way back from completed
  EXPECT_EQ(record(DataType::orders, "o1"), before);
  EXPECT_EQ(head().seq, 1u);

  EXPECT_EQ(commit_one(order("m1", "o1", R"({"note":"comped"})", Role::manager)).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_one(order("m2", "o1", R"({"status":"pending"})", Role::manager)).error.code,
            "invalid_transition");
  EXPECT_EQ(commit_one(order("a1", "o1", R"({"status":"refunded"})", Role::admin)).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_one(order("p6", "o1", R"({"note":"x"})")).error.code, "order_closed");
  EXPECT_EQ(field(DataType::orders, "o1", "status"), json::value("refunded"));
}

TEST_P(StoreConformance, ARejectedMoveDoesNotBlockTheChangesAfterIt) {
  commit_one(order("c1", "o1", R"({"status":"served"})"));
  const auto outcomes = commit({order("c2", "o1", R"({"status":"pending"})"),
                                order("c3", "o1", R"({"status":"completed"})")});
  EXPECT_EQ(outcomes[0].error.code, "invalid_transition");
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[1].seq, 2u);
}

TEST_P(StoreConformance, TheLifeCycleComesFromTheRules) {
  auto rules = RestaurantRules::parse(R"({"orders": {
    "closed": ["paid"],
    "transitions": {"open": ["paid"], "paid": [{"to": "open", "roles": ["kds"]}]}}})");
  ASSERT_TRUE(rules.has_value()) << rules.error().message;
  auto commit_with_rules = [&](ChangeRequest r) {
    std::vector<ChangeRequest> batch{std::move(r)};
    auto result = store_->commit(batch, CommitOptions{kNow, 0, &*rules});
    EXPECT_TRUE(result.has_value());
    wait_durable(*store_);
    return result ? result->front() : Outcome{};
  };
  commit_with_rules(order("c1", "o1", R"({"status":"open"})"));
  // pending/completed are unknown to these rules: not checked.
  EXPECT_EQ(commit_with_rules(order("c2", "o2", R"({"status":"completed"})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_with_rules(order("c3", "o2", R"({"total_amount":1})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_with_rules(order("c4", "o1", R"({"status":"paid"})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_with_rules(order("c5", "o1", R"({"n":1})")).error.code, "order_closed");
  EXPECT_EQ(commit_with_rules(order("c6", "o1", R"({"status":"open"})")).error.code,
            "invalid_transition");
  EXPECT_EQ(commit_with_rules(order("c7", "o1", R"({"status":"open"})", Role::kds)).status,
            OutcomeStatus::applied);
}

// ---- one party per table ----

TEST_P(StoreConformance, ATableHeldByAnOpenOrderRefusesAnotherParty) {
  commit(
      {order("c1", "o1", R"({"status":"pending"})"), order("c2", "o2", R"({"status":"pending"})")});
  commit_one(table("t-1", R"({"status":"occupied","order_id":"o1"})"));
  const json::value before = record(DataType::tables, "t1");
  const Outcome o = commit_one(table("t-2", R"({"status":"occupied","order_id":"o2"})"));
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_EQ(o.error.code, "table_occupied");
  EXPECT_NE(o.error.message.find("'o1'"), std::string::npos) << o.error.message;
  EXPECT_EQ(o.current, before);
  // Given an order_id by any action, too.
  EXPECT_EQ(commit_one(table("t-3", R"({"order_id":"o2"})", "updated")).error.code,
            "table_occupied");
  // The same order re-seating, or a change naming no party, is fine.
  EXPECT_EQ(commit_one(table("t-4", R"({"status":"occupied","order_id":"o1","guests":4})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(commit_one(table("t-5", R"({"status":"occupied"})")).status, OutcomeStatus::applied);
  // Closing the order frees the table.
  commit_one(order("c3", "o1", R"({"status":"completed"})"));
  EXPECT_EQ(commit_one(table("t-6", R"({"status":"occupied","order_id":"o2"})")).status,
            OutcomeStatus::applied);
  EXPECT_EQ(field(DataType::tables, "t1", "order_id"), json::value("o2"));
}

TEST_P(StoreConformance, AnAvailableTableOrAGoneOrderHoldsNothing) {
  commit({order("c1", "o1", R"({"status":"pending"})"),
          order("c2", "o2", R"({"status":"pending"})"),
          order("c3", "o3", R"({"status":"pending"})")});
  commit_one(table("t-1", R"({"status":"occupied","order_id":"o1"})"));
  commit_one(table("t-2", R"({"status":"available"})", "available"));
  EXPECT_EQ(commit_one(table("t-3", R"({"status":"occupied","order_id":"o2"})")).status,
            OutcomeStatus::applied);
  commit_one(order("d2", "o2", "{}", Role::pos, "deleted"));
  EXPECT_EQ(commit_one(table("t-4", R"({"status":"occupied","order_id":"o3"})")).status,
            OutcomeStatus::applied);
}

TEST_P(StoreConformance, TwoPartiesSeatedInOneBatchGetOneTable) {
  commit(
      {order("c1", "o1", R"({"status":"pending"})"), order("c2", "o2", R"({"status":"pending"})")});
  const auto outcomes = commit({table("t-1", R"({"status":"occupied","order_id":"o1"})"),
                                table("t-2", R"({"status":"occupied","order_id":"o2"})")});
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[1].error.code, "table_occupied");
}

// ---- a kitchen ticket prints once ----

TEST_P(StoreConformance, APrintJobIsCommittedOncePerTicket) {
  const Outcome first = commit_one(print("print_job", "j1", "T-17"));
  EXPECT_EQ(first.status, OutcomeStatus::applied);
  // Another device, another change id, the same ticket: duplicate with the original seq.
  const Outcome again = commit_one(print("print_job", "j2", "T-17", "dev-2"));
  EXPECT_EQ(again.status, OutcomeStatus::duplicate);
  EXPECT_EQ(again.change_id, "j2");
  EXPECT_EQ(again.seq, first.seq);
  EXPECT_EQ(commit_one(print("print_job", "j2", "T-17", "dev-2")).seq, first.seq);
  // Also to another printer, and within one batch.
  const auto outcomes =
      commit({print("print_job", "j3", "T-17", "dev-1", "p2"), print("print_job", "j4", "T-18"),
              print("print_job", "j5", "T-18", "dev-3")});
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[0].seq, first.seq);
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[2].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[2].seq, outcomes[1].seq);
  // A reprint is explicit: always committed, counted in the printer's record.
  EXPECT_EQ(commit_one(print("reprint", "r1", "T-17")).status, OutcomeStatus::applied);
  EXPECT_EQ(commit_one(print("reprint", "r2", "T-17", "dev-2")).status, OutcomeStatus::applied);
  EXPECT_EQ(commit_one(print("reprint", "r2", "T-17", "dev-2")).status,
            OutcomeStatus::duplicate);  // the same change id, though, once
  EXPECT_EQ(field(DataType::printers, "p1", "print_jobs"), json::value(2));
  EXPECT_EQ(field(DataType::printers, "p1", "reprints"), json::value(2));
  EXPECT_TRUE(field(DataType::printers, "p1", "ticket_id").is_null());
  EXPECT_EQ(actions_in(log()), (Actions{"print_job", "print_job", "reprint", "reprint"}));
  // The log carries the ticket for the printers.
  EXPECT_EQ(log().entries[0].change.data.at("ticket_id"), json::value("T-17"));
}

TEST_P(StoreConformance, TicketsArePerRestaurant) {
  ChangeRequest other = print("print_job", "j1", "T-1");
  other.change.restaurant_id = "r2";
  commit_one(print("print_job", "j1", "T-1"));
  EXPECT_EQ(commit_one(std::move(other)).status, OutcomeStatus::applied);
}

// ---- replaying the log (verifying a store) ----

TEST_P(StoreConformance, ReplayingTheLogGivesTheSameRecords) {
  commit({change(DataType::inventory, "item_added", "s1", "i1",
                 R"({"name":"Soup","current_stock":3,"min_stock":2})"),
          adjust_int("a1", -2), adjust("a2", -1.5), adjust_int("a3", 4),
          order("c1", "o1", R"({"status":"pending"})"),
          line("line_added", "l1", R"({"line":{"line_id":"a","qty":1}})"),
          line("line_updated", "l2", R"({"line":{"line_id":"a","qty":2}})"),
          order("c2", "o1", R"({"status":"completed"})"),
          order("m1", "o1", R"({"note":"comped"})", Role::manager),
          order("m2", "o1", R"({"status":"refunded"})", Role::admin),
          table("t-1", R"({"status":"occupied","order_id":"o1"})"), print("print_job", "j1", "T-1"),
          print("reprint", "r1", "T-1")});
  const LogPage page = log();
  auto replayed = make_memory_store();
  for (const LogEntry& entry : page.entries) {
    ChangeRequest r;
    r.change = entry.change;  // role pos: a replay is refused nothing
    auto outcomes = replayed->commit(
        std::span(&r, 1), {.now_ms = entry.committed_at_ms, .retain_changes = 1, .replay = true});
    ASSERT_TRUE(outcomes.has_value());
    ASSERT_EQ(outcomes->front().status, OutcomeStatus::applied)
        << entry.seq << ": " << outcomes->front().error.message;
    EXPECT_EQ(outcomes->front().seq, entry.seq);
    EXPECT_TRUE(outcomes->front().follow_ups.empty());
  }
  const Snapshot original = snap();
  auto again = replayed->snapshot("r1");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->head.seq, original.head.seq);
  for (std::size_t t = 0; t < kDataTypes.size(); ++t) {
    EXPECT_EQ(again->records[t], original.records[t]) << kDataTypes[t].name;
  }
}

}  // namespace
}  // namespace possync::store_test
