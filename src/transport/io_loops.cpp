#include "transport/io_loops.h"

#include <boost/asio/post.hpp>

#include "common/thread_name.h"

namespace net = boost::asio;

namespace possync {
namespace {
// The loop the calling thread runs, if any, and the IoLoops it belongs to.
struct ThreadLoop {
  const IoLoops* owner = nullptr;
  std::size_t index = 0;
};
thread_local ThreadLoop t_loop;
}  // namespace

IoLoops::IoLoops(std::size_t count) {
  loops_.reserve(std::max<std::size_t>(1, count));
  for (std::size_t i = 0; i < std::max<std::size_t>(1, count); ++i) {
    loops_.push_back(std::make_unique<Loop>());
  }
}

IoLoops::~IoLoops() {
  // Work that never ran (posted after stop(), or cut off by it) may hold connections of any loop:
  // a task's delivery targets span loops. Drop it everywhere while every io_context still exists,
  // so a connection it kept alive closes its socket against a live loop; again if dropping it
  // posted more.
  for (bool dropped = true; dropped;) {
    dropped = false;
    for (auto& l : loops_) {
      std::vector<Task> tasks, deferred, running;
      std::vector<std::shared_ptr<Writer>> writers, writing;
      {
        std::lock_guard lock(l->inbox_mutex);
        tasks.swap(l->inbox);
      }
      deferred.swap(l->deferred);
      running.swap(l->running);
      writers.swap(l->writers);
      writing.swap(l->writing);
      dropped = dropped || !tasks.empty() || !deferred.empty() || !running.empty() ||
                !writers.empty() || !writing.empty();
    }
  }
}

void IoLoops::post(std::size_t loop, std::vector<Task> tasks) {
  Loop& l = *loops_.at(loop);
  // Nothing to run: no hand-over (an empty one would hold the inbox, or wake the loop, for
  // nothing and let a later post overtake an earlier one).
  if (tasks.empty()) return;
  bool wake = false;
  {
    std::lock_guard lock(l.inbox_mutex);
    if (current() == loop && l.inbox.empty()) {
      // From the loop's own thread with nothing from other threads waiting: the tasks join this
      // turn's end-of-turn work instead of a handler of their own (each handler a loop runs
      // costs it a poll of its sockets, an epoll_wait; with the memory store one change used to
      // take three). What other threads post from now on waits in the inbox until that work has
      // run: the end-of-turn run takes it over (asio would run their handler first, as this
      // thread's own posts join its queue only when the current handler returns).
      l.inbox_held = true;
      for (auto& task : tasks) defer(loop, std::move(task));
      return;
    }
    if (l.inbox.empty()) {
      l.inbox = std::move(tasks);
    } else {
      l.inbox.insert(l.inbox.end(), std::make_move_iterator(tasks.begin()),
                     std::make_move_iterator(tasks.end()));
    }
    wake = !l.inbox_held && !std::exchange(l.inbox_posted, true);
  }
  if (wake) net::post(l.ioc, [this, &l] { run_inbox(l); });
}

void IoLoops::run_inbox(Loop& loop) {
  std::vector<Task> tasks;
  {
    std::lock_guard lock(loop.inbox_mutex);
    tasks.swap(loop.inbox);
    loop.inbox_posted = false;
  }
  for (const auto& task : tasks) task();
}

std::optional<std::size_t> IoLoops::current() const {
  if (t_loop.owner != this) return std::nullopt;
  return t_loop.index;
}

std::size_t IoLoops::pick() {
  return next_.fetch_add(1, std::memory_order_relaxed) % loops_.size();
}

std::size_t IoLoops::home(std::string_view restaurant) const {
  return std::hash<std::string_view>{}(restaurant) % loops_.size();
}

void IoLoops::defer(std::size_t loop, Task task) {
  Loop& l = *loops_[loop];
  l.deferred.push_back(std::move(task));
  post_turn_end(l);
}

void IoLoops::write_at_turn_end(std::size_t loop, std::shared_ptr<Writer> writer) {
  Loop& l = *loops_[loop];
  l.writers.push_back(std::move(writer));
  post_turn_end(l);
}

void IoLoops::post_turn_end(Loop& loop) {
  if (loop.turn_end_posted) return;
  loop.turn_end_posted = true;
  // Queued behind the handlers already waiting on this loop: they run first.
  net::post(loop.ioc, [this, &loop] { run_deferred(loop); });
}

void IoLoops::run_deferred(Loop& loop) {
  // Tasks may defer more (a flush that submits, a commit that delivers) and writes may too (a
  // write that completes at once goes on with a catch-up): run those as well. Lists are swapped
  // with spare ones, so both keep their capacity from turn to turn.
  for (;;) {
    while (!loop.deferred.empty() || !loop.writers.empty()) {
      while (!loop.deferred.empty()) {
        loop.deferred.swap(loop.running);
        for (auto& task : loop.running) task();
        loop.running.clear();
      }
      loop.writers.swap(loop.writing);
      for (auto& writer : loop.writing) writer->write_now();
      loop.writing.clear();
    }
    // What other threads posted while this turn held the inbox (post()), in their order.
    std::vector<Task> held;
    {
      std::lock_guard lock(loop.inbox_mutex);
      if (!loop.inbox_held) break;
      loop.inbox_held = false;
      held.swap(loop.inbox);
    }
    for (const auto& task : held) task();
  }
  loop.turn_end_posted = false;
}

void IoLoops::run() {
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < loops_.size(); ++i) {
    threads.push_back(start_named_thread("possync-io", [this, i] {
      t_loop = {this, i};
      loops_[i]->ioc.run();
    }));
  }
  t_loop = {this, 0};
  loops_[0]->ioc.run();
  t_loop = {};
  for (auto& t : threads) t.join();
}

void IoLoops::stop() {
  for (auto& l : loops_) l->ioc.stop();
}

}  // namespace possync
