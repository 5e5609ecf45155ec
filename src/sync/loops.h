// Loops: the server's event-loop threads as the sync layer sees them, and LoopTasks, the way work
// for them is handed over: gathered per loop while a batch is published, then one hand-over (one
// wake-up) per loop, however many sessions and changes the batch concerns.
//
// Every connection belongs to one loop for its whole life and is only touched on that loop's
// thread (transport/io_loops.h implements this interface with one io_context per thread).
//
// Thread-safety: Loops methods may be called from any thread. A LoopTasks is used by one thread.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

namespace possync {

class Loops {
 public:
  using Task = std::function<void()>;
  virtual ~Loops() = default;
  virtual std::size_t count() const = 0;
  // Runs `tasks` in order on loop `loop`'s thread, after what that loop is doing now (also when
  // called from that thread). One hand-over, whatever the number of tasks.
  virtual void post(std::size_t loop, std::vector<Task> tasks) = 0;
  // The loop whose thread calls this, if any.
  virtual std::optional<std::size_t> current() const = 0;
};

// Tasks gathered per loop and handed over together. Without Loops (unit tests of the sync layer),
// post_all() runs every task at once on the calling thread.
class LoopTasks {
 public:
  explicit LoopTasks(Loops* loops) : loops_(loops) {
    if (loops_) per_loop_.resize(loops_->count());
  }
  LoopTasks(const LoopTasks&) = delete;
  LoopTasks& operator=(const LoopTasks&) = delete;
  ~LoopTasks() { post_all(); }

  void add(std::size_t loop, Loops::Task task) {
    if (!loops_) {
      inline_.push_back(std::move(task));
      return;
    }
    per_loop_.at(loop).push_back(std::move(task));
  }

  // Hands every loop its tasks (idempotent: what is posted is gone).
  void post_all() {
    for (auto& task : inline_) task();
    inline_.clear();
    for (std::size_t i = 0; i < per_loop_.size(); ++i) {
      if (!per_loop_[i].empty()) loops_->post(i, std::exchange(per_loop_[i], {}));
    }
  }

 private:
  Loops* loops_;
  std::vector<std::vector<Loops::Task>> per_loop_;
  std::vector<Loops::Task> inline_;
};

}  // namespace possync
