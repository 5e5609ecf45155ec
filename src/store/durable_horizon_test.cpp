#include "store/durable_horizon.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace possync {
namespace {

Outcome applied(std::string restaurant, std::uint64_t seq) {
  Outcome o;
  o.status = OutcomeStatus::applied;
  o.seq = seq;
  auto entry = std::make_shared<LogEntry>();
  entry->seq = seq;
  entry->change.restaurant_id = std::move(restaurant);
  o.entry = std::move(entry);
  return o;
}

TEST(DurableHorizon, NothingPendingMeansNoLimit) {
  DurableHorizon h;
  EXPECT_EQ(h.limit("r1"), std::nullopt);
}

TEST(DurableHorizon, ReadsStopBeforeTheFirstCommitNotYetDurable) {
  DurableHorizon h;
  std::vector<Outcome> first{applied("r1", 5), applied("r1", 6), applied("r2", 1)};
  h.committing(1, first);
  std::vector<Outcome> second{applied("r1", 7)};
  h.committing(2, second);
  EXPECT_EQ(h.limit("r1"), 4u);
  EXPECT_EQ(h.limit("r2"), 0u);
  EXPECT_EQ(h.limit("r3"), std::nullopt);
  // The first commit is durable, the second not yet: r1 may be read up to 6.
  h.durable(1);
  EXPECT_EQ(h.limit("r1"), 6u);
  EXPECT_EQ(h.limit("r2"), std::nullopt);
  h.durable(2);
  EXPECT_EQ(h.limit("r1"), std::nullopt);
}

TEST(DurableHorizon, DuplicatesAndRejectionsAreNotLimits) {
  DurableHorizon h;
  std::vector<Outcome> outcomes(2);
  outcomes[0].status = OutcomeStatus::duplicate;
  outcomes[0].seq = 3;
  outcomes[1].status = OutcomeStatus::rejected;
  h.committing(1, outcomes);
  EXPECT_EQ(h.limit("r1"), std::nullopt);
}

TEST(DurableHorizon, ARolledBackCommitLeavesNoPhantomSeqs) {
  DurableHorizon h;
  std::vector<Outcome> failed{applied("r1", 5), applied("r1", 6)};
  h.committing(1, failed);
  h.abandoned(1);
  EXPECT_EQ(h.limit("r1"), std::nullopt);
  // The same seqs again, committed by the next transaction; then one more commit, and one that
  // fails in between: the limit never passes what is durable.
  std::vector<Outcome> retry{applied("r1", 5)};
  h.committing(2, retry);
  std::vector<Outcome> lost{applied("r1", 6)};
  h.committing(3, lost);
  h.abandoned(3);
  std::vector<Outcome> next{applied("r1", 6)};
  h.committing(4, next);
  EXPECT_EQ(h.limit("r1"), 4u);
  h.durable(3);
  EXPECT_EQ(h.limit("r1"), 5u);
  h.durable(4);
  EXPECT_EQ(h.limit("r1"), std::nullopt);
}

}  // namespace
}  // namespace possync
