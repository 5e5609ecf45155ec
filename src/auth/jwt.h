// Device tokens: JSON Web Tokens signed with HMAC-SHA256 (HS256), with key ids for rotation.
//
// A token names one restaurant, one device and a role, and expires. The server accepts tokens
// signed by any of its configured keys; a token's `kid` header picks the key (a token without
// `kid` is tried against every key). Verification is constant-time in the signature comparison,
// accepts only alg HS256, and rejects malformed, tampered, not-yet-valid (`iat` more than 60 s
// ahead of the verifier's clock) and expired tokens.
//
// Thread-safety: JwtVerifier is immutable after construction; verify() may be called from any
// thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace possync {

struct JwtKey {
  std::string kid;     // key id, carried in the token header
  std::string secret;  // raw HMAC key bytes (at least 32 bytes)
};

struct TokenClaims {
  std::string restaurant_id;
  std::string device_id;
  std::string role;
  std::int64_t issued_at = 0;   // iat, seconds since the epoch
  std::int64_t expires_at = 0;  // exp, seconds since the epoch
  std::string token_id;         // jti
};

namespace auth_errc {
inline constexpr const char* kTokenInvalid = "token_invalid";
inline constexpr const char* kTokenExpired = "token_expired";
}  // namespace auth_errc

// Signs `claims` with `key` (header {"alg":"HS256","typ":"JWT","kid":...}).
std::string issue_token(const JwtKey& key, const TokenClaims& claims);

class JwtVerifier {
 public:
  explicit JwtVerifier(std::vector<JwtKey> keys);
  // The token's claims if it is well-formed, signed by a known key and valid at `now_s`.
  Result<TokenClaims> verify(std::string_view token, std::int64_t now_s) const;

 private:
  std::vector<JwtKey> keys_;
};

// base64url without padding (RFC 7515 §2), as JWT uses it.
std::string base64url_encode(std::string_view bytes);
// Decodes base64url without padding; nothing on malformed input.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace possync
