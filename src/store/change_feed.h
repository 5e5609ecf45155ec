// ChangeFeed: tells one node that some node of a cluster sharing its Store committed changes.
//
// Contract
// - Each notice names a restaurant and the seqs [first_seq, last_seq] one transaction committed;
//   notices arrive in commit order, after the commit is visible to reads, including the node's
//   own commits.
// - Notices can be lost while the feed is disconnected from the database; the first wait() after
//   it (re)connects reports `resync`: everything may have been missed, read the log.
// - A notice with an empty restaurant means "any restaurant may have changed" (its id was too long
//   for a notification).
// - The feed of legacy-device changes (Store::open_legacy_device_feed) has the same contract; its
//   notices name a restaurant whose enrolments changed, with seqs 0.
//
// Thread-safety: wait() is called by one thread at a time; interrupt() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace possync {

struct CommitNotice {
  std::string restaurant;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
};

struct FeedEvents {
  bool resync = false;
  std::vector<CommitNotice> notices;
};

class ChangeFeed {
 public:
  virtual ~ChangeFeed() = default;
  // Waits up to `timeout` (less if interrupted) and returns what arrived meanwhile. Never throws;
  // while the database is unreachable it keeps trying to reconnect.
  virtual FeedEvents wait(std::chrono::milliseconds timeout) = 0;
  // Makes the current or next wait() return at once.
  virtual void interrupt() = 0;
};

}  // namespace possync
