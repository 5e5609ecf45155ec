// Rate limits and connection caps, applied where connections and requests enter.
//
// - TokenBucket: `burst` tokens at most, refilled continuously at `per_second`; a request takes
//   tokens or is refused. A plain value: not thread-safe.
// - KeyedLimiter: one TokenBucket per key (a client IP), e.g. for connection attempts or REST
//   requests per IP. Thread-safe. Memory is bounded (see the class).
// - ConnectionCaps: how many connections each key (a restaurant, an IP) holds at once, at most
//   `max_per_key`; a held slot is an RAII Lease. Thread-safe.
//
// Time is always passed in (a steady_clock time_point; callers pass Clock::now()), so that tests
// are deterministic. A time earlier than one already seen (threads racing to a lock) adds no
// tokens and is otherwise treated as that later time.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace possync {

struct RateLimit {
  double per_second = 1;  // refill rate, > 0
  double burst = 1;       // bucket size, >= 1: how many requests may come at once
};

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // A full bucket. Throws std::invalid_argument unless per_second > 0 and burst >= 1 (both
  // finite): a configuration mistake to catch at startup.
  TokenBucket(RateLimit limit, Clock::time_point now);

  // Takes `n` tokens if that many are available at `now` and returns true; otherwise takes
  // nothing and returns false. n <= 0 always succeeds.
  bool try_take(double n, Clock::time_point now);

  // Whole seconds, rounded up, until `n` tokens will be available if nothing else is taken (for
  // an HTTP Retry-After header): 0 if they are available now; nothing if n > burst (never).
  std::optional<std::chrono::seconds> retry_after(double n, Clock::time_point now) const;

  // Tokens available at `now`.
  double available(Clock::time_point now) const;
  // True if the bucket is full at `now`: it is then indistinguishable from a new bucket.
  bool full(Clock::time_point now) const;

 private:
  RateLimit limit_;
  double tokens_;
  Clock::time_point last_;  // the time `tokens_` was computed for
};

namespace detail {
// Lets unordered maps keyed by std::string be searched with a std::string_view.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};
template <class T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;
}  // namespace detail

// One token bucket per key, each with the same RateLimit; try_take takes one token.
//
// Memory: a full bucket is the same as no bucket, so full buckets are dropped by a sweep of all
// keys (under the lock, O(keys)), run at most once per burst / per_second (the time an untouched
// bucket takes to refill; at least 1 s, at most 1 h): no state is lost. At most `max_keys` keys
// have a bucket of their own: while the map is full (and no sweep is due), every further key
// shares one overflow bucket with the same RateLimit. So a flood of distinct keys can neither grow
// memory nor escape limiting; it can only slow down other new keys until a sweep makes room (a
// key that then gets its own bucket starts with a full one).
//
// Thread-safety: every member function may be called from any thread (one mutex).
class KeyedLimiter {
 public:
  using Clock = TokenBucket::Clock;

  struct Options {
    RateLimit limit;
    std::size_t max_keys = 65536;  // >= 1
  };

  struct Verdict {
    bool allowed = false;
    std::chrono::seconds retry_after{0};  // when refused: for Retry-After (>= 1 s)
  };

  // Throws std::invalid_argument for an invalid RateLimit (see TokenBucket) or max_keys 0.
  KeyedLimiter(Options options, Clock::time_point now);

  Verdict try_take(std::string_view key, Clock::time_point now);

  // Keys with a bucket of their own (the overflow bucket not counted).
  std::size_t size() const;

 private:
  void sweep(Clock::time_point now);

  const Options options_;
  const Clock::duration sweep_interval_;
  mutable std::mutex mutex_;
  detail::StringMap<TokenBucket> buckets_;
  TokenBucket overflow_;
  Clock::time_point last_sweep_;
};

// Counts connections per key against a maximum. try_acquire returns a Lease that holds one slot
// until it is destroyed, assigned over, or release()d; moving a Lease moves its slot. A key's entry
// exists only while it holds leases, so memory follows the number of open connections.
//
// Thread-safety: every member function may be called from any thread, and a Lease may be
// destroyed on any thread. The ConnectionCaps must outlive all of its Leases.
class ConnectionCaps {
 public:
  class Lease {
   public:
    Lease() = default;  // holds nothing
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    // True if this lease holds a slot.
    explicit operator bool() const { return caps_ != nullptr; }
    // Gives the slot back now (no-op if none is held).
    void release();

   private:
    friend class ConnectionCaps;
    Lease(ConnectionCaps* caps, std::string key) : caps_(caps), key_(std::move(key)) {}
    ConnectionCaps* caps_ = nullptr;
    std::string key_;
  };

  // max_per_key 0 means no cap (connections are still counted).
  explicit ConnectionCaps(std::size_t max_per_key);

  // A lease holding one of `key`'s slots, or an empty lease if `key` already holds max_per_key.
  [[nodiscard]] Lease try_acquire(std::string_view key);

  // Slots `key` holds now.
  std::size_t count(std::string_view key) const;
  // Keys holding at least one slot.
  std::size_t keys() const;

 private:
  void give_back(const std::string& key);

  const std::size_t max_per_key_;
  mutable std::mutex mutex_;
  detail::StringMap<std::size_t> counts_;
};

}  // namespace possync
