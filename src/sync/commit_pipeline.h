// CommitPipeline: the single writer of the Store, with group commit.
//
// Any thread submits change requests; one writer thread takes everything queued (up to
// `max_batch`) and commits it as one Store transaction. Once the store reports the transaction
// durable (Store::when_durable: at once for most stores; SqliteStore syncs on a thread of its own
// while the writer commits the next batch), the outcomes go to the `on_committed` hook (fan-out)
// in seq order, then each request's completion runs (acks, REST responses). Nothing is
// acknowledged or forwarded before its transaction is durable.
//
// Thread-safety: submit() and stop() may be called from any thread. Hooks and completions run one
// batch at a time, in commit order, on the writer thread or the store's sync thread, and must not
// block (post work to the owner's executor instead).
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

namespace possync {

class CommitPipeline {
 public:
  using Completion = std::function<void(const Outcome&)>;
  using CommittedHook = std::function<void(std::span<const Outcome>)>;

  struct Options {
    std::size_t max_batch = 1024;
    std::uint64_t retain_changes = 0;
    Metrics* metrics = nullptr;  // optional
    // Optional: counts every queued change until its completion has run.
    Backpressure* backpressure = nullptr;
  };

  CommitPipeline(Store& store, Options options, CommittedHook on_committed);
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Queues one request. Returns false (and does not call `done`) once stop_intake() or stop()
  // has been called.
  bool submit(ChangeRequest request, Completion done);

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
    std::function<void()> barrier;  // set for a flush() marker, which carries no request
  };
  void run();
  void commit_batch(std::vector<Pending>& batch);
  // Metrics, the on_committed hook, completions and back-pressure accounting of one durable batch.
  void publish(std::chrono::steady_clock::time_point started, bool failed,
               std::span<const Outcome> outcomes, std::span<const Completion> completions);

  Store& store_;
  Options options_;
  CommittedHook on_committed_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  bool intake_closed_ = false;
  std::thread writer_;
};

}  // namespace possync
