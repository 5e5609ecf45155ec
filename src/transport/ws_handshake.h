// The server side of the WebSocket opening handshake (RFC 6455 section 4.2): checks the upgrade
// request's WebSocket headers and renders the 101 response. No I/O.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>
#include <string_view>

#include "common/error.h"

namespace possync {

// The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key.
std::string websocket_accept(std::string_view key);

// Checks Sec-WebSocket-Version (13) and Sec-WebSocket-Key (16 bytes, base64) of an upgrade
// request (boost::beast::websocket::is_upgrade); returns the accept value. An unsupported version
// is an Error with code `unsupported_version` (answer 426 with `Sec-WebSocket-Version: 13`).
Result<std::string> check_websocket_request(
    const boost::beast::http::request<boost::beast::http::string_body>& req);

// The 101 Switching Protocols response, with `subprotocol` if not empty.
std::string render_switching_protocols(std::string_view accept, std::string_view subprotocol);

}  // namespace possync
