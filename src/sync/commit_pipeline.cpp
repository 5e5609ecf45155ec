#include "sync/commit_pipeline.h"
#include "common/log.h"
#include "common/thread_name.h"

#include <future>

#include "common/time.h"

namespace possync {

CommitPipeline::CommitPipeline(Store& store, Options options, CommittedHook on_committed)
    : store_(store), options_(options), on_committed_(std::move(on_committed)) {
  if (!options_.commit_on_caller) {
    writer_ = start_named_thread("possync-writer", [this] { run(); });
  }
}

CommitPipeline::~CommitPipeline() {
  stop();
}

bool CommitPipeline::submit(ChangeRequest request, Completion done, std::size_t loop) {
  std::vector<Submission> one;
  one.push_back({std::move(request), std::move(done), loop});
  return submit(one);
}

bool CommitPipeline::submit(std::vector<Submission>& batch, bool counted) {
  if (batch.empty()) return true;
  const std::size_t n = batch.size();
  // Counted before the writer can see them: they may be committed (and uncounted) at once.
  if (options_.backpressure && !counted) options_.backpressure->changes_queued(n);
  auto refuse = [&] {
    if (options_.backpressure) options_.backpressure->changes_done(n);
    return false;
  };
  if (options_.commit_on_caller) {
    std::lock_guard commit_lock(caller_commit_mutex_);
    {
      std::lock_guard lock(mutex_);
      if (stopping_ || intake_closed_) return refuse();
    }
    std::vector<Pending> pending;
    pending.reserve(n);
    for (auto& s : batch) pending.push_back({std::move(s.request), std::move(s.done), s.loop, {}});
    batch.clear();
    for (std::size_t at = 0; at < pending.size(); at += options_.max_batch) {
      commit_batch(
          std::span(pending).subspan(at, std::min(options_.max_batch, pending.size() - at)));
    }
    return true;
  }
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || intake_closed_) return refuse();
    for (auto& s : batch) queue_.push_back({std::move(s.request), std::move(s.done), s.loop, {}});
  }
  batch.clear();
  cv_.notify_one();
  return true;
}

void CommitPipeline::flush(std::function<void()> done) {
  if (options_.commit_on_caller) {
    // Every submit() before this call has committed once the lock is free.
    std::lock_guard commit_lock(caller_commit_mutex_);
    store_.when_durable(std::move(done));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back({{}, {}, 0, std::move(done)});
      done = nullptr;
    }
  }
  cv_.notify_one();
  if (done) done();
}

void CommitPipeline::stop_intake() {
  std::lock_guard lock(mutex_);
  intake_closed_ = true;
}

void CommitPipeline::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (options_.commit_on_caller) {
    std::lock_guard commit_lock(caller_commit_mutex_);  // a commit under way ends first
  }
  if (writer_.joinable()) {
    writer_.join();
    // Wait until what the writer committed is published: its callbacks refer to this pipeline.
    std::promise<void> published;
    store_.when_durable([&] { published.set_value(); });
    published.get_future().wait();
  }
}

void CommitPipeline::run() {
  std::vector<Pending> batch;
  for (;;) {
    std::function<void()> barrier;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      batch.clear();
      // A batch ends before a flush() marker; the marker runs once the batch is done.
      while (!queue_.empty() && batch.size() < options_.max_batch && !queue_.front().barrier) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (batch.empty()) {
        barrier = std::move(queue_.front().barrier);
        queue_.pop_front();
      }
    }
    if (!batch.empty()) commit_batch(batch);
    if (barrier) store_.when_durable(std::move(barrier));
  }
}

void CommitPipeline::commit_batch(std::span<Pending> batch) {
  std::vector<ChangeRequest> requests;
  requests.reserve(batch.size());
  for (auto& p : batch) requests.push_back(std::move(p.request));

  const auto started = std::chrono::steady_clock::now();
  auto result = store_.commit(requests, {now_ms(), options_.retain_changes, options_.rules});
  std::vector<Outcome> outcomes;
  if (result) {
    outcomes = std::move(*result);
  } else {
    slog::error("commit failed", {{"changes", requests.size()},
                                  {"code", result.error().code},
                                  {"error", result.error().message}});
    outcomes.resize(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      outcomes[i].change_id = requests[i].change.change_id;
      outcomes[i].error = {errc::kStoreUnavailable, "the change could not be stored; retry later"};
    }
  }
  for (std::size_t i = 0; i < requests.size(); ++i) {
    outcomes[i].received_at = requests[i].received_at;
  }
  std::vector<Done> completions;
  completions.reserve(batch.size());
  for (auto& p : batch) completions.push_back({std::move(p.done), p.loop});
  // Published once durable; meanwhile this thread commits the next batch.
  store_.when_durable([this, started, failed = !result,
                       outcomes = std::make_shared<const std::vector<Outcome>>(std::move(outcomes)),
                       completions = std::move(completions)]() mutable {
    publish(started, failed, std::move(outcomes), std::move(completions));
  });
}

void CommitPipeline::publish(std::chrono::steady_clock::time_point started, bool failed,
                             std::shared_ptr<const std::vector<Outcome>> shared,
                             std::vector<Done> completions) {
  const std::vector<Outcome>& outcomes = *shared;
  if (Metrics* m = options_.metrics) {
    m->commit_seconds.observe(Metrics::seconds_since(started));
    m->commit_batch_size.observe(static_cast<double>(outcomes.size()));
    if (failed) m->commit_failures.fetch_add(1, std::memory_order_relaxed);
    for (const auto& o : outcomes) {
      if (o.status == OutcomeStatus::applied) m->changes_committed.fetch_add(1);
      if (o.status == OutcomeStatus::duplicate) m->duplicates_suppressed.fetch_add(1);
      if (o.status == OutcomeStatus::rejected) m->count_error(o.error.code);
      if (o.error.code == errc::kConflict) m->conflicts.fetch_add(1);
    }
  }
  LoopTasks tasks(options_.loops);
  if (on_committed_) on_committed_(outcomes, tasks);
  // The completions of each loop in one task, after that loop's deliveries of this batch.
  const std::size_t loop_count = options_.loops ? options_.loops->count() : 1;
  std::vector<std::vector<std::pair<Completion, std::size_t>>> by_loop(loop_count);
  for (std::size_t i = 0; i < completions.size(); ++i) {
    if (!completions[i].done) continue;
    by_loop[options_.loops ? completions[i].loop : 0].emplace_back(std::move(completions[i].done),
                                                                   i);
  }
  for (std::size_t loop = 0; loop < loop_count; ++loop) {
    if (by_loop[loop].empty()) continue;
    tasks.add(loop, [shared, calls = std::move(by_loop[loop])] {
      for (const auto& [done, index] : calls) done((*shared)[index]);
    });
  }
  tasks.post_all();
  if (options_.backpressure) options_.backpressure->changes_done(outcomes.size());
}

}  // namespace possync
