#include "transport/listener.h"
#include "common/log.h"

#include <fmt/format.h>
#include <boost/asio/post.hpp>

#include "transport/http_session.h"

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace possync {

Listener::Listener(IoLoops& loops, ServerContext& ctx, RestApi& api)
    : loops_(loops),
      ctx_(ctx),
      api_(api),
      acceptor_(loops.context(0)),
      backoff_(acceptor_.get_executor()) {}

Result<tcp::endpoint> Listener::open(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  auto fail = [&](const char* what) {
    return Error{"listen_failed",
                 fmt::format("cannot {} {}:{}: {}", what, endpoint.address().to_string(),
                             endpoint.port(), ec.message())};
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("configure");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  auto local = acceptor_.local_endpoint(ec);
  if (ec) return fail("read address of");
  return local;
}

void Listener::start() {
  do_accept();
}

void Listener::stop() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ec;
    self->acceptor_.close(ec);
    self->backoff_.cancel();
  });
}

void Listener::do_accept() {
  const std::size_t loop = loops_.pick();
  acceptor_.async_accept(
      loops_.context(loop),
      [self = shared_from_this(), loop](boost::system::error_code ec, tcp::socket socket) {
        if (ec == net::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (ec) {
          // Out of file descriptors and the like: keep serving the connections we have and
          // try again shortly instead of spinning.
          slog::warn("accept failed", {{"error", ec.message()}});
          self->backoff_.expires_after(std::chrono::milliseconds(100));
          self->backoff_.async_wait([self](boost::system::error_code) { self->do_accept(); });
          return;
        }
        socket.set_option(tcp::no_delay(true), ec);
        // The session starts on its own loop's thread.
        auto executor = socket.get_executor();
        net::post(executor, [self, loop, socket = std::move(socket)]() mutable {
          if (self->ctx_.tls) {
            std::make_shared<HttpSession<TlsStream>>(std::move(socket), self->ctx_.tls->current(),
                                                     self->ctx_, self->api_, loop)
                ->run();
          } else {
            std::make_shared<HttpSession<PlainStream>>(std::move(socket), nullptr, self->ctx_,
                                                       self->api_, loop)
                ->run();
          }
        });
        self->do_accept();
      });
}

}  // namespace possync
