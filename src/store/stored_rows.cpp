#include "store/stored_rows.h"

#include <fmt/format.h>

#include "common/json_text.h"

namespace possync {

DataType stored_data_type(std::string_view name) {
  const auto* d = data_type_by_name(name);
  if (d == nullptr) throw StoredDataError(fmt::format("unknown data_type '{}' in store", name));
  return d->type;
}

boost::json::object parse_stored_object(std::string_view text) {
  boost::system::error_code ec;
  auto v = parse_json(text, ec);
  if (ec || !v.is_object()) throw StoredDataError("stored JSON is not an object");
  return std::move(v.as_object());
}

std::string serialize_stored_object(const boost::json::object& object) {
  return json_text(object);
}

std::string serialize_networks(const std::vector<std::string>& networks) {
  boost::json::array a;
  for (const auto& n : networks) a.emplace_back(n);
  return json_text(a);
}

std::vector<std::string> parse_networks(std::string_view text) {
  boost::system::error_code ec;
  auto v = parse_json(text, ec);
  if (ec || !v.is_array()) throw StoredDataError("stored networks are not a JSON array");
  std::vector<std::string> out;
  for (const auto& n : v.get_array()) {
    if (!n.is_string()) throw StoredDataError("a stored network is not a string");
    out.emplace_back(n.get_string());
  }
  return out;
}

}  // namespace possync
