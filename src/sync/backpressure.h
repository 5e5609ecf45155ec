// Backpressure: how much accepted work the server is still carrying, and the gate that stops
// taking more when that is too much.
//
// Two quantities are counted: changes queued in the commit pipeline and not yet committed, and
// the fan-out backlog: bytes of committed changes handed to connections and not yet taken into
// their send queues (each recipient's copy of a shared payload counts). Both grow only when the
// server itself falls behind (the store or the CPU); a device that reads slowly fills its own send
// queue instead, which is bounded per connection (--max-outbound-bytes, then "slow consumer").
// When either passes its limit the gate closes: WebSocket sessions stop reading their sockets
// (TCP pushes back on the devices; nothing is refused or lost) and POST /api/sync answers 503
// `overloaded` with Retry-After. The gate opens again once both have fallen to three quarters of
// their limits, and every session that waited resumes reading. Memory under overload is thus
// bounded by the limits (plus at most one message per connection read before the gate closed),
// not by how long the overload lasts; and since both quantities always drain by themselves, the
// gate always reopens.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <mutex>
#include <vector>

namespace possync {

class Backpressure {
 public:
  struct Limits {
    std::size_t max_queued_changes = 20000;
    std::size_t max_fanout_backlog = 64u << 20;
  };
  explicit Backpressure(Limits limits) : limits_(limits) {}
  Backpressure(const Backpressure&) = delete;
  Backpressure& operator=(const Backpressure&) = delete;

  // Fan-out backlog bytes charged to the gate for as long as this object lives (moves with the
  // delivery it stands for; destroyed once the connection has taken or dropped it).
  class Charge {
   public:
    Charge() = default;
    Charge(Backpressure& gate, std::size_t bytes);
    Charge(Charge&& other) noexcept : gate_(other.gate_), bytes_(other.bytes_) {
      other.gate_ = nullptr;
    }
    Charge& operator=(Charge&& other) noexcept;
    Charge(const Charge&) = delete;
    Charge& operator=(const Charge&) = delete;
    ~Charge() { release(); }
    explicit operator bool() const { return gate_ != nullptr; }

   private:
    void release();
    Backpressure* gate_ = nullptr;
    std::size_t bytes_ = 0;
  };

  // The commit pipeline's queue: `n` changes queued, then committed.
  void changes_queued(std::size_t n);
  void changes_done(std::size_t n);

  // Whether new work may be taken now.
  bool open() const;
  // Calls `resume` once the gate has opened again, at once (on this thread) if it is open. Runs
  // on whichever thread reopens it, so `resume` must only post work elsewhere.
  void when_open(std::function<void()> resume);

  std::size_t queued_changes() const { return changes_.load(std::memory_order_relaxed); }
  std::size_t fanout_backlog() const { return bytes_.load(std::memory_order_relaxed); }
  // How often the gate has closed since start.
  std::uint64_t closings() const { return closings_.load(std::memory_order_relaxed); }

 private:
  // Both quantities at or below three quarters of their limits.
  bool drained() const;
  // Called after a quantity went down: wakes the waiters once drained.
  void on_decrease();
  void note_increase();

  Limits limits_;
  std::atomic<std::size_t> changes_{0};
  std::atomic<std::size_t> bytes_{0};
  std::atomic<bool> closed_{false};
  std::atomic<std::uint64_t> closings_{0};
  std::atomic<bool> has_waiters_{false};
  std::mutex mutex_;
  std::vector<std::function<void()>> waiters_;
};

}  // namespace possync
