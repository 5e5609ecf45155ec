// Where a request carries its device token, and how an authentication Error maps to HTTP.
#pragma once

#include <boost/beast/http.hpp>
#include <boost/url/params_view.hpp>
#include <string>
#include <string_view>

#include "common/error.h"

namespace possync {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// The WebSocket subprotocol a browser client may offer beside its token ("possync", then
// "bearer.<token>"), since browsers cannot set an Authorization header on a WebSocket.
inline constexpr std::string_view kSubprotocol = "possync";
inline constexpr std::string_view kBearerSubprotocolPrefix = "bearer.";

// The token a REST request carries (empty if none), by preference: `Authorization: Bearer
// <token>`, the `token` query parameter.
std::string request_token(const HttpRequest& req, boost::urls::params_view params);

// The token a WebSocket upgrade carries: as request_token, else a Sec-WebSocket-Protocol entry
// "bearer.<token>". Only upgrades read that header: it is the browsers' way to send a token on a
// WebSocket, and a browser's REST request (fetch) can set Authorization instead.
std::string upgrade_token(const HttpRequest& req, boost::urls::params_view params);

// The Sec-WebSocket-Protocol value to answer a WebSocket upgrade with (empty: none was offered):
// "possync" if offered, else the bearer entry (a client that offers protocols needs one back).
std::string selected_subprotocol(const HttpRequest& req);

// 401 for unauthorized / token_invalid / token_expired, 403 for forbidden.
boost::beast::http::status auth_status(const Error& e);

// Adds `WWW-Authenticate` to a 401 response (RFC 6750).
void add_auth_challenge(boost::beast::http::response<boost::beast::http::string_body>& res,
                        const Error& e);

}  // namespace possync
