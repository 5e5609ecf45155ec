#include "transport/http_session.h"

#include <unistd.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/url/parse.hpp>

#include <charconv>
#include <utility>

#include "common/ids.h"
#include "common/json_text.h"
#include "common/log.h"
#include "common/time.h"
#include "protocol/close_codes.h"
#include "transport/io_loops.h"
#include "transport/legacy_devices.h"
#include "transport/request_auth.h"
#include "transport/ws_handshake.h"
#include "transport/ws_session.h"

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace possync {
namespace {
constexpr std::uint32_t kHeaderLimit = 16 * 1024;

// A socket's descriptor on its way from one loop to another: closed unless taken.
class ReleasedSocket {
 public:
  explicit ReleasedSocket(int fd) : fd_(fd) {}
  ReleasedSocket(const ReleasedSocket&) = delete;
  ReleasedSocket& operator=(const ReleasedSocket&) = delete;
  ~ReleasedSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int take() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};
}  // namespace

template <class Stream>
HttpSession<Stream>::HttpSession(net::ip::tcp::socket&& socket,
                                 std::shared_ptr<net::ssl::context> tls, ServerContext& ctx,
                                 RestApi& api, std::size_t loop)
    : tls_(std::move(tls)),
      stream_(make_stream(std::move(socket))),
      ctx_(ctx),
      api_(api),
      loop_(loop) {
  beast::error_code ec;
  peer_address_ = socket_().remote_endpoint(ec).address().to_string();
}

template <class Stream>
Stream HttpSession<Stream>::make_stream(net::ip::tcp::socket&& socket) {
  if constexpr (kIsTls<Stream>) {
    return Stream(std::move(socket), *tls_);
  } else {
    return Stream(std::move(socket));
  }
}

template <class Stream>
std::string HttpSession<Stream>::client_address(const Request& req) const {
  if (ctx_.config.trust_forwarded_for) {
    std::string_view forwarded = req["X-Forwarded-For"];
    if (const auto comma = forwarded.rfind(','); comma != std::string_view::npos) {
      forwarded.remove_prefix(comma + 1);
    }
    while (!forwarded.empty() && forwarded.front() == ' ') forwarded.remove_prefix(1);
    if (!forwarded.empty() && forwarded.size() <= 64) return std::string(forwarded);
  }
  return peer_address_;
}

template <class Stream>
void HttpSession<Stream>::too_many(const Request& req, const Error& e,
                                   std::chrono::seconds retry_after, bool close) {
  ctx_.metrics.rate_limited.fetch_add(1, std::memory_order_relaxed);
  auto res = api_.error(req, http::status::too_many_requests, e);
  res.set(http::field::retry_after, std::to_string(std::max<std::int64_t>(1, retry_after.count())));
  if (close) res.keep_alive(false);
  write(std::move(res));
}

template <class Stream>
void HttpSession<Stream>::run() {
  // Behind a trusted proxy every connection comes from the proxy: limits apply per request then.
  if (ctx_.admission.ip_connects && !ctx_.config.trust_forwarded_for) {
    auto verdict =
        ctx_.admission.ip_connects->try_take(peer_address_, std::chrono::steady_clock::now());
    if (!verdict.allowed) refused_connect_ = verdict.retry_after;
  }
  if constexpr (kIsTls<Stream>) {
    beast::get_lowest_layer(stream_).expires_after(ctx_.config.handshake_timeout);
    stream_.async_handshake(net::ssl::stream_base::server,
                            [self = this->shared_from_this()](beast::error_code ec) {
                              if (ec) return self->close();  // not TLS, or a failed handshake
                              self->do_read();
                            });
  } else {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&HttpSession::do_read, this->shared_from_this()));
  }
}

template <class Stream>
void HttpSession<Stream>::do_read() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(ctx_.config.max_body_bytes);
  beast::get_lowest_layer(stream_).expires_after(ctx_.config.http_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
}

template <class Stream>
void HttpSession<Stream>::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == net::error::operation_aborted || ec == net::error::connection_reset) {
    return close();
  }
  head_ = false;
  log_method_.clear();
  log_path_.clear();
  log_remote_.clear();
  if (ec) {
    // A request we cannot parse gets one clear answer, then the connection is closed.
    Request req;
    req.version(11);
    req.keep_alive(false);
    if (ec == http::error::body_limit) {
      auto res = api_.error(req, http::status::payload_too_large,
                            {errc::kPayloadTooLarge, fmt::format("request body over {} bytes",
                                                                 ctx_.config.max_body_bytes)});
      res.keep_alive(false);
      return write(std::move(res));
    }
    if (ec == http::error::header_limit) {
      auto res = api_.error(req, http::status::request_header_fields_too_large,
                            {errc::kPayloadTooLarge, "request headers too large"});
      res.keep_alive(false);
      return write(std::move(res));
    }
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
      auto res = api_.error(req, http::status::bad_request,
                            {errc::kBadRequest, "malformed HTTP request: " + ec.message()});
      res.keep_alive(false);
      return write(std::move(res));
    }
    return close();
  }

  Request req = parser_->release();
  head_ = req.method() == http::verb::head;
  if (slog::enabled(slog::Level::debug)) {
    // The path only: a query string may carry a token.
    const std::string_view target = req.target();
    log_method_ = req.method_string();
    log_path_ = target.substr(0, target.find('?'));
    log_remote_ = client_address(req);
  }
  if (refused_connect_) {
    return too_many(req, {errc::kRateLimited, "too many new connections from this address"},
                    *refused_connect_, true);
  }
  if (ctx_.config.trust_forwarded_for || !beast::websocket::is_upgrade(req)) {
    // REST requests, and behind a proxy also upgrades, count against the address's request rate.
    auto& limiter =
        beast::websocket::is_upgrade(req) ? ctx_.admission.ip_connects : ctx_.admission.ip_requests;
    if (limiter) {
      auto verdict = limiter->try_take(client_address(req), std::chrono::steady_clock::now());
      if (!verdict.allowed) {
        return too_many(req, {errc::kRateLimited, "too many requests from this address"},
                        verdict.retry_after, false);
      }
    }
  }
  if (beast::websocket::is_upgrade(req)) return upgrade(std::move(req));

  auto self = this->shared_from_this();
  api_.handle(req, client_address(req), [self](Response res) {
    net::post(self->stream_.get_executor(),
              [self, res = std::move(res)]() mutable { self->write(std::move(res)); });
  });
}

template <class Stream>
void HttpSession<Stream>::upgrade(Request req) {
  auto answer = [&](Response res) {
    res.keep_alive(false);
    write(std::move(res));
  };
  auto fail = [&](http::status status, const Error& e) { answer(api_.error(req, status, e)); };
  if (ctx_.stopping) {
    return fail(http::status::service_unavailable,
                {errc::kShuttingDown, "the server is shutting down; reconnect elsewhere"});
  }
  auto url = boost::urls::parse_origin_form(req.target());
  if (!url) {
    return fail(http::status::bad_request, {errc::kBadRequest, "malformed request target"});
  }
  if (url->path() != "/" && url->path() != "/ws") {
    return fail(http::status::not_found,
                {errc::kNotFound, "WebSocket connections are accepted on / and /ws"});
  }
  Origin origin;
  std::optional<std::uint64_t> since;
  ConnectionInfo info;
  for (auto param : url->params()) {
    if (param.key == "observe") {
      if (param.value != "1" && param.value != "true" && param.value != "0" &&
          param.value != "false") {
        return fail(http::status::bad_request,
                    {errc::kInvalidField, "'observe' must be 1, true, 0 or false"});
      }
      info.observer = param.value == "1" || param.value == "true";
    } else if (param.key == "restaurant_id")
      origin.restaurant_id = param.value;
    else if (param.key == "device_id")
      origin.device_id = param.value;
    else if (param.key == "user_id")
      origin.user_id = param.value;
    else if (param.key == "since") {
      std::uint64_t v = 0;
      const auto& s = param.value;
      auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) {
        return fail(http::status::bad_request,
                    {errc::kInvalidField, "'since' must be a non-negative integer"});
      }
      since = v;
    }
  }
  const std::string address = client_address(req);
  info.address = address;
  auto caller =
      authenticate_caller(ctx_.auth, ctx_.legacy, upgrade_token(req, url->params()),
                          {origin.restaurant_id, origin.device_id, address}, now_ms() / 1000);
  if (!caller) return answer(api_.auth_error(req, caller.error()));
  // A device with a token may leave out the ids its token names.
  if (!caller->anonymous && caller->restaurant_id != kAnyRestaurant) {
    if (origin.restaurant_id.empty()) origin.restaurant_id = caller->restaurant_id;
    if (origin.device_id.empty()) origin.device_id = caller->device_id;
  }
  // An observer (an operator's console) is named after its token's device.
  if (info.observer && origin.device_id.empty() && !caller->anonymous) {
    origin.device_id = caller->device_id;
  }
  for (auto [name, value] :
       {std::pair<const char*, const std::string*>{"restaurant_id", &origin.restaurant_id},
        {"device_id", &origin.device_id}}) {
    if (value->empty()) {
      return fail(http::status::bad_request,
                  {errc::kMissingField, fmt::format("query parameter '{}' is required", name)});
    }
    if (auto e = check_id_field(name, *value, ctx_.config.max_id_bytes)) {
      return fail(http::status::bad_request, *e);
    }
  }
  if (auto e = ctx_.auth.authorize(*caller, origin.restaurant_id, origin.device_id)) {
    return answer(api_.auth_error(req, *e));
  }
  if (!origin.user_id.empty() && check_id(origin.user_id, ctx_.config.max_id_bytes)) {
    origin.user_id.clear();
  }
  Admitted admitted{ctx_.admission.per_ip.try_acquire(address),
                    ctx_.admission.per_restaurant.try_acquire(origin.restaurant_id)};
  if (!admitted.ip || !admitted.restaurant) {
    const bool by_address = !admitted.ip;
    // Given back before the refusal is written: its client may connect again as soon as it has
    // read the answer, maybe on another loop, and must find the slot free.
    admitted = {};
    return too_many(
        req,
        {errc::kTooManyConnections, by_address ? "too many open connections from this address"
                                               : "too many open connections for this restaurant"},
        std::chrono::seconds(5), true);
  }
  if (caller->anonymous) {
    slog::warn("unauthenticated connection", {{"restaurant", origin.restaurant_id},
                                              {"device", origin.device_id},
                                              {"remote", client_address(req)}});
  }
  auto accept = check_websocket_request(req);
  if (!accept) {
    if (accept.error().code == "unsupported_version") {
      auto res = api_.error(req, http::status::upgrade_required,
                            {errc::kBadRequest, accept.error().message});
      res.set(http::field::sec_websocket_version, "13");
      return answer(std::move(res));
    }
    return fail(http::status::bad_request, accept.error());
  }
  auto response = render_switching_protocols(*accept, selected_subprotocol(req));
  // Bytes the client sent after the request (its first frames) were read with it.
  std::string early(static_cast<const char*>(buffer_.cdata().data()), buffer_.size());
  buffer_.clear();
  const std::size_t home = ctx_.loops.home(origin.restaurant_id);
  auto start = [&ctx = ctx_, origin = std::move(origin), caller = std::move(*caller),
                admitted = std::move(admitted), since, info = std::move(info),
                response = std::move(response),
                early = std::move(early)](WsNextLayer<Stream>&& next, std::shared_ptr<void> keep,
                                          std::size_t loop) mutable {
    std::optional<Principal> legacy;
    if (caller.legacy) legacy = caller;
    auto session = std::make_shared<WsSession<Stream>>(std::move(next), std::move(keep), ctx, loop,
                                                       std::move(origin), std::move(caller),
                                                       std::move(admitted), since, std::move(info));
    session->run(std::move(response), std::move(early));
    // Joined the hub now: an enrolment withdrawn since the upgrade was admitted, whose refresh
    // scanned the hub before this session was in it, is caught here (transport/legacy_devices.h).
    if (legacy && ctx.legacy && !ctx.legacy->recheck(*legacy)) {
      session->disconnect(kCloseByOperator, "legacy device enrolment withdrawn");
    }
  };
  // A restaurant's WebSockets live on its home loop. A TLS stream cannot change loops (its
  // state is bound to the socket's executor): it stays where it was accepted, and its deliveries
  // cross over to it like those of another node's commits.
  if constexpr (!kIsTls<Stream>) {
    if (home != loop_) return move_to_loop(home, std::move(start));
  }
  start(ws_next_layer(), std::move(tls_), loop_);
}

template <class Stream>
template <class Start>
void HttpSession<Stream>::move_to_loop(std::size_t loop, Start start) {
  // The descriptor leaves this loop's reactor and joins the other's; owned by `fd` until then,
  // so that it is closed if the loop stops before it runs the hand-over.
  auto socket = ws_next_layer();
  beast::error_code ec;
  const auto protocol = socket.local_endpoint(ec).protocol();
  if (ec) return;  // the peer is gone already
  auto fd = std::make_unique<ReleasedSocket>(socket.release(ec));
  if (ec) return;
  net::post(ctx_.loops.context(loop),
            [&ctx = ctx_, loop, protocol, fd = std::move(fd), start = std::move(start)]() mutable {
              beast::error_code ec;
              net::ip::tcp::socket moved(ctx.loops.context(loop));
              moved.assign(protocol, fd->take(), ec);
              if (ec) return;
              start(std::move(moved), nullptr, loop);
            });
}

template <class Stream>
WsNextLayer<Stream> HttpSession<Stream>::ws_next_layer() {
  if constexpr (kIsTls<Stream>) {
    return std::move(stream_);
  } else {
    return stream_.release_socket();  // also cancels the HTTP session's timeout
  }
}

template <class Stream>
void HttpSession<Stream>::write(Response res) {
  // Once the server is stopping, a response is its connection's last, and says so
  // (`Connection: close`). Decided here, not when the write completes: a response that went out
  // as keep-alive leaves its connection open, however soon after it SIGTERM arrives.
  if (ctx_.stopping) res.keep_alive(false);
  if (slog::enabled(slog::Level::debug)) log_response(res);
  // A response to HEAD is the GET's status and headers (Content-Length included), no body.
  if (head_) res.body().clear();
  const bool close = !res.keep_alive();
  pending_ = std::make_shared<Response>(std::move(res));
  http::async_write(
      stream_, *pending_,
      beast::bind_front_handler(&HttpSession::on_write, this->shared_from_this(), close));
}

template <class Stream>
void HttpSession<Stream>::log_response(const Response& res) const {
  // An error's code is in its body (RestApi::error); nothing else of a body is logged.
  std::string_view code;
  boost::json::value body;
  if (res.result_int() >= 400 && res[http::field::content_type] == "application/json") {
    boost::system::error_code ec;
    body = parse_json(res.body(), ec);
    if (const auto* o = body.if_object()) {
      if (const auto* c = o->if_contains("code"); c && c->is_string()) code = c->get_string();
    }
  }
  const std::string& remote = log_remote_.empty() ? peer_address_ : log_remote_;
  if (code.empty()) {
    slog::debug("http request", {{"method", log_method_},
                                 {"path", log_path_},
                                 {"status", res.result_int()},
                                 {"remote", remote}});
  } else {
    slog::debug("http request", {{"method", log_method_},
                                 {"path", log_path_},
                                 {"status", res.result_int()},
                                 {"code", code},
                                 {"remote", remote}});
  }
}

template <class Stream>
void HttpSession<Stream>::on_write(bool close_after, beast::error_code ec, std::size_t) {
  pending_.reset();
  if (ec || close_after) return close();
  do_read();
}

template <class Stream>
void HttpSession<Stream>::close() {
  if constexpr (kIsTls<Stream>) {
    // close_notify, bounded by a timeout; the socket closes when the last handler is done.
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
      beast::error_code ignored;
      self->socket_().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    });
  } else {
    beast::error_code ec;
    stream_.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
  }
}

template class HttpSession<PlainStream>;
template class HttpSession<TlsStream>;

}  // namespace possync
