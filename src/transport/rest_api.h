// RestApi: the REST endpoints (docs/protocol.md, "REST"). Turns one HTTP request into one JSON
// response; knows nothing of sockets. GET handlers answer at once from the Store and the Hub;
// POST /api/sync answers once every change in it has an outcome from the commit pipeline.
//
// Thread-safety: handle() may be called from any thread; `respond` is called exactly once, from
// the calling thread or from where the commit pipeline runs completions (its writer thread, or
// SqliteStore's sync thread).
#pragma once

#include <boost/beast/http.hpp>
#include <boost/url/params_view.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "transport/server_context.h"

namespace possync {

class RestApi {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;
  using Respond = std::function<void(Response)>;

  explicit RestApi(ServerContext& ctx) : ctx_(ctx) {}

  // `address`: the client's (HttpSession::client_address), for tokenless legacy devices.
  void handle(const Request& req, std::string address, Respond respond);

  // A JSON error response in the shape today's app knows: {"status":"error","code","message",...}.
  Response error(const Request& req, boost::beast::http::status status, const Error& e) const;
  // A response with a JSON body, CORS headers and the request's keep-alive.
  Response json(const Request& req, boost::beast::http::status status, std::string body) const;
  // 401 (with WWW-Authenticate) or 403 for an Error of the Authenticator.
  Response auth_error(const Request& req, const Error& e) const;

 private:
  enum class Access;
  struct Route;
  // One request on its way through a route: what its handler needs.
  struct Call {
    const Request& req;
    boost::urls::params_view params;
    std::string address;              // the client's address
    std::string token;                // the request's token, if any (transport/request_auth.h)
    std::optional<Principal> caller;  // set unless the route is open (or, for /api/sync, a
                                      // tokenless legacy device: sync() admits it)
    std::string id;                   // the path's :id segment (a restaurant id), if any
    std::string device;               // the path's :device segment, if any
    std::string file;                 // the path's :file segment (a file name), if any
    Respond respond;
  };
  // Every endpoint (rest_api.cpp); handle() dispatches by path, then method.
  static const std::vector<Route>& routes();

  void health(const Request& req, Respond& respond);
  void metrics(const Request& req, Respond& respond);
  void ready(const Request& req, Respond& respond);
  void restaurant_status(const Request& req, const std::string& id, Respond& respond);
  void restaurant_data(const Request& req, const std::string& id, Respond& respond);
  void restaurant_changes(Call& call);  // since and limit from the query
  void sync(Call& call);
  void admin_restaurants(const Request& req, Respond& respond);
  void admin_disconnect(const Request& req, const std::string& id, std::string_view device,
                        Respond& respond);
  // Legacy devices (--auth mixed) of the restaurant :id, one of them with :device
  // (rest_legacy_devices.cpp).
  void list_legacy_devices(Call& call);
  void get_legacy_device(Call& call);
  void put_legacy_device(Call& call);
  void delete_legacy_device(Call& call);
  // Every connection of the restaurant :id on this node, observers included
  // (rest_admin_console.cpp).
  void admin_devices(Call& call);
  // The admin console (rest_admin_console.cpp): /admin answers with a redirect to /admin/, and
  // /admin/:file with one of its files (compiled in; needs no token: the page asks for one).
  void admin_console_redirect(Call& call);
  void admin_console_file(Call& call);
  // The caller of the request: its token's, or (--auth mixed, no token) the legacy device of
  // `restaurant` named `device`; nothing after answering 401.
  std::optional<Principal> authenticate(Call& call, std::string_view restaurant,
                                        std::string_view device) const;
  bool restaurant_exists(const std::string& id, const LogHead& head) const;
  // Answers 503 if a store read failed or 404 if the restaurant is unknown; false if it answered.
  template <class T>
  bool found(const Request& req, const std::string& id, const Result<T>& read, const LogHead& head,
             Respond& respond) const;
  Origin entry_origin(const Origin& body, const boost::json::object& entry) const;

  ServerContext& ctx_;
};

}  // namespace possync
