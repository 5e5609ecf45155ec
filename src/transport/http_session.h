// HttpSession: one HTTP/1.1 connection. Reads requests (bounded header and body, a timeout per
// request), hands REST requests to RestApi, and turns a WebSocket upgrade on `/` or `/ws` with
// valid `restaurant_id` and `device_id` query parameters into a WsSession. Runs on its loop's
// thread (transport/io_loops.h).
#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "transport/rest_api.h"
#include "transport/server_context.h"
#include "transport/streams.h"

namespace possync {

// `Stream` is PlainStream or TlsStream (with a TLS handshake first); both are compiled in
// http_session.cpp.
template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  // `tls`: the TLS context of this connection (null for PlainStream); kept alive by the session.
  HttpSession(boost::asio::ip::tcp::socket&& socket, std::shared_ptr<boost::asio::ssl::context> tls,
              ServerContext& ctx, RestApi& api, std::size_t loop);
  void run();

 private:
  using Request = RestApi::Request;
  using Response = RestApi::Response;

  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void upgrade(Request req);
  // Hands the upgraded (plain) connection over to `loop`, where `start` runs with its socket.
  template <class Start>
  void move_to_loop(std::size_t loop, Start start);
  void write(Response res);
  // The debug line of one answered request: method, path (never the query), status, error code,
  // remote address.
  void log_response(const Response& res) const;
  void on_write(bool close, boost::beast::error_code ec, std::size_t bytes);
  void close();
  // The client's address: the peer's, or X-Forwarded-For's last hop with --trust-forwarded-for.
  std::string client_address(const Request& req) const;
  // Answers 429 with Retry-After (and closes the connection if `close`).
  void too_many(const Request& req, const Error& e, std::chrono::seconds retry_after, bool close);

  Stream make_stream(boost::asio::ip::tcp::socket&& socket);
  // What the WebSocket session takes over: the TCP socket (ws://) or the TLS stream (wss://).
  WsNextLayer<Stream> ws_next_layer();
  boost::asio::ip::tcp::socket& socket_() {
    return boost::beast::get_lowest_layer(stream_).socket();
  }

  std::shared_ptr<boost::asio::ssl::context> tls_;
  Stream stream_;
  boost::beast::flat_buffer buffer_;
  ServerContext& ctx_;
  RestApi& api_;
  std::size_t loop_;  // the loop (transport/io_loops.h) the connection runs on
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<Response> pending_;
  std::string peer_address_;
  bool head_ = false;  // the request being answered is HEAD: its response goes without a body
  // Method, path and client address of the request being answered, kept only while debug lines
  // are written.
  std::string log_method_;
  std::string log_path_;
  std::string log_remote_;
  // Set when the connection itself was over the per-address connect rate: its first request
  // gets a 429 and the connection is closed.
  std::optional<std::chrono::seconds> refused_connect_;
};

}  // namespace possync
