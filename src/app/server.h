// Server: wires the concrete pieces together from a Config and runs them until SIGTERM/SIGINT.
//
// Start: open the Store, start the commit pipeline (writer thread), bind the listener, run the
// I/O threads. Stop (on a signal or stop()): close the listener, tell every WebSocket to close
// with 1001, let the commit pipeline commit everything already received, wait up to
// --shutdown-timeout for connections to finish, then return 0.
#pragma once

#include <functional>

#include "app/config.h"

namespace possync {

// Runs the server; returns the process exit code. `on_listening` (optional) is called with the
// bound port once the server accepts connections.
int run_server(const Config& config, const std::function<void(unsigned short)>& on_listening = {});

}  // namespace possync
