// CommitPipeline: the single writer of the Store, with group commit.
//
// Any thread submits change requests; one writer thread takes everything queued (up to
// `max_batch`) and commits it as one Store transaction. Once the store reports the transaction
// durable (Store::when_durable: at once for most stores; SqliteStore syncs on a thread of its own
// while the writer commits the next batch), the outcomes go to the `on_committed` hook (fan-out)
// in seq order, then each request's completion runs (acks, REST responses). Nothing is
// acknowledged or forwarded before its transaction is durable.
//
// Completions go to the loop (sync/loops.h) each request came from: the hook and the completions
// of one batch add their work to one LoopTasks, handed over with one wake-up per loop. A store
// that commits in memory (Options::commit_on_caller) needs no writer thread: the submitting
// thread commits under the pipeline's lock and publishes at once (run to completion).
//
// Thread-safety: submit() and stop() may be called from any thread. The hook runs one batch at a
// time, in commit order, on the writer thread (or, commit_on_caller, the
// submitting thread, and must not block; completions run on their loops (without Loops: where the
// hook runs).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <thread>

#include "common/metrics.h"
#include "model/change.h"
#include "store/store.h"
#include "sync/backpressure.h"
#include "sync/loops.h"

namespace possync {

class CommitPipeline {
 public:
  using Completion = std::function<void(const Outcome&)>;
  // Publishes one durable batch; work for the loops joins `tasks`.
  using CommittedHook = std::function<void(std::span<const Outcome>, LoopTasks& tasks)>;

  struct Options {
    std::size_t max_batch = 1024;
    std::uint64_t retain_changes = 0;
    // The order life cycle the store enforces (CommitOptions::rules); null: the built-in one.
    const RestaurantRules* rules = nullptr;
    Metrics* metrics = nullptr;  // optional
    // Optional: counts every queued change until its completion has run.
    Backpressure* backpressure = nullptr;
    // Optional: where completions run (the loop given with each request).
    Loops* loops = nullptr;
    // The store commits in memory and never waits for I/O (MemoryStore): commit on the
    // submitting thread instead of a writer thread.
    bool commit_on_caller = false;
  };

  // A request, what to call with its outcome, and the loop to call it on.
  struct Submission {
    ChangeRequest request;
    Completion done;
    std::size_t loop = 0;
  };

  CommitPipeline(Store& store, Options options, CommittedHook on_committed);
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Queues one request. Returns false (and does not call `done`) once stop_intake() or stop()
  // has been called.
  bool submit(ChangeRequest request, Completion done, std::size_t loop = 0);
  // Queues several requests, in order, with one hand-over to the writer; `batch` is emptied.
  // Returns false (taking none of them, `batch` untouched) once stop_intake() or stop() has been
  // called.
  // `counted`: the caller has already counted them in Options::backpressure (changes_queued); the
  // pipeline takes that count over either way (uncounts them when it refuses them, as its own).
  bool submit(std::vector<Submission>& batch, bool counted = false);

  // Calls `done` (where completions run) once everything submitted before this call has been
  // committed and its completions have run (at once if the pipeline is stopping).
  void flush(std::function<void()> done);

  // From now on submit() returns false; what was queued before is still committed.
  void stop_intake();

  // Commits everything already queued, then joins the writer thread. Idempotent.
  void stop();

 private:
  struct Pending {
    ChangeRequest request;
    Completion done;
    std::size_t loop = 0;
    std::function<void()> barrier;  // set for a flush() marker, which carries no request
  };
  struct Done {
    Completion done;
    std::size_t loop = 0;
  };
  void run();
  void commit_batch(std::span<Pending> batch);
  // Metrics, the on_committed hook, completions and back-pressure accounting of one durable batch.
  void publish(std::chrono::steady_clock::time_point started, bool failed,
               std::shared_ptr<const std::vector<Outcome>> outcomes, std::vector<Done> completions);

  Store& store_;
  Options options_;
  CommittedHook on_committed_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  bool intake_closed_ = false;
  std::mutex caller_commit_mutex_;  // commit_on_caller: one committing thread at a time
  std::thread writer_;
};

}  // namespace possync
