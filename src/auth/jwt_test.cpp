#include "auth/jwt.h"

#include <gtest/gtest.h>

namespace possync {
namespace {

const JwtKey kKey{"k1", std::string(32, 'a')};
const JwtKey kOtherKey{"k2", std::string(32, 'b')};
constexpr std::int64_t kNow = 1'800'000'000;

TokenClaims claims() {
  return {"rest-1", "pos-1", "pos", kNow - 10, kNow + 3600, "jti-1"};
}

TEST(Base64Url, RoundTripsEveryLengthAndRejectsNonCanonical) {
  std::string bytes;
  for (int n = 0; n < 70; ++n) {
    const auto encoded = base64url_encode(bytes);
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos);
    auto decoded = base64url_decode(encoded);
    ASSERT_TRUE(decoded) << n;
    EXPECT_EQ(*decoded, bytes);
    bytes.push_back(static_cast<char>(n * 37 + 250));
  }
  EXPECT_EQ(base64url_encode("hello"), "aGVsbG8");
  EXPECT_FALSE(base64url_decode("aGVsbG8="));  // padding is not base64url
  EXPECT_FALSE(base64url_decode("aGV+bG8"));   // '+' is not in the alphabet
  EXPECT_FALSE(base64url_decode("a"));         // impossible length
  EXPECT_FALSE(base64url_decode("aGVsbG9"));   // non-zero leftover bits
}

TEST(Jwt, IssuedTokenVerifiesWithItsClaims) {
  JwtVerifier verifier({kOtherKey, kKey});
  auto result = verifier.verify(issue_token(kKey, claims()), kNow);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->restaurant_id, "rest-1");
  EXPECT_EQ(result->device_id, "pos-1");
  EXPECT_EQ(result->role, "pos");
  EXPECT_EQ(result->issued_at, kNow - 10);
  EXPECT_EQ(result->expires_at, kNow + 3600);
  EXPECT_EQ(result->token_id, "jti-1");
}

TEST(Jwt, ExpiredTokenIsRejected) {
  JwtVerifier verifier({kKey});
  auto result = verifier.verify(issue_token(kKey, claims()), kNow + 3600);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, auth_errc::kTokenExpired);
}

// jwt.h promises that not-yet-valid tokens are rejected; verify() used to accept a token issued
// in the future (fuzz/corpus/fuzz_jwt/issue-future-iat.bin).
TEST(Jwt, TokenIssuedInTheFutureIsRejected) {
  JwtVerifier verifier({kKey});
  auto future = claims();
  future.issued_at = kNow + 3600;
  future.expires_at = kNow + 7200;
  auto result = verifier.verify(issue_token(kKey, future), kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, auth_errc::kTokenInvalid);
  EXPECT_EQ(result.error().message, "token is not yet valid");
  // A clock a minute behind the issuer's still accepts a fresh token.
  future.issued_at = kNow + 60;
  EXPECT_TRUE(verifier.verify(issue_token(kKey, future), kNow));
}

TEST(Jwt, UnknownKeyOrKidIsRejected) {
  JwtVerifier verifier({kKey});
  auto result = verifier.verify(issue_token(kOtherKey, claims()), kNow);
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, auth_errc::kTokenInvalid);
  // Right secret, but a kid that names another key.
  auto relabelled = verifier.verify(issue_token({"k9", kKey.secret}, claims()), kNow);
  EXPECT_FALSE(relabelled);
  // No kid: every key is tried.
  EXPECT_TRUE(verifier.verify(issue_token({"", kKey.secret}, claims()), kNow));
}

TEST(Jwt, RotationAcceptsOldAndNewKeys) {
  JwtVerifier verifier({kKey, kOtherKey});
  EXPECT_TRUE(verifier.verify(issue_token(kKey, claims()), kNow));
  EXPECT_TRUE(verifier.verify(issue_token(kOtherKey, claims()), kNow));
}

TEST(Jwt, TamperedPayloadOrSignatureIsRejected) {
  JwtVerifier verifier({kKey});
  const std::string token = issue_token(kKey, claims());
  const auto dot1 = token.find('.');
  const auto dot2 = token.find('.', dot1 + 1);
  auto other = claims();
  other.restaurant_id = "rest-2";
  const std::string forged_payload = issue_token(kOtherKey, other);
  const auto f1 = forged_payload.find('.');
  const auto f2 = forged_payload.find('.', f1 + 1);
  // The other restaurant's payload with this token's header and signature.
  const std::string swapped =
      token.substr(0, dot1) + forged_payload.substr(f1, f2 - f1) + token.substr(dot2);
  EXPECT_FALSE(verifier.verify(swapped, kNow));
  std::string flipped = token;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verifier.verify(flipped, kNow));
}

TEST(Jwt, MalformedTokensAndOtherAlgorithmsAreRejected) {
  JwtVerifier verifier({kKey});
  for (const std::string bad : {"", "abc", "a.b", "a.b.c.d", "..", "!!.??.**"}) {
    auto r = verifier.verify(bad, kNow);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, auth_errc::kTokenInvalid);
  }
  // alg "none" with an empty signature: never accepted.
  const std::string none =
      base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
      base64url_encode(R"({"restaurant_id":"r","device_id":"d","role":"admin","exp":9999999999})") +
      ".";
  EXPECT_FALSE(verifier.verify(none, kNow));
}

TEST(Jwt, MissingClaimsAreRejected) {
  JwtVerifier verifier({kKey});
  auto no_device = claims();
  no_device.device_id.clear();
  auto r = verifier.verify(issue_token(kKey, no_device), kNow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("device_id"), std::string::npos);
}

}  // namespace
}  // namespace possync
