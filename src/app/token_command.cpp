#include "app/token_command.h"

#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>

#include "auth/keys.h"
#include "common/ids.h"
#include "common/time.h"

namespace possync {

Result<std::vector<JwtKey>> configured_keys(const Config& config, bool* created) {
  if (created) *created = false;
  if (const char* env = std::getenv("POSSYNC_JWT_KEYS"); env && *env) {
    return parse_keys(env, "POSSYNC_JWT_KEYS");
  }
  return load_keys(config.jwt_secret_file, true, created);
}

int run_token_command(const Config& config, const TokenCommand& command) {
  if (command.restaurant_id == kAnyRestaurant && command.role != "admin") {
    std::fprintf(stderr, "--restaurant '*' is for admin tokens only\n");
    return 2;
  }
  auto bad_id = [&](const char* option, const std::string& value) {
    auto why = check_id(value, config.max_id_bytes);
    if (why) std::fprintf(stderr, "%s: %s\n", option, why->c_str());
    return why.has_value();
  };
  if ((command.restaurant_id != kAnyRestaurant && bad_id("--restaurant", command.restaurant_id)) ||
      bad_id("--device", command.device_id)) {
    return 2;
  }
  bool created = false;
  auto keys = configured_keys(config, &created);
  if (!keys) {
    std::fprintf(stderr, "%s\n", keys.error().message.c_str());
    return 1;
  }
  if (created) {
    std::fprintf(stderr, "created %s with a new signing key; the server must use the same file\n",
                 config.jwt_secret_file.c_str());
  }
  unsigned char jti[16];
  if (RAND_bytes(jti, sizeof jti) != 1) return 1;
  const std::int64_t now = now_ms() / 1000;
  TokenClaims claims{command.restaurant_id,
                     command.device_id,
                     command.role,
                     now,
                     now + command.ttl_seconds,
                     base64url_encode({reinterpret_cast<const char*>(jti), sizeof jti})};
  const auto& key = keys->front();
  std::printf("%s\n", issue_token(key, claims).c_str());
  std::fprintf(stderr, "token for restaurant=%s device=%s role=%s, key %s, expires %s\n",
               claims.restaurant_id.c_str(), claims.device_id.c_str(), claims.role.c_str(),
               key.kid.c_str(), iso8601_utc(claims.expires_at * 1000).c_str());
  return 0;
}

}  // namespace possync
