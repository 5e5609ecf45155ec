#include "store/memory_store.h"

#include <map>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "store/apply.h"

namespace possync {
namespace {

// Lets change_ids be searched with a string_view (no string made per lookup).
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct RestaurantData {
  LogHead head;
  std::map<std::uint64_t, std::shared_ptr<const LogEntry>> log;  // shared with the Outcomes
  std::unordered_map<std::string, std::uint64_t, StringHash, std::equal_to<>> change_ids;
  std::array<std::map<std::string, boost::json::object, std::less<>>, kDataTypes.size()> records;
};

using Restaurants = std::map<std::string, RestaurantData, std::less<>>;

// Writes go straight to the maps: the memory backend cannot fail half-way through a batch.
class MemoryTxn final : public StoreTxn {
 public:
  explicit MemoryTxn(Restaurants& data) : data_(data) {}

  LogHead load_head(std::string_view r) override {
    auto it = data_.find(r);
    return it == data_.end() ? LogHead{} : it->second.head;
  }
  void save_head(std::string_view r, const LogHead& head) override { at(r).head = head; }
  std::optional<std::uint64_t> find_change(std::string_view r, std::string_view id) override {
    auto it = data_.find(r);
    if (it == data_.end()) return std::nullopt;
    auto found = it->second.change_ids.find(id);
    if (found == it->second.change_ids.end()) return std::nullopt;
    return found->second;
  }
  void add_change_id(std::string_view r, std::string_view id, std::uint64_t seq) override {
    at(r).change_ids.emplace(std::string(id), seq);
  }
  std::optional<boost::json::object> load_record(std::string_view r, DataType type,
                                                 std::string_view id) override {
    auto it = data_.find(r);
    if (it == data_.end()) return std::nullopt;
    auto& records = it->second.records[static_cast<std::size_t>(type)];
    auto found = records.find(id);
    if (found == records.end()) return std::nullopt;
    return found->second;
  }
  void save_record(std::string_view r, DataType type, std::string_view id,
                   boost::json::object record, std::uint64_t) override {
    auto& records = at(r).records[static_cast<std::size_t>(type)];
    if (auto it = records.find(id); it != records.end()) {
      it->second = std::move(record);
    } else {
      records.emplace(std::string(id), std::move(record));
    }
  }
  void delete_record(std::string_view r, DataType type, std::string_view id) override {
    auto& records = at(r).records[static_cast<std::size_t>(type)];
    if (auto it = records.find(id); it != records.end()) records.erase(it);
  }
  void append_log(const std::shared_ptr<const LogEntry>& entry) override {
    at(entry->change.restaurant_id).log.emplace(entry->seq, entry);
  }
  void prune(std::string_view r, std::uint64_t up_to_seq) override {
    auto& d = at(r);
    d.log.erase(d.log.begin(), d.log.upper_bound(up_to_seq));
    std::erase_if(d.change_ids, [&](const auto& kv) { return kv.second <= up_to_seq; });
  }

 private:
  RestaurantData& at(std::string_view r) {
    auto it = data_.find(r);
    if (it == data_.end()) it = data_.emplace(std::string(r), RestaurantData{}).first;
    return it->second;
  }
  Restaurants& data_;
};

class MemoryStore final : public Store {
 public:
  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    std::unique_lock lock(mutex_);
    MemoryTxn txn(data_);
    return apply_batch(txn, batch, options);
  }

  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    std::shared_lock lock(mutex_);
    LogPage page;
    auto it = data_.find(r);
    if (it == data_.end()) return page;
    page.head = it->second.head;
    for (auto e = it->second.log.upper_bound(after);
         e != it->second.log.end() && page.entries.size() < limit; ++e) {
      page.entries.push_back(*e->second);
    }
    return page;
  }

  Result<Snapshot> snapshot(std::string_view r) override {
    std::shared_lock lock(mutex_);
    Snapshot snap;
    auto it = data_.find(r);
    if (it == data_.end()) return snap;
    snap.head = it->second.head;
    for (std::size_t t = 0; t < kDataTypes.size(); ++t) {
      for (const auto& [id, record] : it->second.records[t]) snap.records[t].push_back(record);
    }
    return snap;
  }

  Result<LogHead> head(std::string_view r) override {
    std::shared_lock lock(mutex_);
    auto it = data_.find(r);
    return it == data_.end() ? LogHead{} : it->second.head;
  }

  std::string describe() const override { return "memory"; }
  bool commits_in_memory() const override { return true; }

  Result<bool> put_legacy_device(const LegacyDevice& device) override {
    std::lock_guard lock(legacy_mutex_);
    auto [it, added] =
        legacy_.insert_or_assign(std::make_pair(device.restaurant_id, device.device_id), device);
    return added;
  }
  Result<bool> remove_legacy_device(std::string_view restaurant, std::string_view device) override {
    std::lock_guard lock(legacy_mutex_);
    return legacy_.erase(std::make_pair(std::string(restaurant), std::string(device))) > 0;
  }
  Result<std::vector<LegacyDevice>> legacy_devices(std::string_view restaurant) override {
    std::lock_guard lock(legacy_mutex_);
    std::vector<LegacyDevice> out;
    for (auto it = legacy_.lower_bound(std::make_pair(std::string(restaurant), std::string()));
         it != legacy_.end() && it->first.first == restaurant; ++it) {
      out.push_back(it->second);
    }
    return out;
  }
  Result<std::vector<LegacyDevice>> all_legacy_devices() override {
    std::lock_guard lock(legacy_mutex_);
    std::vector<LegacyDevice> out;
    for (const auto& [key, device] : legacy_) out.push_back(device);
    return out;
  }

 private:
  std::shared_mutex mutex_;
  Restaurants data_;
  std::mutex legacy_mutex_;                                             // guards legacy_
  std::map<std::pair<std::string, std::string>, LegacyDevice> legacy_;  // (restaurant, device)
};

}  // namespace

std::unique_ptr<Store> make_memory_store() {
  return std::make_unique<MemoryStore>();
}

}  // namespace possync
