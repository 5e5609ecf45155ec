#include "store/apply.h"

#include <fmt/format.h>
#include <map>

#include "common/time.h"
#include "model/merge_patch.h"

namespace possync {
namespace {

Outcome duplicate_of(std::string change_id, std::uint64_t seq) {
  Outcome out;
  out.status = OutcomeStatus::duplicate;
  out.change_id = std::move(change_id);
  out.seq = seq;
  return out;
}

// Heads are loaded once per restaurant per batch and saved once at the end.
class HeadCache {
 public:
  explicit HeadCache(StoreTxn& txn) : txn_(txn) {}
  LogHead& get(const std::string& restaurant) {
    auto it = heads_.find(restaurant);
    if (it == heads_.end()) it = heads_.emplace(restaurant, txn_.load_head(restaurant)).first;
    return it->second;
  }
  void flush(std::uint64_t retain_changes) {
    for (auto& [restaurant, head] : heads_) {
      if (!head.exists) continue;
      // Prune in steps of at least 1/16 of the retained window so pruning is amortized.
      if (retain_changes > 0 && head.seq > retain_changes) {
        const std::uint64_t horizon = head.seq - retain_changes;
        if (horizon >= head.pruned_seq + std::max<std::uint64_t>(1, retain_changes / 16)) {
          txn_.prune(restaurant, horizon);
          head.pruned_seq = horizon;
        }
      }
      txn_.save_head(restaurant, head);
    }
  }

 private:
  StoreTxn& txn_;
  std::map<std::string, LogHead, std::less<>> heads_;
};

Outcome apply_one(StoreTxn& txn, HeadCache& heads, const ChangeRequest& request,
                  const CommitOptions& options) {
  const Change& change = request.change;
  if (auto seq = txn.find_change(change.restaurant_id, change.change_id)) {
    return duplicate_of(change.change_id, *seq);
  }
  if (!request.twin_of.empty()) {
    if (auto seq = txn.find_change(change.restaurant_id, request.twin_of)) {
      txn.add_change_id(change.restaurant_id, change.change_id, *seq);
      return duplicate_of(change.change_id, *seq);
    }
  }

  auto record = txn.load_record(change.restaurant_id, change.data_type, change.record_id);
  if (change.base_version) {
    const std::uint64_t current_version =
        record ? static_cast<std::uint64_t>(record->at("version").to_number<std::int64_t>()) : 0;
    if (*change.base_version != current_version) {
      Outcome out;
      out.change_id = change.change_id;
      out.error = {errc::kConflict,
                   fmt::format("base_version {} does not match the record's version {}",
                               *change.base_version, current_version)};
      out.current = record ? boost::json::value(*record) : boost::json::value(nullptr);
      return out;
    }
  }

  LogHead& head = heads.get(change.restaurant_id);
  head.exists = true;
  const std::uint64_t seq = ++head.seq;

  if (is_deletion(change.action)) {
    if (record) txn.delete_record(change.restaurant_id, change.data_type, change.record_id);
  } else {
    boost::json::value merged =
        record ? boost::json::value(std::move(*record)) : boost::json::value(boost::json::object{});
    merge_patch(merged, change.data);
    auto& object = merged.as_object();
    object["id"] = change.record_id;
    object["version"] = seq;
    object["updated_at"] = iso8601_utc(options.now_ms);
    txn.save_record(change.restaurant_id, change.data_type, change.record_id, std::move(object),
                    seq);
  }

  auto entry = std::make_shared<LogEntry>();
  entry->seq = seq;
  entry->committed_at_ms = options.now_ms;
  entry->change = change;
  entry->change.base_version.reset();
  txn.append_log(entry);
  txn.add_change_id(change.restaurant_id, change.change_id, seq);

  Outcome out;
  out.status = OutcomeStatus::applied;
  out.change_id = change.change_id;
  out.seq = seq;
  out.entry = std::move(entry);
  return out;
}

}  // namespace

std::vector<Outcome> apply_batch(StoreTxn& txn, std::span<const ChangeRequest> batch,
                                 const CommitOptions& options) {
  HeadCache heads(txn);
  std::vector<Outcome> outcomes;
  outcomes.reserve(batch.size());
  for (const auto& request : batch) outcomes.push_back(apply_one(txn, heads, request, options));
  heads.flush(options.retain_changes);
  return outcomes;
}

}  // namespace possync
