// DurableHorizon: how far a log read may go while commits are durable only after they return
// (SqliteStore syncs the WAL on a thread of its own).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "model/change.h"

namespace possync {

// How far a log read may go: for each restaurant with commits not yet durable, its last durable
// seq. The writer registers a commit before its COMMIT (so a reader whose snapshot sees the commit
// finds it here) and the syncer drops it once durable. Readers need not wait: a catch-up simply
// stops at the horizon and gets the rest live, once published. (SqliteStore waits in one case: a
// read that saw a commit prune the log past the horizon.)
class DurableHorizon {
 public:
  // Commit `commit` is about to make `outcomes` visible (called before its COMMIT).
  void committing(std::uint64_t commit, std::span<const Outcome> outcomes);
  // Every commit up to `commit` is durable.
  void durable(std::uint64_t commit);
  // The commit was rolled back: its seqs will be assigned again by later commits.
  void abandoned(std::uint64_t commit);
  // The highest seq of `restaurant` a read may return; nullopt when all of it is durable.
  std::optional<std::uint64_t> limit(std::string_view restaurant) const;

 private:
  struct Commit {
    std::uint64_t commit;
    std::uint64_t last_seq;  // the restaurant's last seq in that commit
  };
  struct Pending {
    std::uint64_t durable_seq = 0;  // every seq up to this one is durable
    std::deque<Commit> commits;     // the restaurant's commits not yet durable, in order
  };
  struct Hash : std::hash<std::string_view> {
    using is_transparent = void;
  };
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Pending, Hash, std::equal_to<>> pending_;
};

}  // namespace possync
