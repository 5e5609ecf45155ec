#include "auth/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace possync {
namespace {

// Token counts are doubles; this much below a whole request still counts as enough (rounding in
// elapsed * rate must not refuse a request that is due).
constexpr double kEpsilon = 1e-9;

void check(const RateLimit& limit) {
  if (!(limit.per_second > 0) || !std::isfinite(limit.per_second) || !(limit.burst >= 1) ||
      !std::isfinite(limit.burst)) {
    throw std::invalid_argument("rate limit: per_second must be > 0 and burst >= 1");
  }
}

KeyedLimiter::Options checked(KeyedLimiter::Options options) {
  check(options.limit);
  if (options.max_keys == 0) throw std::invalid_argument("keyed limiter: max_keys must be >= 1");
  return options;
}

// How often a KeyedLimiter sweeps: the time an untouched bucket takes to refill, in [1 s, 1 h].
TokenBucket::Clock::duration sweep_interval(const RateLimit& limit) {
  const double seconds = std::clamp(limit.burst / limit.per_second, 1.0, 3600.0);
  return std::chrono::duration_cast<TokenBucket::Clock::duration>(
      std::chrono::duration<double>(seconds));
}

}  // namespace

// --- TokenBucket -------------------------------------------------------------------------------

TokenBucket::TokenBucket(RateLimit limit, Clock::time_point now)
    : limit_(limit), tokens_(limit.burst), last_(now) {
  check(limit);
}

double TokenBucket::available(Clock::time_point now) const {
  if (now <= last_) return tokens_;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  return std::min(limit_.burst, tokens_ + elapsed * limit_.per_second);
}

bool TokenBucket::full(Clock::time_point now) const {
  return available(now) >= limit_.burst - kEpsilon;
}

bool TokenBucket::try_take(double n, Clock::time_point now) {
  tokens_ = available(now);
  last_ = std::max(last_, now);
  if (n <= 0) return true;
  if (tokens_ + kEpsilon < n) return false;
  tokens_ = std::max(0.0, tokens_ - n);
  return true;
}

std::optional<std::chrono::seconds> TokenBucket::retry_after(double n,
                                                             Clock::time_point now) const {
  if (n > limit_.burst) return std::nullopt;
  const double missing = n - available(now);
  if (missing <= kEpsilon) return std::chrono::seconds{0};
  return std::chrono::seconds{
      static_cast<std::chrono::seconds::rep>(std::ceil(missing / limit_.per_second - kEpsilon))};
}

// --- KeyedLimiter ------------------------------------------------------------------------------

KeyedLimiter::KeyedLimiter(Options options, Clock::time_point now)
    : options_(checked(options)),
      sweep_interval_(sweep_interval(options_.limit)),
      overflow_(options_.limit, now),
      last_sweep_(now) {}

KeyedLimiter::Verdict KeyedLimiter::try_take(std::string_view key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now - last_sweep_ >= sweep_interval_) sweep(now);
  auto it = buckets_.find(key);
  if (it == buckets_.end() && buckets_.size() < options_.max_keys) {
    it = buckets_.emplace(std::string(key), TokenBucket(options_.limit, now)).first;
  }
  TokenBucket& bucket = it != buckets_.end() ? it->second : overflow_;
  if (bucket.try_take(1, now)) return {true, std::chrono::seconds{0}};
  // burst >= 1, so one token is always reachable; a refused request waits at least a second.
  return {false, std::max(std::chrono::seconds{1}, *bucket.retry_after(1, now))};
}

std::size_t KeyedLimiter::size() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

void KeyedLimiter::sweep(Clock::time_point now) {
  std::erase_if(buckets_, [now](const auto& entry) { return entry.second.full(now); });
  last_sweep_ = now;
}

// --- ConnectionCaps ----------------------------------------------------------------------------

ConnectionCaps::ConnectionCaps(std::size_t max_per_key) : max_per_key_(max_per_key) {}

ConnectionCaps::Lease ConnectionCaps::try_acquire(std::string_view key) {
  std::lock_guard lock(mutex_);
  auto it = counts_.find(key);
  if (it == counts_.end()) it = counts_.emplace(std::string(key), 0).first;
  if (max_per_key_ != 0 && it->second >= max_per_key_) return {};
  ++it->second;
  return Lease(this, it->first);
}

std::size_t ConnectionCaps::count(std::string_view key) const {
  std::lock_guard lock(mutex_);
  const auto it = counts_.find(key);
  return it == counts_.end() ? 0 : it->second;
}

std::size_t ConnectionCaps::keys() const {
  std::lock_guard lock(mutex_);
  return counts_.size();
}

void ConnectionCaps::give_back(const std::string& key) {
  std::lock_guard lock(mutex_);
  const auto it = counts_.find(key);
  if (it == counts_.end()) return;  // cannot happen: a lease's key has a count
  if (--it->second == 0) counts_.erase(it);
}

ConnectionCaps::Lease::Lease(Lease&& other) noexcept
    : caps_(std::exchange(other.caps_, nullptr)), key_(std::move(other.key_)) {}

ConnectionCaps::Lease& ConnectionCaps::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    caps_ = std::exchange(other.caps_, nullptr);
    key_ = std::move(other.key_);
  }
  return *this;
}

ConnectionCaps::Lease::~Lease() {
  release();
}

void ConnectionCaps::Lease::release() {
  if (caps_ == nullptr) return;
  std::exchange(caps_, nullptr)->give_back(key_);
  key_.clear();
}

}  // namespace possync
