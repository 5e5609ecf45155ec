#include "auth/jwt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fmt/format.h>
#include <array>
#include <boost/json.hpp>

#include "common/json_text.h"

namespace json = boost::json;

namespace possync {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return std::string(reinterpret_cast<const char*>(out.data()), len);
}

// How far in the future `iat` may be (clock differences between the issuing and verifying hosts).
constexpr std::int64_t kIssuedAtLeewayS = 60;

Error invalid(std::string message) {
  return {auth_errc::kTokenInvalid, std::move(message)};
}

std::optional<json::object> decode_json_part(std::string_view part) {
  auto bytes = base64url_decode(part);
  if (!bytes) return std::nullopt;
  boost::system::error_code ec;
  auto v = parse_json(*bytes, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const auto pos = kAlphabet.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string issue_token(const JwtKey& key, const TokenClaims& claims) {
  json::object header{{"alg", "HS256"}, {"typ", "JWT"}};
  if (!key.kid.empty()) header["kid"] = key.kid;
  json::object payload{{"restaurant_id", claims.restaurant_id},
                       {"device_id", claims.device_id},
                       {"role", claims.role},
                       {"iat", claims.issued_at},
                       {"exp", claims.expires_at}};
  if (!claims.token_id.empty()) payload["jti"] = claims.token_id;
  std::string signing_input =
      base64url_encode(json_text(header)) + "." + base64url_encode(json_text(payload));
  const std::string signature = hmac_sha256(key.secret, signing_input);
  return signing_input + "." + base64url_encode(signature);
}

JwtVerifier::JwtVerifier(std::vector<JwtKey> keys) : keys_(std::move(keys)) {}

Result<TokenClaims> JwtVerifier::verify(std::string_view token, std::int64_t now_s) const {
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return invalid("token is not a JWT (header.payload.signature)");
  }
  const auto header = decode_json_part(token.substr(0, dot1));
  if (!header) return invalid("token header is not base64url JSON");
  const auto* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
    return invalid("token algorithm must be HS256");
  }
  std::string_view kid;
  if (const auto* k = header->if_contains("kid")) {
    if (!k->is_string()) return invalid("token kid must be a string");
    kid = k->get_string();
  }
  const auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!signature) return invalid("token signature is not base64url");
  const std::string_view signing_input = token.substr(0, dot2);
  bool signed_by_known_key = false;
  for (const auto& key : keys_) {
    if (!kid.empty() && key.kid != kid) continue;
    const std::string expected = hmac_sha256(key.secret, signing_input);
    if (expected.size() == signature->size() &&
        CRYPTO_memcmp(expected.data(), signature->data(), expected.size()) == 0) {
      signed_by_known_key = true;
      break;
    }
  }
  if (!signed_by_known_key) return invalid("token signature does not verify");

  const auto payload = decode_json_part(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload) return invalid("token payload is not base64url JSON");
  TokenClaims claims;
  for (auto [name, field] :
       {std::pair<std::string_view, std::string*>{"restaurant_id", &claims.restaurant_id},
        {"device_id", &claims.device_id},
        {"role", &claims.role}}) {
    const auto* v = payload->if_contains(name);
    if (v == nullptr || !v->is_string() || v->get_string().empty()) {
      return invalid(fmt::format("token claim '{}' is missing", name));
    }
    *field = v->get_string();
  }
  const auto* exp = payload->if_contains("exp");
  if (exp == nullptr || !exp->is_number()) return invalid("token claim 'exp' is missing");
  boost::system::error_code ec;
  claims.expires_at = exp->to_number<std::int64_t>(ec);
  if (ec) return invalid("token claim 'exp' is not an integer");
  if (const auto* iat = payload->if_contains("iat"); iat && iat->is_number()) {
    claims.issued_at = iat->to_number<std::int64_t>(ec);
    if (ec) return invalid("token claim 'iat' is not an integer");
  }
  if (const auto* jti = payload->if_contains("jti"); jti && jti->is_string()) {
    claims.token_id = jti->get_string();
  }
  if (now_s >= claims.expires_at) return Error{auth_errc::kTokenExpired, "token has expired"};
  if (claims.issued_at > now_s + kIssuedAtLeewayS) return invalid("token is not yet valid");
  return claims;
}

}  // namespace possync
