// How the SQL backends (SqliteStore, PostgresStore) keep log entries and records as text columns,
// and how they read them back: written once for both.
//
// A log row is read with the columns of kLogColumns, in that order; `Row` is any row accessor with
// `text(col)`, `int64(col)` and `uint64(col)`. Corrupt stored data throws StoredDataError.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "model/change.h"
#include "store/store.h"

namespace possync {

struct StoredDataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The data type stored under `name`.
DataType stored_data_type(std::string_view name);

// A stored JSON object (a record body or a change's data).
boost::json::object parse_stored_object(std::string_view text);
std::string serialize_stored_object(const boost::json::object& object);

// The columns of the log table a LogEntry is read from, in the order log_entry_from_row() expects.
inline constexpr const char* kLogColumns =
    "seq, change_id, data_type, action, record_id, data, device_id, user_id, committed_at";

template <class Row>
LogEntry log_entry_from_row(const Row& row, std::string_view restaurant) {
  LogEntry e;
  e.seq = row.uint64(0);
  e.change.restaurant_id = restaurant;
  e.change.change_id = row.text(1);
  e.change.data_type = stored_data_type(row.text(2));
  e.change.action = row.text(3);
  e.change.record_id = row.text(4);
  e.change.data = parse_stored_object(row.text(5));
  e.change.device_id = row.text(6);
  e.change.user_id = row.text(7);
  e.committed_at_ms = row.int64(8);
  return e;
}

// A legacy device's networks as stored (a JSON array of strings), and back.
std::string serialize_networks(const std::vector<std::string>& networks);
std::vector<std::string> parse_networks(std::string_view text);

// The columns of the legacy_devices table, in the order legacy_device_from_row() expects.
inline constexpr const char* kLegacyDeviceColumns =
    "restaurant, device_id, networks, role, enrolled_at";

template <class Row>
LegacyDevice legacy_device_from_row(const Row& row) {
  LegacyDevice d;
  d.restaurant_id = row.text(0);
  d.device_id = row.text(1);
  d.networks = parse_networks(row.text(2));
  d.role = row.text(3);
  d.enrolled_at_ms = row.int64(4);
  return d;
}

}  // namespace possync
