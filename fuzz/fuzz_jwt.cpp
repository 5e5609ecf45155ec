// Token verification. The first input byte picks a mode:
// - raw: the rest is a token; verify must not crash, and may accept it only if its signature is
//   the HMAC-SHA256 of its first two parts under a configured key (computed here with OpenSSL).
// - issued: the rest gives claims, a clock and a mutation; a token issued with a configured key
//   must verify to the same claims (when they are valid ids and the token is current), and every
//   mutation of it, and the same claims signed with an unknown key or relabelled with another
//   key's kid, must be rejected.
// - signed: the rest is a header and a payload (JSON text, NUL between them), signed here with a
//   configured key, so that the fuzzer reaches the claim parsing behind the signature check; an
//   accepted token must say alg HS256 and carry exactly the payload's claims.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <boost/json/parse.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "common/ids.h"
#include "fuzz_support.h"

namespace {

using namespace possync;

const JwtKey kKey1{"k1", std::string(32, 'a')};
const JwtKey kKey2{"k2", "another secret that is long enough!"};
const JwtKey kUnknown{"k9", std::string(32, 'z')};
const JwtVerifier kVerifier({kKey1, kKey2});
constexpr std::int64_t kNow = 1'800'000'000;

std::string hmac(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(out.data()), len));
}

bool signed_by_a_key(std::string_view token) {
  const auto dot = token.rfind('.');
  if (dot == std::string_view::npos) return false;
  for (const auto& key : {kKey1, kKey2}) {
    if (hmac(key.secret, token.substr(0, dot)) == token.substr(dot + 1)) return true;
  }
  return false;
}

void check_verify(std::string_view token, std::int64_t now) {
  auto result = kVerifier.verify(token, now);
  if (!result) {
    FUZZ_CHECK(result.error().code == auth_errc::kTokenInvalid ||
                   result.error().code == auth_errc::kTokenExpired,
               result.error().code);
    return;
  }
  FUZZ_CHECK(signed_by_a_key(token), std::string(token));
  FUZZ_CHECK(!result->restaurant_id.empty() && !result->device_id.empty() && !result->role.empty(),
             std::string(token));
  FUZZ_CHECK(now < result->expires_at, std::string(token));
  FUZZ_CHECK(result->issued_at <= now + 60, std::string(token));  // not yet valid
}

// Splits the input at NUL bytes into at most `n` fields (missing ones are empty).
std::vector<std::string> fields(std::string_view in, std::size_t n) {
  std::vector<std::string> out;
  while (out.size() + 1 < n) {
    const auto nul = in.find('\0');
    if (nul == std::string_view::npos) break;
    out.emplace_back(in.substr(0, nul));
    in.remove_prefix(nul + 1);
  }
  out.emplace_back(in);
  out.resize(n);
  return out;
}

// A time around kNow (within +-50000 s) from big-endian bytes.
std::int64_t time_around_now(const std::string& bytes) {
  std::uint64_t n = 0;
  for (const char c : bytes) n = (n << 8) | static_cast<unsigned char>(c);
  return kNow - 50000 + static_cast<std::int64_t>(n % 100000);
}

void check_issued(std::string_view in) {
  const auto f = fields(in, 8);
  const TokenClaims claims{f[0], f[1], f[2], time_around_now(f[3]), time_around_now(f[4]), f[5]};
  const std::string token = issue_token(f[6].size() % 2 == 0 ? kKey1 : kKey2, claims);
  check_verify(token, kNow);
  auto result = kVerifier.verify(token, kNow);
  const bool valid_claims = !check_id(claims.restaurant_id, 128) &&
                            !check_id(claims.device_id, 128) && !check_id(claims.role, 128) &&
                            (claims.token_id.empty() || !check_id(claims.token_id, 512));
  if (valid_claims && kNow < claims.expires_at && claims.issued_at <= kNow + 60) {
    FUZZ_CHECK(result.has_value(), token + " -> " + result.error().message);
    FUZZ_CHECK(result->restaurant_id == claims.restaurant_id &&
                   result->device_id == claims.device_id && result->role == claims.role &&
                   result->issued_at == claims.issued_at &&
                   result->expires_at == claims.expires_at && result->token_id == claims.token_id,
               token);
  }
  // Not signed with a configured key, or signed with one key but naming another.
  FUZZ_CHECK(!kVerifier.verify(issue_token(kUnknown, claims), kNow), token);
  FUZZ_CHECK(!kVerifier.verify(issue_token({kKey1.kid, kKey2.secret}, claims), kNow), token);
  // Any change to the token's text.
  const std::string& mutation = f[7];
  if (mutation.size() >= 2) {
    std::string changed = token;
    const std::size_t at =
        static_cast<unsigned char>(mutation[0]) * 256u + static_cast<unsigned char>(mutation[1]);
    if (at < changed.size()) {
      changed[at] = mutation.size() > 2 ? mutation[2] : '\0';
    } else {
      changed.insert(at % (changed.size() + 1), mutation.substr(2));
    }
    if (changed != token) {
      auto forged = kVerifier.verify(changed, kNow);
      FUZZ_CHECK(!forged, token + " -> " + changed);
    }
  }
}

void check_signed(std::string_view in) {
  const auto f = fields(in, 2);
  const std::string signing_input = base64url_encode(f[0]) + "." + base64url_encode(f[1]);
  const std::string token = signing_input + "." + hmac(kKey1.secret, signing_input);
  check_verify(token, kNow);
  auto result = kVerifier.verify(token, kNow);
  if (!result) return;
  boost::system::error_code ec;
  const auto header = boost::json::parse(f[0], ec);
  FUZZ_CHECK(!ec && header.is_object() && header.at("alg") == "HS256", f[0]);
  const auto payload = boost::json::parse(f[1], ec);
  FUZZ_CHECK(!ec && payload.is_object(), f[1]);
  const auto& claims = payload.get_object();
  FUZZ_CHECK(claims.at("restaurant_id") == boost::json::value(result->restaurant_id) &&
                 claims.at("device_id") == boost::json::value(result->device_id) &&
                 claims.at("role") == boost::json::value(result->role),
             f[1]);
  FUZZ_CHECK(claims.at("exp").to_number<double>() == static_cast<double>(result->expires_at), f[1]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      check_verify(in, kNow);
      break;
    case 1:
      check_issued(in);
      break;
    default:
      check_signed(in);
      break;
  }
  return 0;
}
