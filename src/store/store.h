// Store: the durable log and materialized state of every restaurant.
//
// Contract
// - `commit` applies a batch of change requests in one atomic transaction. When it returns a value,
//   the batch is applied, and it is durable (every applied change, its log entry, change id and
//   record, survives a crash or power loss) once a `when_durable` callback requested after that
//   return has run; when it returns an Error, nothing of the batch was stored and every request in
//   it may be retried. Outcomes are returned one per request, in order.
// - Reads never return what is not yet durable: a commit becomes visible to them once durable, at
//   the latest when its when_durable callbacks run.
// - Seqs are per restaurant, 1, 2, 3, ... without gaps, assigned in request order, never reused.
//   An applied request may commit changes of the server right after its own (Outcome::follow_ups,
//   e.g. a stock alert); they take the seqs that follow.
// - Change ids are unique per restaurant for as long as their log entry is retained.
// - Reads see only committed data and a consistent snapshot of one restaurant.
//
// With PostgresStore several processes commit to the same restaurants: seqs stay gapless and
// change ids unique across all of them. A commit whose outcome is unknown (the connection broke
// during COMMIT) returns an Error although it may have been stored; a retry is then answered
// `duplicate`, so retrying is always safe.
//
// Thread-safety: `commit` is called by one thread at a time (the commit pipeline's writer). Reads
// and `when_durable` may be called from any number of threads concurrently with each other and
// with `commit`. So may the legacy-device calls, reads and writes alike.
//
// Legacy devices (--auth mixed, docs/security.md): the store also keeps which devices of a
// restaurant are admitted without a token, from which networks, with which role. It keeps the
// texts the transport validated; it does not interpret them. A write is durable when it returns
// and visible to every later read, on every node of a shared store; with a shared store every
// node's legacy-device feed (open_legacy_device_feed) is told which restaurant changed.
//
// Implementations: MemoryStore (throwaway runs, tests), SqliteStore (embedded default),
// PostgresStore (shared by the nodes of a cluster; commits from several processes). The rules
// for applying a change live in one place, apply_batch() in store/apply.h; a backend provides only
// the transaction primitives it needs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "model/change.h"
#include "store/change_feed.h"

namespace possync {

// The position of a restaurant's log: the last seq assigned and the seq up to which history was
// pruned (entries with seq <= pruned_seq are gone). `exists` is false for a restaurant never
// written.
struct LogHead {
  bool exists = false;
  std::uint64_t seq = 0;
  std::uint64_t pruned_seq = 0;
};

struct LogPage {
  LogHead head;
  std::vector<LogEntry> entries;  // seq > after, ascending, at most `limit`
};

// A restaurant's state: every live record of every data type, and the seq it reflects.
struct Snapshot {
  LogHead head;
  std::array<std::vector<boost::json::object>, kDataTypes.size()> records;  // by DataType
};

class RestaurantRules;  // store/restaurant_rules.h
// A device admitted without a token (--auth mixed), as enrolled by an operator.
struct LegacyDevice {
  std::string restaurant_id;
  std::string device_id;
  std::vector<std::string> networks;  // CIDR texts; empty: from any address
  std::string role;                   // "pos", "kds" or "manager"
  std::int64_t enrolled_at_ms = 0;
  bool operator==(const LegacyDevice&) const = default;
};

struct CommitOptions {
  std::int64_t now_ms = 0;           // commit time stamped on entries and records
  std::uint64_t retain_changes = 0;  // keep at least this many recent entries; 0 keeps everything
  // The order life cycle to enforce (store/apply.h); null: RestaurantRules::defaults().
  const RestaurantRules* rules = nullptr;
  // The requests are log entries applied again, in seq order (verifying a store): applied as they
  // were committed, so no restaurant rule refuses them and an adjustment takes the stock it
  // logged and commits no alerts (they are entries of the log themselves).
  bool replay = false;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                              const CommitOptions& options) = 0;

  virtual Result<LogPage> read_log(std::string_view restaurant, std::uint64_t after_seq,
                                   std::size_t limit) = 0;
  virtual Result<Snapshot> snapshot(std::string_view restaurant) = 0;
  virtual Result<LogHead> head(std::string_view restaurant) = 0;
  // Calls `done` once every commit that returned before this call is durable, after the callbacks
  // requested before it. SqliteStore syncs on a thread of its own while the writer goes on with
  // the next commit, and calls `done` there; stores whose commit is durable when it returns call
  // it at once.
  virtual void when_durable(std::function<void()> done) { done(); }

  // Whether commit() works in memory only and never waits for I/O (MemoryStore): the commit
  // pipeline then commits on the submitting thread instead of handing over to a writer thread.
  virtual bool commits_in_memory() const { return false; }
  // Whether the store can be reached now (for readiness checks); by default a read.
  virtual Result<void> ping() {
    auto h = head("");
    if (!h) return h.error();
    return {};
  }

  // For a store shared by several server processes (a cluster): a feed of every process's commits
  // (store/change_feed.h), opened on its own connection. Null for single-process stores.
  virtual std::unique_ptr<ChangeFeed> open_change_feed() { return nullptr; }

  // ---- legacy devices ----
  // Enrols `device` (replacing the enrolment of the same restaurant and device, enrolled_at
  // included); true if it was not enrolled before.
  virtual Result<bool> put_legacy_device(const LegacyDevice& device) {
    (void)device;
    return no_legacy_devices();
  }
  // Removes an enrolment; false if there was none.
  virtual Result<bool> remove_legacy_device(std::string_view restaurant, std::string_view device) {
    (void)restaurant;
    (void)device;
    return no_legacy_devices();
  }
  // One restaurant's legacy devices, by device id.
  virtual Result<std::vector<LegacyDevice>> legacy_devices(std::string_view restaurant) {
    (void)restaurant;
    return no_legacy_devices();
  }
  // Every restaurant's, by restaurant and device id.
  virtual Result<std::vector<LegacyDevice>> all_legacy_devices() { return no_legacy_devices(); }
  // For a shared store: a feed (store/change_feed.h) whose notices name a restaurant whose legacy
  // devices changed (seqs 0), on its own connection. Null for single-process stores.
  virtual std::unique_ptr<ChangeFeed> open_legacy_device_feed() { return nullptr; }

  // For logs: "memory", "sqlite:/path/db", "postgresql://host/db".
  virtual std::string describe() const = 0;

 protected:
  // What a store without legacy devices (a test's) answers.
  static Error no_legacy_devices() {
    return Error{errc::kStoreUnavailable, "this store keeps no legacy devices"};
  }
};

}  // namespace possync
