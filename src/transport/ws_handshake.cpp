#include "transport/ws_handshake.h"

#include <openssl/evp.h>

#include <array>

namespace possync {

std::string websocket_accept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string input;
  input.reserve(key.size() + kGuid.size());
  input.append(key).append(kGuid);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_size = 0;
  EVP_Digest(input.data(), input.size(), digest.data(), &digest_size, EVP_sha1(), nullptr);
  std::array<unsigned char, 64> encoded{};
  const int n = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest_size));
  return std::string(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n));
}

Result<std::string> check_websocket_request(
    const boost::beast::http::request<boost::beast::http::string_body>& req) {
  if (req[boost::beast::http::field::sec_websocket_version] != "13") {
    return Error{"unsupported_version", "Sec-WebSocket-Version must be 13"};
  }
  const std::string_view key = req[boost::beast::http::field::sec_websocket_key];
  // 16 random bytes in base64: 24 characters ending in "==".
  std::array<unsigned char, 32> decoded{};
  if (key.size() != 24 ||
      EVP_DecodeBlock(decoded.data(), reinterpret_cast<const unsigned char*>(key.data()), 24) !=
          18 ||
      key.substr(22) != "==") {
    return Error{errc::kBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"};
  }
  return Result<std::string>(boost::system::in_place_value, websocket_accept(key));
}

std::string render_switching_protocols(std::string_view accept, std::string_view subprotocol) {
  std::string out;
  out.reserve(160 + subprotocol.size());
  out.append(
      "HTTP/1.1 101 Switching Protocols\r\n"
      "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n"
      "Server: possync\r\n"
      "Sec-WebSocket-Accept: ");
  out.append(accept).append("\r\n");
  if (!subprotocol.empty())
    out.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
  out.append("\r\n");
  return out;
}

}  // namespace possync
