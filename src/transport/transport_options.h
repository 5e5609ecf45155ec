// TransportOptions: what the transport layer is told about limits, timeouts and admission. The
// transport owns this struct and reads nothing else of the program's configuration; the program
// fills it (app/config.h: Config is a TransportOptions plus the options of the other layers, read
// from the command line and the environment). The defaults are the server's defaults.
//
// Thread-safety: a plain value; read-only once the server runs, so any thread may read it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace possync {

struct TransportOptions {
  std::size_t max_frame_bytes = 1 << 20;       // WebSocket message; larger -> close 1009
  std::size_t max_body_bytes = 1 << 20;        // REST request body; larger -> 413
  std::size_t max_outbound_bytes = 1 << 20;    // per-connection send queue; larger -> disconnect
  std::size_t max_id_bytes = 128;              // restaurant/device/user/record ids
  std::size_t max_changes_per_request = 1000;  // POST /api/sync

  std::chrono::seconds idle_timeout{90};
  std::chrono::seconds handshake_timeout{10};
  std::chrono::seconds http_timeout{30};
  std::chrono::milliseconds twin_window{5000};

  std::size_t catchup_page = 500;  // changes read from the store per catch-up step
  std::vector<std::string> cors_origins{"*"};

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
};

}  // namespace possync
