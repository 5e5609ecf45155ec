// The operator's views served by RestApi besides the JSON of rest_api.cpp:
//   GET /api/admin/restaurants/:id/devices   every connection of one restaurant on this node,
//                                            observers included (docs/protocol.md)
//   GET /admin                               a redirect to /admin/
//   GET /admin/:file                         the admin console's files (clients/admin, compiled in:
//                                            transport/static_assets.h); "" is index.html
#include <boost/json.hpp>

#include "common/ids.h"
#include "common/json_text.h"
#include "common/time.h"
#include "transport/rest_api.h"
#include "transport/static_assets.h"

namespace http = boost::beast::http;
namespace json = boost::json;

namespace possync {

void RestApi::admin_devices(Call& call) {
  const Request& req = call.req;
  if (auto e = check_id_field("restaurant id", call.id, ctx_.config.max_id_bytes)) {
    call.respond(error(req, http::status::bad_request, *e));
    return;
  }
  auto head = ctx_.store.head(call.id);
  if (!found(req, call.id, head, head ? *head : LogHead{}, call.respond)) return;
  json::array connections;
  for (const auto& d : ctx_.hub.devices(call.id)) {
    json::object o{{"device_id", d.device_id},
                   {"role", d.role.empty() ? json::value(nullptr) : json::value(d.role)},
                   {"user_id", user_id_json(d.user_id)},
                   {"observer", d.observer},
                   {"legacy", d.legacy},
                   {"node", ctx_.node},
                   {"address", d.address},
                   {"connected_at", iso8601_utc(d.connected_at_ms)},
                   {"last_seen", iso8601_utc(d.last_seen_ms)}};
    connections.push_back(std::move(o));
  }
  json::object o{{"restaurant_id", call.id},
                 {"seq", head->seq},
                 {"node", ctx_.node},
                 {"connections", std::move(connections)},
                 {"timestamp", iso8601_utc(now_ms())}};
  call.respond(json(req, http::status::ok, json_text(o)));
}

void RestApi::admin_console_redirect(Call& call) {
  // The page's relative URLs need the trailing slash; relative, so that it holds behind a proxy
  // that serves the server under a path prefix.
  Response res{http::status::moved_permanently, call.req.version()};
  res.set(http::field::server, "possync");
  res.set(http::field::location, "admin/");
  res.keep_alive(call.req.keep_alive());
  res.prepare_payload();
  call.respond(std::move(res));
}

void RestApi::admin_console_file(Call& call) {
  const Request& req = call.req;
  const std::string_view name = call.file.empty() ? std::string_view("index.html") : call.file;
  const StaticAsset* asset = nullptr;
  for (const auto& a : admin_console_assets()) {
    if (a.name == name) asset = &a;
  }
  if (asset == nullptr) {
    call.respond(error(req, http::status::not_found,
                       {errc::kNotFound, "no such file of the admin console"}));
    return;
  }
  const bool unchanged = req[http::field::if_none_match] == asset->etag;
  Response res{unchanged ? http::status::not_modified : http::status::ok, req.version()};
  res.set(http::field::server, "possync");
  res.set(http::field::etag, asset->etag);
  res.set(http::field::cache_control, "no-cache");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("Referrer-Policy", "no-referrer");
  // Everything the page loads or talks to is this server; nothing may frame it (docs/security.md).
  res.set("Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  res.set("X-Frame-Options", "DENY");
  res.keep_alive(req.keep_alive());
  if (!unchanged) {
    res.set(http::field::content_type, asset->content_type);
    res.body() = std::string(asset->body);
  }
  res.prepare_payload();
  call.respond(std::move(res));
}

}  // namespace possync
