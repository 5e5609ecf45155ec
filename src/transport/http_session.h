// HttpSession: one HTTP/1.1 connection. Reads requests (bounded header and body, a timeout per
// request), hands REST requests to RestApi, and turns a WebSocket upgrade on `/` or `/ws` with
// valid `restaurant_id` and `device_id` query parameters into a WsSession. Runs on its strand.
#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <optional>

#include "transport/rest_api.h"
#include "transport/server_context.h"

namespace possync {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(boost::asio::ip::tcp::socket&& socket, ServerContext& ctx, RestApi& api);
  void run();

 private:
  using Request = RestApi::Request;
  using Response = RestApi::Response;

  void do_read();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  void upgrade(Request req);
  void write(Response res);
  void on_write(bool close, boost::beast::error_code ec, std::size_t bytes);
  void close();

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  ServerContext& ctx_;
  RestApi& api_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::shared_ptr<Response> pending_;
};

}  // namespace possync
