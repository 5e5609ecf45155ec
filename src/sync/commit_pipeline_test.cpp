#include "sync/commit_pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "store/memory_store.h"

namespace possync {
namespace {

using namespace std::chrono_literals;

ChangeRequest req(std::string restaurant, std::string change_id, std::string record_id = "o1") {
  ChangeRequest r;
  r.change.restaurant_id = std::move(restaurant);
  r.change.device_id = "dev";
  r.change.change_id = std::move(change_id);
  r.change.data_type = DataType::orders;
  r.change.action = "updated";
  r.change.record_id = std::move(record_id);
  r.change.data["n"] = 1;
  return r;
}

// Delegates to a MemoryStore, recording every commit call and optionally holding the first one
// until released (so that requests pile up in the pipeline's queue).
class GatedStore final : public Store {
 public:
  explicit GatedStore(bool hold_first) : held_(hold_first) {}

  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    {
      std::unique_lock lock(mutex_);
      batch_sizes_.push_back(batch.size());
      options_.push_back(options);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !held_; });
    }
    return inner_->commit(batch, options);
  }
  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    return inner_->read_log(r, after, limit);
  }
  Result<Snapshot> snapshot(std::string_view r) override { return inner_->snapshot(r); }
  Result<LogHead> head(std::string_view r) override { return inner_->head(r); }
  std::string describe() const override { return "gated"; }

  void wait_until_entered() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void release() {
    std::lock_guard lock(mutex_);
    held_ = false;
    cv_.notify_all();
  }
  std::vector<std::size_t> batch_sizes() {
    std::lock_guard lock(mutex_);
    return batch_sizes_;
  }
  std::vector<CommitOptions> options() {
    std::lock_guard lock(mutex_);
    return options_;
  }

 private:
  std::unique_ptr<Store> inner_ = make_memory_store();
  std::mutex mutex_;
  std::condition_variable cv_;
  bool held_;
  bool entered_ = false;
  std::vector<std::size_t> batch_sizes_;
  std::vector<CommitOptions> options_;
};

// Delegates to a MemoryStore but reports commits durable only when the test says so (like
// SqliteStore, whose sync thread runs the callbacks after the writer has moved on).
class LateDurabilityStore final : public Store {
 public:
  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    auto result = inner_->commit(batch, options);
    std::lock_guard lock(mutex_);
    committed_ += batch.size();
    cv_.notify_all();
    return result;
  }
  void when_durable(std::function<void()> done) override {
    std::lock_guard lock(mutex_);
    waiting_.push_back(std::move(done));
    cv_.notify_all();
  }
  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    return inner_->read_log(r, after, limit);
  }
  Result<Snapshot> snapshot(std::string_view r) override { return inner_->snapshot(r); }
  Result<LogHead> head(std::string_view r) override { return inner_->head(r); }
  std::string describe() const override { return "late-durability"; }

  void wait_committed(std::size_t changes) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return committed_ >= changes; });
  }
  void wait_callbacks(std::size_t n) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return waiting_.size() >= n; });
  }
  // Runs every callback requested so far, in order, on the calling thread.
  void make_durable() {
    std::vector<std::function<void()>> ready;
    {
      std::lock_guard lock(mutex_);
      ready.swap(waiting_);
    }
    for (auto& done : ready) done();
  }

 private:
  std::unique_ptr<Store> inner_ = make_memory_store();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t committed_ = 0;
  std::vector<std::function<void()>> waiting_;
};

// A Store whose every commit fails.
class FailingStore final : public Store {
 public:
  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest>,
                                      const CommitOptions&) override {
    ++commits;
    return Error{"io_error", "disk on fire"};
  }
  Result<LogPage> read_log(std::string_view, std::uint64_t, std::size_t) override {
    return LogPage{};
  }
  Result<Snapshot> snapshot(std::string_view) override { return Snapshot{}; }
  Result<LogHead> head(std::string_view) override { return LogHead{}; }
  std::string describe() const override { return "failing"; }
  std::atomic<int> commits{0};
};

// Collects what the pipeline reports. Hooks and completions run on the writer thread; the test
// thread reads after stop() has joined it, but a mutex keeps the accounting obviously safe.
struct Recorder {
  std::mutex mutex;
  std::vector<Outcome> hooked;  // every outcome handed to on_committed, in order
  std::set<std::string> hooked_ids;
  std::map<std::string, int> completions;  // change id -> calls
  std::map<std::string, Outcome> completed;
  std::vector<std::string> completed_before_hook;

  CommitPipeline::CommittedHook hook() {
    return [this](std::span<const Outcome> outcomes, LoopTasks&) {
      std::lock_guard lock(mutex);
      for (const auto& o : outcomes) {
        hooked.push_back(o);
        hooked_ids.insert(o.change_id);
      }
    };
  }
  CommitPipeline::Completion done() {
    return [this](const Outcome& o) {
      std::lock_guard lock(mutex);
      ++completions[o.change_id];
      completed[o.change_id] = o;
      if (!hooked_ids.contains(o.change_id)) completed_before_hook.push_back(o.change_id);
    };
  }
};

TEST(CommitPipeline, PublishesOnlyOnceDurableWhileTheWriterGoesOn) {
  LateDurabilityStore store;
  Recorder rec;
  CommitPipeline pipeline(store, {}, rec.hook());
  ASSERT_TRUE(pipeline.submit(req("r1", "c1"), rec.done()));
  store.wait_committed(1);
  ASSERT_TRUE(pipeline.submit(req("r1", "c2"), rec.done()));
  // The second change is committed although the first is not durable yet.
  store.wait_committed(2);
  bool flushed = false;
  pipeline.flush([&] { flushed = true; });
  store.wait_callbacks(3);  // two batches and the flush marker
  {
    std::lock_guard lock(rec.mutex);
    EXPECT_TRUE(rec.hooked.empty());
    EXPECT_TRUE(rec.completions.empty());
  }
  EXPECT_FALSE(flushed);
  store.make_durable();
  {
    std::lock_guard lock(rec.mutex);
    ASSERT_EQ(rec.hooked.size(), 2u);
    EXPECT_EQ(rec.hooked[0].seq, 1u);
    EXPECT_EQ(rec.hooked[1].seq, 2u);
    EXPECT_EQ(rec.completions["c1"], 1);
    EXPECT_EQ(rec.completions["c2"], 1);
    EXPECT_TRUE(rec.completed_before_hook.empty());
  }
  EXPECT_TRUE(flushed);

  // stop() returns only once what was committed has been published.
  ASSERT_TRUE(pipeline.submit(req("r1", "c3"), rec.done()));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    pipeline.stop();
    stopped = true;
  });
  store.wait_committed(3);
  store.wait_callbacks(2);  // c3's batch and stop()'s own marker
  EXPECT_FALSE(stopped);
  store.make_durable();
  stopper.join();
  std::lock_guard lock(rec.mutex);
  EXPECT_EQ(rec.completions["c3"], 1);
}

TEST(CommitPipeline, ConcurrentSubmitsCompleteOnceWithGaplessUniqueSeqs) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 250;
  const std::vector<std::string> restaurants = {"A", "B", "C"};
  auto store = make_memory_store();
  Recorder rec;
  CommitPipeline pipeline(*store, {.max_batch = 16, .retain_changes = 0}, rec.hook());

  std::atomic<int> rejected_submits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string& r = restaurants[static_cast<std::size_t>(i + t) % restaurants.size()];
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!pipeline.submit(req(r, id, "rec-" + std::to_string(i % 7)), rec.done())) {
          ++rejected_submits;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  pipeline.stop();

  EXPECT_EQ(rejected_submits.load(), 0);
  ASSERT_EQ(rec.completions.size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (const auto& [id, calls] : rec.completions) EXPECT_EQ(calls, 1) << id;

  std::map<std::string, std::vector<std::uint64_t>> seqs;
  for (const auto& [id, o] : rec.completed) {
    EXPECT_EQ(o.status, OutcomeStatus::applied) << id;
    ASSERT_NE(o.entry, nullptr) << id;
    seqs[o.entry->change.restaurant_id].push_back(o.seq);
  }
  std::size_t total = 0;
  for (const auto& r : restaurants) {
    auto& v = seqs[r];
    std::sort(v.begin(), v.end());
    total += v.size();
    for (std::size_t i = 0; i < v.size(); ++i) {
      ASSERT_EQ(v[i], i + 1) << "restaurant " << r << ": seqs not 1..N without gaps or repeats";
    }
    auto head = store->head(r);
    ASSERT_TRUE(head.has_value());
    EXPECT_EQ(head->seq, v.size());
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kThreads * kPerThread));
}

TEST(CommitPipeline, HookSeesAppliedOutcomesInSeqOrderBeforeCompletions) {
  auto store = make_memory_store();
  Recorder rec;
  CommitPipeline pipeline(*store, {.max_batch = 5, .retain_changes = 0}, rec.hook());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::string r = (i % 2 == 0) ? "A" : "B";
        pipeline.submit(req(r, "t" + std::to_string(t) + "-" + std::to_string(i)), rec.done());
        if (i % 10 == 0) {
          // A duplicate now and then: it reaches the hook but is not applied.
          pipeline.submit(req(r, "t" + std::to_string(t) + "-" + std::to_string(i)), rec.done());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  pipeline.stop();

  std::map<std::string, std::uint64_t> last_seq;
  std::size_t applied = 0;
  std::size_t duplicates = 0;
  for (const auto& o : rec.hooked) {
    if (o.status == OutcomeStatus::duplicate) ++duplicates;
    if (o.status != OutcomeStatus::applied) continue;
    ++applied;
    ASSERT_NE(o.entry, nullptr);
    const std::string& r = o.entry->change.restaurant_id;
    EXPECT_EQ(o.seq, last_seq[r] + 1) << "restaurant " << r << " out of order";
    last_seq[r] = o.seq;
  }
  EXPECT_EQ(applied, 400u);
  EXPECT_EQ(duplicates, 40u);
  EXPECT_EQ(last_seq["A"], 200u);
  EXPECT_EQ(last_seq["B"], 200u);
  EXPECT_TRUE(rec.completed_before_hook.empty())
      << rec.completed_before_hook.size() << " completions ran before the hook saw them";
}

TEST(CommitPipeline, StopCommitsEverythingAlreadyQueued) {
  GatedStore store(/*hold_first=*/true);
  Recorder rec;
  CommitPipeline pipeline(store, {.max_batch = 1024, .retain_changes = 0}, rec.hook());

  ASSERT_TRUE(pipeline.submit(req("A", "first"), rec.done()));
  store.wait_until_entered();  // the writer holds "first"; the rest will queue up
  constexpr int kQueued = 50;
  for (int i = 0; i < kQueued; ++i) {
    ASSERT_TRUE(pipeline.submit(req("A", "q" + std::to_string(i)), rec.done()));
  }

  std::thread stopper([&] { pipeline.stop(); });
  // Wait until stop() has begun: from then on submit() refuses. Probes accepted before that are
  // queued work like any other and must be committed too.
  int accepted_probes = 0;
  while (pipeline.submit(req("A", "probe" + std::to_string(accepted_probes)), rec.done())) {
    ++accepted_probes;
    std::this_thread::sleep_for(1ms);
  }
  store.release();
  stopper.join();

  for (int i = 0; i < kQueued; ++i) {
    const std::string id = "q" + std::to_string(i);
    ASSERT_EQ(rec.completions[id], 1) << id;
    EXPECT_EQ(rec.completed[id].status, OutcomeStatus::applied) << id;
  }
  EXPECT_EQ(rec.completions["first"], 1);
  auto head = store.head("A");
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->seq, static_cast<std::uint64_t>(1 + kQueued + accepted_probes));
  for (int i = 0; i < accepted_probes; ++i) {
    EXPECT_EQ(rec.completions["probe" + std::to_string(i)], 1);
  }
  // The refused probe is never completed.
  EXPECT_EQ(rec.completions.count("probe" + std::to_string(accepted_probes)), 0u);
}

TEST(CommitPipeline, SubmitAfterStopReturnsFalseAndNeverCompletes) {
  auto store = make_memory_store();
  CommitPipeline pipeline(*store, {}, nullptr);
  pipeline.stop();
  std::atomic<int> called{0};
  EXPECT_FALSE(pipeline.submit(req("A", "late"), [&](const Outcome&) { ++called; }));
  pipeline.stop();  // idempotent
  EXPECT_EQ(called.load(), 0);
  EXPECT_FALSE(store->head("A")->exists);
}

TEST(CommitPipeline, StopWithNothingQueuedReturns) {
  auto store = make_memory_store();
  CommitPipeline pipeline(*store, {}, nullptr);
  pipeline.stop();
  SUCCEED();
}

TEST(CommitPipeline, DestructorDrainsTheQueue) {
  auto store = make_memory_store();
  std::atomic<int> completed{0};
  {
    CommitPipeline pipeline(*store, {}, nullptr);
    for (int i = 0; i < 100; ++i) {
      pipeline.submit(req("A", "c" + std::to_string(i)), [&](const Outcome&) { ++completed; });
    }
  }
  EXPECT_EQ(completed.load(), 100);
  EXPECT_EQ(store->head("A")->seq, 100u);
}

TEST(CommitPipeline, WorksWithoutHookOrCompletion) {
  auto store = make_memory_store();
  CommitPipeline pipeline(*store, {}, nullptr);
  EXPECT_TRUE(pipeline.submit(req("A", "c1"), nullptr));
  pipeline.stop();
  EXPECT_EQ(store->head("A")->seq, 1u);
}

TEST(CommitPipeline, BatchesAreBoundedByMaxBatchAndCarryTheOptions) {
  GatedStore store(/*hold_first=*/true);
  Recorder rec;
  CommitPipeline pipeline(store, {.max_batch = 4, .retain_changes = 7}, rec.hook());
  const std::int64_t before = now_ms();
  ASSERT_TRUE(pipeline.submit(req("A", "first"), rec.done()));
  store.wait_until_entered();
  for (int i = 0; i < 21; ++i) pipeline.submit(req("A", "c" + std::to_string(i)), rec.done());
  store.release();
  pipeline.stop();
  const std::int64_t after = now_ms();

  // The writer held "first" while 21 requests queued: then batches of at most 4.
  EXPECT_EQ(store.batch_sizes(), (std::vector<std::size_t>{1, 4, 4, 4, 4, 4, 1}));
  for (const auto& o : store.options()) {
    EXPECT_EQ(o.retain_changes, 7u);
    EXPECT_GE(o.now_ms, before);
    EXPECT_LE(o.now_ms, after);
  }
  EXPECT_EQ(rec.completions.size(), 22u);
}

TEST(CommitPipeline, GroupCommitsWhatQueuedWhileTheWriterWasBusy) {
  GatedStore store(/*hold_first=*/true);
  Recorder rec;
  CommitPipeline pipeline(store, {.max_batch = 1024, .retain_changes = 0}, rec.hook());
  ASSERT_TRUE(pipeline.submit(req("A", "first"), rec.done()));
  store.wait_until_entered();
  for (int i = 0; i < 30; ++i) pipeline.submit(req("A", "c" + std::to_string(i)), rec.done());
  store.release();
  pipeline.stop();
  EXPECT_EQ(store.batch_sizes(), (std::vector<std::size_t>{1, 30}));
}

// Queued changes count on the back-pressure gate until their completions have run: a stalled
// store closes the gate, and it opens again once the backlog is committed.
TEST(CommitPipeline, QueuedChangesHoldTheBackpressureGateUntilCompleted) {
  GatedStore store(/*hold_first=*/true);
  Recorder rec;
  Backpressure gate({.max_queued_changes = 10, .max_fanout_backlog = 0});
  std::atomic<bool> open_in_completion{true};
  CommitPipeline pipeline(store, {.max_batch = 1024, .backpressure = &gate}, rec.hook());
  ASSERT_TRUE(pipeline.submit(req("A", "first"), rec.done()));
  store.wait_until_entered();
  for (int i = 0; i < 9; ++i) pipeline.submit(req("A", "c" + std::to_string(i)), rec.done());
  EXPECT_EQ(gate.queued_changes(), 10u);
  EXPECT_FALSE(gate.open());
  // A completion runs before its change is uncounted.
  pipeline.submit(req("A", "last"), [&](const Outcome&) { open_in_completion = gate.open(); });
  store.release();
  pipeline.stop();
  EXPECT_FALSE(open_in_completion.load());
  EXPECT_EQ(gate.queued_changes(), 0u);
  EXPECT_TRUE(gate.open());
  EXPECT_EQ(gate.closings(), 1u);
}

// A change is counted before the writer can take it: a fast writer never makes the count dip
// below zero (which would read as a huge backlog and close the gate for nothing).
TEST(CommitPipeline, BackpressureCountNeverDipsBelowZero) {
  auto store = make_memory_store();
  Backpressure gate({.max_queued_changes = 1'000'000, .max_fanout_backlog = 0});
  {
    CommitPipeline pipeline(*store, {.max_batch = 8, .backpressure = &gate}, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 5000; ++i) {
          pipeline.submit(req("A", std::to_string(t) + "-" + std::to_string(i)), nullptr);
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(gate.closings(), 0u);
  EXPECT_EQ(gate.queued_changes(), 0u);
}

TEST(CommitPipeline, FlushRunsAfterEverythingSubmittedBeforeAndSplitsTheBatch) {
  GatedStore store(/*hold_first=*/true);
  Recorder rec;
  CommitPipeline pipeline(store, {.max_batch = 1024, .retain_changes = 0}, rec.hook());
  ASSERT_TRUE(pipeline.submit(req("A", "first"), rec.done()));
  store.wait_until_entered();
  for (int i = 0; i < 5; ++i) pipeline.submit(req("A", "before" + std::to_string(i)), rec.done());
  int flushes = 0;
  std::size_t completed_at_flush = 0;
  std::thread::id flush_thread;
  pipeline.flush([&] {
    std::lock_guard lock(rec.mutex);
    ++flushes;
    completed_at_flush = rec.completions.size();
    flush_thread = std::this_thread::get_id();
  });
  for (int i = 0; i < 5; ++i) pipeline.submit(req("A", "after" + std::to_string(i)), rec.done());
  store.release();
  pipeline.stop();

  EXPECT_EQ(flushes, 1);
  EXPECT_EQ(completed_at_flush, 6u);  // "first" and the five before it, not the five after
  EXPECT_NE(flush_thread, std::this_thread::get_id());
  EXPECT_EQ(store.batch_sizes(), (std::vector<std::size_t>{1, 5, 5}));
  EXPECT_EQ(rec.completions.size(), 11u);
}

TEST(CommitPipeline, FlushOnAnIdlePipelineRuns) {
  auto store = make_memory_store();
  CommitPipeline pipeline(*store, {}, nullptr);
  std::mutex m;
  std::condition_variable cv;
  bool ran = false;
  pipeline.flush([&] {
    std::lock_guard lock(m);
    ran = true;
    cv.notify_all();
  });
  std::unique_lock lock(m);
  EXPECT_TRUE(cv.wait_for(lock, 10s, [&] { return ran; }));
}

TEST(CommitPipeline, FlushAfterStopRunsAtOnceOnTheCaller) {
  auto store = make_memory_store();
  CommitPipeline pipeline(*store, {}, nullptr);
  pipeline.stop();
  std::thread::id ran_on;
  pipeline.flush([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(CommitPipeline, FailingStoreRejectsEveryRequestWithStoreUnavailable) {
  FailingStore store;
  Recorder rec;
  CommitPipeline pipeline(store, {.max_batch = 3, .retain_changes = 0}, rec.hook());
  constexpr int kCount = 10;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(pipeline.submit(req(i % 2 ? "A" : "B", "c" + std::to_string(i)), rec.done()));
  }
  pipeline.stop();

  EXPECT_GE(store.commits.load(), 4);  // ceil(10 / 3) batches at least
  ASSERT_EQ(rec.completions.size(), static_cast<std::size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    const std::string id = "c" + std::to_string(i);
    EXPECT_EQ(rec.completions[id], 1) << id;
    const Outcome& o = rec.completed[id];
    EXPECT_EQ(o.status, OutcomeStatus::rejected) << id;
    EXPECT_EQ(o.change_id, id);
    EXPECT_EQ(o.error.code, "store_unavailable") << id;
    EXPECT_FALSE(o.error.message.empty());
    EXPECT_EQ(o.seq, 0u);
    EXPECT_EQ(o.entry, nullptr);
  }
  // The hook is told too, and sees nothing applied.
  EXPECT_EQ(rec.hooked.size(), static_cast<std::size_t>(kCount));
  for (const auto& o : rec.hooked) EXPECT_NE(o.status, OutcomeStatus::applied);
}

}  // namespace
}  // namespace possync
