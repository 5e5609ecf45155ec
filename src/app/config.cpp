#include "app/config.h"

#include <CLI/CLI.hpp>
#include <charconv>

namespace possync {

std::optional<std::int64_t> parse_duration_seconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::int64_t unit = 1;
  switch (text.back()) {
    case 'd':
      unit = 86400;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'm':
      unit = 60;
      break;
    case 's':
      unit = 1;
      break;
    default:
      unit = 0;
  }
  if (unit != 0) text.remove_suffix(1);
  if (unit == 0) unit = 1;
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  constexpr std::int64_t kTenYears = 10 * 366 * 86400;
  if (ec != std::errc() || ptr != text.data() + text.size() || n <= 0 || n > kTenYears / unit) {
    return std::nullopt;
  }
  return n * unit;
}

ParsedConfig parse_config(int argc, char** argv) {
  Config c;
  CLI::App app{"possync-server: real-time sync server for restaurant point-of-sale devices"};
  app.option_defaults()->always_capture_default();
  app.get_formatter()->column_width(40);

  app.add_option("--host", c.host, "Address to listen on")->envname("POSSYNC_HOST");
  app.add_option("--port", c.port, "Port for HTTP and WebSocket")->envname("PORT");
  app.add_option("--threads", c.threads, "I/O threads (0 = one per core)")
      ->envname("POSSYNC_THREADS");
  app.add_option("--store", c.store,
                 "Store: sqlite:PATH (durable, default), memory, or postgresql://USER@HOST:PORT/DB "
                 "(shared by the nodes of a cluster)")
      ->envname("POSSYNC_STORE");
  app.add_option("--log-level", c.log_level, "trace, debug, info, warn, error, critical, off")
      ->envname("POSSYNC_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", c.log_format,
                 "text (a line per event) or json (one JSON object per line, for log shippers)")
      ->envname("POSSYNC_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}));

  app.add_option("--max-frame-bytes", c.max_frame_bytes,
                 "Largest WebSocket message accepted (larger: close 1009)")
      ->envname("POSSYNC_MAX_FRAME_BYTES")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{64} << 20));
  app.add_option("--max-body-bytes", c.max_body_bytes,
                 "Largest REST request body accepted (larger: 413)")
      ->envname("POSSYNC_MAX_BODY_BYTES")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{64} << 20));
  app.add_option("--max-outbound-bytes", c.max_outbound_bytes,
                 "Send queue per connection; a device that falls further behind is disconnected")
      ->envname("POSSYNC_MAX_OUTBOUND_BYTES")
      ->check(CLI::Range(std::size_t{4096}, std::size_t{1} << 30));
  app.add_option("--max-id-bytes", c.max_id_bytes, "Longest restaurant, device, user or record id")
      ->envname("POSSYNC_MAX_ID_BYTES")
      ->check(CLI::Range(std::size_t{8}, std::size_t{1024}));
  app.add_option("--max-changes-per-request", c.max_changes_per_request,
                 "Most changes in one POST /api/sync")
      ->envname("POSSYNC_MAX_CHANGES_PER_REQUEST")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--max-queued-changes", c.max_queued_changes,
                 "Changes received and not yet committed above which the server stops reading "
                 "devices and answers POST /api/sync with 503 (0: no limit)")
      ->envname("POSSYNC_MAX_QUEUED_CHANGES");
  app.add_option("--max-fanout-backlog", c.max_fanout_backlog,
                 "Bytes of committed changes handed to connections and not yet queued to their "
                 "sockets above which the server stops reading devices and answers "
                 "POST /api/sync with 503 (0: no limit)")
      ->envname("POSSYNC_MAX_FANOUT_BACKLOG");

  auto seconds = [&](const char* name, std::chrono::seconds& field, const char* env,
                     const char* help) {
    app.add_option_function<unsigned>(
           name, [&field](unsigned v) { field = std::chrono::seconds(v); }, help)
        ->envname(env)
        ->default_val(field.count())
        ->check(CLI::Range(1u, 86400u));
  };
  seconds("--idle-timeout", c.idle_timeout, "POSSYNC_IDLE_TIMEOUT",
          "Seconds of silence after which a WebSocket is closed (pings are sent at half)");
  seconds("--handshake-timeout", c.handshake_timeout, "POSSYNC_HANDSHAKE_TIMEOUT",
          "Seconds allowed for a WebSocket handshake");
  seconds("--http-timeout", c.http_timeout, "POSSYNC_HTTP_TIMEOUT",
          "Seconds allowed to receive an HTTP request");
  seconds("--shutdown-timeout", c.shutdown_timeout, "POSSYNC_SHUTDOWN_TIMEOUT",
          "Seconds SIGTERM waits for connections to close before exiting");
  app.add_option_function<unsigned>(
         "--twin-window-ms", [&c](unsigned v) { c.twin_window = std::chrono::milliseconds(v); },
         "How soon after a typed update its data_change twin must follow to be recognised")
      ->envname("POSSYNC_TWIN_WINDOW_MS")
      ->default_val(c.twin_window.count())
      ->check(CLI::Range(1u, 600000u));

  app.add_option("--retain-changes", c.retain_changes,
                 "Changes of history kept per restaurant for catch-up and dedupe (0 = all)")
      ->envname("POSSYNC_RETAIN_CHANGES");
  app.add_option("--commit-batch", c.commit_batch, "Most changes committed in one transaction")
      ->envname("POSSYNC_COMMIT_BATCH")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--catchup-page", c.catchup_page, "Changes read from the store per catch-up step")
      ->envname("POSSYNC_CATCHUP_PAGE")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--cors-origins", c.cors_origins,
                 "Origins allowed by CORS (comma-separated; * = any)")
      ->envname("POSSYNC_CORS_ORIGINS")
      ->delimiter(',');

  std::string auth = "required";
  app.add_option("--auth", auth,
                 "required: every device needs a token; mixed: tokens as with required, and "
                 "devices without one only if enrolled as legacy devices; off: legacy open "
                 "access (warns)")
      ->envname("POSSYNC_AUTH")
      ->check(CLI::IsMember({"required", "mixed", "off"}));
  app.add_option("--jwt-secret-file", c.jwt_secret_file,
                 "Token signing keys, '<kid> <secret>' per line (created if missing)")
      ->envname("POSSYNC_JWT_SECRET_FILE");

  app.add_option("--permissions-file", c.permissions_file,
                 "JSON table of what each role may change (default: built in, as "
                 "docs/permissions.default.json)")
      ->envname("POSSYNC_PERMISSIONS_FILE");
  app.add_option("--rules-file", c.rules_file,
                 "JSON order life cycle (transitions, closing statuses) the restaurant rules "
                 "enforce (default: built in, as docs/rules.default.json)")
      ->envname("POSSYNC_RULES_FILE");

  auto rate = [&](const char* name, double& field, const char* env, const char* help) {
    app.add_option(name, field, help)->envname(env)->check(CLI::Range(0.0, 1e9));
  };
  rate("--device-message-rate", c.device_message_rate, "POSSYNC_DEVICE_MESSAGE_RATE",
       "WebSocket messages per second per connection (0: no limit)");
  rate("--device-message-burst", c.device_message_burst, "POSSYNC_DEVICE_MESSAGE_BURST",
       "Messages a connection may send at once above its rate");
  rate("--device-byte-rate", c.device_byte_rate, "POSSYNC_DEVICE_BYTE_RATE",
       "WebSocket bytes per second per connection (0: no limit)");
  rate("--device-byte-burst", c.device_byte_burst, "POSSYNC_DEVICE_BYTE_BURST",
       "Bytes a connection may send at once above its rate");
  rate("--ip-connect-rate", c.ip_connect_rate, "POSSYNC_IP_CONNECT_RATE",
       "New connections per second per client address (0: no limit)");
  rate("--ip-connect-burst", c.ip_connect_burst, "POSSYNC_IP_CONNECT_BURST",
       "New connections a client address may open at once");
  rate("--ip-request-rate", c.ip_request_rate, "POSSYNC_IP_REQUEST_RATE",
       "REST requests per second per client address (0: no limit)");
  rate("--ip-request-burst", c.ip_request_burst, "POSSYNC_IP_REQUEST_BURST",
       "REST requests a client address may send at once");
  app.add_option("--max-connections-per-ip", c.max_connections_per_ip,
                 "Open WebSockets per client address (0: no cap)")
      ->envname("POSSYNC_MAX_CONNECTIONS_PER_IP");
  app.add_option("--max-connections-per-restaurant", c.max_connections_per_restaurant,
                 "Open WebSockets per restaurant (0: no cap)")
      ->envname("POSSYNC_MAX_CONNECTIONS_PER_RESTAURANT");
  app.add_flag("--trust-forwarded-for", c.trust_forwarded_for,
               "Take the client address from X-Forwarded-For (only behind a trusted proxy)")
      ->envname("POSSYNC_TRUST_FORWARDED_FOR");

  app.add_option("--tls-cert", c.tls_cert,
                 "PEM certificate chain: serve HTTPS and WSS only (reloaded on SIGHUP)")
      ->envname("POSSYNC_TLS_CERT");
  app.add_option("--tls-key", c.tls_key, "PEM private key for --tls-cert")
      ->envname("POSSYNC_TLS_KEY");

  TokenCommand token;
  std::vector<std::string> role_names;
  for (Role r : kRoles) role_names.emplace_back(role_name(r));
  std::string ttl = "30d";
  // Server options the command reads (--jwt-secret-file, --max-id-bytes) may come before `token`,
  // between `token` and `issue`, or among the options of `issue`: an option a subcommand does not
  // know falls through to its parent, and from `token` to the server's options.
  auto* token_cmd =
      app.add_subcommand("token", "Device tokens")->require_subcommand(1)->fallthrough();
  auto* issue = token_cmd
                    ->add_subcommand("issue",
                                     "Print a new device token signed with the first key "
                                     "(--jwt-secret-file, or POSSYNC_JWT_KEYS)")
                    ->fallthrough();
  issue->add_option("--restaurant", token.restaurant_id, "Restaurant id ('*' with --role admin)")
      ->required();
  issue->add_option("--device", token.device_id, "Device id")->required();
  issue->add_option("--role", token.role, "pos, kds, manager or admin")
      ->required()
      ->check(CLI::IsMember(role_names));
  issue->add_option("--ttl", ttl, "Lifetime: 30d, 12h, 15m, 90s")->capture_default_str();

  // Maintenance of a SQLite store (app/store_commands.h); --store may go before or after them.
  StoreCommand store_command;
  const std::pair<CLI::App*, StoreCommand::Kind> store_commands[] = {
      {app.add_subcommand("backup", "Copy the SQLite store to a file, also while a server runs")
           ->fallthrough(),
       StoreCommand::Kind::backup},
      {app.add_subcommand("restore", "Replace the SQLite store of a stopped server with a backup")
           ->fallthrough(),
       StoreCommand::Kind::restore},
      {app.add_subcommand("verify", "Check the SQLite store (server stopped) or a backup file")
           ->fallthrough(),
       StoreCommand::Kind::verify}};
  store_commands[0]
      .first->add_option("--to", store_command.file, "The backup file to write")
      ->required();
  store_commands[1].first->add_option("--from", store_command.file, "The backup file")->required();
  store_commands[2].first->add_option("--file", store_command.file,
                                      "A backup file to check instead of the store");
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
    if (issue->parsed()) {
      auto seconds = parse_duration_seconds(ttl);
      if (!seconds) throw CLI::ValidationError("--ttl", "expected e.g. 30d, 12h, 15m or 90s");
      token.ttl_seconds = *seconds;
    }
  } catch (const CLI::ParseError& e) {
    return {std::nullopt, std::nullopt, app.exit(e)};
  }
  c.auth = auth == "off" ? AuthMode::off : auth == "mixed" ? AuthMode::mixed : AuthMode::required;
  if (issue->parsed()) return {c, token, 0};
  for (const auto& [command, kind] : store_commands) {
    if (!command->parsed()) continue;
    store_command.kind = kind;
    return {c, std::nullopt, 0, store_command};
  }
  return {c, std::nullopt, 0};
}

}  // namespace possync
