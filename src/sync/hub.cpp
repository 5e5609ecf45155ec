#include "sync/hub.h"

#include <algorithm>

namespace possync {

bool Room::go_live(std::uint64_t cursor, const std::function<void()>& mark_live) {
  std::lock_guard lock(mutex_);
  if (published_seq_ > cursor) return false;
  mark_live();
  return true;
}

std::uint64_t Room::published_seq() const {
  std::lock_guard lock(mutex_);
  return published_seq_;
}

Hub::Hub(Renderer render_live_change) : render_(std::move(render_live_change)) {}

Hub::Membership Hub::join(const std::string& restaurant, std::shared_ptr<Subscriber> s) {
  std::lock_guard lock(mutex_);
  auto& room = rooms_[restaurant];
  if (!room) room = std::make_shared<Room>();
  Membership m{room, 0};
  {
    std::lock_guard room_lock(room->mutex_);
    room->subscribers_.push_back(std::move(s));
    m.published_seq = room->published_seq_;
  }
  ++connections_;
  return m;
}

void Hub::leave(const std::string& restaurant, const Subscriber* s) {
  std::lock_guard lock(mutex_);
  auto it = rooms_.find(restaurant);
  if (it == rooms_.end()) return;
  auto& room = *it->second;
  std::lock_guard room_lock(room.mutex_);
  auto& subs = room.subscribers_;
  auto found = std::find_if(subs.begin(), subs.end(), [&](const auto& p) { return p.get() == s; });
  if (found == subs.end()) return;
  subs.erase(found);
  --connections_;
  if (subs.empty()) rooms_.erase(it);
}

void Hub::publish(std::span<const Outcome> outcomes) {
  for (const auto& outcome : outcomes) {
    if (outcome.status != OutcomeStatus::applied || !outcome.entry) continue;
    const LogEntry& entry = *outcome.entry;
    std::shared_ptr<Room> room;
    {
      std::lock_guard lock(mutex_);
      auto it = rooms_.find(entry.change.restaurant_id);
      if (it == rooms_.end()) continue;
      room = it->second;
    }
    auto delivery = std::make_shared<Delivery>();
    delivery->seq = entry.seq;
    delivery->received_at = outcome.received_at;
    delivery->origin_device = entry.change.device_id;
    delivery->payload = std::make_shared<const std::string>(render_(entry));
    std::vector<std::shared_ptr<Subscriber>> targets;
    {
      std::lock_guard room_lock(room->mutex_);
      room->published_seq_ = std::max(room->published_seq_, entry.seq);
      targets = room->subscribers_;
    }
    for (auto& t : targets) t->deliver(delivery);
  }
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
  }
  rooms_.clear();
  connections_ = 0;
}

}  // namespace possync
