#include "transport/ws_session.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/beast/ssl.hpp>

#include "common/time.h"
#include "protocol/close_codes.h"

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
namespace net = boost::asio;

namespace possync {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

// How long a closing connection may take to deliver its close frame before the socket is cut.
constexpr auto kCloseGrace = std::chrono::seconds(5);

// Messages over the rate limit in a row after which the connection is closed (4029).
constexpr std::uint32_t kMaxRefusedInARow = 50;

template <class Stream>
WsNextLayer<Stream> ws_next_layer(Stream&& stream) {
  if constexpr (kIsTls<Stream>) {
    return std::move(stream);
  } else {
    return stream.release_socket();  // also cancels the HTTP session's timeout
  }
}

bool is_normal_end(const beast::error_code& ec) {
  return ec == websocket::error::closed || ec == net::error::operation_aborted ||
         ec == net::error::eof || ec == net::error::connection_reset || ec == beast::error::timeout;
}

}  // namespace

template <class Stream>
WsSession<Stream>::WsSession(Stream&& stream, std::shared_ptr<void> keep_alive, ServerContext& ctx,
                             Origin origin, Principal caller, Admitted admitted,
                             std::optional<std::uint64_t> since)
    : keep_alive_(std::move(keep_alive)),
      ws_(ws_next_layer(std::move(stream))),
      ctx_(ctx),
      origin_(std::move(origin)),
      caller_(std::move(caller)),
      admitted_(std::move(admitted)),
      limiter_(ctx.config),
      initial_since_(since),
      connected_at_ms_(now_ms()),
      last_seen_ms_(connected_at_ms_),
      twins_(ctx.config.twin_window),
      close_timer_(ws_.get_executor()) {}

template <class Stream>
WsSession<Stream>::~WsSession() = default;

template <class Stream>
net::ip::tcp::socket& WsSession<Stream>::socket() {
  if constexpr (kIsTls<Stream>) {
    return beast::get_lowest_layer(ws_).socket();
  } else {
    return ws_.next_layer();
  }
}

template <class Stream>
void WsSession<Stream>::run(Request req, std::string subprotocol) {
  if constexpr (kIsTls<Stream>) beast::get_lowest_layer(ws_).expires_never();
  ws_.set_option(websocket::stream_base::timeout{ctx_.config.handshake_timeout,
                                                 ctx_.config.idle_timeout, true});
  ws_.set_option(websocket::stream_base::decorator(
      [subprotocol = std::move(subprotocol)](websocket::response_type& res) {
        res.set(http::field::server, "possync");
        if (!subprotocol.empty()) res.set(http::field::sec_websocket_protocol, subprotocol);
      }));
  ws_.read_message_max(ctx_.config.max_frame_bytes);
  ws_.async_accept(req, beast::bind_front_handler(&WsSession::on_accept, this->shared_from_this()));
}

template <class Stream>
void WsSession<Stream>::on_accept(beast::error_code ec) {
  if (ec) {
    spdlog::info("websocket handshake failed restaurant={} device={}: {}", origin_.restaurant_id,
                 origin_.device_id, ec.message());
    return;
  }
  auto membership = ctx_.hub.join(origin_.restaurant_id, this->shared_from_this());
  joined_ = true;
  room_ = std::move(membership.room);
  last_sent_ = membership.published_seq;
  spdlog::info("device connected restaurant={} device={} remote={}", origin_.restaurant_id,
               origin_.device_id, socket().remote_endpoint(ec).address().to_string());
  arm_token_expiry();
  if (initial_since_) start_catchup(*initial_since_);
  do_read();
}

template <class Stream>
void WsSession<Stream>::arm_token_expiry() {
  if (caller_.expires_at == 0 || closing_) return;
  const auto left = std::chrono::seconds(caller_.expires_at) - std::chrono::milliseconds(now_ms());
  close_timer_.expires_after(std::max<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(left), std::chrono::milliseconds(0)));
  close_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    if (ec || self->closing_) return;
    spdlog::info("token expired restaurant={} device={}", self->origin_.restaurant_id,
                 self->origin_.device_id);
    self->send_error({auth_errc::kTokenExpired, "the token has expired; reconnect with a new one"});
    self->close_with(static_cast<websocket::close_code>(kCloseTokenExpired), "token expired",
                     false);
  });
}

template <class Stream>
void WsSession<Stream>::handle_auth(const AuthMsg& msg) {
  auto caller = ctx_.auth.authenticate(msg.token, now_ms() / 1000);
  std::optional<Error> refused;
  if (!caller) {
    refused = caller.error();
  } else if (caller->anonymous) {
    refused = Error{errc::kBadRequest, "authentication is off on this server"};
  } else {
    refused = ctx_.auth.authorize(*caller, origin_.restaurant_id, origin_.device_id);
  }
  if (refused) return send_error(*refused);
  caller_ = std::move(*caller);
  arm_token_expiry();
  send(render_auth_ok(caller_.expires_at));
}

template <class Stream>
void WsSession<Stream>::do_read() {
  // A pending async_read would size buffer_ for a whole frame before any byte arrives; reading
  // one byte first leaves an idle connection with no read buffer. Pings, pongs and close frames
  // are still handled by the WebSocket stream while this waits.
  ws_.async_read_some(
      net::mutable_buffer(&first_byte_, 1),
      beast::bind_front_handler(&WsSession::on_message_begun, this->shared_from_this()));
}

template <class Stream>
void WsSession<Stream>::on_message_begun(beast::error_code ec, std::size_t bytes) {
  if (ec) return on_read(ec, 0);
  buffer_.commit(net::buffer_copy(buffer_.prepare(bytes), net::buffer(&first_byte_, bytes)));
  if (ws_.is_message_done()) return on_read(ec, bytes);
  ws_.async_read(buffer_,
                 [self = this->shared_from_this(), bytes](beast::error_code ec, std::size_t rest) {
                   self->on_read(ec, bytes + rest);
                 });
}

template <class Stream>
void WsSession<Stream>::on_read(beast::error_code ec, std::size_t bytes) {
  if (ec) {
    if (ec == websocket::error::message_too_big) {
      ctx_.metrics.count_error("message_too_big");
      spdlog::warn("closing restaurant={} device={}: message over {} bytes (1009)",
                   origin_.restaurant_id, origin_.device_id, ctx_.config.max_frame_bytes);
    } else if (!is_normal_end(ec)) {
      spdlog::info("read failed restaurant={} device={}: {}", origin_.restaurant_id,
                   origin_.device_id, ec.message());
    }
    leave_room();
    return;
  }
  ctx_.metrics.ws_messages_received.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(status_mutex_);
    last_seen_ms_ = now_ms();
  }
  const bool within_budget = limiter_.admit(bytes);
  if (!closing_) {
    if (ws_.got_text()) {
      const auto data = buffer_.cdata();
      handle_text({static_cast<const char*>(data.data()), data.size()}, within_budget);
    } else if (!within_budget) {
      refuse_over_budget({});
    } else {
      send(
          render_error({errc::kInvalidMessage, "binary frames are not supported; send JSON text"}));
    }
  }
  buffer_.clear();
  buffer_.shrink_to_fit();  // release the message's memory: idle connections keep none
  read_next();
}

template <class Stream>
void WsSession<Stream>::read_next() {
  if (ctx_.backpressure.open()) return do_read();
  // The device's socket is left unread: TCP holds its messages back until the server caught up.
  ctx_.backpressure.when_open([weak = this->weak_from_this()] {
    if (auto self = weak.lock()) {
      net::post(self->ws_.get_executor(), [self] { self->read_next(); });
    }
  });
}

template <class Stream>
void WsSession<Stream>::refuse_over_budget(std::string_view change_id) {
  // Nothing of the message was accepted: the device may send it again.
  ctx_.metrics.rate_limited.fetch_add(1, std::memory_order_relaxed);
  if (++refused_in_a_row_ >= kMaxRefusedInARow) {
    spdlog::warn("closing restaurant={} device={}: over its rate limit ({} messages refused)",
                 origin_.restaurant_id, origin_.device_id, refused_in_a_row_);
    close_with(static_cast<websocket::close_code>(kCloseRateLimited), "rate limit exceeded", false);
    return;
  }
  send_error({errc::kRateLimited,
              "too many messages; this one was not processed, slow down and "
              "send it again"},
             change_id);
}

template <class Stream>
bool WsSession<Stream>::is_awaited_twin(const ClientMessage& message) const {
  const auto* m = std::get_if<ChangeMsg>(&message);
  if (m == nullptr || m->typed) return false;
  if (deferred_) return TwinDetector::same_content(deferred_->msg.change, m->change, false);
  return twins_.would_match(m->change, TwinDetector::Clock::now());
}

template <class Stream>
void WsSession<Stream>::handle_text(std::string_view text, bool within_budget) {
  auto object = parse_object(text);
  if (!object && !within_budget) return refuse_over_budget({});
  if (!object) {
    send_error(object.error());
    return;
  }
  Origin origin;
  {
    std::lock_guard lock(status_mutex_);
    origin = origin_;
  }
  auto message = decode_message(*object, origin, ctx_.limits);
  if (!message) {
    std::string_view change_id;
    if (const auto* c = object->if_contains("change_id"); c && c->is_string()) {
      change_id = c->get_string();
    }
    if (!within_budget) return refuse_over_budget(change_id);
    send_error(message.error(), change_id);
    return;
  }
  // Over the budget, only the twin of a change already taken is let through: it costs nothing
  // (it is recorded as an alias), and refusing it would make its later resend a change of its own.
  if (!within_budget && !is_awaited_twin(*message)) {
    const auto* m = std::get_if<ChangeMsg>(&*message);
    return refuse_over_budget(m && m->client_change_id ? m->change.change_id : std::string());
  }
  refused_in_a_row_ = 0;
  std::visit(Overloaded{
                 [&](RegisterMsg& m) {
                   if (m.user_id) {
                     std::lock_guard lock(status_mutex_);
                     origin_.user_id = *m.user_id;
                   }
                   auto head = ctx_.store.head(origin_.restaurant_id);
                   send(render_registered(origin_, head ? head->seq : 0));
                   if (m.since && mode_ == Mode::live) start_catchup(*m.since);
                 },
                 [&](HeartbeatMsg&) { send(render_heartbeat_response(origin_.device_id)); },
                 [&](AuthMsg& m) { handle_auth(m); },
                 [&](UserChangedMsg& m) {
                   std::lock_guard lock(status_mutex_);
                   origin_.user_id = std::move(m.user_id);
                 },
                 [&](ChangeMsg& m) { handle_change(std::move(m)); },
             },
             *message);
}

template <class Stream>
void WsSession<Stream>::handle_change(ChangeMsg msg) {
  if (auto refused = ctx_.auth.permit(caller_, msg.change)) {
    return send_error(*refused, msg.client_change_id ? msg.change.change_id : std::string());
  }
  const auto now = TwinDetector::Clock::now();
  if (deferred_) {
    if (!msg.typed && TwinDetector::same_content(deferred_->msg.change, msg.change, false)) {
      // The twin of a deferred user_update carries the true record id: it is the change.
      deferred_.reset();  // destroying the timer cancels its wait
      submit({std::move(msg.change), {}});
      return;
    }
    flush_deferred();
  }
  if (msg.typed && msg.record_id_from_user_id) {
    twins_.forget();  // only the very next change can be a twin
    deferred_ = std::make_unique<Deferred>(std::move(msg), ws_.get_executor());
    deferred_->timer.expires_after(ctx_.config.twin_window);
    deferred_->timer.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      // A wait that had already completed when its user_update was taken must not flush a later
      // one: only the timer of the user_update deferred now, once expired, flushes.
      if (!ec && self->deferred_ &&
          self->deferred_->timer.expiry() <= std::chrono::steady_clock::now()) {
        self->flush_deferred();
      }
    });
    return;
  }
  std::string twin_of;
  if (!msg.typed) {
    twin_of = twins_.match(msg.change, now);
  } else if (msg.client_change_id) {
    twins_.forget();
  } else {
    twins_.remember(msg.change, now);
  }
  submit({std::move(msg.change), std::move(twin_of)});
}

template <class Stream>
void WsSession<Stream>::flush_deferred() {
  if (!deferred_) return;
  auto msg = std::move(deferred_->msg);
  deferred_.reset();
  if (msg.change.record_id.empty()) {
    send_error(user_update_without_id(),
               msg.client_change_id ? msg.change.change_id : std::string());
    return;
  }
  submit({std::move(msg.change), {}});
}

template <class Stream>
void WsSession<Stream>::submit(ChangeRequest request) {
  const bool hash = SecretHasher::needs_hashing(request.change);
  if (!hash && !held_) return commit(std::move(request));
  if (!held_) held_ = std::make_unique<std::deque<Held>>();
  const auto ticket = next_ticket_++;
  held_->push_back({ticket, std::move(request), !hash, std::nullopt});
  if (!hash) return;
  ctx_.hasher.hash(held_->back().request.change.data, [self = this->shared_from_this(),
                                                       ticket](Result<boost::json::object> hashed) {
    net::post(self->ws_.get_executor(), [self, ticket, hashed = std::move(hashed)]() mutable {
      for (auto& h : *self->held_) {
        if (h.ticket != ticket) continue;
        h.ready = true;
        if (hashed) {
          h.request.change.data = std::move(*hashed);
        } else {
          h.error = hashed.error();
        }
      }
      self->release_held();
    });
  });
}

template <class Stream>
void WsSession<Stream>::release_held() {
  while (held_ && !held_->empty() && held_->front().ready) {
    Held h = std::move(held_->front());
    held_->pop_front();
    if (h.error) {
      send_rejected(std::move(h.request.change.change_id), std::move(*h.error));
    } else {
      commit(std::move(h.request));
    }
  }
  if (held_ && held_->empty()) held_.reset();
}

template <class Stream>
void WsSession<Stream>::commit(ChangeRequest request) {
  auto self = this->shared_from_this();
  const std::string change_id = request.change.change_id;
  const bool queued = ctx_.pipeline.submit(std::move(request), [self](const Outcome& outcome) {
    net::post(self->ws_.get_executor(),
              [self, text = render_ack(outcome)]() mutable { self->send(std::move(text)); });
  });
  if (!queued) {
    send_rejected(change_id,
                  {errc::kShuttingDown, "the server is shutting down; retry on reconnect"});
  }
}

template <class Stream>
void WsSession<Stream>::send_rejected(std::string change_id, Error error) {
  Outcome rejected;
  rejected.change_id = std::move(change_id);
  rejected.error = std::move(error);
  ctx_.metrics.count_error(rejected.error.code);
  send(render_ack(rejected));
}

template <class Stream>
void WsSession<Stream>::start_catchup(std::uint64_t since) {
  // Changes already delivered live on this connection (a contiguous run of seqs, as publishing
  // is in seq order) are not repeated.
  skip_from_ = first_live_;
  skip_to_ = first_live_ == 0 ? 0 : last_sent_;
  mode_ = Mode::catching_up;
  cursor_ = since;
  catchup_started_ = true;
  pump_catchup();
}

template <class Stream>
void WsSession<Stream>::pump_catchup() {
  const std::size_t low_water = ctx_.config.max_outbound_bytes / 2;
  while (mode_ == Mode::catching_up && !closing_ && queued_bytes_ < low_water) {
    auto page = ctx_.store.read_log(origin_.restaurant_id, cursor_, ctx_.config.catchup_page);
    if (!page) {
      spdlog::error("catch-up read failed restaurant={}: {}", origin_.restaurant_id,
                    page.error().message);
      close_with(websocket::close_code::try_again_later, "store unavailable; reconnect with since",
                 false);
      return;
    }
    if (catchup_started_) {
      catchup_started_ = false;
      const auto& head = page->head;
      if (cursor_ < head.pruned_seq || cursor_ > head.seq) {
        send(render_reset_required(
            head.seq, cursor_ > head.seq ? "since is ahead of the server's log; reload the snapshot"
                                         : "history after since was pruned; reload the snapshot"));
        cursor_ = head.seq;
        last_sent_ = std::max(last_sent_, cursor_);
        continue;
      }
    }
    bool stopped_early = false;
    for (const auto& entry : page->entries) {
      if (queued_bytes_ >= low_water) {
        stopped_early = true;
        break;
      }
      cursor_ = entry.seq;
      if (entry.seq >= skip_from_ && entry.seq <= skip_to_) continue;
      send(render_live_change(entry));
    }
    last_sent_ = std::max(last_sent_, cursor_);
    if (stopped_early || page->entries.size() >= ctx_.config.catchup_page) continue;
    if (room_->go_live(cursor_, [this] { mode_ = Mode::live; })) {
      skip_from_ = skip_to_ = 0;
      send(render_caught_up(cursor_));
    }
  }
}

template <class Stream>
void WsSession<Stream>::deliver(std::shared_ptr<const DeliveryBatch> batch) {
  // Charged until the session has taken it: the fan-out backlog (sync/backpressure.h).
  std::size_t bytes = 0;
  for (const Delivery& d : *batch) bytes += d.payload.size();
  net::post(ws_.get_executor(), [self = this->shared_from_this(), batch = std::move(batch),
                                 charge = Backpressure::Charge(ctx_.backpressure, bytes)] {
    for (const Delivery& d : *batch) {
      if (self->closing_ || self->mode_ != Mode::live) return;
      if (d.seq <= self->last_sent_) continue;
      self->last_sent_ = d.seq;
      if (self->first_live_ == 0) self->first_live_ = d.seq;
      if (d.origin_device == self->origin_.device_id) continue;
      // The payload shares ownership of the whole batch: no allocation per recipient.
      self->send(std::shared_ptr<const std::string>(batch, &d.payload), d.received_at);
    }
  });
}

template <class Stream>
void WsSession<Stream>::notify(std::shared_ptr<const std::string> payload) {
  net::post(ws_.get_executor(), [self = this->shared_from_this(),
                                 p = std::move(payload)]() mutable { self->send(std::move(p)); });
}

template <class Stream>
DeviceStatus WsSession<Stream>::status() const {
  std::lock_guard lock(status_mutex_);
  return {origin_.device_id, origin_.user_id, connected_at_ms_, last_seen_ms_};
}

template <class Stream>
void WsSession<Stream>::disconnect(std::uint16_t code, std::string reason) {
  net::post(ws_.get_executor(),
            [self = this->shared_from_this(), code, reason = std::move(reason)] {
              self->close_with(static_cast<websocket::close_code>(code), reason, false);
            });
}

template <class Stream>
void WsSession<Stream>::send_error(const Error& error, std::string_view change_id) {
  ctx_.metrics.count_error(error.code);
  send(render_error(error, change_id));
}

template <class Stream>
void WsSession<Stream>::send(std::shared_ptr<const std::string> payload, TimePoint received_at) {
  if (closing_) return;
  if (!queue_.empty() && queued_bytes_ + payload->size() > ctx_.config.max_outbound_bytes) {
    ctx_.metrics.slow_consumer_disconnects.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("slow consumer restaurant={} device={}: send queue over {} bytes, disconnecting",
                 origin_.restaurant_id, origin_.device_id, ctx_.config.max_outbound_bytes);
    close_with(websocket::close_code::policy_error,
               "slow consumer: send queue full; reconnect with since", true);
    return;
  }
  queued_bytes_ += payload->size();
  queue_.push_back({std::move(payload), received_at});
  if (!writing_) do_write();
}

template <class Stream>
void WsSession<Stream>::set_corked(bool corked) {
  if (corked_ == corked) return;
  corked_ = corked;
  const int on = corked ? 1 : 0;
  // Best effort: without it every message is simply its own segment.
  ::setsockopt(socket().native_handle(), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

template <class Stream>
void WsSession<Stream>::do_write() {
  // A burst (catch-up pages, several live batches) leaves in full segments, and the device
  // wakes once for it rather than once per message; a lone message is not held back.
  if (queue_.size() > 1) set_corked(true);
  writing_ = true;
  ws_.text(true);
  ws_.async_write(net::buffer(*queue_.front().payload),
                  beast::bind_front_handler(&WsSession::on_write, this->shared_from_this()));
}

template <class Stream>
void WsSession<Stream>::on_write(beast::error_code ec, std::size_t) {
  writing_ = false;
  const Outgoing& sent = queue_.front();
  if (!ec) {
    ctx_.metrics.ws_messages_sent.fetch_add(1, std::memory_order_relaxed);
    if (sent.received_at != TimePoint{}) {
      ctx_.metrics.fanout_seconds.observe(Metrics::seconds_since(sent.received_at));
    }
  }
  queued_bytes_ -= sent.payload->size();
  queue_.pop_front();
  if (ec) {
    closing_ = true;
    queue_.clear();
    queued_bytes_ = 0;
    close_timer_.cancel();
    return;  // the pending read fails too and ends the session
  }
  if (closing_ && !queue_.empty()) return do_write();
  if (closing_) {
    set_corked(false);
    ws_.async_close(close_reason_, [self = this->shared_from_this()](beast::error_code) {
      self->close_timer_.cancel();
    });
    return;
  }
  if (mode_ == Mode::catching_up) pump_catchup();
  if (!queue_.empty() && !writing_) do_write();
  if (queue_.empty()) set_corked(false);  // sends what the burst left in a partial segment
}

template <class Stream>
void WsSession<Stream>::close_with(websocket::close_code code, std::string reason,
                                   bool discard_queue) {
  if (closing_) return;
  closing_ = true;
  close_reason_ = websocket::close_reason(code, reason);
  // Either send what is queued first, or keep only the payload being written.
  while (discard_queue && queue_.size() > (writing_ ? 1u : 0u)) {
    queued_bytes_ -= queue_.back().payload->size();
    queue_.pop_back();
  }
  close_timer_.expires_after(kCloseGrace);
  close_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    if (ec) return;
    beast::error_code ignored;
    self->socket().close(ignored);
  });
  if (!writing_ && !queue_.empty()) {
    do_write();
  } else if (!writing_) {
    ws_.async_close(close_reason_, [self = this->shared_from_this()](beast::error_code) {
      self->close_timer_.cancel();
    });
  }
}

template <class Stream>
void WsSession<Stream>::leave_room() {
  flush_deferred();
  close_timer_.cancel();
  if (!joined_) return;
  joined_ = false;
  ctx_.hub.leave(origin_.restaurant_id, this);
  room_.reset();
  spdlog::info("device disconnected restaurant={} device={}", origin_.restaurant_id,
               origin_.device_id);
}

template class WsSession<PlainStream>;
template class WsSession<TlsStream>;

}  // namespace possync
