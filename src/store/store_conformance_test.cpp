// One conformance suite for the Store contract (store/store.h), run against every implementation:
// the cases are here, the fixture in store_conformance_test.h, and each backend's test file
// instantiates them (sqlite_store_test.cpp: memory and SQLite; postgres_store_test.cpp).
#include <atomic>
#include <limits>
#include <thread>

#include "store/store_conformance_test.h"

namespace possync::store_test {
namespace {

// ---- seqs ----

TEST_P(StoreConformance, UnknownRestaurantIsEmpty) {
  const LogHead h = head("nobody");
  EXPECT_FALSE(h.exists);
  EXPECT_EQ(h.seq, 0u);
  EXPECT_EQ(h.pruned_seq, 0u);
  const LogPage p = log("nobody");
  EXPECT_FALSE(p.head.exists);
  EXPECT_TRUE(p.entries.empty());
  const Snapshot s = snap("nobody");
  EXPECT_FALSE(s.head.exists);
  EXPECT_EQ(record_count(s), 0u);
}

TEST_P(StoreConformance, EmptyBatchCommitsNothing) {
  EXPECT_TRUE(commit({}).empty());
  EXPECT_FALSE(head().exists);
}

TEST_P(StoreConformance, SeqStartsAtOne) {
  const Outcome o = commit_one(upd("c1", "o1"));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(o.change_id, "c1");
  EXPECT_EQ(o.seq, 1u);
  const LogHead h = head();
  EXPECT_TRUE(h.exists);
  EXPECT_EQ(h.seq, 1u);
  EXPECT_EQ(h.pruned_seq, 0u);
}

TEST_P(StoreConformance, SeqsAreGaplessWithinAndAcrossBatches) {
  EXPECT_EQ(seqs_of(commit({upd("c1", "o1"), upd("c2", "o2"), upd("c3", "o1")})), (Seqs{1, 2, 3}));
  EXPECT_EQ(commit_one(upd("c4", "o3")).seq, 4u);
  EXPECT_EQ(seqs_of(commit({upd("c5", "o1"), upd("c6", "o1")})), (Seqs{5, 6}));
  EXPECT_EQ(head().seq, 6u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1, 2, 3, 4, 5, 6}));
}

TEST_P(StoreConformance, SeqsArePerRestaurant) {
  const auto outcomes =
      commit({upd("a1", "o1", "{}", "A"), upd("b1", "o1", "{}", "B"), upd("a2", "o1", "{}", "A"),
              upd("c1", "o1", "{}", "C"), upd("b2", "o1", "{}", "B")});
  EXPECT_EQ(seqs_of(outcomes), (Seqs{1, 1, 2, 1, 2}));
  EXPECT_EQ(commit_one(upd("b3", "o1", "{}", "B")).seq, 3u);
  EXPECT_EQ(commit_one(upd("a3", "o1", "{}", "A")).seq, 3u);
  EXPECT_EQ(head("A").seq, 3u);
  EXPECT_EQ(head("B").seq, 3u);
  EXPECT_EQ(head("C").seq, 1u);
  EXPECT_EQ(seqs_of(log("A")), (Seqs{1, 2, 3}));
  EXPECT_EQ(seqs_of(log("B")), (Seqs{1, 2, 3}));
  EXPECT_EQ(seqs_of(log("C")), (Seqs{1}));
}

// ---- applying ----

TEST_P(StoreConformance, AppliedOutcomeCarriesTheCommittedEntry) {
  ChangeSpec s;
  s.change_id = "c1";
  s.record_id = "o1";
  s.data = R"({"status":"open"})";
  s.base_version = 0;
  const Outcome o = commit_one(request(s));
  ASSERT_EQ(o.status, OutcomeStatus::applied);
  ASSERT_NE(o.entry, nullptr);
  EXPECT_EQ(o.entry->seq, o.seq);
  EXPECT_EQ(o.entry->committed_at_ms, kNow);
  EXPECT_EQ(o.entry->change.change_id, "c1");
  EXPECT_EQ(o.entry->change.record_id, "o1");
  EXPECT_EQ(o.entry->change.data, json::parse(R"({"status":"open"})"));
  EXPECT_FALSE(o.entry->change.base_version.has_value());
}

TEST_P(StoreConformance, CreateSetsIdVersionAndUpdatedAt) {
  ChangeSpec s;
  s.change_id = "c1";
  s.type = DataType::menu_items;
  s.record_id = "m1";
  s.action = "created";
  s.data = R"({"name":"Pizza","price":10,"tags":["hot"]})";
  commit_one(request(s));

  const Snapshot sn = snap();
  EXPECT_EQ(sn.head.seq, 1u);
  const json::object* r = find_record(sn, DataType::menu_items, "m1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(*r, json::parse(R"({"name":"Pizza","price":10,"tags":["hot"],"id":"m1","version":1,
                               "updated_at":"2026-11-26T03:45:41.123Z"})"))
      << json::serialize(*r);
}

// Numbers are kept exactly: what a backend writes as text reads back as the same double, bit for
// bit (Boost.JSON 1.81's own parser reads some 16-17 digit texts one unit in the last place off),
// and integers beyond 2^53 stay integers.
TEST_P(StoreConformance, NumbersAreKeptExactly) {
  ChangeRequest r = upd("c1", "o1");
  json::object& data = r.change.data;
  data["total"] = 25.5;
  data["ratio"] = 1238.8249400479617;
  data["share"] = 122118.47236842105;
  data["tiny"] = std::numeric_limits<double>::denorm_min();
  data["huge"] = std::numeric_limits<double>::max();
  data["beyond_2_53"] = std::int64_t{9007199254740993};
  data["largest"] = std::numeric_limits<std::uint64_t>::max();
  const json::object sent = data;
  ASSERT_EQ(commit_one(std::move(r)).status, OutcomeStatus::applied);

  const LogPage p = log();
  ASSERT_EQ(p.entries.size(), 1u);
  EXPECT_EQ(p.entries[0].change.data, sent) << json::serialize(p.entries[0].change.data);
  const Snapshot sn = snap();
  const json::object* record = find_record(sn, DataType::orders, "o1");
  ASSERT_NE(record, nullptr);
  for (const auto& member : sent) {
    EXPECT_EQ(record->at(member.key()), member.value()) << member.key();
  }
}

TEST_P(StoreConformance, UpdatesMergeAsJsonMergePatch) {
  ChangeSpec s;
  s.type = DataType::menu_items;
  s.record_id = "m1";
  s.change_id = "c1";
  s.data = R"({"name":"Pizza","price":10,"tags":["hot","veg"],"meta":{"a":1,"b":2}})";
  commit_one(request(s));
  commit_one(upd("other", "o9"));  // seq 2 on another record
  s.change_id = "c3";
  s.data = R"({"price":12,"tags":["cold"],"meta":{"b":null,"c":3},"name":null})";
  commit_one(request(s), kNow + 1000);

  const Snapshot sn = snap();
  const json::object* r = find_record(sn, DataType::menu_items, "m1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(*r, json::parse(R"({"price":12,"tags":["cold"],"meta":{"a":1,"c":3},"id":"m1",
                               "version":3,"updated_at":"2026-11-26T03:45:42.123Z"})"))
      << json::serialize(*r);
}

TEST_P(StoreConformance, RecordIdAndVersionComeFromTheStoreNotTheData) {
  commit_one(upd("c1", "o1", R"({"id":"spoofed","version":99,"updated_at":"x","n":1})"));
  const Snapshot sn = snap();
  EXPECT_EQ(find_record(sn, DataType::orders, "spoofed"), nullptr);
  const json::object* r = find_record(sn, DataType::orders, "o1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->at("version"), json::value(1));
  EXPECT_EQ(r->at("updated_at"), json::value(kNowIso));
  EXPECT_EQ(r->at("n"), json::value(1));
}

TEST_P(StoreConformance, RecordsAreKeyedByDataTypeAndId) {
  ChangeSpec s;
  s.record_id = "same-id";
  s.change_id = "c1";
  s.type = DataType::menu_items;
  s.data = R"({"kind":"menu"})";
  commit_one(request(s));
  s.change_id = "c2";
  s.type = DataType::inventory;
  s.data = R"({"kind":"inventory"})";
  commit_one(request(s));

  const Snapshot sn = snap();
  const json::object* menu = find_record(sn, DataType::menu_items, "same-id");
  const json::object* inv = find_record(sn, DataType::inventory, "same-id");
  ASSERT_NE(menu, nullptr);
  ASSERT_NE(inv, nullptr);
  EXPECT_EQ(menu->at("kind"), json::value("menu"));
  EXPECT_EQ(inv->at("kind"), json::value("inventory"));
  EXPECT_EQ(menu->at("version"), json::value(1));
  EXPECT_EQ(inv->at("version"), json::value(2));
}

TEST_P(StoreConformance, LogEntriesRecordTheWholeChange) {
  ChangeSpec s;
  s.change_id = "c1";
  s.type = DataType::tables;
  s.record_id = "t7";
  s.action = "occupied";
  s.data = R"({"guests":4,"nested":{"x":[1,2]}})";
  s.device = "tablet-3";
  s.user = "waiter-9";
  s.base_version = 0;
  commit_one(request(s), kNow);

  const LogPage p = log();
  ASSERT_EQ(p.entries.size(), 1u);
  const LogEntry& e = p.entries[0];
  EXPECT_EQ(e.seq, 1u);
  EXPECT_EQ(e.committed_at_ms, kNow);
  EXPECT_EQ(e.change.restaurant_id, "r1");
  EXPECT_EQ(e.change.device_id, "tablet-3");
  EXPECT_EQ(e.change.user_id, "waiter-9");
  EXPECT_EQ(e.change.change_id, "c1");
  EXPECT_EQ(e.change.data_type, DataType::tables);
  EXPECT_EQ(e.change.action, "occupied");
  EXPECT_EQ(e.change.record_id, "t7");
  EXPECT_EQ(e.change.data, json::parse(R"({"guests":4,"nested":{"x":[1,2]}})"));
  EXPECT_FALSE(e.change.base_version.has_value());
}

// ---- deletion ----

TEST_P(StoreConformance, DeletionActionsRemoveTheRecordAndLeaveALogEntry) {
  const char* actions[] = {"deleted", "removed", "item_removed"};
  std::uint64_t seq = 0;
  for (const char* action : actions) {
    SCOPED_TRACE(action);
    const std::string rec = std::string("rec-") + action;
    commit_one(upd(std::string("create-") + action, rec, R"({"name":"x"})"));
    ++seq;
    ASSERT_TRUE(record(DataType::orders, rec).is_object());

    ChangeSpec s;
    s.change_id = std::string("delete-") + action;
    s.record_id = rec;
    s.action = action;
    const Outcome o = commit_one(request(s));
    ++seq;
    EXPECT_EQ(o.status, OutcomeStatus::applied);
    EXPECT_EQ(o.seq, seq);
    EXPECT_TRUE(record(DataType::orders, rec).is_null());

    const LogPage p = log("r1", seq - 1);
    ASSERT_EQ(p.entries.size(), 1u);
    EXPECT_EQ(p.entries[0].seq, seq);
    EXPECT_EQ(p.entries[0].change.action, action);
    EXPECT_EQ(p.entries[0].change.record_id, rec);
  }
  EXPECT_EQ(record_count(snap()), 0u);
}

TEST_P(StoreConformance, DeletingAnAbsentRecordIsStillLogged) {
  ChangeSpec s;
  s.change_id = "d1";
  s.record_id = "ghost";
  s.action = "deleted";
  const Outcome o = commit_one(request(s));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(o.seq, 1u);
  EXPECT_EQ(record_count(snap()), 0u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1}));
}

TEST_P(StoreConformance, DeletionOnlyTouchesItsOwnRecord) {
  commit({upd("c1", "keep", R"({"a":1})"), upd("c2", "drop", R"({"a":2})")});
  ChangeSpec s;
  s.change_id = "d1";
  s.record_id = "drop";
  s.action = "deleted";
  commit_one(request(s));
  const Snapshot sn = snap();
  EXPECT_EQ(record_count(sn), 1u);
  EXPECT_NE(find_record(sn, DataType::orders, "keep"), nullptr);
}

TEST_P(StoreConformance, RecordRecreatedAfterDeletionStartsFromScratch) {
  commit_one(upd("c1", "o1", R"({"old":true,"n":1})"));
  ChangeSpec s;
  s.change_id = "d1";
  s.record_id = "o1";
  s.action = "removed";
  commit_one(request(s));
  commit_one(upd("c3", "o1", R"({"n":2})"));
  const Snapshot sn = snap();
  const json::object* r = find_record(sn, DataType::orders, "o1");
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->contains("old")) << json::serialize(*r);
  EXPECT_EQ(r->at("n"), json::value(2));
  EXPECT_EQ(r->at("version"), json::value(3));
}

// ---- dedupe ----

TEST_P(StoreConformance, DuplicateChangeIdAcrossCommitsIsNotReapplied) {
  commit_one(upd("c1", "o1", R"({"v":"first"})"));
  commit_one(upd("c2", "o2"));
  const Outcome again = commit_one(upd("c1", "o1", R"({"v":"second"})"), kNow + 5000);
  EXPECT_EQ(again.status, OutcomeStatus::duplicate);
  EXPECT_EQ(again.change_id, "c1");
  EXPECT_EQ(again.seq, 1u);
  EXPECT_EQ(again.entry, nullptr);

  EXPECT_EQ(head().seq, 2u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1, 2}));
  const Snapshot sn = snap();
  const json::object* r = find_record(sn, DataType::orders, "o1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->at("v"), json::value("first"));
  EXPECT_EQ(r->at("updated_at"), json::value(kNowIso));
}

TEST_P(StoreConformance, DuplicateWithinOneBatch) {
  const auto outcomes = commit({upd("c1", "o1", R"({"v":"first"})"), upd("c2", "o2"),
                                upd("c1", "o1", R"({"v":"second"})"), upd("c3", "o3")});
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[2].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[2].change_id, "c1");
  EXPECT_EQ(outcomes[2].seq, 1u);
  EXPECT_EQ(outcomes[3].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[3].seq, 3u);  // no gap left by the duplicate
  EXPECT_EQ(seqs_of(log()), (Seqs{1, 2, 3}));
  EXPECT_EQ(field(DataType::orders, "o1", "v"), json::value("first"));
}

TEST_P(StoreConformance, SameChangeIdInAnotherRestaurantIsNotADuplicate) {
  EXPECT_EQ(commit_one(upd("shared", "o1", "{}", "A")).status, OutcomeStatus::applied);
  const Outcome b = commit_one(upd("shared", "o1", "{}", "B"));
  EXPECT_EQ(b.status, OutcomeStatus::applied);
  EXPECT_EQ(b.seq, 1u);
}

// ---- twins ----

TEST_P(StoreConformance, TwinOfCommittedChangeIsADuplicateAlias) {
  commit_one(upd("srv-typed", "o1", R"({"status":"open"})"));
  ChangeSpec twin;
  twin.change_id = "client-dc";
  twin.record_id = "o1";
  twin.data = R"({"id":"o1","status":"open"})";
  twin.twin_of = "srv-typed";
  const Outcome o = commit_one(request(twin));
  EXPECT_EQ(o.status, OutcomeStatus::duplicate);
  EXPECT_EQ(o.change_id, "client-dc");
  EXPECT_EQ(o.seq, 1u);
  EXPECT_EQ(head().seq, 1u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1}));

  // The later POST of the same data_change carries no twin_of: the alias alone is a duplicate.
  const Outcome later = commit_one(upd("client-dc", "o1", R"({"id":"o1","status":"open"})"));
  EXPECT_EQ(later.status, OutcomeStatus::duplicate);
  EXPECT_EQ(later.seq, 1u);
  EXPECT_EQ(head().seq, 1u);
}

TEST_P(StoreConformance, TwinInTheSameBatchAsItsOriginal) {
  ChangeSpec twin;
  twin.change_id = "client-dc";
  twin.record_id = "o1";
  twin.twin_of = "srv-typed";
  const auto outcomes = commit({upd("srv-typed", "o1"), request(twin), upd("next", "o2")});
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::duplicate);
  EXPECT_EQ(outcomes[1].seq, 1u);
  EXPECT_EQ(outcomes[2].seq, 2u);
  EXPECT_EQ(commit_one(upd("client-dc", "o1")).status, OutcomeStatus::duplicate);
}

TEST_P(StoreConformance, TwinOfUnknownChangeIsAppliedAsItsOwnChange) {
  commit_one(upd("c1", "o0"));
  ChangeSpec twin;
  twin.change_id = "client-dc";
  twin.record_id = "o1";
  twin.data = R"({"status":"new"})";
  twin.twin_of = "srv-never-committed";
  const Outcome o = commit_one(request(twin));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(o.change_id, "client-dc");
  EXPECT_EQ(o.seq, 2u);
  const Snapshot sn = snap();
  const json::object* r = find_record(sn, DataType::orders, "o1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->at("status"), json::value("new"));
  // Its own change id now dedupes; the unknown one was not registered by it.
  EXPECT_EQ(commit_one(upd("client-dc", "o1")).status, OutcomeStatus::duplicate);
  EXPECT_EQ(commit_one(upd("srv-never-committed", "o1")).status, OutcomeStatus::applied);
}

TEST_P(StoreConformance, TwinOfAChangeOfAnotherRestaurantIsNotAnAlias) {
  commit_one(upd("srv-typed", "o1", "{}", "B"));
  ChangeSpec twin;
  twin.restaurant = "A";
  twin.change_id = "client-dc";
  twin.record_id = "o1";
  twin.twin_of = "srv-typed";
  const Outcome o = commit_one(request(twin));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(o.seq, 1u);
}

// ---- optimistic concurrency ----

TEST_P(StoreConformance, MatchingBaseVersionIsApplied) {
  ChangeSpec s;
  s.record_id = "o1";
  s.change_id = "c1";
  s.base_version = 0;  // 0: the record must not exist yet
  s.data = R"({"n":1})";
  EXPECT_EQ(commit_one(request(s)).status, OutcomeStatus::applied);
  commit_one(upd("c2", "o2"));  // seq 2 elsewhere
  s.change_id = "c3";
  s.base_version = 1;
  s.data = R"({"n":2})";
  const Outcome o = commit_one(request(s));
  EXPECT_EQ(o.status, OutcomeStatus::applied);
  EXPECT_EQ(o.seq, 3u);
  s.change_id = "c4";
  s.base_version = 3;
  EXPECT_EQ(commit_one(request(s)).status, OutcomeStatus::applied);
  EXPECT_EQ(field(DataType::orders, "o1", "version"), json::value(4));
}

TEST_P(StoreConformance, MismatchingBaseVersionIsRejectedWithTheCurrentRecord) {
  commit_one(upd("c1", "o1", R"({"n":1})"));
  const json::value before = record(DataType::orders, "o1");

  ChangeSpec s;
  s.change_id = "stale";
  s.record_id = "o1";
  s.data = R"({"n":99})";
  s.base_version = 7;
  const Outcome o = commit_one(request(s));
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_EQ(o.change_id, "stale");
  EXPECT_EQ(o.error.code, "conflict");
  EXPECT_FALSE(o.error.message.empty());
  EXPECT_EQ(o.seq, 0u);
  EXPECT_EQ(o.entry, nullptr);
  EXPECT_EQ(o.current, before) << json::serialize(o.current);

  // Nothing was applied: record, head, log unchanged; the change id was not consumed.
  EXPECT_EQ(record(DataType::orders, "o1"), before);
  EXPECT_EQ(head().seq, 1u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1}));
  s.base_version = 1;
  const Outcome retry = commit_one(request(s));
  EXPECT_EQ(retry.status, OutcomeStatus::applied);
  EXPECT_EQ(retry.seq, 2u);
}

TEST_P(StoreConformance, BaseVersionAgainstAnAbsentRecordGivesNullCurrent) {
  ChangeSpec s;
  s.change_id = "c1";
  s.record_id = "nope";
  s.base_version = 1;
  const Outcome o = commit_one(request(s));
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_EQ(o.error.code, "conflict");
  EXPECT_TRUE(o.current.is_null()) << json::serialize(o.current);
  EXPECT_FALSE(head().exists);
  EXPECT_EQ(record_count(snap()), 0u);
}

TEST_P(StoreConformance, BaseVersionAgainstADeletedRecordGivesNullCurrent) {
  commit_one(upd("c1", "o1"));
  ChangeSpec del;
  del.change_id = "d1";
  del.record_id = "o1";
  del.action = "deleted";
  commit_one(request(del));
  ChangeSpec s;
  s.change_id = "c3";
  s.record_id = "o1";
  s.base_version = 1;
  const Outcome o = commit_one(request(s));
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_TRUE(o.current.is_null());
}

TEST_P(StoreConformance, ConflictDoesNotStopTheRestOfTheBatch) {
  commit_one(upd("c1", "o1", R"({"n":1})"));
  ChangeSpec stale;
  stale.change_id = "stale";
  stale.record_id = "o1";
  stale.data = R"({"n":99})";
  stale.base_version = 5;
  const auto outcomes =
      commit({upd("c2", "o2", R"({"m":1})"), request(stale), upd("c3", "o1", R"({"n":2})")});
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[0].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[0].seq, 2u);
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::rejected);
  EXPECT_EQ(outcomes[1].error.code, "conflict");
  EXPECT_EQ(outcomes[2].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[2].seq, 3u);
  EXPECT_EQ(seqs_of(log()), (Seqs{1, 2, 3}));
  const Snapshot sn = snap();
  EXPECT_EQ(field(DataType::orders, "o1", "n"), json::value(2));
  EXPECT_NE(find_record(sn, DataType::orders, "o2"), nullptr);
}

TEST_P(StoreConformance, BaseVersionSeesEarlierChangesOfTheSameBatch) {
  ChangeSpec first;
  first.change_id = "c1";
  first.record_id = "o1";
  ChangeSpec second = first;
  second.change_id = "c2";
  second.base_version = 1;
  ChangeSpec stale = first;
  stale.change_id = "c3";
  stale.base_version = 1;  // the record is at version 2 by now
  const auto outcomes = commit({request(first), request(second), request(stale)});
  ASSERT_EQ(outcomes.size(), 3u);
  EXPECT_EQ(outcomes[1].status, OutcomeStatus::applied);
  EXPECT_EQ(outcomes[2].status, OutcomeStatus::rejected);
  EXPECT_EQ(outcomes[2].current.as_object().at("version"), json::value(2));
}

// ---- reading the log ----

TEST_P(StoreConformance, ReadLogPagesByAfterAndLimit) {
  std::vector<ChangeRequest> batch;
  for (int i = 1; i <= 10; ++i) batch.push_back(upd("c" + std::to_string(i), "o1"));
  commit(std::move(batch));

  EXPECT_EQ(seqs_of(log("r1", 0, 3)), (Seqs{1, 2, 3}));
  EXPECT_EQ(seqs_of(log("r1", 3, 3)), (Seqs{4, 5, 6}));
  EXPECT_EQ(seqs_of(log("r1", 6, 3)), (Seqs{7, 8, 9}));
  EXPECT_EQ(seqs_of(log("r1", 9, 3)), (Seqs{10}));
  EXPECT_TRUE(log("r1", 10, 3).entries.empty());
  EXPECT_TRUE(log("r1", 500, 3).entries.empty());
  EXPECT_TRUE(log("r1", 0, 0).entries.empty());
  EXPECT_EQ(log("r1", 0, std::numeric_limits<std::size_t>::max()).entries.size(), 10u);
  EXPECT_EQ(log("r1", 4, 1).entries.at(0).change.change_id, "c5");

  const LogPage p = log("r1", 2, 2);
  EXPECT_TRUE(p.head.exists);
  EXPECT_EQ(p.head.seq, 10u);
  EXPECT_EQ(p.head.pruned_seq, 0u);
}

TEST_P(StoreConformance, HeadTracksTheLastSeq) {
  EXPECT_FALSE(head().exists);
  commit({upd("c1", "o1"), upd("c2", "o1")});
  EXPECT_EQ(head().seq, 2u);
  commit_one(upd("c3", "o1"));
  EXPECT_EQ(head().seq, 3u);
  commit_one(upd("c3", "o1"));  // duplicate: no new seq
  EXPECT_EQ(head().seq, 3u);
}

// ---- snapshot ----

TEST_P(StoreConformance, SnapshotHasEveryLiveRecordOfEveryTypeAndItsSeq) {
  std::vector<ChangeRequest> batch;
  int n = 0;
  for (const auto& d : kDataTypes) {
    for (const char* id : {"x", "y"}) {
      ChangeSpec s;
      s.change_id = "c" + std::to_string(++n);
      s.type = d.type;
      s.record_id = std::string(d.name) + "-" + id;
      s.data = R"({"type":")" + std::string(d.name) + R"("})";
      batch.push_back(request(s));
    }
  }
  ChangeSpec del;
  del.change_id = "del";
  del.type = DataType::printers;
  del.record_id = "printers-y";
  del.action = "removed";
  batch.push_back(request(del));
  commit(std::move(batch));

  const Snapshot sn = snap();
  EXPECT_TRUE(sn.head.exists);
  EXPECT_EQ(sn.head.seq, 13u);
  for (const auto& d : kDataTypes) {
    SCOPED_TRACE(d.name);
    const auto& records = sn.records[static_cast<std::size_t>(d.type)];
    const std::size_t expected = d.type == DataType::printers ? 1 : 2;
    EXPECT_EQ(records.size(), expected);
    for (const auto& r : records) EXPECT_EQ(r.at("type"), json::value(d.name));
    EXPECT_NE(find_record(sn, d.type, std::string(d.name) + "-x"), nullptr);
  }
  EXPECT_EQ(find_record(sn, DataType::printers, "printers-y"), nullptr);
}

// ---- retention ----

TEST_P(StoreConformance, RetentionPrunesOldEntriesAndKeepsRecentOnes) {
  for (int i = 1; i <= 10; ++i) {
    commit_one(upd("c" + std::to_string(i), "o" + std::to_string(i), R"({"i":1})"), kNow, 4);
  }
  const LogHead h = head();
  EXPECT_EQ(h.seq, 10u);
  EXPECT_EQ(h.pruned_seq, 6u);
  const LogPage p = log();
  EXPECT_EQ(p.head.pruned_seq, 6u);
  EXPECT_EQ(seqs_of(p), (Seqs{7, 8, 9, 10}));

  // Recent change ids still dedupe with their seq.
  const Outcome dup = commit_one(upd("c9", "o9"), kNow, 4);
  EXPECT_EQ(dup.status, OutcomeStatus::duplicate);
  EXPECT_EQ(dup.seq, 9u);

  // Pruning the log never removes records.
  const Snapshot sn = snap();
  EXPECT_EQ(record_count(sn), 10u);
  EXPECT_NE(find_record(sn, DataType::orders, "o1"), nullptr);
}

TEST_P(StoreConformance, RetentionInOneLargeBatch) {
  std::vector<ChangeRequest> batch;
  for (int i = 1; i <= 20; ++i) batch.push_back(upd("c" + std::to_string(i), "o1"));
  commit(std::move(batch), kNow, 5);
  EXPECT_EQ(head().pruned_seq, 15u);
  EXPECT_EQ(seqs_of(log()), (Seqs{16, 17, 18, 19, 20}));
}

TEST_P(StoreConformance, RetentionKeepsAtLeastTheRetainedWindow) {
  constexpr std::uint64_t kRetain = 32;
  std::uint64_t last_pruned = 0;
  for (std::uint64_t i = 1; i <= 100; ++i) {
    commit_one(upd("c" + std::to_string(i), "o1"), kNow, kRetain);
    const LogPage p = log("r1", 0, 1000);
    ASSERT_EQ(p.head.seq, i);
    EXPECT_GE(p.head.pruned_seq, last_pruned) << "pruned_seq went back at seq " << i;
    last_pruned = p.head.pruned_seq;
    // Never more pruned than allowed; the log starts right after pruned_seq, without holes.
    ASSERT_LE(p.head.pruned_seq + kRetain, std::max(i, kRetain)) << "at seq " << i;
    ASSERT_EQ(p.entries.size(), i - p.head.pruned_seq) << "at seq " << i;
    ASSERT_FALSE(p.entries.empty());
    EXPECT_EQ(p.entries.front().seq, p.head.pruned_seq + 1) << "at seq " << i;
  }
  EXPECT_GT(last_pruned, 50u);  // pruning did happen, in amortized steps
}

TEST_P(StoreConformance, RetentionZeroKeepsEverything) {
  for (int i = 1; i <= 20; ++i) commit_one(upd("c" + std::to_string(i), "o1"), kNow, 0);
  EXPECT_EQ(head().pruned_seq, 0u);
  EXPECT_EQ(log().entries.size(), 20u);
  EXPECT_EQ(commit_one(upd("c1", "o1")).status, OutcomeStatus::duplicate);
}

TEST_P(StoreConformance, RetentionIsPerRestaurant) {
  for (int i = 1; i <= 10; ++i) {
    commit({upd("a" + std::to_string(i), "o1", "{}", "A")}, kNow, 3);
  }
  commit({upd("b1", "o1", "{}", "B"), upd("b2", "o1", "{}", "B")}, kNow, 3);
  EXPECT_EQ(head("A").pruned_seq, 7u);
  EXPECT_EQ(head("B").pruned_seq, 0u);
  EXPECT_EQ(seqs_of(log("B")), (Seqs{1, 2}));
}

// ---- tenant isolation ----

TEST_P(StoreConformance, RestaurantsNeverSeeEachOthersData) {
  ChangeSpec a;
  a.restaurant = "A";
  a.change_id = "same-change";
  a.record_id = "same-record";
  a.data = R"({"owner":"A","secret":"a"})";
  ChangeSpec b = a;
  b.restaurant = "B";
  b.data = R"({"owner":"B"})";
  ChangeSpec b2 = b;
  b2.change_id = "b-only";
  b2.record_id = "b-record";
  b2.type = DataType::users;
  commit({request(a), request(b), request(b2)});

  const Snapshot sa = snap("A");
  EXPECT_EQ(record_count(sa), 1u);
  const json::object* ra = find_record(sa, DataType::orders, "same-record");
  ASSERT_NE(ra, nullptr);
  EXPECT_EQ(ra->at("owner"), json::value("A"));
  EXPECT_EQ(sa.head.seq, 1u);

  const Snapshot sb = snap("B");
  EXPECT_EQ(record_count(sb), 2u);
  const json::object* rb = find_record(sb, DataType::orders, "same-record");
  ASSERT_NE(rb, nullptr);
  EXPECT_EQ(*rb, json::parse(R"({"owner":"B","id":"same-record","version":1,
                                "updated_at":"2026-11-26T03:45:41.123Z"})"));
  EXPECT_EQ(sb.head.seq, 2u);

  for (const auto& e : log("A").entries) EXPECT_EQ(e.change.restaurant_id, "A");
  for (const auto& e : log("B").entries) EXPECT_EQ(e.change.restaurant_id, "B");
  EXPECT_EQ(log("A").entries.size(), 1u);
  EXPECT_EQ(log("B").entries.size(), 2u);

  // A restaurant whose name is a prefix of another's sees nothing of it.
  EXPECT_FALSE(head("").exists);
  EXPECT_EQ(record_count(snap("AB")), 0u);

  // A's deletion does not touch B's record with the same id.
  ChangeSpec del = a;
  del.change_id = "del";
  del.action = "deleted";
  commit_one(request(del));
  EXPECT_EQ(record_count(snap("A")), 0u);
  EXPECT_NE(find_record(snap("B"), DataType::orders, "same-record"), nullptr);
}

TEST_P(StoreConformance, ConflictChecksOnlyTheOwnRestaurantsRecord) {
  commit_one(upd("c1", "o1", "{}", "B"));
  commit_one(upd("c2", "o1", "{}", "B"));  // B's o1 is at version 2
  ChangeSpec s;
  s.restaurant = "A";
  s.change_id = "c3";
  s.record_id = "o1";
  s.base_version = 2;
  const Outcome o = commit_one(request(s));
  EXPECT_EQ(o.status, OutcomeStatus::rejected);
  EXPECT_TRUE(o.current.is_null()) << json::serialize(o.current);
}

// ---- legacy devices (--auth mixed) ----

std::vector<LegacyDevice> legacy_of(Store& store, std::string_view restaurant) {
  auto r = store.legacy_devices(restaurant);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r ? std::move(*r) : std::vector<LegacyDevice>{};
}

bool put(Store& store, const LegacyDevice& d) {
  auto r = store.put_legacy_device(d);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message);
  return r && *r;
}

TEST_P(StoreConformance, LegacyDevicesStartEmpty) {
  EXPECT_TRUE(legacy_of(*store_, "r1").empty());
  auto all = store_->all_legacy_devices();
  ASSERT_TRUE(all.has_value()) << all.error().message;
  EXPECT_TRUE(all->empty());
  auto removed = store_->remove_legacy_device("r1", "pos-1");
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  EXPECT_FALSE(*removed);
}

TEST_P(StoreConformance, LegacyDeviceIsAddedThenReplacedWhole) {
  const LegacyDevice first{"r1", "pos-1", {"10.0.0.0/8", "2001:db8::/48"}, "pos", kNow};
  EXPECT_TRUE(put(*store_, first));
  EXPECT_EQ(legacy_of(*store_, "r1"), std::vector<LegacyDevice>{first});

  const LegacyDevice second{"r1", "pos-1", {}, "kds", kNow + 1000};
  EXPECT_FALSE(put(*store_, second));  // replaced, not added
  EXPECT_EQ(legacy_of(*store_, "r1"), std::vector<LegacyDevice>{second});
}

TEST_P(StoreConformance, LegacyDevicesArePerRestaurantAndOrderedByDevice) {
  // Byte order, whatever the database's collation: upper case before lower case.
  for (const char* device : {"pos-b", "Pos-z", "kds-1", "pos-a"}) {
    put(*store_, {"r1", device, {"192.168.1.0/24"}, "pos", kNow});
  }
  put(*store_, {"r2", "pos-a", {}, "manager", kNow});
  put(*store_, {"R0", "x", {}, "pos", kNow});
  std::vector<std::string> devices;
  for (const auto& d : legacy_of(*store_, "r1")) devices.push_back(d.device_id);
  EXPECT_EQ(devices, (std::vector<std::string>{"Pos-z", "kds-1", "pos-a", "pos-b"}));
  ASSERT_EQ(legacy_of(*store_, "r2").size(), 1u);
  EXPECT_EQ(legacy_of(*store_, "r2")[0].role, "manager");
  EXPECT_TRUE(legacy_of(*store_, "r").empty());

  auto all = store_->all_legacy_devices();
  ASSERT_TRUE(all.has_value()) << all.error().message;
  std::vector<std::string> keys;
  for (const auto& d : *all) keys.push_back(d.restaurant_id + "/" + d.device_id);
  EXPECT_EQ(keys, (std::vector<std::string>{"R0/x", "r1/Pos-z", "r1/kds-1", "r1/pos-a", "r1/pos-b",
                                            "r2/pos-a"}));
}

TEST_P(StoreConformance, RemovingALegacyDeviceRemovesOnlyIt) {
  put(*store_, {"r1", "pos-1", {}, "pos", kNow});
  put(*store_, {"r1", "pos-2", {}, "pos", kNow});
  put(*store_, {"r2", "pos-1", {}, "pos", kNow});
  auto removed = store_->remove_legacy_device("r1", "pos-1");
  ASSERT_TRUE(removed.has_value()) << removed.error().message;
  EXPECT_TRUE(*removed);
  removed = store_->remove_legacy_device("r1", "pos-1");
  ASSERT_TRUE(removed.has_value());
  EXPECT_FALSE(*removed);
  ASSERT_EQ(legacy_of(*store_, "r1").size(), 1u);
  EXPECT_EQ(legacy_of(*store_, "r1")[0].device_id, "pos-2");
  EXPECT_EQ(legacy_of(*store_, "r2").size(), 1u);
}

TEST_P(StoreConformance, LegacyDeviceIdsAndNetworksAreKeptExactly) {
  const LegacyDevice d{"caf\u00e9 \"1\"", "t\u00e4blet'; --", {"::/0", "0.0.0.0/0"}, "pos", -1};
  EXPECT_TRUE(put(*store_, d));
  EXPECT_EQ(legacy_of(*store_, d.restaurant_id), std::vector<LegacyDevice>{d});
  // Legacy devices are not changes: the restaurant has no log.
  EXPECT_FALSE(head(d.restaurant_id).exists);
}

// ---- concurrency: reads run alongside the (single) committing thread ----

TEST_P(StoreConformance, ReadsDuringCommitsSeeConsistentPrefixes) {
  constexpr int kCommits = 150;
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto p = store_->read_log("r1", 0, 100000);
        if (!p) {
          ++failures;
          continue;
        }
        for (std::size_t i = 0; i < p->entries.size(); ++i) {
          if (p->entries[i].seq != i + 1) ++failures;
        }
        if (p->entries.size() != p->head.seq) ++failures;
        auto s = store_->snapshot("r1");
        if (!s) {
          ++failures;
          continue;
        }
        // Each commit adds one record: the snapshot's records match its seq.
        if (s->records[0].size() != s->head.seq) ++failures;
      }
    });
  }
  for (int i = 1; i <= kCommits; ++i) {
    commit_one(upd("c" + std::to_string(i), "o" + std::to_string(i)));
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(head().seq, static_cast<std::uint64_t>(kCommits));
}

}  // namespace
}  // namespace possync::store_test
