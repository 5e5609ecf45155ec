#include "transport/request_auth.h"

#include <fmt/format.h>

#include "auth/authenticator.h"

namespace http = boost::beast::http;

namespace possync {
namespace {

// Calls `f` on each trimmed entry of a comma-separated header value until it returns true.
template <class F>
void for_each_entry(std::string_view list, F&& f) {
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty() && f(item)) return;
  }
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::string request_token(const HttpRequest& req, boost::urls::params_view params) {
  if (auto header = req[http::field::authorization]; iequals_prefix(header, "bearer ")) {
    std::string_view token = header.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    return std::string(token);
  }
  if (auto it = params.find("token"); it != params.end()) return (*it).value;
  return {};
}

std::string upgrade_token(const HttpRequest& req, boost::urls::params_view params) {
  std::string token = request_token(req, params);
  if (!token.empty()) return token;
  for_each_entry(req[http::field::sec_websocket_protocol], [&](std::string_view item) {
    if (!item.starts_with(kBearerSubprotocolPrefix)) return false;
    token = item.substr(kBearerSubprotocolPrefix.size());
    return true;
  });
  return token;
}

std::string selected_subprotocol(const HttpRequest& req) {
  std::string chosen;
  for_each_entry(req[http::field::sec_websocket_protocol], [&](std::string_view item) {
    if (item == kSubprotocol) {
      chosen = item;
      return true;
    }
    if (chosen.empty() && item.starts_with(kBearerSubprotocolPrefix)) chosen = item;
    return false;
  });
  return chosen;
}

http::status auth_status(const Error& e) {
  return Authenticator::is_unauthenticated(e) ? http::status::unauthorized
                                              : http::status::forbidden;
}

void add_auth_challenge(http::response<http::string_body>& res, const Error& e) {
  if (res.result() != http::status::unauthorized) return;
  res.set(
      http::field::www_authenticate,
      e.code == errc::kUnauthorized
          ? std::string(R"(Bearer realm="possync")")
          : fmt::format(R"(Bearer realm="possync", error="invalid_token", error_description="{}")",
                        e.code));
}

}  // namespace possync
