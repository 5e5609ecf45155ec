// LegacyDevices: with `--auth mixed`, this node's view of the devices enrolled to call without a
// token (auth/legacy_enrolment.h; docs/security.md, "Legacy devices"), and the admission of
// tokenless requests and connections against it.
//
// Enrolments live in the Store, shared by every node of a cluster. Each node keeps all of them
// in memory (a replica, not a cache: it holds everything, so a lookup never reads the store and
// callers that are not enrolled cost no store read at all). How the replica stays true:
// - open() reads every enrolment (and fails if it cannot: the server does not start);
// - the admin API, once it has written an enrolment, calls refresh(restaurant) before it answers:
//   the change is in effect on this node when the operator gets the answer;
// - with a shared store (PostgreSQL) each write also sends a notice on the store's legacy-device
//   feed; this class's thread (`possync-legacy`) waits on it and refreshes the restaurant named.
//   So another node's change is in effect here as soon as its notice arrives (milliseconds, like
//   a change's fan-out across nodes). When the feed (re)connects, notices may have been missed:
//   everything is read again, and in any case once a minute;
// - refreshes run one at a time, each reading the store after the previous one finished. A read
//   sees every write committed before it began, so a later refresh never installs less than an
//   earlier one, and every write is followed, on every node, by a refresh that began after it:
//   the replica never goes back to an older state and always ends at the newest;
// - a refresh of one restaurant (its enrolments just changed) that cannot read the store drops
//   the restaurant from the replica: fail closed, its tokenless devices are refused and closed
//   until a refresh succeeds. A full refresh that cannot read the store keeps what is installed
//   (nothing says it changed; while the store is unreachable nobody can change it). With a feed,
//   a failed refresh is tried again every second until it succeeds.
//
// After a refresh, this node's tokenless connections that the replica no longer admits (device
// removed, role changed, address outside the new networks) are closed with 4002. A connection
// whose upgrade was admitted just before the refresh and joined the hub just after its scan is
// caught by recheck(), which the upgrade calls once the session has joined.
//
// Refused tokenless callers are counted (Metrics::legacy_refused_*) and logged at most once per
// client address and minute (a KeyedLimiter: bounded memory).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>

#include "auth/authenticator.h"
#include "auth/legacy_enrolment.h"
#include "auth/rate_limit.h"
#include "common/metrics.h"
#include "store/store.h"
#include "sync/hub.h"

namespace possync {

// Who a tokenless caller says it is, and where it calls from.
struct LegacyClaim {
  std::string_view restaurant;
  std::string_view device;
  std::string_view address;  // the client address (transport: HttpSession::client_address)
};

class LegacyDevices {
 public:
  // Reads every enrolment from `store`; starts the feed thread if the store has a legacy-device
  // feed (a shared store). `store`, `hub` and `metrics` outlive the object.
  static Result<std::unique_ptr<LegacyDevices>> open(Store& store, Hub& hub, Metrics& metrics);
  ~LegacyDevices();
  LegacyDevices(const LegacyDevices&) = delete;
  LegacyDevices& operator=(const LegacyDevices&) = delete;

  // The principal of a tokenless caller, or the 401 (auth/legacy_enrolment.h) if the replica
  // does not admit it (counted and logged).
  Result<Principal> admit(const LegacyClaim& claim);
  // Whether the replica still admits `p` (a legacy principal) as it is: same role, same address.
  bool recheck(const Principal& p) const;

  // Reads `restaurant`'s enrolments, installs them and closes this node's tokenless connections
  // of it that they no longer admit; returns how many it closed.
  Result<std::size_t> refresh(const std::string& restaurant);
  // The same for every restaurant.
  Result<std::size_t> refresh_all();

  // How many devices are enrolled (for the startup log).
  std::size_t size() const;

  // Stops the feed thread. Idempotent.
  void stop();

 private:
  using Devices = std::map<std::string, LegacyEnrolment, std::less<>>;  // by device id
  using Restaurants = std::map<std::string, Devices, std::less<>>;

  LegacyDevices(Store& store, Hub& hub, Metrics& metrics);
  void run();
  // Installs (under the refresh lock) and closes what the replica no longer admits.
  std::size_t install(const std::string& restaurant, Devices devices);
  std::size_t close_revoked(const std::string& restaurant);
  // `wake`: called from another thread than the feed thread, which is woken up.
  Result<std::size_t> refresh(const std::string& restaurant, bool wake);
  Result<std::size_t> refresh_all(bool wake);
  // Has the feed thread refresh `restaurant` ("": everything) again, at once if `wake`, else
  // after a second.
  void retry_later(const std::string& restaurant, bool wake);
  // Whether the replica admits a tokenless device `device` of `restaurant` from `address` with
  // `role` (under mutex_, shared).
  bool admits(std::string_view restaurant, std::string_view device, std::string_view address,
              Role role) const;
  void log_refusal(const LegacyClaim& claim, LegacyRefusal reason);

  Store& store_;
  Hub& hub_;
  Metrics& metrics_;

  std::mutex refresh_mutex_;  // one refresh at a time (see the top of this file)

  mutable std::shared_mutex mutex_;  // guards replica_
  Restaurants replica_;

  KeyedLimiter log_limit_;  // one log line per address and minute

  std::unique_ptr<ChangeFeed> feed_;  // null: a single-process store
  std::mutex thread_mutex_;           // guards the fields below
  bool stopping_ = false;
  std::set<std::string> failed_;  // restaurants whose last refresh failed ("" : all)
  std::thread thread_;
};

// The caller of a request or connection: its token's principal (Authenticator::authenticate,
// also with --auth mixed), or, with --auth mixed and no token, the enrolled legacy device `claim`
// names (`legacy`: set exactly when the mode is mixed).
Result<Principal> authenticate_caller(const Authenticator& auth, LegacyDevices* legacy,
                                      std::string_view token, const LegacyClaim& claim,
                                      std::int64_t now_s);

}  // namespace possync
