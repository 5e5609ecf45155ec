#include "model/change.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <random>

#include "common/time.h"

namespace possync {

const DataTypeInfo& info(DataType t) {
  return kDataTypes[static_cast<std::size_t>(t)];
}

const DataTypeInfo* data_type_by_name(std::string_view name) {
  for (const auto& d : kDataTypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

const DataTypeInfo* data_type_by_typed_update(std::string_view message_type) {
  for (const auto& d : kDataTypes) {
    if (d.typed_update == message_type) return &d;
  }
  return nullptr;
}

bool accepts_action(DataType t, std::string_view action) {
  const auto& own = info(t).actions;
  return std::find(kCommonActions.begin(), kCommonActions.end(), action) != kCommonActions.end() ||
         std::find(own.begin(), own.end(), action) != own.end();
}

std::string accepted_actions(DataType t) {
  return fmt::format("{}, {}", fmt::join(kCommonActions, ", "), fmt::join(info(t).actions, ", "));
}

bool is_deletion(std::string_view action) {
  return action == "deleted" || action == "removed" || action == "item_removed";
}

std::string_view to_string(OutcomeStatus s) {
  switch (s) {
    case OutcomeStatus::applied:
      return "applied";
    case OutcomeStatus::duplicate:
      return "duplicate";
    case OutcomeStatus::rejected:
      return "rejected";
  }
  return "rejected";
}

std::string new_change_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("srv-{}-{:016x}", now_ms(), rng());
}

}  // namespace possync
