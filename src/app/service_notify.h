// Tells the service manager (systemd, Type=notify) where the server is in its life: ready to
// serve, reloading its TLS certificate, stopping. sd_notify(3) through libsystemd: each call is
// one datagram to $NOTIFY_SOCKET, and does nothing when the variable is not set (the server was
// not started by systemd). Errors are ignored: a missed notice must not stop the server.
//
// Thread-safety: any thread.
#pragma once

#include <string_view>

namespace possync {

// READY=1 (with a STATUS= line for `systemctl status`): the listener accepts and the loops run.
void notify_ready(std::string_view status);
// RELOADING=1 (with MONOTONIC_USEC=, as sd_notify(3) asks): a SIGHUP reload begins; a READY=1
// follows once it is done.
void notify_reloading();
// STOPPING=1: graceful shutdown begins.
void notify_stopping();

}  // namespace possync
