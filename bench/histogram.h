// Log-linear latency histogram (HdrHistogram style): exact below 256 ns, then 128 sub-buckets per
// power of two (< 0.8 % relative error) up to 2^36 ns (about 68 s); larger values land in the last
// bucket, while the exact maximum is kept separately. Not thread-safe: one per thread, merged.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace bench {

class Histogram {
 public:
  static constexpr int kLinear = 256;
  static constexpr int kSub = 128;
  static constexpr int kMaxExp = 36;
  static constexpr int kBuckets = kLinear + (kMaxExp - 8 + 1) * kSub;

  Histogram() : counts_(kBuckets, 0) {}

  void record(std::int64_t ns) {
    std::uint64_t v = ns < 0 ? 0 : static_cast<std::uint64_t>(ns);
    ++counts_[index(v)];
    ++total_;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
    sum_ += static_cast<double>(v);
  }

  void merge(const Histogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    min_ = std::min(min_, o.min_);
    sum_ += o.sum_;
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return total_ ? max_ : 0; }
  std::uint64_t min() const { return total_ ? min_ : 0; }
  double mean() const { return total_ ? sum_ / static_cast<double>(total_) : 0.0; }

  // Value (ns) at percentile p (0..100): the representative value of the bucket holding the
  // ceil(p% * count)-th smallest sample, never above the exact maximum.
  std::uint64_t percentile(double p) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(total_) + 0.999999);
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(value_at(i), min_, max_);
    }
    return max_;
  }

  static int index(std::uint64_t v) {
    if (v < kLinear) return static_cast<int>(v);
    int e = 63 - std::countl_zero(v);  // >= 8
    if (e > kMaxExp) return kBuckets - 1;
    int shift = e - 7;
    auto mant = static_cast<int>(v >> shift);  // 128..255
    return kLinear + (e - 8) * kSub + (mant - kSub);
  }

  // Midpoint of bucket i.
  static std::uint64_t value_at(int i) {
    if (i < kLinear) return static_cast<std::uint64_t>(i);
    int e = (i - kLinear) / kSub + 8;
    int mant = (i - kLinear) % kSub + kSub;
    int shift = e - 7;
    std::uint64_t lo = static_cast<std::uint64_t>(mant) << shift;
    std::uint64_t width = std::uint64_t{1} << shift;
    return lo + width / 2;
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  double sum_ = 0;
};

}  // namespace bench
