// Hub: the rooms of connected devices, one per restaurant, and the fan-out of committed changes.
//
// A committed change is rendered once into an immutable payload shared by every subscriber of its
// restaurant's room (the session itself skips its own device's changes and anything it has already
// sent). The changes one commit makes to one restaurant reach each subscriber together, in seq
// order, as one DeliveryBatch. Rooms exist only while they have subscribers; a restaurant's data
// lives in the Store and is untouched when its last device leaves.
//
// Gap-free hand-over from catch-up to live: every Room remembers the highest seq it has published.
// A catching-up subscriber reads the Store until it has everything up to that seq, then calls
// Room::go_live() which, under the room's lock, checks that nothing newer was published meanwhile;
// everything published after that point reaches it live. Publishing happens where the commit
// pipeline publishes durable batches (its writer thread, or SqliteStore's sync thread), in seq
// order.
//
// Deliveries reach each subscriber on its own loop (sync/loops.h): a publish hands every loop one
// task per room for all of that room's subscribers there, so a commit costs one wake-up per loop,
// not one per connection. Without Loops (unit tests) subscribers are called on the publishing
// thread.
//
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/change.h"
#include "sync/backpressure.h"
#include "sync/loops.h"

namespace possync {

// One committed change, rendered once for all recipients.
struct Delivery {
  std::uint64_t seq = 0;
  std::chrono::steady_clock::time_point received_at{};
  std::string origin_device;
  std::string payload;
};

// The changes of one commit to one restaurant, ascending seqs, shared by all subscribers of its
// room. A recipient keeps a payload alive by sharing ownership of the whole batch (aliasing
// shared_ptr), so a commit costs one allocation per room, not one per change.
using DeliveryBatch = std::vector<Delivery>;

// What `status` reports of a connected device.
struct DeviceStatus {
  std::string device_id;
  std::string user_id;
  std::int64_t connected_at_ms = 0;
  std::int64_t last_seen_ms = 0;
  // The connection's client address (X-Forwarded-For when trusted) and its role's name (of its
  // token, or of its legacy enrolment; empty with --auth off).
  std::string address;
  std::string role;
  // --auth mixed: connected without a token as an enrolled legacy device.
  bool legacy = false;
  // A read-only connection (`?observe=1`: an operator watching), not one of the restaurant's
  // devices.
  bool observer = false;
};

// A connection that receives a restaurant's changes (implemented by WsSession).
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // The loop (sync/loops.h) the subscriber lives on; fixed for its life.
  virtual std::size_t loop() const { return 0; }
  // Called on the subscriber's loop (without Loops: on the publishing thread); must not block.
  // Batches of a room arrive in seq order.
  virtual void deliver(std::shared_ptr<const DeliveryBatch> batch) = 0;
  // Thread-safe snapshot of the connection's device, user and times.
  virtual DeviceStatus status() const = 0;
  // Thread-safe: close the connection with a WebSocket close code, after what is queued.
  virtual void disconnect(std::uint16_t code, std::string reason) = 0;
  // Close because the server is shutting down (1001: the device reconnects, maybe elsewhere).
  void shutdown() { disconnect(1001, "server shutting down"); }
  // Thread-safe: queue a payload that is not part of the seq-ordered stream.
  virtual void notify(std::shared_ptr<const std::string> payload) = 0;
};

class Room {
 public:
  // Calls `mark_live` under the room's lock and returns true if nothing with seq > `cursor` has
  // been published; otherwise returns false and the caller must read the Store further. A room
  // whose start was unknown starts at `cursor` (the caller has read the log up to it).
  bool go_live(std::uint64_t cursor, const std::function<void()>& mark_live);
  std::uint64_t published_seq() const;

 private:
  friend class Hub;
  // Under the lock: raises the published seq to `seq` and returns the subscribers to hand what
  // was published to.
  // The room's subscribers by loop (index: Subscriber::loop()), as of the last join or leave.
  // Immutable once made, so a publish holds it with one reference instead of copying the list.
  using Targets = std::vector<std::vector<std::shared_ptr<Subscriber>>>;
  std::shared_ptr<const Targets> advance(std::uint64_t seq);
  // Remakes targets_ from subscribers_ (under mutex_).
  void retarget(std::size_t loop_count);

  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  std::shared_ptr<const Targets> targets_;
  std::uint64_t published_seq_ = 0;
  bool start_known_ = true;  // false: the room start could not be read (Hub::set_room_start)
};

class Hub {
 public:
  using Renderer = std::function<std::string(const LogEntry&)>;
  // `loops`: where subscribers live (null: call them on the publishing thread). `backpressure`
  // (optional): every delivery holds a Charge of its bytes until its loop has handed it over.
  explicit Hub(Renderer render_live_change, Loops* loops = nullptr,
               Backpressure* backpressure = nullptr);

  // For a cluster (sync/broker.h): where a new room starts, i.e. the restaurant's last committed
  // seq, called (outside any lock) before a room is created; nullopt if it cannot be read (the room
  // then publishes nothing until resolve_start() gives it a start). Without it rooms start at 0,
  // which is right when this process is the only writer and publishes every commit as it happens.
  // Set before the first join().
  using RoomStart = std::function<std::optional<std::uint64_t>(const std::string& restaurant)>;
  void set_room_start(RoomStart room_start) { room_start_ = std::move(room_start); }
  // For a cluster: called (outside any lock) after a room was created by join(). Set before the
  // first join().
  void set_on_room_created(std::function<void(const std::string& restaurant)> hook) {
    on_room_created_ = std::move(hook);
  }

  // The room joined and the highest seq it had published at that moment: everything published
  // later reaches the subscriber.
  struct Membership {
    std::shared_ptr<Room> room;
    std::uint64_t published_seq = 0;
  };
  Membership join(const std::string& restaurant, std::shared_ptr<Subscriber> s);
  void leave(const std::string& restaurant, const Subscriber* s);

  // Fans out the applied outcomes of one commit (called by the commit pipeline, in seq order).
  // The deliveries join `tasks` if given (handed over by its owner), else go out at once.
  void publish(std::span<const Outcome> outcomes, LoopTasks* tasks = nullptr);

  // For a cluster (sync/broker.h), where commits of other processes interleave: publishes the
  // applied outcomes of one restaurant (ascending seqs) only where they continue what its room has
  // published: those at or below the room's published seq are skipped, and publishing stops before
  // the first one that would leave a gap (a room without a start publishes nothing). Returns the
  // room's published seq afterwards, nullopt if
  // the restaurant has no room. Callers serialize their calls per restaurant. `lost_up_to`: seqs up
  // to it can no longer be read (pruned) and count as published.
  std::optional<std::uint64_t> publish_in_order(std::string_view restaurant,
                                                std::span<const Outcome> outcomes,
                                                std::uint64_t lost_up_to = 0,
                                                LoopTasks* tasks = nullptr);
  // The room's published seq, nullopt if the restaurant has no room.
  std::optional<std::uint64_t> published_seq(std::string_view restaurant) const;
  // Whether the restaurant's room has no start yet (its RoomStart could not be read).
  bool needs_start(std::string_view restaurant) const;
  // Gives such a room its start: from now on it publishes the seqs after `seq`.
  void resolve_start(std::string_view restaurant, std::uint64_t seq);

  std::size_t restaurant_count() const;
  std::size_t connection_count() const;
  bool has_room(const std::string& restaurant) const;
  // Every room: restaurant id and its number of connections (for the admin surface).
  std::vector<std::pair<std::string, std::size_t>> rooms() const;
  // The connections of one restaurant.
  std::vector<std::shared_ptr<Subscriber>> subscribers(std::string_view restaurant) const;
  std::vector<DeviceStatus> devices(const std::string& restaurant) const;
  // Queues `payload` to every connection of one device of a restaurant (outside the seq stream).
  void notify_device(const std::string& restaurant, std::string_view device_id,
                     const std::shared_ptr<const std::string>& payload) const;
  // Every current subscriber (for shutdown).
  std::vector<std::shared_ptr<Subscriber>> all_subscribers() const;
  // Drops every room and subscriber (at exit, after the I/O threads stopped).
  void clear();

 private:
  // Appends the rendered delivery of an applied outcome.
  void add_delivery(DeliveryBatch& batch, const Outcome& outcome) const;
  // Hands `batch` to `targets`: one task per loop.
  void deliver(std::shared_ptr<const DeliveryBatch> batch,
               std::shared_ptr<const Room::Targets> targets, LoopTasks& tasks) const;
  std::size_t loop_count() const { return loops_ ? loops_->count() : 1; }
  // The room of a restaurant, null if it has none.
  std::shared_ptr<Room> find_room(std::string_view restaurant) const;

  Renderer render_;
  Loops* loops_;
  Backpressure* backpressure_;
  RoomStart room_start_;
  std::function<void(const std::string&)> on_room_created_;
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Room>, std::less<>> rooms_;
  std::size_t connections_ = 0;
};

}  // namespace possync
