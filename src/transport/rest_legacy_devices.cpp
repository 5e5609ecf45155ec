// The admin endpoints of legacy devices (--auth mixed; docs/protocol.md, "Legacy devices"):
//   GET    /api/admin/restaurants/:id/legacy-devices           every enrolled device
//   GET    /api/admin/restaurants/:id/legacy-devices/:device   one
//   PUT    /api/admin/restaurants/:id/legacy-devices/:device   enrol, or replace the enrolment:
//          body {"networks": ["10.0.0.0/8", ...], "role": "pos"} (both optional)
//   DELETE /api/admin/restaurants/:id/legacy-devices/:device   withdraw the enrolment
// Enrolments are kept in the Store; after a write this node's replica is refreshed before the
// answer (transport/legacy_devices.h), which also closes the tokenless connections it no longer
// admits; other nodes follow through the store's feed.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <boost/json.hpp>

#include "auth/legacy_enrolment.h"
#include "common/ids.h"
#include "common/json_text.h"
#include "common/time.h"
#include "transport/legacy_devices.h"
#include "transport/rest_api.h"

namespace http = boost::beast::http;
namespace json = boost::json;

namespace possync {
namespace {

json::object device_json(const LegacyDevice& d) {
  json::array networks;
  for (const auto& n : d.networks) networks.emplace_back(n);
  return json::object{{"restaurant_id", d.restaurant_id},
                      {"device_id", d.device_id},
                      {"networks", std::move(networks)},
                      {"role", d.role},
                      {"enrolled_at", iso8601_utc(d.enrolled_at_ms)}};
}

Error not_enrolled(const std::string& restaurant, const std::string& device) {
  return {errc::kNotFound, fmt::format("device '{}' of restaurant '{}' is not enrolled as a "
                                       "legacy device",
                                       device, restaurant)};
}

// The networks and role of a PUT body: an object with the optional members "networks" (an array
// of strings) and "role" (a string); an empty body is {}.
Result<std::pair<std::vector<std::string>, std::string>> enrolment_request(std::string_view body) {
  std::pair<std::vector<std::string>, std::string> out;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
  auto o = parse_object(body);
  if (!o) return o.error();
  for (const auto& [key, value] : *o) {
    if (key == "networks") {
      if (value.is_null()) continue;
      if (!value.is_array()) {
        return Error{errc::kInvalidField, "'networks' must be an array of CIDR strings"};
      }
      for (const auto& n : value.get_array()) {
        if (!n.is_string()) {
          return Error{errc::kInvalidNetwork,
                       "each network must be a string such as "
                       "\"192.168.1.0/24\""};
        }
        out.first.emplace_back(n.get_string());
      }
    } else if (key == "role") {
      if (value.is_null()) continue;
      if (!value.is_string()) return Error{errc::kInvalidRole, "'role' must be a string"};
      out.second = value.get_string();
      if (out.second.empty()) return Error{errc::kInvalidRole, "'role' must not be empty"};
    } else {
      return Error{errc::kInvalidField,
                   fmt::format("unknown field '{}': a legacy device has 'networks' and 'role'",
                               std::string_view(key))};
    }
  }
  return out;
}

}  // namespace

// Answers 400 and returns false unless the path's restaurant (and, with `device`, device) id is
// valid.
static bool valid_ids(RestApi& api, const RestApi::Request& req, RestApi::Respond& respond,
                      const std::string& restaurant, const std::string* device,
                      std::size_t max_id_bytes) {
  auto e = check_id_field("restaurant id", restaurant, max_id_bytes);
  if (!e && device) e = check_id_field("device id", *device, max_id_bytes);
  if (!e) return true;
  respond(api.error(req, http::status::bad_request, *e));
  return false;
}

void RestApi::list_legacy_devices(Call& call) {
  if (!valid_ids(*this, call.req, call.respond, call.id, nullptr, ctx_.config.max_id_bytes)) {
    return;
  }
  auto devices = ctx_.store.legacy_devices(call.id);
  if (!devices) {
    call.respond(error(call.req, http::status::service_unavailable, devices.error()));
    return;
  }
  json::array list;
  for (const auto& d : *devices) list.push_back(device_json(d));
  json::object o{{"restaurant_id", call.id}, {"legacy_devices", std::move(list)}};
  call.respond(json(call.req, http::status::ok, json_text(o)));
}

void RestApi::get_legacy_device(Call& call) {
  if (!valid_ids(*this, call.req, call.respond, call.id, &call.device, ctx_.config.max_id_bytes)) {
    return;
  }
  auto devices = ctx_.store.legacy_devices(call.id);
  if (!devices) {
    call.respond(error(call.req, http::status::service_unavailable, devices.error()));
    return;
  }
  for (const auto& d : *devices) {
    if (d.device_id == call.device) {
      call.respond(json(call.req, http::status::ok, json_text(device_json(d))));
      return;
    }
  }
  call.respond(error(call.req, http::status::not_found, not_enrolled(call.id, call.device)));
}

void RestApi::put_legacy_device(Call& call) {
  if (!valid_ids(*this, call.req, call.respond, call.id, &call.device, ctx_.config.max_id_bytes)) {
    return;
  }
  auto request = enrolment_request(call.req.body());
  auto enrolment = request ? make_legacy_enrolment(request->first, request->second)
                           : Result<LegacyEnrolment>(request.error());
  if (!enrolment) {
    call.respond(error(call.req, http::status::bad_request, enrolment.error()));
    return;
  }
  const LegacyDevice device{call.id, call.device, network_texts(*enrolment),
                            std::string(role_name(enrolment->role)), now_ms()};
  auto added = ctx_.store.put_legacy_device(device);
  if (!added) {
    call.respond(error(call.req, http::status::service_unavailable, added.error()));
    return;
  }
  std::size_t closed = 0;
  if (ctx_.legacy) {
    auto refreshed = ctx_.legacy->refresh(call.id);
    if (!refreshed) {
      call.respond(error(call.req, http::status::service_unavailable,
                         {errc::kStoreUnavailable,
                          "the enrolment is stored but could not be read back; this restaurant's "
                          "tokenless devices are refused here until it can: " +
                              refreshed.error().message}));
      return;
    }
    closed = *refreshed;
  }
  spdlog::info("legacy device {} restaurant={} device={} networks=[{}] role={}",
               *added ? "enrolled" : "re-enrolled", device.restaurant_id, device.device_id,
               fmt::join(device.networks, ", "), device.role);
  json::object o = device_json(device);
  o["disconnected"] = closed;
  call.respond(json(call.req, *added ? http::status::created : http::status::ok, json_text(o)));
}

void RestApi::delete_legacy_device(Call& call) {
  if (!valid_ids(*this, call.req, call.respond, call.id, &call.device, ctx_.config.max_id_bytes)) {
    return;
  }
  auto removed = ctx_.store.remove_legacy_device(call.id, call.device);
  if (!removed) {
    call.respond(error(call.req, http::status::service_unavailable, removed.error()));
    return;
  }
  if (!*removed) {
    call.respond(error(call.req, http::status::not_found, not_enrolled(call.id, call.device)));
    return;
  }
  std::size_t closed = 0;
  if (ctx_.legacy) {
    // A refresh that cannot read the store closes every tokenless connection of the
    // restaurant (fail closed), this device's included.
    if (auto refreshed = ctx_.legacy->refresh(call.id)) closed = *refreshed;
  }
  spdlog::warn("legacy device removed restaurant={} device={}; {} connection(s) closed here",
               call.id, call.device, closed);
  json::object o{{"restaurant_id", call.id},
                 {"device_id", call.device},
                 {"removed", true},
                 {"disconnected", closed}};
  call.respond(json(call.req, http::status::ok, json_text(o)));
}

}  // namespace possync
