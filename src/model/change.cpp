#include "model/change.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <random>

#include "common/ids.h"
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

namespace {

Error missing_data(std::string_view field) {
  return {errc::kMissingField, fmt::format("field 'data.{}' is required", field)};
}
Error wrong_data(std::string_view field, std::string_view expected) {
  return {errc::kInvalidField, fmt::format("field 'data.{}' must be {}", field, expected)};
}

// Nothing if `data` has no members but `allowed` (and `id`, the record id of a data_change).
std::optional<Error> only_members(const Change& c,
                                  std::initializer_list<std::string_view> allowed) {
  for (const auto& member : c.data) {
    const std::string_view key = member.key();
    if (key == "id" || std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    return Error{errc::kInvalidField,
                 fmt::format("field 'data.{}' is not part of a '{}' change (expected {})", key,
                             c.action, fmt::join(allowed, ", "))};
  }
  return std::nullopt;
}

// The non-empty string `field` of `o` (named `path` in errors).
Result<std::string_view> string_member(const boost::json::object& o, std::string_view field,
                                       std::string_view path) {
  const auto* v = o.if_contains(field);
  if (v == nullptr || v->is_null()) return missing_data(path);
  if (!v->is_string() || v->get_string().empty()) return wrong_data(path, "a non-empty string");
  return std::string_view(v->get_string());
}

}  // namespace

Result<const boost::json::value*> adjustment_delta(const Change& c) {
  if (auto e = only_members(c, {"delta", "reason"})) return *e;
  const auto* delta = c.data.if_contains("delta");
  if (delta == nullptr || delta->is_null()) return missing_data("delta");
  // Numbers are finite once parsed (protocol/codec.h refuses 1e999); a double is checked anyway.
  if (!delta->is_number() || (delta->is_double() && !std::isfinite(delta->get_double()))) {
    return wrong_data("delta", "a finite number");
  }
  if (const auto* reason = c.data.if_contains("reason");
      reason != nullptr && !reason->is_null() && !reason->is_string()) {
    return wrong_data("reason", "a string");
  }
  return delta;
}

Result<std::string_view> line_id_of(const Change& c) {
  if (c.action == kLineRemoved) {
    if (auto e = only_members(c, {"line_id"})) return *e;
    return string_member(c.data, "line_id", "line_id");
  }
  if (auto e = only_members(c, {"line"})) return *e;
  const auto* line = c.data.if_contains("line");
  if (line == nullptr || line->is_null()) return missing_data("line");
  if (!line->is_object()) return wrong_data("line", "an object");
  return string_member(line->get_object(), "line_id", "line.line_id");
}

Result<std::string_view> ticket_id_of(const Change& c) {
  return string_member(c.data, "ticket_id", "ticket_id");
}

std::optional<Error> check_rule_data(const Change& c, std::size_t max_id_bytes) {
  auto check = [&](std::string_view field,
                   const Result<std::string_view>& id) -> std::optional<Error> {
    if (!id) return id.error();
    if (auto why = check_id(*id, max_id_bytes)) {
      return Error{errc::kInvalidField, fmt::format("field 'data.{}' {}", field, *why)};
    }
    return std::nullopt;
  };
  switch (c.data_type) {
    case DataType::inventory:
      if (c.action == kAdjust) {
        if (auto delta = adjustment_delta(c); !delta) return delta.error();
      }
      return std::nullopt;
    case DataType::orders:
      if (c.action == kLineAdded || c.action == kLineUpdated) {
        return check("line.line_id", line_id_of(c));
      }
      if (c.action == kLineRemoved) return check("line_id", line_id_of(c));
      return std::nullopt;
    case DataType::printers:
      if (c.action == kPrintJob || c.action == kReprint) {
        return check("ticket_id", ticket_id_of(c));
      }
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

std::string new_change_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  // Every change of today's app gets one: written without a format string.
  char text[48] = "srv-";
  char* p = std::to_chars(text + 4, text + sizeof text, now_ms()).ptr;
  *p++ = '-';
  const std::uint64_t random = rng();
  for (int shift = 60; shift >= 0; shift -= 4) *p++ = "0123456789abcdef"[(random >> shift) & 0xf];
  return std::string(text, p);
}

}  // namespace possync
