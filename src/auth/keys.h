// Signing keys for device tokens: the key file, its format, and generating a first key.
//
// Format (one key per line; blank lines and lines starting with '#' are ignored):
//     <kid> <secret>
// where <kid> is 1-64 characters of [A-Za-z0-9._-] and <secret> is the base64url encoding of at
// least 32 random bytes. The first key signs new tokens; every key in the file verifies tokens, so
// a rotation is: put a new key on top, keep the old one until the tokens it signed have expired,
// then delete it. The same text may come from the POSSYNC_JWT_KEYS environment variable.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt.h"
#include "common/error.h"

namespace possync {

inline constexpr std::size_t kMinSecretBytes = 32;

// Parses key file text; `source` names it in errors. At least one key is required.
Result<std::vector<JwtKey>> parse_keys(std::string_view text, std::string_view source);

// A new key line "<kid> <secret>" with 32 random bytes from OpenSSL's CSPRNG.
std::string generate_key_line(std::string_view kid);

// Reads the key file at `path`. If it does not exist and `create` is true, writes a file with one
// generated key first (mode 0600, parent directories created) and sets `created`.
Result<std::vector<JwtKey>> load_keys(const std::string& path, bool create,
                                      bool* created = nullptr);

}  // namespace possync
