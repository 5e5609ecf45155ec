// Micro-benchmarks of the commit path below the network: one Store::commit of a batch, the way
// the commit pipeline's writer calls it. Each change creates a record of its own in one of 200
// restaurants (like possync-bench fanout), so the tables grow as they do under load.
//
//   build/release/bench/possync-microbench --benchmark_filter=Commit
#include <benchmark/benchmark.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/time.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"
#include "store/sqlite_wal_vfs.h"

namespace possync {
namespace {

constexpr int kRestaurants = 200;

std::vector<ChangeRequest> make_batch(std::size_t size, std::uint64_t& counter) {
  std::vector<ChangeRequest> batch(size);
  for (auto& r : batch) {
    const std::uint64_t n = counter++;
    Change& c = r.change;
    c.restaurant_id = fmt::format("bench-r{}", n % kRestaurants);
    c.device_id = fmt::format("dev{}", n % 5);
    c.user_id = "u1";
    c.change_id = fmt::format("{}_dev{}_order-{}", 1700000000000 + n, n % 5, n);
    c.data_type = DataType::orders;
    c.action = "updated";
    c.record_id = fmt::format("order-{}", n);
    c.data["id"] = c.record_id;
    c.data["status"] = "open";
    c.data["total_amount"] = 12.5;
    c.data["items_count"] = static_cast<std::int64_t>(n % 7 + 1);
  }
  return batch;
}

// Like the commit pipeline: batch N+1 is committed while batch N is made durable, and an
// iteration ends once the previous batch is durable (Store::when_durable).
void run_commits(benchmark::State& state, Store& store) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::uint64_t counter = 0;
  std::future<void> previous;
  for (auto _ : state) {
    state.PauseTiming();
    auto batch = make_batch(size, counter);
    state.ResumeTiming();
    auto result = store.commit(batch, {now_ms(), 0});
    if (!result) {
      state.SkipWithError(result.error().message.c_str());
      break;
    }
    if (previous.valid()) previous.wait();
    auto durable = std::make_shared<std::promise<void>>();
    previous = durable->get_future();
    store.when_durable([durable] { durable->set_value(); });
  }
  if (previous.valid()) previous.wait();
  state.SetItemsProcessed(static_cast<std::int64_t>(counter));
}

// SQLite as the server runs it: WAL, every commit fdatasynced (on the store's sync thread).
void BM_SqliteCommit(benchmark::State& state) {
  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("possync-microbench-{}", ::getpid());
  std::filesystem::create_directories(dir);
  {
    auto store = open_sqlite_store({(dir / "bench.db").string(), 1});
    if (!store) {
      state.SkipWithError(store.error().message.c_str());
    } else {
      const auto before = sqlite_wal_vfs_stats();
      run_commits(state, **store);
      const auto after = sqlite_wal_vfs_stats();
      // What SQLite wrote to the WAL per commit, and the writes that reached the kernel for it.
      const auto per_commit = [&](std::uint64_t n) {
        return benchmark::Counter(static_cast<double>(n), benchmark::Counter::kAvgIterations);
      };
      state.counters["wal_writes"] = per_commit(after.writes_gathered - before.writes_gathered);
      state.counters["wal_flushes"] = per_commit(after.flushes - before.flushes);
      state.counters["kernel_writes"] = per_commit(after.writes_issued - before.writes_issued);
    }
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SqliteCommit)
    ->Arg(1)
    ->Arg(20)
    ->Arg(200)
    ->Arg(1000)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same batches on the memory store: the cost of apply_batch without storage.
void BM_MemoryCommit(benchmark::State& state) {
  auto store = make_memory_store();
  run_commits(state, *store);
}
BENCHMARK(BM_MemoryCommit)->Arg(1)->Arg(20)->Arg(200)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace possync

BENCHMARK_MAIN();
