#include "transport/rest_api.h"

#include <fmt/format.h>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <charconv>
#include <set>

#include "common/ids.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/time.h"
#include "protocol/close_codes.h"
#include "transport/legacy_devices.h"
#include "transport/ordered_intake.h"
#include "transport/request_auth.h"

namespace http = boost::beast::http;
namespace json = boost::json;

namespace possync {
namespace {

constexpr std::size_t kDefaultChangesLimit = 100;
constexpr std::size_t kMaxChangesLimit = 1000;

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

RestApi::Response RestApi::json(const Request& req, http::status status, std::string body) const {
  Response res{status, req.version()};
  res.set(http::field::server, "possync");
  res.set(http::field::content_type, "application/json");
  const auto& origins = ctx_.config.cors_origins;
  const bool any = std::find(origins.begin(), origins.end(), "*") != origins.end();
  if (any) {
    res.set(http::field::access_control_allow_origin, "*");
  } else if (auto origin = req[http::field::origin]; !origin.empty()) {
    if (std::find(origins.begin(), origins.end(), origin) != origins.end()) {
      res.set(http::field::access_control_allow_origin, origin);
    }
    res.set(http::field::vary, "Origin");
  }
  res.set(http::field::access_control_allow_methods, "GET, POST, PUT, DELETE, OPTIONS");
  res.set(http::field::access_control_allow_headers, "Content-Type, Authorization");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

RestApi::Response RestApi::error(const Request& req, http::status status, const Error& e) const {
  ctx_.metrics.count_error(e.code);
  json::object o{{"status", "error"},
                 {"code", e.code},
                 {"message", e.message},
                 {"timestamp", iso8601_utc(now_ms())}};
  return json(req, status, json_text(o));
}

RestApi::Response RestApi::auth_error(const Request& req, const Error& e) const {
  Response res = error(req, auth_status(e), e);
  add_auth_challenge(res, e);
  return res;
}

std::optional<Principal> RestApi::authenticate(Call& call, std::string_view restaurant,
                                               std::string_view device) const {
  auto caller = authenticate_caller(ctx_.auth, ctx_.legacy, call.token,
                                    {restaurant, device, call.address}, now_ms() / 1000);
  if (!caller) {
    call.respond(auth_error(call.req, caller.error()));
    return std::nullopt;
  }
  return std::move(*caller);
}

bool RestApi::restaurant_exists(const std::string& id, const LogHead& head) const {
  return head.exists || ctx_.hub.has_room(id);
}

template <class T>
bool RestApi::found(const Request& req, const std::string& id, const Result<T>& read,
                    const LogHead& head, Respond& respond) const {
  if (!read) {
    respond(error(req, http::status::service_unavailable, read.error()));
    return false;
  }
  if (!restaurant_exists(id, head)) {
    respond(error(req, http::status::not_found, {errc::kNotFound, "Restaurant not found"}));
    return false;
  }
  return true;
}
// Also used by rest_admin_console.cpp.
template bool RestApi::found(const Request&, const std::string&, const Result<LogHead>&,
                             const LogHead&, Respond&) const;

// ---- routing ----

// Who may call a route. Beyond `open`, the caller is authenticated first (401); then the method
// is checked (405); then its rights (403).
enum class RestApi::Access {
  open,        // anyone, no token (health, readiness)
  caller,      // any authenticated caller (its rights are checked per change: /api/sync)
  admin,       // an admin token
  restaurant,  // a caller of the restaurant named by the path's :id segment
};

// One endpoint: its method and path (segments; ":id" takes a restaurant id, ":device" a device
// id, ":file" a file name), access and handler.
struct RestApi::Route {
  http::verb method;
  std::array<std::string_view, 6> path;
  Access access;
  void (*handle)(RestApi& api, Call& call);
};

const std::vector<RestApi::Route>& RestApi::routes() {
  using V = http::verb;
  static const std::vector<Route> table{
      {V::get,
       {"api", "health"},
       Access::open,
       [](RestApi& a, Call& c) { a.health(c.req, c.respond); }},
      {V::get,
       {"api", "ready"},
       Access::open,
       [](RestApi& a, Call& c) { a.ready(c.req, c.respond); }},
      {V::get,
       {"metrics"},
       Access::admin,
       [](RestApi& a, Call& c) { a.metrics(c.req, c.respond); }},
      {V::post, {"api", "sync"}, Access::caller, [](RestApi& a, Call& c) { a.sync(c); }},
      {V::get,
       {"api", "admin", "restaurants"},
       Access::admin,
       [](RestApi& a, Call& c) { a.admin_restaurants(c.req, c.respond); }},
      {V::post,
       {"api", "admin", "restaurants", ":id", "disconnect"},
       Access::admin,
       [](RestApi& a, Call& c) {
         std::string device;
         if (auto it = c.params.find("device_id"); it != c.params.end()) device = (*it).value;
         a.admin_disconnect(c.req, c.id, device, c.respond);
       }},
      {V::get,
       {"api", "admin", "restaurants", ":id", "devices"},
       Access::admin,
       [](RestApi& a, Call& c) { a.admin_devices(c); }},
      {V::get,
       {"api", "admin", "restaurants", ":id", "legacy-devices"},
       Access::admin,
       [](RestApi& a, Call& c) { a.list_legacy_devices(c); }},
      {V::get,
       {"api", "admin", "restaurants", ":id", "legacy-devices", ":device"},
       Access::admin,
       [](RestApi& a, Call& c) { a.get_legacy_device(c); }},
      {V::put,
       {"api", "admin", "restaurants", ":id", "legacy-devices", ":device"},
       Access::admin,
       [](RestApi& a, Call& c) { a.put_legacy_device(c); }},
      {V::delete_,
       {"api", "admin", "restaurants", ":id", "legacy-devices", ":device"},
       Access::admin,
       [](RestApi& a, Call& c) { a.delete_legacy_device(c); }},
      {V::get,
       {"api", "restaurants", ":id", "status"},
       Access::restaurant,
       [](RestApi& a, Call& c) { a.restaurant_status(c.req, c.id, c.respond); }},
      {V::get,
       {"api", "restaurants", ":id", "data"},
       Access::restaurant,
       [](RestApi& a, Call& c) { a.restaurant_data(c.req, c.id, c.respond); }},
      {V::get,
       {"api", "restaurants", ":id", "changes"},
       Access::restaurant,
       [](RestApi& a, Call& c) { a.restaurant_changes(c); }},
      {V::get, {"admin"}, Access::open, [](RestApi& a, Call& c) { a.admin_console_redirect(c); }},
      {V::get,
       {"admin", ":file"},
       Access::open,
       [](RestApi& a, Call& c) { a.admin_console_file(c); }},
  };
  return table;
}

namespace {

// Whether `segments` is `pattern`'s path; sets `id`, `device` and `file` to the segments in the
// place of ":id", ":device" and ":file".
bool path_matches(const std::array<std::string_view, 6>& pattern,
                  const std::vector<std::string>& segments, std::string& id, std::string& device,
                  std::string& file) {
  const auto length = static_cast<std::size_t>(
      std::find(pattern.begin(), pattern.end(), std::string_view()) - pattern.begin());
  if (segments.size() != length) return false;
  for (std::size_t i = 0; i < length; ++i) {
    if (pattern[i] == ":id") {
      id = segments[i];
    } else if (pattern[i] == ":device") {
      device = segments[i];
    } else if (pattern[i] == ":file") {
      file = segments[i];
    } else if (pattern[i] != segments[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

void RestApi::handle(const Request& req, std::string address, Respond respond) {
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url) {
    // As after a malformed request line: answered, then the connection is closed.
    Response res =
        error(req, http::status::bad_request, {errc::kBadRequest, "malformed request target"});
    res.keep_alive(false);
    respond(std::move(res));
    return;
  }
  ctx_.metrics.http_requests.fetch_add(1, std::memory_order_relaxed);
  if (req.method() == http::verb::options) {
    Response res = json(req, http::status::no_content, {});
    res.body().clear();
    res.content_length(0);
    res.erase(http::field::content_type);
    respond(std::move(res));
    return;
  }
  std::vector<std::string> segments;
  for (auto s : url->segments()) segments.push_back(s);

  Call call{req,
            url->params(),
            std::move(address),
            request_token(req, url->params()),
            std::nullopt,
            {},
            {},
            {},
            std::move(respond)};
  const Route* route = nullptr;  // the path's route for this method
  const Route* path = nullptr;   // the path's first route, whatever its method
  std::string allowed;           // the path's methods
  for (const Route& r : routes()) {
    if (!path_matches(r.path, segments, call.id, call.device, call.file)) continue;
    if (path == nullptr) path = &r;
    // HEAD is answered as GET (HttpSession sends the response without its body).
    if (r.method == req.method() ||
        (r.method == http::verb::get && req.method() == http::verb::head)) {
      route = &r;
    }
    if (!allowed.empty()) allowed += ", ";
    allowed += std::string_view(http::to_string(r.method));
    if (r.method == http::verb::get) allowed += ", HEAD";
  }
  if (path == nullptr) {
    call.respond(
        error(req, http::status::not_found,
              {errc::kNotFound, fmt::format("no endpoint at {}", std::string_view(url->path()))}));
    return;
  }
  const Access access = (route ? route : path)->access;
  // A tokenless /api/sync names its legacy device in the body: sync() admits it.
  const bool legacy_sync =
      access == Access::caller && route != nullptr && call.token.empty() && ctx_.legacy != nullptr;
  if (access != Access::open && !legacy_sync) {
    std::string device;
    if (auto it = call.params.find("device_id"); it != call.params.end()) device = (*it).value;
    call.caller =
        authenticate(call, access == Access::restaurant ? std::string_view(call.id) : "", device);
    if (!call.caller) return;
  }
  if (route == nullptr) {
    Response res = error(req, http::status::method_not_allowed,
                         {errc::kMethodNotAllowed,
                          fmt::format("use {} for {}", allowed, std::string_view(url->path()))});
    res.set(http::field::allow, allowed);
    call.respond(std::move(res));
    return;
  }
  std::optional<Error> refused;
  if (access == Access::admin) {
    refused = ctx_.auth.require_admin(*call.caller);
  } else if (access == Access::restaurant) {
    if (auto e = check_id_field("restaurant id", call.id, ctx_.config.max_id_bytes)) {
      call.respond(error(req, http::status::bad_request, *e));
      return;
    }
    refused = ctx_.auth.authorize(*call.caller, call.id, {});
  }
  if (refused) {
    call.respond(auth_error(req, *refused));
    return;
  }
  route->handle(*this, call);
}

void RestApi::metrics(const Request& req, Respond& respond) {
  Response res =
      json(req, http::status::ok,
           ctx_.metrics.render({ctx_.hub.connection_count(), ctx_.hub.restaurant_count(),
                                ctx_.backpressure.queued_changes(),
                                ctx_.backpressure.fanout_backlog(), ctx_.backpressure.closings()}));
  res.set(http::field::content_type, "text/plain; version=0.0.4");
  respond(std::move(res));
}

void RestApi::health(const Request& req, Respond& respond) {
  json::object o{{"status", "ok"},
                 {"timestamp", iso8601_utc(now_ms())},
                 {"connectedRestaurants", ctx_.hub.restaurant_count()},
                 {"totalConnections", ctx_.hub.connection_count()}};
  respond(json(req, http::status::ok, json_text(o)));
}

void RestApi::admin_restaurants(const Request& req, Respond& respond) {
  json::array restaurants;
  std::size_t total = 0;
  for (const auto& [id, connections] : ctx_.hub.rooms()) {
    std::set<std::string> devices;
    std::size_t observers = 0;
    for (const auto& d : ctx_.hub.devices(id)) {
      if (d.observer) {
        ++observers;
      } else {
        devices.insert(d.device_id);
      }
    }
    json::object o{{"restaurant_id", id},
                   {"connections", connections},
                   {"devices", devices.size()},
                   {"observers", observers},
                   {"seq", nullptr},
                   {"last_change_at", nullptr}};
    // The log's head and its last change's commit time (null where the store does not answer).
    if (auto head = ctx_.store.head(id); head) {
      o["seq"] = head->seq;
      if (head->seq > head->pruned_seq) {
        if (auto last = ctx_.store.read_log(id, head->seq - 1, 1); last && !last->entries.empty()) {
          o["last_change_at"] = iso8601_utc(last->entries.back().committed_at_ms);
        }
      }
    }
    restaurants.push_back(std::move(o));
    total += connections;
  }
  json::object o{{"restaurants", std::move(restaurants)},
                 {"total_connections", total},
                 {"node", ctx_.node},
                 {"timestamp", iso8601_utc(now_ms())}};
  respond(json(req, http::status::ok, json_text(o)));
}

void RestApi::admin_disconnect(const Request& req, const std::string& id, std::string_view device,
                               Respond& respond) {
  if (auto e = check_id_field("restaurant id", id, ctx_.config.max_id_bytes)) {
    respond(error(req, http::status::bad_request, *e));
    return;
  }
  std::size_t closed = 0;
  for (const auto& s : ctx_.hub.subscribers(id)) {
    if (!device.empty() && s->status().device_id != device) continue;
    s->disconnect(kCloseByOperator, "disconnected by an operator");
    ++closed;
  }
  if (device.empty()) {
    slog::warn("operator disconnected connections", {{"restaurant", id}, {"connections", closed}});
  } else {
    slog::warn("operator disconnected connections",
               {{"restaurant", id}, {"device", device}, {"connections", closed}});
  }
  json::object o{{"restaurant_id", id}, {"disconnected", closed}};
  respond(json(req, http::status::ok, json_text(o)));
}

// Readiness (for load balancers): 200 while the store answers, 503 while it does not.
void RestApi::ready(const Request& req, Respond& respond) {
  if (auto ok = ctx_.store.ping(); !ok) {
    respond(error(req, http::status::service_unavailable,
                  {errc::kStoreUnavailable, "the store cannot be reached: " + ok.error().message}));
    return;
  }
  json::object o{{"status", "ready"}, {"timestamp", iso8601_utc(now_ms())}};
  respond(json(req, http::status::ok, json_text(o)));
}

void RestApi::restaurant_status(const Request& req, const std::string& id, Respond& respond) {
  auto head = ctx_.store.head(id);
  if (!found(req, id, head, head ? *head : LogHead{}, respond)) return;
  json::array devices;
  for (const auto& d : ctx_.hub.devices(id)) {
    if (d.observer) continue;  // an operator watching, not one of the restaurant's devices
    json::object o{{"device_id", d.device_id},
                   {"connected_at", iso8601_utc(d.connected_at_ms)},
                   {"last_seen", iso8601_utc(d.last_seen_ms)},
                   {"legacy", d.legacy}};
    o["user_id"] = user_id_json(d.user_id);
    devices.push_back(std::move(o));
  }
  json::object o{{"restaurant_id", id}, {"device_count", devices.size()}, {"seq", head->seq}};
  o["connected_devices"] = std::move(devices);
  respond(json(req, http::status::ok, json_text(o)));
}

void RestApi::restaurant_data(const Request& req, const std::string& id, Respond& respond) {
  auto snap = ctx_.store.snapshot(id);
  if (!found(req, id, snap, snap ? snap->head : LogHead{}, respond)) return;
  json::object data;
  for (const auto& d : kDataTypes) {
    json::array records;
    for (auto& r : snap->records[static_cast<std::size_t>(d.type)]) records.push_back(std::move(r));
    data[d.name] = std::move(records);
  }
  json::object o{{"restaurant_id", id},
                 {"data", std::move(data)},
                 {"timestamp", iso8601_utc(now_ms())},
                 {"seq", snap->head.seq}};
  respond(json(req, http::status::ok, json_text(o)));
}

void RestApi::restaurant_changes(Call& call) {
  const Request& req = call.req;
  const std::string& id = call.id;
  Respond& respond = call.respond;
  std::uint64_t since = 0;
  std::size_t limit = kDefaultChangesLimit;
  for (auto param : call.params) {
    if (param.key == "since" || param.key == "limit") {
      auto v = parse_uint(param.value);
      if (!v || (param.key == "limit" && (*v == 0 || *v > kMaxChangesLimit))) {
        respond(error(req, http::status::bad_request,
                      {errc::kInvalidField,
                       param.key == "since" ? std::string("'since' must be a non-negative integer")
                                            : fmt::format("'limit' must be an integer from 1 to {}",
                                                          kMaxChangesLimit)}));
        return;
      }
      if (param.key == "since")
        since = *v;
      else
        limit = static_cast<std::size_t>(*v);
    }
  }
  auto page = ctx_.store.read_log(id, since, limit);
  if (!found(req, id, page, page ? page->head : LogHead{}, respond)) return;
  if (since < page->head.pruned_seq || since > page->head.seq) {
    json::object o{{"status", "error"},
                   {"code", errc::kResetRequired},
                   {"message", since > page->head.seq
                                   ? "since is ahead of the server's log; reload the snapshot"
                                   : "history after since was pruned; reload the snapshot"},
                   {"seq", page->head.seq},
                   {"timestamp", iso8601_utc(now_ms())}};
    respond(json(req, http::status::gone, json_text(o)));
    return;
  }
  json::array changes;
  for (const auto& e : page->entries) changes.push_back(change_to_json(e));
  const bool more = !page->entries.empty() && page->entries.back().seq < page->head.seq;
  json::object o{{"restaurant_id", id},
                 {"changes", std::move(changes)},
                 {"seq", page->head.seq},
                 {"has_more", more}};
  respond(json(req, http::status::ok, json_text(o)));
}

// Collects the outcomes of one POST /api/sync and answers when the last one arrives.
struct SyncBatch {
  RestApi* api;
  ServerContext* ctx;
  RestApi::Request req;
  RestApi::Respond respond;
  std::string restaurant_id, device_id;
  std::vector<Outcome> outcomes;
  std::mutex mutex;
  std::size_t remaining = 0;

  void finish() {
    std::size_t synced = 0;
    std::string_view retry;  // the code of the first entry rejected for a retryable reason
    json::array results;
    for (const auto& o : outcomes) {
      if (o.status != OutcomeStatus::rejected) ++synced;
      // Retryable rejections make the whole answer a 503: today's app resends only on non-200.
      if (retry.empty() &&
          (o.error.code == errc::kStoreUnavailable || o.error.code == errc::kShuttingDown ||
           o.error.code == errc::kRateLimited)) {
        retry = o.error.code;
      }
      results.push_back(outcome_to_json(o));
    }
    // The device's own connections learn the outcome too (other devices get the changes live).
    json::object update{{"type", "sync_update"},
                        {"restaurant_id", restaurant_id},
                        {"changes", results},
                        {"timestamp", iso8601_utc(now_ms())}};
    ctx->hub.notify_device(restaurant_id, device_id,
                           std::make_shared<const std::string>(json_text(update)));
    const auto timestamp = iso8601_utc(now_ms());
    if (!retry.empty()) {
      // Today's app resends the whole batch on any non-200; repeated changes are deduplicated.
      json::object o{{"status", "error"},
                     {"code", retry},
                     {"message", retry == errc::kShuttingDown
                                     ? "the server is shutting down; retry the request"
                                 : retry == errc::kRateLimited
                                     ? "too many user secrets are waiting to be hashed; retry "
                                       "the request"
                                     : "some changes could not be stored; retry the request"},
                     {"synced_changes", synced},
                     {"timestamp", timestamp},
                     {"results", std::move(results)}};
      auto res = api->json(req, http::status::service_unavailable, json_text(o));
      res.set(http::field::retry_after, "1");
      respond(std::move(res));
      return;
    }
    json::object o{{"status", "success"},
                   {"synced_changes", synced},
                   {"timestamp", timestamp},
                   {"results", std::move(results)}};
    respond(api->json(req, http::status::ok, json_text(o)));
  }
};

// Today's app names the author in each POSTed change (`user_id`), not in the body. In a typed
// user_update that key holds the record instead, so it is not taken as the author there.
Origin RestApi::entry_origin(const Origin& body, const json::object& entry) const {
  const auto* user = entry.if_contains("user_id");
  const auto* type = entry.if_contains("type");
  if (user == nullptr || !user->is_string() ||
      (type && type->is_string() && type->get_string() == "user_update")) {
    return body;
  }
  Origin origin = body;
  if (!check_id(user->get_string(), ctx_.config.max_id_bytes)) origin.user_id = user->get_string();
  return origin;
}

void RestApi::sync(Call& call) {
  const Request& req = call.req;
  Respond& respond = call.respond;
  if (!ctx_.backpressure.open()) {
    // Nothing of the request is taken; the app resends the whole batch on a non-200.
    auto res = error(req, http::status::service_unavailable,
                     {errc::kOverloaded, "the server is catching up with its load; retry shortly"});
    res.set(http::field::retry_after, "1");
    respond(std::move(res));
    return;
  }
  auto body = parse_object(req.body());
  if (!body) {
    respond(error(req, http::status::bad_request, body.error()));
    return;
  }
  auto field = [&](std::string_view name) -> Result<std::string> {
    const auto* v = body->if_contains(name);
    if (v == nullptr || v->is_null()) {
      return Error{errc::kMissingField, fmt::format("field '{}' is required", name)};
    }
    if (!v->is_string()) {
      return Error{errc::kInvalidField, fmt::format("field '{}' must be a string", name)};
    }
    std::string s(v->get_string());
    if (auto e = check_id_field(name, s, ctx_.config.max_id_bytes)) return *e;
    return Result<std::string>(boost::system::in_place_value, std::move(s));
  };
  auto restaurant = field("restaurant_id");
  auto device = restaurant ? field("device_id") : Result<std::string>(restaurant.error());
  if (!device) {
    respond(error(req, http::status::bad_request, device.error()));
    return;
  }
  if (!call.caller) {
    call.caller = authenticate(call, *restaurant, *device);  // a tokenless legacy device
    if (!call.caller) return;
  }
  const Principal& caller = *call.caller;
  if (auto e = ctx_.auth.authorize(caller, *restaurant, *device)) {
    respond(auth_error(req, *e));
    return;
  }
  Origin origin{*restaurant, *device, {}};
  if (const auto* u = body->if_contains("user_id"); u && u->is_string()) {
    origin.user_id = u->get_string();
    if (check_id(origin.user_id, ctx_.config.max_id_bytes)) origin.user_id.clear();
  }
  auto* changes = body->if_contains("changes");
  if (changes == nullptr || changes->is_null()) {
    respond(error(req, http::status::bad_request,
                  {errc::kMissingField, "field 'changes' is required"}));
    return;
  }
  if (!changes->is_array()) {
    respond(error(req, http::status::bad_request,
                  {errc::kInvalidField, "field 'changes' must be an array"}));
    return;
  }
  auto& list = changes->get_array();
  if (list.size() > ctx_.config.max_changes_per_request) {
    respond(error(req, http::status::payload_too_large,
                  {errc::kPayloadTooLarge, fmt::format("at most {} changes per request",
                                                       ctx_.config.max_changes_per_request)}));
    return;
  }

  auto batch = std::make_shared<SyncBatch>();
  batch->api = this;
  batch->ctx = &ctx_;
  batch->req = req;
  batch->respond = std::move(respond);
  batch->restaurant_id = origin.restaurant_id;
  batch->device_id = origin.device_id;
  batch->outcomes.resize(list.size());

  std::vector<std::pair<std::size_t, ChangeRequest>> valid;
  for (std::size_t i = 0; i < list.size(); ++i) {
    Outcome& out = batch->outcomes[i];
    if (!list[i].is_object()) {
      out.error = {errc::kInvalidMessage, "each change must be a JSON object"};
      continue;
    }
    // Takes only the entry's data out of it: its change_id stays for an error below.
    const Origin entry_from = entry_origin(origin, list[i].get_object());
    auto change = decode_change(std::move(list[i].get_object()), entry_from, ctx_.limits);
    if (!change) {
      if (const auto* c = list[i].get_object().if_contains("change_id"); c && c->is_string()) {
        out.change_id = c->get_string();
      }
      out.error = change.error();
      continue;
    }
    out.change_id = change->change.change_id;
    if (auto refused = ctx_.auth.permit(caller, change->change)) {
      out.error = std::move(*refused);
      continue;
    }
    if (change->change.record_id.empty()) {
      // A typed user_update without data.id or user_id: there is no twin to wait for here.
      out.error = user_update_without_id();
      continue;
    }
    valid.emplace_back(i, ChangeRequest{std::move(change->change), {}});
    valid.back().second.role = caller.role;
  }
  batch->remaining = valid.size() + 1;  // +1 until every request is queued
  auto settle = [batch](std::size_t index, const Outcome* outcome) {
    bool last;
    {
      std::lock_guard lock(batch->mutex);
      if (outcome) {
        batch->outcomes[index] = *outcome;
        batch->outcomes[index].entry.reset();
        batch->outcomes[index].follow_ups.clear();
      }
      last = --batch->remaining == 0;
    }
    if (last) batch->finish();
  };
  // Every valid change in request order, those with secrets once hashed (OrderedIntake, under
  // `mutex`: hashes complete on the hasher's threads); all go to the pipeline in one hand-over.
  struct Ordered {
    std::mutex mutex;
    OrderedIntake order;
    std::vector<std::size_t> slots;  // the outcome index of each change, in push order
    std::size_t next = 0;            // the next change to leave: slots[next]
    bool pushed = false;             // every change is in
    bool submitted = false;
    std::vector<CommitPipeline::Submission> submissions;
    std::vector<std::size_t> submitted_slots;
  };
  auto ordered = std::make_shared<Ordered>();
  auto take = [batch, ordered, settle](OrderedIntake::Released&& r) {
    const std::size_t i = ordered->slots[ordered->next++];
    if (r.error) {
      batch->outcomes[i].error = std::move(*r.error);  // its secrets could not be hashed
      settle(i, nullptr);
      return;
    }
    ordered->submissions.push_back(
        {std::move(r.request), [settle, i](const Outcome& o) { settle(i, &o); }, 0});
    ordered->submitted_slots.push_back(i);
  };
  // Called under ordered->mutex; true once for the caller that must submit.
  auto all_ready = [ordered] {
    if (!ordered->pushed || ordered->order.waiting() || ordered->submitted) return false;
    ordered->submitted = true;
    return true;
  };
  auto submit_all = [this, batch, ordered, settle] {
    if (!ctx_.pipeline.submit(ordered->submissions)) {
      for (std::size_t i : ordered->submitted_slots) {
        batch->outcomes[i].error = {errc::kShuttingDown, "the server is shutting down; retry"};
        settle(i, nullptr);
      }
    }
    settle(0, nullptr);
  };
  std::vector<OrderedIntake::HashJob> jobs;
  bool ready = false;
  {
    std::lock_guard lock(ordered->mutex);
    for (auto& [index, request] : valid) {
      ordered->slots.push_back(index);
      if (auto job = ordered->order.push(std::move(request), take)) jobs.push_back(std::move(*job));
    }
    ordered->pushed = true;
    ready = all_ready();
  }
  if (ready) return submit_all();
  for (auto& job : jobs) {
    ctx_.hasher.hash(std::move(job.data), [ordered, take, all_ready, submit_all,
                                           ticket = job.ticket](Result<json::object> hashed) {
      bool last = false;
      {
        std::lock_guard lock(ordered->mutex);
        ordered->order.complete(ticket, std::move(hashed), take);
        last = all_ready();
      }
      if (last) submit_all();
    });
  }
}

}  // namespace possync
