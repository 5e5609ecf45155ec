// The rules for applying change requests, written once for every Store backend:
// dedupe by change id, twin aliasing, optimistic concurrency (base_version), JSON Merge Patch or
// deletion, seq assignment, log append and retention.
#pragma once

#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "store/store.h"

namespace possync {

// The operations apply_batch() needs inside one open transaction. Methods may throw to abort the
// transaction; the backend then rolls back and reports an Error for the whole batch.
class StoreTxn {
 public:
  virtual ~StoreTxn() = default;
  virtual LogHead load_head(std::string_view restaurant) = 0;
  virtual void save_head(std::string_view restaurant, const LogHead& head) = 0;
  virtual std::optional<std::uint64_t> find_change(std::string_view restaurant,
                                                   std::string_view change_id) = 0;
  virtual void add_change_id(std::string_view restaurant, std::string_view change_id,
                             std::uint64_t seq) = 0;
  // The stored record (with its id, version and updated_at), if it exists.
  virtual std::optional<boost::json::object> load_record(std::string_view restaurant, DataType type,
                                                         std::string_view record_id) = 0;
  virtual void save_record(std::string_view restaurant, DataType type, std::string_view record_id,
                           boost::json::object record, std::uint64_t version) = 0;
  virtual void delete_record(std::string_view restaurant, DataType type,
                             std::string_view record_id) = 0;
  // The entry is shared with the commit's Outcome (and kept as it is by the memory store).
  virtual void append_log(const std::shared_ptr<const LogEntry>& entry) = 0;
  // Removes log entries and change ids with seq <= up_to_seq.
  virtual void prune(std::string_view restaurant, std::uint64_t up_to_seq) = 0;
};

std::vector<Outcome> apply_batch(StoreTxn& txn, std::span<const ChangeRequest> batch,
                                 const CommitOptions& options);

}  // namespace possync
