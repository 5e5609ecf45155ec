// OrderedIntake: the changes of one WebSocket connection (or one POST /api/sync request) on their
// way to the commit pipeline, kept in the order they came while some of them have their user
// secrets hashed off the loop (auth/secret_hasher.h).
//
// A change without secrets and with nothing waiting before it leaves at once. A change with
// secrets gets a ticket and waits for its hash; so does every change after it, until everything
// before it has left. complete() brings a hash result back; the changes that may then leave come
// out in arrival order, each ready (its data hashed) or with the hasher's error.
//
// The class only keeps the order: the owner starts the hashing (SecretHasher::hash) and brings
// each result back to its own thread before calling complete(). No sockets, no threads; nothing
// is allocated while no change waits.
//
// Thread-safety: none; one owner thread.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "common/error.h"
#include "model/change.h"

namespace possync {

class OrderedIntake {
 public:
  // A change that may go on: to the pipeline, or (error set) back to its sender as rejected.
  struct Released {
    ChangeRequest request;
    std::optional<Error> error;
  };
  // A change whose secrets must be hashed: hash `data`, then call complete(ticket, result).
  struct HashJob {
    std::uint64_t ticket;
    boost::json::object data;
  };

  // Takes the next change and calls `go(Released&&)` for every change that may leave now, in
  // order. Returns the hash job if `request` has secrets.
  template <class Go>
  std::optional<HashJob> push(ChangeRequest request, Go&& go) {
    const bool hash = needs_hashing(request.change);
    if (!hash && held_.empty()) {
      go(Released{std::move(request), std::nullopt});
      return std::nullopt;
    }
    const std::uint64_t ticket = next_ticket_++;
    std::optional<HashJob> job;
    if (hash) job = HashJob{ticket, request.change.data};
    held_.push_back({ticket, std::move(request), !hash, std::nullopt});
    return job;
  }

  // The hash of the change with `ticket`: its data with the secrets hashed, or the hasher's
  // error. Calls `go(Released&&)` for every change that may leave now, in order.
  template <class Go>
  void complete(std::uint64_t ticket, Result<boost::json::object> hashed, Go&& go) {
    settle(ticket, std::move(hashed));
    while (!held_.empty() && held_.front().ready) {
      Held h = std::move(held_.front());
      held_.erase(held_.begin());
      go(Released{std::move(h.request), std::move(h.error)});
    }
    if (held_.empty()) std::vector<Held>().swap(held_);  // an idle connection holds nothing
  }

  // Whether changes are waiting.
  bool waiting() const { return !held_.empty(); }

 private:
  struct Held {
    std::uint64_t ticket = 0;
    ChangeRequest request;
    bool ready = false;
    std::optional<Error> error;
  };
  static bool needs_hashing(const Change& change);
  void settle(std::uint64_t ticket, Result<boost::json::object> hashed);

  std::vector<Held> held_;  // few at a time: the front leaves first
  std::uint64_t next_ticket_ = 0;
};

}  // namespace possync
