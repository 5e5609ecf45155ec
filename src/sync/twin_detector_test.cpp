#include "sync/twin_detector.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <chrono>
#include <string>

namespace possync {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using Clock = TwinDetector::Clock;

constexpr auto kWindow = 500ms;

// The typed update as decoded: no "id" in data, a server-assigned change id.
Change typed(std::string record_id = "o1", std::string data = R"({"status":"open","total":12.5})",
             std::string action = "updated", DataType type = DataType::orders) {
  Change c;
  c.restaurant_id = "r1";
  c.device_id = "d1";
  c.change_id = "srv-typed-1";
  c.data_type = type;
  c.action = std::move(action);
  c.record_id = std::move(record_id);
  c.data = json::parse(data).as_object();
  return c;
}

// Its data_change twin: same fields plus data.id, a client change id.
Change twin_of(const Change& t, std::string change_id = "1712_d1_o1") {
  Change c = t;
  c.change_id = std::move(change_id);
  c.data["id"] = t.record_id;
  return c;
}

class TwinDetectorTest : public testing::Test {
 protected:
  TwinDetector detector{kWindow};
  Clock::time_point t0 = Clock::now();
};

TEST_F(TwinDetectorTest, MatchesTheNextDataChangeWithTheSameContent) {
  const Change t = typed();
  detector.remember(t, t0);
  EXPECT_EQ(detector.match(twin_of(t), t0 + 1ms), "srv-typed-1");
}

TEST_F(TwinDetectorTest, WouldMatchAnswersWithoutConsumingTheCandidate) {
  const Change t = typed();
  EXPECT_FALSE(detector.would_match(twin_of(t), t0));
  detector.remember(t, t0);
  EXPECT_TRUE(detector.would_match(twin_of(t), t0 + 1ms));
  EXPECT_FALSE(detector.would_match(twin_of(typed("o2")), t0 + 1ms));
  EXPECT_FALSE(detector.would_match(twin_of(t), t0 + kWindow + 1ms));
  EXPECT_EQ(detector.match(twin_of(t), t0 + 2ms), "srv-typed-1");  // still there
  EXPECT_FALSE(detector.would_match(twin_of(t), t0 + 3ms));        // consumed by match
}

TEST_F(TwinDetectorTest, MatchesWhenNeitherHasAnId) {
  const Change t = typed();
  detector.remember(t, t0);
  Change dc = t;
  dc.change_id = "client";
  EXPECT_EQ(detector.match(dc, t0), "srv-typed-1");
}

TEST_F(TwinDetectorTest, IgnoresOnlyTheTopLevelId) {
  const Change t = typed("o1", R"({"status":"open","id":"whatever"})");
  detector.remember(t, t0);
  Change dc = twin_of(t);
  dc.data["id"] = "something-else";  // a different top-level id is still ignored
  EXPECT_EQ(detector.match(dc, t0), "srv-typed-1");

  const Change nested = typed("o1", R"({"line":{"id":1}})");
  detector.remember(nested, t0);
  Change dc2 = twin_of(nested);
  dc2.data["line"].as_object()["id"] = 2;  // a nested id is data
  EXPECT_EQ(detector.match(dc2, t0), "");
}

TEST_F(TwinDetectorTest, WithinTheWindowInclusive) {
  const Change t = typed();
  detector.remember(t, t0);
  EXPECT_EQ(detector.match(twin_of(t), t0 + kWindow), "srv-typed-1");
}

TEST_F(TwinDetectorTest, NoMatchAfterTheWindow) {
  const Change t = typed();
  detector.remember(t, t0);
  EXPECT_EQ(detector.match(twin_of(t), t0 + kWindow + 1ms), "");
}

TEST_F(TwinDetectorTest, NoMatchWithoutACandidate) {
  EXPECT_EQ(detector.match(twin_of(typed()), t0), "");
}

TEST_F(TwinDetectorTest, DifferentDataTypeDoesNotMatch) {
  const Change t = typed("i1", R"({"name":"Flour"})", "updated", DataType::menu_items);
  detector.remember(t, t0);
  Change dc = twin_of(t);
  dc.data_type = DataType::inventory;  // same id field (item_id), other data type
  EXPECT_EQ(detector.match(dc, t0), "");
}

TEST_F(TwinDetectorTest, DifferentActionDoesNotMatch) {
  const Change t = typed();
  detector.remember(t, t0);
  Change dc = twin_of(t);
  dc.action = "completed";
  EXPECT_EQ(detector.match(dc, t0), "");
}

TEST_F(TwinDetectorTest, DifferentRecordDoesNotMatch) {
  const Change t = typed();
  detector.remember(t, t0);
  Change dc = twin_of(t);
  dc.record_id = "o2";
  dc.data["id"] = "o2";
  EXPECT_EQ(detector.match(dc, t0), "");
}

TEST_F(TwinDetectorTest, DifferentDataDoesNotMatch) {
  const Change t = typed();
  struct Case {
    const char* why;
    const char* data;
  };
  for (const Case& c : {
           Case{"value differs", R"({"status":"paid","total":12.5})"},
           Case{"member missing", R"({"status":"open"})"},
           Case{"extra member", R"({"status":"open","total":12.5,"note":"x"})"},
           Case{"other total", R"({"status":"open","total":13})"},
           Case{"empty", R"({})"},
       }) {
    SCOPED_TRACE(c.why);
    detector.remember(t, t0);
    Change dc = t;
    dc.change_id = "client";
    dc.data = json::parse(c.data).as_object();
    dc.data["id"] = "o1";
    EXPECT_EQ(detector.match(dc, t0), "");
  }
}

TEST_F(TwinDetectorTest, MemberOrderDoesNotMatter) {
  const Change t = typed("o1", R"({"a":1,"b":2})");
  detector.remember(t, t0);
  Change dc = t;
  dc.change_id = "client";
  dc.data = json::parse(R"({"id":"o1","b":2,"a":1})").as_object();
  EXPECT_EQ(detector.match(dc, t0), "srv-typed-1");
}

TEST_F(TwinDetectorTest, MatchForgetsTheCandidateOnSuccess) {
  const Change t = typed();
  detector.remember(t, t0);
  ASSERT_EQ(detector.match(twin_of(t), t0), "srv-typed-1");
  EXPECT_EQ(detector.match(twin_of(t, "second"), t0), "");
}

TEST_F(TwinDetectorTest, MatchForgetsTheCandidateOnFailure) {
  const Change t = typed();
  detector.remember(t, t0);
  Change other = twin_of(t);
  other.action = "completed";
  ASSERT_EQ(detector.match(other, t0), "");
  // The real twin arriving after another change is no longer the very next change.
  EXPECT_EQ(detector.match(twin_of(t), t0), "");
}

TEST_F(TwinDetectorTest, ForgetDropsTheCandidate) {
  const Change t = typed();
  detector.remember(t, t0);
  detector.forget();
  EXPECT_EQ(detector.match(twin_of(t), t0), "");
}

TEST_F(TwinDetectorTest, RememberReplacesTheCandidate) {
  const Change first = typed("o1");
  Change second = typed("o2");
  second.change_id = "srv-typed-2";
  detector.remember(first, t0);
  detector.remember(second, t0 + 1ms);
  EXPECT_EQ(detector.match(twin_of(first), t0 + 2ms), "");

  detector.remember(first, t0);
  detector.remember(second, t0 + 1ms);
  EXPECT_EQ(detector.match(twin_of(second), t0 + 2ms), "srv-typed-2");
}

TEST_F(TwinDetectorTest, WindowIsMeasuredFromTheTypedUpdate) {
  const Change t = typed();
  detector.remember(t, t0);
  EXPECT_EQ(detector.match(twin_of(t), t0 + 499ms), "srv-typed-1");
  detector.remember(t, t0 + 1000ms);
  EXPECT_EQ(detector.match(twin_of(t), t0 + 1501ms), "");
}

TEST(TwinDetectorSameContent, OptionallyIgnoresRecordIds) {
  const Change a = typed("o1");
  Change b = twin_of(a);
  b.record_id = "other";
  EXPECT_FALSE(TwinDetector::same_content(a, b, true));
  EXPECT_TRUE(TwinDetector::same_content(a, b, false));
  b.action = "deleted";
  EXPECT_FALSE(TwinDetector::same_content(a, b, false));
}

TEST(TwinDetectorSameContent, DeviceUserAndChangeIdAreNotContent) {
  const Change a = typed();
  Change b = a;
  b.device_id = "other-device";
  b.user_id = "other-user";
  b.change_id = "other-change";
  b.restaurant_id = "r1";
  EXPECT_TRUE(TwinDetector::same_content(a, b, true));
}

}  // namespace
}  // namespace possync
