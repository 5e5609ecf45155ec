#include "sync/broker.h"
#include "common/log.h"
#include "common/thread_name.h"

#include <map>
#include <vector>

namespace possync {
namespace {

constexpr auto kWait = std::chrono::milliseconds(250);

}  // namespace

Broker::Broker(Store& store, Hub& hub, std::unique_ptr<ChangeFeed> feed, Options options)
    : store_(store), hub_(hub), feed_(std::move(feed)), options_(options) {
  hub_.set_room_start([this](const std::string& restaurant) -> std::optional<std::uint64_t> {
    auto head = store_.head(restaurant);
    if (!head) {
      slog::warn("cannot read the head of a new room",
                 {{"restaurant", restaurant}, {"error", head.error().message}});
      return std::nullopt;
    }
    return head->seq;
  });
  hub_.set_on_room_created([this](const std::string& restaurant) {
    mark(restaurant);
    feed_->interrupt();
  });
  thread_ = start_named_thread("possync-broker", [this] { run(); });
}

Broker::~Broker() {
  stop();
}

void Broker::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  feed_->interrupt();
  if (thread_.joinable()) thread_.join();
}

void Broker::publish_local(std::span<const Outcome> outcomes) {
  // One commit's applied outcomes, by restaurant (each restaurant's in ascending seq order).
  std::map<std::string_view, std::vector<Outcome>> by_restaurant;
  for (const auto& o : outcomes) {
    if (o.status == OutcomeStatus::applied && o.entry) {
      by_restaurant[o.entry->change.restaurant_id].push_back(o);
    }
  }
  bool gap = false;
  {
    std::lock_guard lock(publish_mutex_);
    for (const auto& [restaurant, list] : by_restaurant) {
      const auto published = hub_.publish_in_order(restaurant, list);
      if (published && *published < last_seq(list.back())) {
        std::lock_guard marks(mutex_);
        marked_.emplace(restaurant);
        gap = true;
      }
    }
  }
  if (gap) feed_->interrupt();
}

void Broker::mark(const std::string& restaurant) {
  std::lock_guard lock(mutex_);
  marked_.insert(restaurant);
}

void Broker::mark_all() {
  for (auto& room : hub_.rooms()) mark(room.first);
}

void Broker::run() {
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
    }
    FeedEvents events = feed_->wait(kWait);
    if (events.resync) mark_all();
    for (const auto& n : events.notices) {
      if (n.restaurant.empty()) {
        mark_all();
        continue;
      }
      const auto published = hub_.published_seq(n.restaurant);
      if (published && *published < n.last_seq) mark(n.restaurant);
    }
    std::set<std::string> todo;
    {
      std::lock_guard lock(mutex_);
      todo.swap(marked_);
    }
    for (const auto& restaurant : todo) {
      if (!catch_up(restaurant)) mark(restaurant);
    }
  }
}

bool Broker::catch_up(const std::string& restaurant) {
  if (hub_.needs_start(restaurant)) {
    // The room was created while the store was unreachable: it starts at the head as it is now.
    auto head = store_.head(restaurant);
    if (!head) return false;
    hub_.resolve_start(restaurant, head->seq);
  }
  for (;;) {
    // Overloaded here: leave the rest in the log; the restaurant stays marked and is read later.
    if (options_.backpressure && !options_.backpressure->open()) return false;
    const auto published = hub_.published_seq(restaurant);
    if (!published) return true;  // no room (any more)
    auto page = store_.read_log(restaurant, *published, options_.page);
    if (!page) {
      slog::warn(
          "broker catch-up failed",
          {{"restaurant", restaurant}, {"seq", *published}, {"error", page.error().message}});
      return false;
    }
    const std::uint64_t lost = page->head.pruned_seq > *published ? page->head.pruned_seq : 0;
    if (lost > 0) {
      slog::error(
          "changes were pruned before this node published them; its devices here miss them "
          "(raise --retain-changes)",
          {{"restaurant", restaurant}, {"seq", *published}, {"pruned_seq", lost}});
    }
    std::vector<Outcome> outcomes;
    outcomes.reserve(page->entries.size());
    for (auto& e : page->entries) {
      Outcome o;
      o.status = OutcomeStatus::applied;
      o.change_id = e.change.change_id;
      o.seq = e.seq;
      o.entry = std::make_shared<const LogEntry>(std::move(e));
      outcomes.push_back(std::move(o));
    }
    std::optional<std::uint64_t> now_published;
    {
      std::lock_guard lock(publish_mutex_);
      now_published = hub_.publish_in_order(restaurant, outcomes, lost);
    }
    if (outcomes.size() < options_.page) return true;
    // A full page that moved nothing on (the room was made again meanwhile with no known start,
    // or it is gone): reading the same page again would spin; the restaurant stays marked and is
    // taken up from the start on the next pass.
    if (!now_published || *now_published <= *published) return false;
  }
}

}  // namespace possync
