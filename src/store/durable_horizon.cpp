#include "store/durable_horizon.h"

#include <iterator>

namespace possync {

void DurableHorizon::committing(std::uint64_t commit, std::span<const Outcome> outcomes) {
  std::lock_guard lock(mutex_);
  for (const auto& o : outcomes) {
    if (o.status != OutcomeStatus::applied || !o.entry) continue;
    auto [it, added] = pending_.try_emplace(o.entry->change.restaurant_id);
    Pending& p = it->second;
    if (added) p.durable_seq = o.seq - 1;
    if (p.commits.empty() || p.commits.back().commit != commit) {
      p.commits.push_back({commit, last_seq(o)});
    } else {
      p.commits.back().last_seq = last_seq(o);
    }
  }
}

void DurableHorizon::durable(std::uint64_t commit) {
  std::lock_guard lock(mutex_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    Pending& p = it->second;
    while (!p.commits.empty() && p.commits.front().commit <= commit) {
      p.durable_seq = p.commits.front().last_seq;
      p.commits.pop_front();
    }
    it = p.commits.empty() ? pending_.erase(it) : std::next(it);
  }
}

void DurableHorizon::abandoned(std::uint64_t commit) {
  std::lock_guard lock(mutex_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    std::erase_if(it->second.commits, [&](const Commit& c) { return c.commit == commit; });
    it = it->second.commits.empty() ? pending_.erase(it) : std::next(it);
  }
}

std::optional<std::uint64_t> DurableHorizon::limit(std::string_view restaurant) const {
  std::lock_guard lock(mutex_);
  auto it = pending_.find(restaurant);
  if (it == pending_.end()) return std::nullopt;
  return it->second.durable_seq;
}

}  // namespace possync
