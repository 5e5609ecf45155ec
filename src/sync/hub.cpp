#include "sync/hub.h"

#include <algorithm>
#include <unordered_map>

namespace possync {

bool Room::go_live(std::uint64_t cursor, const std::function<void()>& mark_live) {
  std::lock_guard lock(mutex_);
  if (published_seq_ > cursor) return false;
  if (!start_known_) {
    // A room made while the store could not be read (set_room_start): the catch-up has just read
    // the log up to `cursor`, so the room starts there. Left unknown, it would later start at the
    // head as it is then, and what was committed between the two would never reach this device.
    published_seq_ = cursor;
    start_known_ = true;
  }
  mark_live();
  return true;
}

std::uint64_t Room::published_seq() const {
  std::lock_guard lock(mutex_);
  return published_seq_;
}

Hub::Hub(Renderer render_live_change, Loops* loops, Backpressure* backpressure)
    : render_(std::move(render_live_change)), loops_(loops), backpressure_(backpressure) {}

Hub::Membership Hub::join(const std::string& restaurant, std::shared_ptr<Subscriber> s) {
  std::optional<std::uint64_t> start;
  bool asked = false;
  std::unique_lock lock(mutex_);
  // The room's start is read outside the lock; if the room went away meanwhile, ask again.
  while (room_start_ && !asked && !rooms_.contains(restaurant)) {
    lock.unlock();
    start = room_start_(restaurant);
    asked = true;
    lock.lock();
  }
  auto& room = rooms_[restaurant];
  const bool created = !room;
  if (created) {
    room = std::make_shared<Room>();
    room->published_seq_ = start.value_or(0);
    room->start_known_ = !asked || start.has_value();
  }
  Membership m{room, 0};
  {
    std::lock_guard room_lock(room->mutex_);
    room->subscribers_.push_back(std::move(s));
    room->retarget(loop_count());
    m.published_seq = room->published_seq_;
  }
  ++connections_;
  lock.unlock();
  if (created && on_room_created_) on_room_created_(restaurant);
  return m;
}

void Hub::leave(const std::string& restaurant, const Subscriber* s) {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  if (it == rooms_.end()) return;
  // Held past room_lock: erasing the room below may drop the last other reference to it.
  const std::shared_ptr<Room> held = it->second;
  Room& room = *held;
  std::lock_guard room_lock(room.mutex_);
  auto& subs = room.subscribers_;
  auto found = std::find_if(subs.begin(), subs.end(), [&](const auto& p) { return p.get() == s; });
  if (found == subs.end()) return;
  subs.erase(found);
  room.retarget(loop_count());
  --connections_;
  if (subs.empty()) rooms_.erase(it);
}

std::shared_ptr<const Room::Targets> Room::advance(std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  published_seq_ = std::max(published_seq_, seq);
  return targets_;
}

void Room::retarget(std::size_t loop_count) {
  auto targets = std::make_shared<Targets>(loop_count);
  for (const auto& s : subscribers_) (*targets)[s->loop() % loop_count].push_back(s);
  targets_ = std::move(targets);
}

void Hub::add_delivery(DeliveryBatch& batch, const Outcome& outcome) const {
  for_each_entry(outcome, [&](const LogEntry& entry) {
    batch.push_back({entry.seq, outcome.received_at, entry.change.device_id, render_(entry)});
  });
}

std::shared_ptr<Room> Hub::find_room(std::string_view restaurant) const {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  return it == rooms_.end() ? nullptr : it->second;
}

void Hub::deliver(std::shared_ptr<const DeliveryBatch> batch,
                  std::shared_ptr<const Room::Targets> targets, LoopTasks& tasks) const {
  if (!targets) return;
  std::size_t bytes = 0;
  for (const Delivery& d : *batch) bytes += d.payload.size();
  for (std::size_t loop = 0; loop < targets->size(); ++loop) {
    const std::size_t count = (*targets)[loop].size();
    if (count == 0) continue;
    // Tasks are copyable (std::function): the move-only charge is shared.
    std::shared_ptr<Backpressure::Charge> charge;
    if (backpressure_)
      charge = std::make_shared<Backpressure::Charge>(*backpressure_, bytes * count);
    tasks.add(loop, [batch, targets, loop, charge = std::move(charge)] {
      for (const auto& s : (*targets)[loop]) s->deliver(batch);
    });
  }
}

void Hub::publish(std::span<const Outcome> outcomes, LoopTasks* tasks) {
  // One batch per restaurant with a room, in order of first appearance; each in seq order (a
  // commit assigns a restaurant's seqs in ascending order).
  struct Group {
    std::shared_ptr<Room> room;
    std::shared_ptr<DeliveryBatch> batch;
  };
  std::vector<Group> groups;
  std::unordered_map<std::string_view, std::size_t> group_of;  // restaurant -> group, or kNoRoom
  constexpr std::size_t kNoRoom = static_cast<std::size_t>(-1);
  for (const auto& outcome : outcomes) {
    if (outcome.status != OutcomeStatus::applied || !outcome.entry) continue;
    const std::string& restaurant = outcome.entry->change.restaurant_id;
    auto [it, added] = group_of.try_emplace(restaurant, kNoRoom);
    if (added) {
      if (auto room = find_room(restaurant)) {
        it->second = groups.size();
        groups.push_back({std::move(room), std::make_shared<DeliveryBatch>()});
      }
    }
    if (it->second == kNoRoom) continue;
    add_delivery(*groups[it->second].batch, outcome);
  }
  std::optional<LoopTasks> own;
  if (!tasks) tasks = &own.emplace(loops_);
  for (auto& group : groups) {
    const auto targets = group.room->advance(group.batch->back().seq);
    deliver(std::move(group.batch), targets, *tasks);
  }
}

std::optional<std::uint64_t> Hub::publish_in_order(std::string_view restaurant,
                                                   std::span<const Outcome> outcomes,
                                                   std::uint64_t lost_up_to, LoopTasks* tasks) {
  auto room = find_room(restaurant);
  if (!room) return std::nullopt;
  std::uint64_t published = 0;
  {
    std::lock_guard room_lock(room->mutex_);
    if (!room->start_known_) return room->published_seq_;
    published = std::max(room->published_seq_, lost_up_to);
  }
  auto batch = std::make_shared<DeliveryBatch>();
  bool gap = false;
  for (const auto& outcome : outcomes) {
    for_each_entry(outcome, [&](const LogEntry& entry) {
      if (gap || entry.seq <= published) return;
      if (entry.seq != published + 1) {
        gap = true;
        return;
      }
      batch->push_back({entry.seq, outcome.received_at, entry.change.device_id, render_(entry)});
      published = entry.seq;
    });
    if (gap) break;
  }
  const auto targets = room->advance(published);
  if (!batch->empty()) {
    std::optional<LoopTasks> own;
    if (!tasks) tasks = &own.emplace(loops_);
    deliver(std::move(batch), targets, *tasks);
  }
  return published;
}

std::optional<std::uint64_t> Hub::published_seq(std::string_view restaurant) const {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  if (it == rooms_.end()) return std::nullopt;
  return it->second->published_seq();
}

bool Hub::needs_start(std::string_view restaurant) const {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  if (it == rooms_.end()) return false;
  std::lock_guard room_lock(it->second->mutex_);
  return !it->second->start_known_;
}

void Hub::resolve_start(std::string_view restaurant, std::uint64_t seq) {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  if (it == rooms_.end()) return;
  std::lock_guard room_lock(it->second->mutex_);
  if (it->second->start_known_) return;
  it->second->published_seq_ = std::max(it->second->published_seq_, seq);
  it->second->start_known_ = true;
}

std::size_t Hub::restaurant_count() const {
  std::lock_guard lock(mutex_);
  return rooms_.size();
}

std::size_t Hub::connection_count() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

bool Hub::has_room(const std::string& restaurant) const {
  std::lock_guard lock(mutex_);
  return rooms_.contains(restaurant);
}

std::vector<std::pair<std::string, std::size_t>> Hub::rooms() const {
  std::vector<std::pair<std::string, std::size_t>> out;
  std::lock_guard lock(mutex_);
  out.reserve(rooms_.size());
  for (const auto& [id, room] : rooms_) {
    std::lock_guard room_lock(room->mutex_);
    out.emplace_back(id, room->subscribers_.size());
  }
  return out;
}

std::vector<std::shared_ptr<Subscriber>> Hub::subscribers(std::string_view restaurant) const {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  if (it == rooms_.end()) return {};
  std::lock_guard room_lock(it->second->mutex_);
  return it->second->subscribers_;
}

std::vector<DeviceStatus> Hub::devices(const std::string& restaurant) const {
  const auto subs = subscribers(restaurant);
  std::vector<DeviceStatus> out;
  out.reserve(subs.size());
  for (const auto& s : subs) out.push_back(s->status());
  return out;
}

void Hub::notify_device(const std::string& restaurant, std::string_view device_id,
                        const std::shared_ptr<const std::string>& payload) const {
  for (const auto& s : subscribers(restaurant)) {
    if (s->status().device_id == device_id) s->notify(payload);
  }
}

std::vector<std::shared_ptr<Subscriber>> Hub::all_subscribers() const {
  std::vector<std::shared_ptr<Subscriber>> out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, room] : rooms_) {
    std::lock_guard room_lock(room->mutex_);
    out.insert(out.end(), room->subscribers_.begin(), room->subscribers_.end());
  }
  return out;
}

void Hub::clear() {
  std::lock_guard lock(mutex_);
  for (auto& [name, room] : rooms_) {
    std::lock_guard room_lock(room->mutex_);
    room->subscribers_.clear();
    room->targets_.reset();
  }
  rooms_.clear();
  connections_ = 0;
}

}  // namespace possync
