// Listener: accepts TCP connections on the configured address (on loop 0) and starts an
// HttpSession for each on the next loop in turn (transport/io_loops.h). stop() closes the acceptor
// (no new connections).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>

#include "transport/io_loops.h"
#include "transport/rest_api.h"
#include "transport/server_context.h"

namespace possync {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(IoLoops& loops, ServerContext& ctx, RestApi& api);
  // Binds and listens; returns an Error if the address cannot be used.
  Result<boost::asio::ip::tcp::endpoint> open(const boost::asio::ip::tcp::endpoint& endpoint);
  void start();
  void stop();

 private:
  void do_accept();

  IoLoops& loops_;
  ServerContext& ctx_;
  RestApi& api_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
};

}  // namespace possync
