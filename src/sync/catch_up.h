// A connection's place in its restaurant's log, and the gap-free hand-over from catching up to
// live (sync/hub.h explains the room's side).
//
// A device that connects or resumes with `since` first reads the Store page by page from there;
// meanwhile the room's live deliveries pass it by (the Store has them). Once a page ends at the
// room's last published seq, Room::go_live() switches it to live under the room's lock, and from
// then on every delivery reaches it. Nothing is sent twice: a seq at or below the highest already
// sent is dropped, and a catch-up started on a live connection (a `resume` message) skips the run
// of seqs it already delivered live.
//
// Knows nothing of sockets or of the wire: what a catch-up produces goes to a Sink (the WebSocket
// session renders and queues it). Not thread-safe: one connection's loop uses it; Room::go_live
// calls back into it under the room's lock, on that same thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/error.h"
#include "store/store.h"
#include "sync/hub.h"

namespace possync {

class CatchUp {
 public:
  // Where a catch-up's output goes.
  class Sink {
   public:
    virtual ~Sink() = default;
    // Whether more may be queued now (false: the catch-up waits for the next pump()).
    virtual bool has_room() const = 0;
    // A change read from the log, in seq order.
    virtual void entry(const LogEntry& e) = 0;
    // `since` is outside the log (pruned, or ahead of it): the device must reload its snapshot.
    virtual void reset_required(std::uint64_t head_seq, std::string_view reason) = 0;
    // Everything up to `seq` was sent; the connection is live.
    virtual void caught_up(std::uint64_t seq) = 0;
  };

  // The connection joined its room when the room had published up to `published_seq`: a device
  // that does not catch up starts there.
  void joined(std::uint64_t published_seq) { last_sent_ = published_seq; }

  bool live() const { return !catching_up_; }

  // Starts catching up after `since` (pump() does the reading).
  void start(std::uint64_t since);

  // Reads pages of at most `page_size` entries from the Store while `sink` has room, and goes live
  // once the room has published nothing newer than what was read. An error when the Store cannot
  // be read (the connection should be closed; the device reconnects with `since`).
  std::optional<Error> pump(Store& store, std::string_view restaurant, std::size_t page_size,
                            Room& room, Sink& sink);

  // A live delivery of `seq`: whether it is new to this connection (and is now counted as sent).
  // False while catching up. Inline: it runs for every delivery.
  bool take_live(std::uint64_t seq) {
    if (catching_up_ || seq <= last_sent_) return false;
    last_sent_ = seq;
    if (first_live_ == 0) first_live_ = seq;
    return true;
  }

  // The highest seq sent on this connection.
  std::uint64_t last_sent() const { return last_sent_; }

 private:
  bool catching_up_ = false;
  bool first_page_ = false;                    // the next page is the catch-up's first
  std::uint64_t last_sent_ = 0;                // highest seq sent on this connection
  std::uint64_t first_live_ = 0;               // first seq delivered live (0: none yet)
  std::uint64_t cursor_ = 0;                   // catch-up position in the log
  std::uint64_t skip_from_ = 0, skip_to_ = 0;  // [from, to]: already delivered live
};

}  // namespace possync
