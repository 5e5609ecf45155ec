// IoLoops: the server's I/O threads, one event loop (io_context) each. A connection is given to
// one loop when it is accepted and lives on that loop's thread alone, so its handlers need no
// strand and no lock, and work posted from the loop's own thread costs no wake-up. Other threads
// (the commit pipeline's writer, the broker) hand work to a loop with Loops::post: one hand-over
// for everything a published batch brings to that loop. A post from the loop's own thread (the
// memory store commits there) joins the turn's end-of-turn work when nothing from other threads
// waits before it.
//
// Each loop also offers what its connections share:
// - a receive buffer: a connection reads into it when its socket is readable and keeps only the
//   bytes of an unfinished frame, so an idle connection holds no buffer;
// - end-of-turn work (defer): runs once the handlers already queued on the loop have run, e.g. the
//   changes read in one turn go to the writer together;
// - end-of-turn writes (write_at_turn_end): the connections that got something to send write it
//   after every end-of-turn task has run, so that all a connection got in one turn (deliveries of
//   several commits, an ack) leaves in one system call.
//
// Thread-safety: post() and current() from any thread; context(), buffer(), defer() and
// write_at_turn_end() only on the loop's own thread (context() also before run()).
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <thread>
#include <vector>

#include "sync/loops.h"

namespace possync {

class IoLoops final : public Loops {
 public:
  explicit IoLoops(std::size_t count);
  // Tasks and writes that never ran are destroyed unrun, before any loop's io_context.
  ~IoLoops() override;
  IoLoops(const IoLoops&) = delete;
  IoLoops& operator=(const IoLoops&) = delete;

  std::size_t count() const override { return loops_.size(); }
  void post(std::size_t loop, std::vector<Task> tasks) override;
  std::optional<std::size_t> current() const override;

  boost::asio::io_context& context(std::size_t loop) { return loops_[loop]->ioc; }
  // The loop a new connection goes to (round robin).
  std::size_t pick();
  // The loop where the WebSocket connections of `restaurant` live: all of them on one loop, so a
  // commit of the restaurant reaches its devices without crossing a thread (with the memory
  // store not at all: read, commit and fan-out run to completion on that loop).
  std::size_t home(std::string_view restaurant) const;
  // The calling loop's receive buffer.
  std::span<char> buffer(std::size_t loop) { return loops_[loop]->buffer; }
  // Runs `task` on `loop` (the calling thread's own) at the end of the current turn.
  void defer(std::size_t loop, Task task);

  // A connection with something to write (a list entry costs no allocation, unlike a Task).
  class Writer {
   public:
    virtual void write_now() = 0;

   protected:
    ~Writer() = default;
  };
  // Calls `writer->write_now()` on `loop` (the calling thread's own) once the end-of-turn tasks,
  // including those they add, have run.
  void write_at_turn_end(std::size_t loop, std::shared_ptr<Writer> writer);

  // Runs loop 0 on the calling thread and every other loop on a thread of its own (named
  // possync-io) until stop(); returns once all have stopped.
  void run();
  // Stops every loop (pending handlers, tasks and writes are not run). Thread-safe.
  void stop();

 private:
  struct Loop {
    Loop() : ioc(1), work(boost::asio::make_work_guard(ioc)) {}
    boost::asio::io_context ioc;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
    std::vector<char> buffer = std::vector<char>(64 * 1024);
    std::vector<Task> deferred;
    std::vector<Task> running;  // the deferred tasks being run
    std::vector<std::shared_ptr<Writer>> writers;
    std::vector<std::shared_ptr<Writer>> writing;  // the writers being run
    bool turn_end_posted = false;
    // Tasks posted from any thread, run in the order they were posted (io_context alone would
    // let a loop's posts to itself overtake other threads' earlier ones).
    std::mutex inbox_mutex;
    std::vector<Task> inbox;
    bool inbox_posted = false;
    // The loop's own posts joined its end-of-turn work: that run takes over the inbox when done.
    bool inbox_held = false;
  };
  void run_deferred(Loop& loop);
  void post_turn_end(Loop& loop);
  void run_inbox(Loop& loop);

  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace possync
