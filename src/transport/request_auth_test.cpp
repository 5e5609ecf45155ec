#include "transport/request_auth.h"

#include <gtest/gtest.h>

#include <boost/url/parse.hpp>

namespace possync {
namespace {

namespace http = boost::beast::http;

std::string token_of(const HttpRequest& req) {
  auto url = boost::urls::parse_origin_form(req.target());
  return upgrade_token(req, url->params());
}

std::string rest_token_of(const HttpRequest& req) {
  auto url = boost::urls::parse_origin_form(req.target());
  return request_token(req, url->params());
}

HttpRequest request(std::string target) {
  HttpRequest req{http::verb::get, target, 11};
  return req;
}

TEST(RequestAuth, FindsTheTokenInHeaderQueryOrSubprotocolInThatOrder) {
  auto req = request("/ws?restaurant_id=r&token=from-query");
  req.set(http::field::sec_websocket_protocol, "possync, bearer.from-protocol");
  EXPECT_EQ(token_of(req), "from-query");
  req.set(http::field::authorization, "Bearer   from-header");
  EXPECT_EQ(token_of(req), "from-header");
  req.set(http::field::authorization, "bearer from-header");  // scheme is case-insensitive
  EXPECT_EQ(token_of(req), "from-header");

  auto proto = request("/ws");
  proto.set(http::field::sec_websocket_protocol, "possync, bearer.from-protocol");
  EXPECT_EQ(token_of(proto), "from-protocol");
  EXPECT_EQ(rest_token_of(proto), "");  // REST reads no token from Sec-WebSocket-Protocol
  EXPECT_EQ(selected_subprotocol(proto), "possync");

  auto only_bearer = request("/ws");
  only_bearer.set(http::field::sec_websocket_protocol, "bearer.t");
  EXPECT_EQ(selected_subprotocol(only_bearer), "bearer.t");

  auto basic = request("/api/sync");
  basic.set(http::field::authorization, "Basic dXNlcjpwYXNz");
  EXPECT_EQ(token_of(basic), "");
  EXPECT_EQ(selected_subprotocol(basic), "");
}

TEST(RequestAuth, StatusAndChallenge) {
  EXPECT_EQ(auth_status({errc::kUnauthorized, ""}), http::status::unauthorized);
  EXPECT_EQ(auth_status({"token_expired", ""}), http::status::unauthorized);
  EXPECT_EQ(auth_status({errc::kForbidden, ""}), http::status::forbidden);
  http::response<http::string_body> res{http::status::unauthorized, 11};
  add_auth_challenge(res, {"token_expired", ""});
  EXPECT_NE(res[http::field::www_authenticate].find("invalid_token"), std::string::npos);
  http::response<http::string_body> forbidden{http::status::forbidden, 11};
  add_auth_challenge(forbidden, {errc::kForbidden, ""});
  EXPECT_EQ(forbidden[http::field::www_authenticate], "");
}

}  // namespace
}  // namespace possync
