// The signing keys the configuration names, and `possync-server token issue`.
#pragma once

#include <vector>

#include "app/config.h"
#include "auth/jwt.h"
#include "common/error.h"

namespace possync {

// POSSYNC_JWT_KEYS if set (auth/keys.h format), else --jwt-secret-file, which is created with one
// fresh key if it does not exist (`created` tells).
Result<std::vector<JwtKey>> configured_keys(const Config& config, bool* created = nullptr);

// Prints a token for `command` signed with the first configured key; returns the exit code.
int run_token_command(const Config& config, const TokenCommand& command);

}  // namespace possync
