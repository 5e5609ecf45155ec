// Config: every option of possync-server, from the command line or its environment variable
// (the command line wins). `possync-server --help` lists them; README.md has the table.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "auth/authenticator.h"
#include "transport/transport_options.h"

namespace possync {

// The transport's options (transport/transport_options.h: frame, body and queue limits, timeouts,
// rate limits, connection caps) are a part of Config: the transport is handed that part and reads
// nothing else. The rest configures the store, the sync engine, authentication and the process.
struct Config : TransportOptions {
  std::string host = "0.0.0.0";
  std::uint16_t port = 3000;
  std::size_t threads = 0;  // I/O threads; 0 = one per core
  std::string store = "sqlite:./data/possync.db";
  std::string log_level = "info";
  std::string log_format = "text";  // "text" or "json" (common/log.h)

  // Back-pressure (sync/backpressure.h): above either, devices are read no further and
  // POST /api/sync answers 503 until the server has caught up. 0: no limit.
  std::size_t max_queued_changes = 20000;     // received, not yet committed
  std::size_t max_fanout_backlog = 64 << 20;  // bytes handed to connections, not yet queued

  std::chrono::seconds shutdown_timeout{10};

  std::uint64_t retain_changes = 0;  // 0 keeps the whole log
  std::size_t commit_batch = 1024;

  AuthMode auth = AuthMode::required;
  // Token signing keys (auth/keys.h); created with one new key if missing. POSSYNC_JWT_KEYS, if
  // set, holds the keys themselves instead.
  std::string jwt_secret_file = "./data/jwt.keys";
  std::string permissions_file;  // empty: the built-in default table
  std::string rules_file;        // empty: the built-in order life cycle

  std::string tls_cert;  // PEM certificate chain; with tls_key: HTTPS and WSS only
  std::string tls_key;   // PEM private key
};

// `possync-server token issue ...`: print a device token signed with the configured key.
struct TokenCommand {
  std::string restaurant_id;
  std::string device_id;
  std::string role;
  std::int64_t ttl_seconds = 0;
};

// `possync-server backup --to FILE | restore --from FILE | verify [--file FILE]`: maintenance of
// the SQLite store --store names (app/store_commands.h).
struct StoreCommand {
  enum class Kind { backup, restore, verify };
  Kind kind = Kind::verify;
  std::string file;  // backup: --to; restore: --from; verify: --file (empty: the store itself)
};

// Parses argv and the environment. Returns the Config, or an exit code when the program should
// stop at once (--help: 0; a bad option: CLI11's non-zero code, after printing why).
struct ParsedConfig {
  std::optional<Config> config;
  std::optional<TokenCommand> token;  // set when the `token issue` subcommand was given
  int exit_code = 0;
  std::optional<StoreCommand> store_command;  // set for `backup`, `restore` or `verify`
};

// "30d", "12h", "15m", "90s" or a plain number of seconds; nothing if malformed or not positive.
std::optional<std::int64_t> parse_duration_seconds(std::string_view text);
ParsedConfig parse_config(int argc, char** argv);

}  // namespace possync
