#include "sync/backpressure.h"

namespace possync {

Backpressure::Charge::Charge(Backpressure& gate, std::size_t bytes) : gate_(&gate), bytes_(bytes) {
  gate_->bytes_.fetch_add(bytes_);
  gate_->note_increase();
}

Backpressure::Charge& Backpressure::Charge::operator=(Charge&& other) noexcept {
  if (this != &other) {
    release();
    gate_ = other.gate_;
    bytes_ = other.bytes_;
    other.gate_ = nullptr;
  }
  return *this;
}

void Backpressure::Charge::release() {
  if (gate_ == nullptr) return;
  gate_->bytes_.fetch_sub(bytes_);
  gate_->on_decrease();
  gate_ = nullptr;
}

void Backpressure::changes_queued(std::size_t n) {
  changes_.fetch_add(n);
  note_increase();
}

void Backpressure::changes_done(std::size_t n) {
  changes_.fetch_sub(n);
  on_decrease();
}

bool Backpressure::open() const {
  return !closed_.load();
}

bool Backpressure::drained() const {
  const auto c = limits_.max_queued_changes;
  const auto b = limits_.max_fanout_backlog;
  return (c == 0 || changes_.load() <= c / 4 * 3) && (b == 0 || bytes_.load() <= b / 4 * 3);
}

void Backpressure::note_increase() {
  const auto c = limits_.max_queued_changes;
  const auto b = limits_.max_fanout_backlog;
  const bool over = (c != 0 && changes_.load() >= c) || (b != 0 && bytes_.load() >= b);
  if (!over || closed_.load()) return;
  bool was_open = false;
  if (closed_.compare_exchange_strong(was_open, true)) closings_.fetch_add(1);
  // A decrease that ran between the increase and the closing saw the gate open and reopened
  // nothing: look again, or the gate could stay closed with nothing left to reopen it.
  on_decrease();
}

void Backpressure::on_decrease() {
  if (closed_.load() && drained()) closed_.store(false);
  if (closed_.load() || !has_waiters_.load()) return;
  std::vector<std::function<void()>> woken;
  {
    std::lock_guard lock(mutex_);
    woken.swap(waiters_);
    has_waiters_.store(false);
  }
  for (auto& resume : woken) resume();
}

void Backpressure::when_open(std::function<void()> resume) {
  {
    std::lock_guard lock(mutex_);
    if (!open()) {
      waiters_.push_back(std::move(resume));
      has_waiters_.store(true);
      resume = nullptr;
    }
  }
  if (resume) return resume();
  // The gate may have opened between the check and has_waiters_ being set, seen by no one.
  on_decrease();
}

}  // namespace possync
