// Broker: the fan-out of a node in a cluster, where several server processes commit to the same
// restaurants through one shared Store (PostgresStore) and each must deliver every committed
// change of a restaurant to its own devices exactly once, in seq order (docs/scaling.md).
//
// - This node's commits (the commit pipeline's hook, publish_local) are published at once when
//   they continue what the restaurant's room has published. If another node committed seqs in
//   between that this node has not published yet, there is a gap: the restaurant is caught up
//   from the log instead (read_log from the room's published seq, in order, never twice).
// - Other nodes' commits arrive as notices on the Store's ChangeFeed (restaurant and seq range);
//   a notice for a restaurant with a room here and seqs beyond its published seq is caught up
//   from the log the same way. A notice for seqs already published (this node's own commits)
//   costs nothing.
// - When the feed reconnects (notices may have been lost), every room is caught up.
// - A new room starts at the restaurant's head (Hub::set_room_start), so it publishes only what
//   is committed after it was created; the restaurant is then caught up once (Hub::
//   set_on_room_created), so that a commit between that read and the room's creation, whose
//   notice found no room, is not left behind. A room created while the store was unreachable gets
//   its start at its first catch-up (at the latest when the feed reconnects).
//
// Publishing is serialized per Broker (one mutex), so the Hub sees one restaurant's changes in
// order. Catch-up reads run on the broker's own thread, never on the commit pipeline's writer.
//
// Thread-safety: publish_local() from the commit pipeline's writer thread; stop() from any thread.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <thread>

#include "model/change.h"
#include "store/change_feed.h"
#include "store/store.h"
#include "sync/backpressure.h"
#include "sync/hub.h"

namespace possync {

class Broker {
 public:
  struct Options {
    std::size_t page = 500;  // entries per catch-up read
    // Optional: while it is closed, other nodes' changes wait in the log (read later, in order)
    // instead of adding to this node's fan-out backlog.
    Backpressure* backpressure = nullptr;
  };
  // Starts the broker's thread; sets `hub`'s room start (a read of the store's head).
  Broker(Store& store, Hub& hub, std::unique_ptr<ChangeFeed> feed, Options options);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // The commit pipeline's hook: this node's outcomes of one commit, in seq order. Deliveries are
  // handed to the loops before it returns (under the broker's lock, like its catch-ups', so that
  // the loops receive one restaurant's changes in seq order).
  void publish_local(std::span<const Outcome> outcomes);

  // Stops the thread. Idempotent.
  void stop();

 private:
  void run();
  void mark(const std::string& restaurant);
  void mark_all();
  // Reads the restaurant's log from its room's published seq to the end and publishes it; false
  // if the store could not be read (the restaurant stays marked and is tried again).
  bool catch_up(const std::string& restaurant);

  Store& store_;
  Hub& hub_;
  std::unique_ptr<ChangeFeed> feed_;
  Options options_;

  std::mutex publish_mutex_;  // one publisher at a time

  std::mutex mutex_;  // guards the fields below
  std::set<std::string> marked_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace possync
