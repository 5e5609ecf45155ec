#include "transport/ordered_intake.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace possync {
namespace {

namespace json = boost::json;

ChangeRequest order(const std::string& id) {
  ChangeRequest r;
  r.change.data_type = DataType::orders;
  r.change.change_id = id;
  r.change.record_id = id;
  r.change.data = {{"total", 1}};
  return r;
}

ChangeRequest user_with_pin(const std::string& id) {
  ChangeRequest r;
  r.change.data_type = DataType::users;
  r.change.change_id = id;
  r.change.record_id = id;
  r.change.data = {{"name", "Anna"}, {"pin", "1234"}};
  return r;
}

class OrderedIntakeTest : public ::testing::Test {
 protected:
  std::optional<OrderedIntake::HashJob> push(ChangeRequest r) {
    return intake_.push(std::move(r), [this](OrderedIntake::Released&& x) { out_.push_back(x); });
  }
  void complete(std::uint64_t ticket, Result<json::object> hashed) {
    intake_.complete(ticket, std::move(hashed),
                     [this](OrderedIntake::Released&& x) { out_.push_back(x); });
  }
  std::vector<std::string> released_ids() const {
    std::vector<std::string> ids;
    for (const auto& r : out_) ids.push_back(r.request.change.change_id);
    return ids;
  }

  OrderedIntake intake_;
  std::vector<OrderedIntake::Released> out_;
};

TEST_F(OrderedIntakeTest, AChangeWithoutSecretsLeavesAtOnce) {
  EXPECT_FALSE(push(order("a")));
  EXPECT_FALSE(push(order("b")));
  EXPECT_EQ(released_ids(), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(intake_.waiting());
}

TEST_F(OrderedIntakeTest, ChangesBehindASecretWaitForItsHashAndKeepTheirOrder) {
  push(order("a"));
  auto job = push(user_with_pin("u"));
  ASSERT_TRUE(job);
  EXPECT_EQ(job->data.at("pin"), json::value("1234"));
  EXPECT_FALSE(push(order("b")));  // no hash of its own, but it waits
  EXPECT_EQ(released_ids(), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(intake_.waiting());

  complete(job->ticket, json::object{{"name", "Anna"}, {"pin", "hashed"}});
  EXPECT_EQ(released_ids(), (std::vector<std::string>{"a", "u", "b"}));
  EXPECT_EQ(out_[1].request.change.data.at("pin"), json::value("hashed"));
  EXPECT_FALSE(out_[1].error);
  EXPECT_FALSE(intake_.waiting());
}

TEST_F(OrderedIntakeTest, HashesCompletingOutOfOrderReleaseInArrivalOrder) {
  auto first = push(user_with_pin("u1"));
  auto second = push(user_with_pin("u2"));
  push(order("c"));
  ASSERT_TRUE(first && second);
  complete(second->ticket, json::object{{"pin", "h2"}});
  EXPECT_TRUE(out_.empty());  // u1 is still being hashed
  complete(first->ticket, json::object{{"pin", "h1"}});
  EXPECT_EQ(released_ids(), (std::vector<std::string>{"u1", "u2", "c"}));
  EXPECT_EQ(out_[0].request.change.data.at("pin"), json::value("h1"));
  EXPECT_EQ(out_[1].request.change.data.at("pin"), json::value("h2"));
}

TEST_F(OrderedIntakeTest, AFailedHashReleasesTheChangeWithItsErrorAndDoesNotBlockTheRest) {
  auto job = push(user_with_pin("u"));
  push(order("b"));
  ASSERT_TRUE(job);
  complete(job->ticket, Error{errc::kRateLimited, "busy"});
  ASSERT_EQ(released_ids(), (std::vector<std::string>{"u", "b"}));
  ASSERT_TRUE(out_[0].error);
  EXPECT_EQ(out_[0].error->code, errc::kRateLimited);
  EXPECT_FALSE(out_[1].error);
}

TEST_F(OrderedIntakeTest, AnUnknownOrRepeatedTicketChangesNothing) {
  auto job = push(user_with_pin("u"));
  ASSERT_TRUE(job);
  complete(job->ticket + 7, json::object{});
  EXPECT_TRUE(out_.empty());
  complete(job->ticket, json::object{{"pin", "h"}});
  complete(job->ticket, json::object{{"pin", "again"}});
  ASSERT_EQ(out_.size(), 1u);
  EXPECT_EQ(out_[0].request.change.data.at("pin"), json::value("h"));
}

}  // namespace
}  // namespace possync
