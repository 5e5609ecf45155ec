// Config: every option of possync-server, from the command line or its environment variable
// (the command line wins). `possync-server --help` lists them; README.md has the table.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.h"

namespace possync {

struct Config {
  std::string host = "0.0.0.0";
  std::uint16_t port = 3000;
  std::size_t threads = 0;  // I/O threads; 0 = one per core
  std::string store = "sqlite:./data/possync.db";
  std::string log_level = "info";

  std::size_t max_frame_bytes = 1 << 20;       // WebSocket message; larger -> close 1009
  std::size_t max_body_bytes = 1 << 20;        // REST request body; larger -> 413
  std::size_t max_outbound_bytes = 1 << 20;    // per-connection send queue; larger -> disconnect
  std::size_t max_id_bytes = 128;              // restaurant/device/user/record ids
  std::size_t max_changes_per_request = 1000;  // POST /api/sync
  // Back-pressure (sync/backpressure.h): above either, devices are read no further and
  // POST /api/sync answers 503 until the server has caught up. 0: no limit.
  std::size_t max_queued_changes = 20000;     // received, not yet committed
  std::size_t max_fanout_backlog = 64 << 20;  // bytes handed to connections, not yet queued

  std::chrono::seconds idle_timeout{90};
  std::chrono::seconds handshake_timeout{10};
  std::chrono::seconds http_timeout{30};
  std::chrono::seconds shutdown_timeout{10};
  std::chrono::milliseconds twin_window{5000};

  std::uint64_t retain_changes = 0;  // 0 keeps the whole log
  std::size_t commit_batch = 1024;
  std::size_t catchup_page = 500;
  std::vector<std::string> cors_origins{"*"};

  AuthMode auth = AuthMode::required;
  // Token signing keys (auth/keys.h); created with one new key if missing. POSSYNC_JWT_KEYS, if
  // set, holds the keys themselves instead.
  std::string jwt_secret_file = "./data/jwt.keys";
  std::string permissions_file;  // empty: the built-in default table

  // Rate limits (token buckets; a rate of 0 turns one off) and connection caps (0: no cap).
  double device_message_rate = 100;  // WebSocket messages per second, per connection
  double device_message_burst = 500;
  double device_byte_rate = 1 << 20;  // WebSocket bytes per second, per connection
  double device_byte_burst = 8 << 20;
  double ip_connect_rate = 50;  // new TCP connections per second, per client address
  double ip_connect_burst = 500;
  double ip_request_rate = 100;  // REST requests per second, per client address
  double ip_request_burst = 1000;
  std::size_t max_connections_per_ip = 2000;
  std::size_t max_connections_per_restaurant = 500;
  bool trust_forwarded_for = false;  // client address from X-Forwarded-For (behind a proxy)

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

// Parses argv and the environment. Returns the Config, or an exit code when the program should
// stop at once (--help: 0; a bad option: CLI11's non-zero code, after printing why).
struct ParsedConfig {
  std::optional<Config> config;
  std::optional<TokenCommand> token;  // set when the `token issue` subcommand was given
  int exit_code = 0;
};

// "30d", "12h", "15m", "90s" or a plain number of seconds; nothing if malformed or not positive.
std::optional<std::int64_t> parse_duration_seconds(std::string_view text);
ParsedConfig parse_config(int argc, char** argv);

}  // namespace possync
