#include "transport/ws_session.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/ssl.hpp>

#include "common/log.h"
#include "common/time.h"
#include "protocol/close_codes.h"
#include "transport/commit_intake.h"

namespace beast = boost::beast;
namespace net = boost::asio;

namespace possync {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

// Messages over the rate limit in a row after which the connection is closed (4029).
constexpr std::uint32_t kMaxRefusedInARow = 50;

// Most frames handed to one write (the kernel takes at most IOV_MAX buffers).
constexpr std::size_t kMaxFramesPerWrite = 128;

// What a TLS connection reads into (a TLS record is at most 16 KiB).
constexpr std::size_t kTlsReadBytes = 16 * 1024;

bool is_normal_end(const beast::error_code& ec) {
  return ec == net::error::operation_aborted || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == net::ssl::error::stream_truncated;
}

}  // namespace

template <class Stream>
WsSession<Stream>::WsSession(WsNextLayer<Stream>&& stream, std::shared_ptr<void> keep_alive,
                             ServerContext& ctx, std::size_t loop, Origin origin, Principal caller,
                             Admitted admitted, std::optional<std::uint64_t> since,
                             ConnectionInfo info)
    : keep_alive_(std::move(keep_alive)),
      stream_(std::move(stream)),
      ctx_(ctx),
      loop_(loop),
      reader_(ctx.config.max_frame_bytes),
      origin_(std::move(origin)),
      caller_(std::move(caller)),
      admitted_(std::move(admitted)),
      limiter_(ctx.config),
      initial_since_(since),
      info_(std::move(info)),
      connected_at_ms_(now_ms()),
      last_seen_ms_(connected_at_ms_),
      twins_(ctx.config.twin_window),
      close_timer_(stream_.get_executor()),
      ping_timer_(stream_.get_executor()) {}

template <class Stream>
WsSession<Stream>::~WsSession() = default;

template <class Stream>
net::ip::tcp::socket& WsSession<Stream>::socket() {
  if constexpr (kIsTls<Stream>) {
    return beast::get_lowest_layer(stream_).socket();
  } else {
    return stream_;
  }
}

template <class Stream>
void WsSession<Stream>::run(std::string response, std::string early) {
  if constexpr (kIsTls<Stream>) beast::get_lowest_layer(stream_).expires_never();
  beast::error_code ec;
  socket().non_blocking(true, ec);
  // Joined before the 101 goes out: whatever is published from now on is queued behind it, so
  // a change committed after the device saw the connection open is never missed.
  auto membership = ctx_.hub.join(origin_.restaurant_id, this->shared_from_this());
  joined_ = true;
  room_ = std::move(membership.room);
  catch_up_.joined(membership.published_seq);
  enqueue(ws::Opcode::text, std::make_shared<const std::string>(std::move(response)), {}, true);
  slog::info(info_.observer ? "observer connected" : "device connected",
             {{"restaurant", origin_.restaurant_id},
              {"device", origin_.device_id},
              {"remote", socket().remote_endpoint(ec).address().to_string()}});
  arm_token_expiry();
  arm_ping_timer();
  if (initial_since_) start_catchup(*initial_since_);
  if (!early.empty()) {
    consume(std::span<char>(early.data(), early.size()));
    if (reading_ended_) return;
  }
  read_next();
}

// ---- reading ----

template <class Stream>
void WsSession<Stream>::read_next() {
  if (reading_ended_ || socket_closed_) return;
  // While overloaded, the device's socket is left unread: TCP holds its messages back until the
  // server has caught up (sync/backpressure.h). A closing connection is read on regardless.
  if (!closing_ && !ctx_.backpressure.open()) {
    ctx_.backpressure.when_open([weak = this->weak_from_this()] {
      if (auto self = weak.lock()) {
        net::post(self->stream_.get_executor(), [self] { self->read_next(); });
      }
    });
    return;
  }
  if (paused_) {
    // Frames read before the gate closed come first.
    paused_ = false;
    consume({});
    if (paused_ || reading_ended_ || socket_closed_) return read_next();
  }
  if constexpr (kIsTls<Stream>) {
    if (!tls_in_) tls_in_ = std::make_unique<char[]>(kTlsReadBytes);
    stream_.async_read_some(
        net::buffer(tls_in_.get(), kTlsReadBytes),
        beast::bind_front_handler(&WsSession::on_tls_read, this->shared_from_this()));
  } else {
    // A read into the session's small buffer: most messages fit, and a pending read costs the
    // loop nothing until data arrives (no re-arming system call per message).
    socket().async_receive(
        net::buffer(first_bytes_),
        beast::bind_front_handler(&WsSession::on_received, this->shared_from_this()));
  }
}

template <class Stream>
void WsSession<Stream>::on_received(beast::error_code ec, std::size_t bytes) {
  if (ec) return end_reading(ec);
  consume(std::span<char>(first_bytes_.data(), bytes));
  if (paused_) return read_next();
  // A full buffer: the rest of a longer message (or more messages) waits in the socket; read it
  // into the loop's shared buffer until the socket is drained.
  std::size_t last = bytes;
  const std::span<char> buffer = ctx_.loops.buffer(loop_);
  for (int round = 0; last == first_bytes_.size() || last == buffer.size(); ++round) {
    if (reading_ended_ || socket_closed_) return;
    if (round == 16) {
      // Let the loop's other connections have their turn; go on after them.
      net::post(stream_.get_executor(),
                [self = this->shared_from_this()] { self->on_received({}, 0); });
      return;
    }
    last = socket().read_some(net::buffer(buffer.data(), buffer.size()), ec);
    if (ec == net::error::would_block) break;
    if (ec) return end_reading(ec);
    consume(buffer.first(last));
    if (paused_) return read_next();
  }
  if (reading_ended_ || socket_closed_) return;
  read_next();
}

template <class Stream>
void WsSession<Stream>::on_tls_read(beast::error_code ec, std::size_t bytes) {
  if (ec) return end_reading(ec);
  consume(std::span<char>(tls_in_.get(), bytes));
  read_next();
}

template <class Stream>
void WsSession<Stream>::consume(std::span<char> bytes) {
  activity_ = true;
  ping_outstanding_ = false;
  reader_.feed(bytes);
  while (auto event = reader_.next()) {
    switch (event->kind) {
      case ws::Event::Kind::message:
        if (!closing_) on_message(event->payload, event->text);
        if (!closing_ && !ctx_.backpressure.open()) {
          // Overloaded: the rest of what was read waits with the reader, like what is still in
          // the socket, until the gate opens (read_next).
          reader_.keep_rest();
          paused_ = true;
          return;
        }
        break;
      case ws::Event::Kind::ping:
        if (!closing_) {
          enqueue(ws::Opcode::pong, std::make_shared<const std::string>(event->payload), {});
        }
        break;
      case ws::Event::Kind::pong:
        break;
      case ws::Event::Kind::close:
        peer_closed_ = true;
        if (!closing_) {
          // Echo the peer's code (none if it sent none), then close TCP once that is written.
          const std::uint16_t code = event->code == ws::kCloseNoStatus ? 0 : event->code;
          close_with(code, "", true);
        } else if (close_sent_) {
          finish_close();
        }
        break;
      case ws::Event::Kind::error:
        if (event->code == ws::kCloseTooBig) {
          ctx_.metrics.count_error("message_too_big");
          slog::warn("closing connection: message too big",
                     {{"restaurant", origin_.restaurant_id},
                      {"device", origin_.device_id},
                      {"close_code", event->code},
                      {"limit_bytes", ctx_.config.max_frame_bytes}});
        } else {
          ctx_.metrics.count_error("protocol_error");
          slog::info("closing connection: protocol error", {{"restaurant", origin_.restaurant_id},
                                                            {"device", origin_.device_id},
                                                            {"close_code", event->code},
                                                            {"error", event->reason}});
        }
        close_with(event->code, std::string(event->reason), true);
        break;
    }
    if (socket_closed_) return;
  }
}

template <class Stream>
void WsSession<Stream>::on_message(std::string_view payload, bool text) {
  ctx_.metrics.ws_messages_received.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(status_mutex_);
    last_seen_ms_ = now_ms();
  }
  const bool within_budget = limiter_.admit(payload.size());
  if (text) {
    handle_text(payload, within_budget);
  } else if (!within_budget) {
    refuse_over_budget({});
  } else {
    send(render_error({errc::kInvalidMessage, "binary frames are not supported; send JSON text"}));
  }
}

template <class Stream>
void WsSession<Stream>::end_reading(beast::error_code ec) {
  if (reading_ended_) return;
  reading_ended_ = true;
  peer_closed_ = true;
  if (!is_normal_end(ec) && !socket_closed_) {
    slog::info("read failed", {{"restaurant", origin_.restaurant_id},
                               {"device", origin_.device_id},
                               {"error", ec.message()}});
  }
  // The peer is gone (or closed its side): nothing more will be written either.
  close_socket();
}

template <class Stream>
void WsSession<Stream>::arm_ping_timer() {
  ping_timer_.expires_after(ctx_.config.idle_timeout / 2);
  ping_timer_.async_wait([weak = this->weak_from_this()](beast::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->socket_closed_) return;
    if (self->activity_) {
      self->activity_ = false;
    } else if (self->ping_outstanding_) {
      slog::info("closing connection: no traffic",
                 {{"restaurant", self->origin_.restaurant_id},
                  {"device", self->origin_.device_id},
                  {"idle_seconds", self->ctx_.config.idle_timeout.count()}});
      return self->close_socket();
    } else if (!self->closing_) {
      self->ping_outstanding_ = true;
      self->enqueue(ws::Opcode::ping, std::make_shared<const std::string>(), {});
    }
    self->arm_ping_timer();
  });
}

template <class Stream>
void WsSession<Stream>::arm_token_expiry() {
  if (caller_.expires_at == 0 || closing_) return;
  const auto left = std::chrono::seconds(caller_.expires_at) - std::chrono::milliseconds(now_ms());
  close_timer_.expires_after(std::max<std::chrono::milliseconds>(
      std::chrono::duration_cast<std::chrono::milliseconds>(left), std::chrono::milliseconds(0)));
  close_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
    if (ec || self->closing_) return;
    slog::info("closing connection: token expired", {{"restaurant", self->origin_.restaurant_id},
                                                     {"device", self->origin_.device_id},
                                                     {"code", auth_errc::kTokenExpired}});
    self->send_error({auth_errc::kTokenExpired, "the token has expired; reconnect with a new one"});
    self->close_with(kCloseTokenExpired, "token expired", false);
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
  if (refused) {
    slog::debug("token refresh refused", {{"restaurant", origin_.restaurant_id},
                                          {"device", origin_.device_id},
                                          {"code", refused->code}});
    return send_error(*refused);
  }
  {
    std::lock_guard lock(status_mutex_);  // status() reads caller_ from other threads
    caller_ = std::move(*caller);
  }
  arm_token_expiry();
  send(render_auth_ok(caller_.expires_at));
}

template <class Stream>
void WsSession<Stream>::refuse_over_budget(std::string_view change_id) {
  // Nothing of the message was accepted: the device may send it again.
  ctx_.metrics.rate_limited.fetch_add(1, std::memory_order_relaxed);
  if (++refused_in_a_row_ >= kMaxRefusedInARow) {
    slog::warn("closing connection: over its rate limit", {{"restaurant", origin_.restaurant_id},
                                                           {"device", origin_.device_id},
                                                           {"code", errc::kRateLimited},
                                                           {"refused", refused_in_a_row_}});
    close_with(kCloseRateLimited, "rate limit exceeded", false);
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
  // Takes only a change's data out of `object`: its change_id stays for an error below.
  auto message = decode_message(std::move(*object), origin, ctx_.limits);
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
                   if (m.since && catch_up_.live()) start_catchup(*m.since);
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
  // An observer makes no changes; a device only those its role permits.
  auto refused = info_.observer
                     ? Error{errc::kForbidden, "an observer connection cannot make changes"}
                     : ctx_.auth.permit(caller_, msg.change);
  if (refused) {
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
    deferred_ = std::make_unique<Deferred>(std::move(msg), stream_.get_executor());
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
  request.role = caller_.role;
  auto go = [this](OrderedIntake::Released&& r) { go_on(std::move(r)); };
  auto job = ordered_.push(std::move(request), go);
  if (!job) return;
  ctx_.hasher.hash(std::move(job->data), [self = this->shared_from_this(), ticket = job->ticket](
                                             Result<boost::json::object> hashed) {
    net::post(self->stream_.get_executor(), [self, ticket, hashed = std::move(hashed)]() mutable {
      self->ordered_.complete(ticket, std::move(hashed),
                              [&self](OrderedIntake::Released&& r) { self->go_on(std::move(r)); });
    });
  });
}

template <class Stream>
void WsSession<Stream>::go_on(OrderedIntake::Released&& released) {
  if (released.error) {
    send_rejected(std::move(released.request.change.change_id), std::move(*released.error));
  } else {
    commit(std::move(released.request));
  }
}

template <class Stream>
void WsSession<Stream>::commit(ChangeRequest request) {
  ctx_.intake.submit(loop_, std::move(request),
                     [self = this->shared_from_this()](const Outcome& outcome) {
                       self->send(render_ack(outcome));
                     });
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
  catch_up_.start(since);
  pump_catchup();
}

template <class Stream>
void WsSession<Stream>::pump_catchup() {
  // What the catch-up reads is rendered and queued here, up to half the outbound bound at a time
  // (the rest follows as the queue drains: on_writable).
  struct Queue final : CatchUp::Sink {
    WsSession& s;
    explicit Queue(WsSession& session) : s(session) {}
    bool has_room() const override {
      return !s.closing_ && s.queued_bytes_ < s.ctx_.config.max_outbound_bytes / 2;
    }
    void entry(const LogEntry& e) override { s.send(render_live_change(e)); }
    void reset_required(std::uint64_t head_seq, std::string_view reason) override {
      s.send(render_reset_required(head_seq, reason));
    }
    void caught_up(std::uint64_t seq) override { s.send(render_caught_up(seq)); }
  } queue(*this);
  auto failed =
      catch_up_.pump(ctx_.store, origin_.restaurant_id, ctx_.config.catchup_page, *room_, queue);
  if (failed) {
    slog::error("catch-up read failed", {{"restaurant", origin_.restaurant_id},
                                         {"code", failed->code},
                                         {"error", failed->message}});
    close_with(kCloseTryAgainLater, "store unavailable; reconnect with since", false);
  }
}

template <class Stream>
void WsSession<Stream>::deliver(std::shared_ptr<const DeliveryBatch> batch) {
  for (const Delivery& d : *batch) {
    if (closing_ || !catch_up_.live()) return;
    if (!catch_up_.take_live(d.seq)) continue;
    if (d.origin_device == origin_.device_id && !info_.observer) continue;
    // The payload shares ownership of the whole batch: no allocation per recipient.
    send(std::shared_ptr<const std::string>(batch, &d.payload), d.received_at);
  }
}

template <class Stream>
void WsSession<Stream>::notify(std::shared_ptr<const std::string> payload) {
  net::post(stream_.get_executor(),
            [self = this->shared_from_this(), p = std::move(payload)]() mutable {
              self->send(std::move(p));
            });
}

template <class Stream>
DeviceStatus WsSession<Stream>::status() const {
  std::lock_guard lock(status_mutex_);
  DeviceStatus s{origin_.device_id, origin_.user_id, connected_at_ms_, last_seen_ms_};
  // A legacy device's address is the one its enrolment admitted (the same client address).
  s.address = caller_.legacy ? caller_.address : info_.address;
  if (!caller_.anonymous) s.role = role_name(caller_.role);
  s.legacy = caller_.legacy;
  s.observer = info_.observer;
  return s;
}

template <class Stream>
void WsSession<Stream>::disconnect(std::uint16_t code, std::string reason) {
  net::post(stream_.get_executor(),
            [self = this->shared_from_this(), code, reason = std::move(reason)] {
              self->close_with(code, reason, false);
            });
}

// ---- writing ----

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
    slog::warn("closing connection: slow consumer",
               {{"restaurant", origin_.restaurant_id},
                {"device", origin_.device_id},
                {"limit_bytes", ctx_.config.max_outbound_bytes}});
    close_with(kClosePolicyViolation, "slow consumer: send queue full; reconnect with since", true);
    return;
  }
  enqueue(ws::Opcode::text, std::move(payload), received_at);
}

template <class Stream>
void WsSession<Stream>::enqueue(ws::Opcode opcode, std::shared_ptr<const std::string> payload,
                                TimePoint received_at, bool raw) {
  if (socket_closed_) return;
  Outgoing& out = queue_.emplace_back();
  out.header_size =
      raw ? 0 : static_cast<std::uint8_t>(ws::write_header(out.header, opcode, payload->size()));
  out.opcode = opcode;
  out.counted = !raw && opcode == ws::Opcode::text;
  out.received_at = received_at;
  queued_bytes_ += payload->size();
  out.payload = std::move(payload);
  schedule_write();
}

template <class Stream>
void WsSession<Stream>::schedule_write() {
  if (write_scheduled_ || writing_ || socket_closed_) return;
  write_scheduled_ = true;
  ctx_.loops.write_at_turn_end(loop_, this->shared_from_this());
}

template <class Stream>
void WsSession<Stream>::write_now() {
  write_scheduled_ = false;
  write_queued();
}

template <class Stream>
void WsSession<Stream>::write_queued() {
  if (writing_ || socket_closed_) return;
  if (!queue_.empty()) {
    if constexpr (kIsTls<Stream>) {
      // One TLS write for the whole burst (the TLS stream would make a record per buffer).
      std::size_t frames = 0;
      for (const Outgoing& out : queue_) {
        if (frames++ == kMaxFramesPerWrite) break;
        tls_out_.append(reinterpret_cast<const char*>(out.header), out.header_size);
        tls_out_.append(*out.payload);
      }
      writing_ = true;
      net::async_write(stream_, net::buffer(tls_out_),
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                         self->writing_ = false;
                         std::string().swap(self->tls_out_);
                         if (ec) return self->close_socket();
                         self->written(n);
                         self->write_queued();
                       });
      return;
    } else {
      // Every queued frame, header and shared payload, in one gathering write (more than one
      // only when the queue holds more frames than a write takes).
      thread_local std::vector<net::const_buffer> buffers;
      while (!queue_.empty()) {
        buffers.clear();
        std::size_t skip = front_written_;
        for (const Outgoing& out : queue_) {
          if (buffers.size() >= 2 * kMaxFramesPerWrite) break;
          net::const_buffer header(out.header, out.header_size);
          net::const_buffer body(out.payload->data(), out.payload->size());
          if (skip >= header.size()) {
            body += skip - header.size();
          } else {
            header += skip;
            buffers.push_back(header);
          }
          skip = 0;
          if (body.size() > 0) buffers.push_back(body);
        }
        beast::error_code ec;
        const std::size_t n = socket().write_some(buffers, ec);
        if (ec == net::error::would_block) {
          // The socket's buffer is full (a slow reader): go on once it takes more. Waiting is
          // safe only after the kernel said so (the loop's epoll is edge-triggered).
          writing_ = true;
          socket().async_wait(
              net::socket_base::wait_write,
              beast::bind_front_handler(&WsSession::on_writable, this->shared_from_this()));
          return;
        }
        if (ec) {
          if (!is_normal_end(ec)) {
            slog::info("write failed", {{"restaurant", origin_.restaurant_id},
                                        {"device", origin_.device_id},
                                        {"error", ec.message()}});
          }
          return close_socket();
        }
        written(n);
      }
    }
  }
  if (close_sent_) return finish_close();
  if (!catch_up_.live()) pump_catchup();
}

template <class Stream>
void WsSession<Stream>::on_writable(beast::error_code ec) {
  writing_ = false;
  if (ec) return close_socket();
  write_queued();
}

template <class Stream>
void WsSession<Stream>::written(std::size_t bytes) {
  while (bytes > 0 && !queue_.empty()) {
    Outgoing& front = queue_.front();
    const std::size_t left = front.size() - front_written_;
    if (bytes < left) {
      front_written_ += bytes;
      return;
    }
    bytes -= left;
    front_written_ = 0;
    if (front.counted) {
      ctx_.metrics.ws_messages_sent.fetch_add(1, std::memory_order_relaxed);
      if (front.received_at != TimePoint{}) {
        ctx_.metrics.fanout_seconds.observe(Metrics::seconds_since(front.received_at));
      }
    }
    if (front.opcode == ws::Opcode::close && front.header_size > 0) close_sent_ = true;
    queued_bytes_ -= front.payload->size();
    queue_.pop_front();
  }
}

template <class Stream>
void WsSession<Stream>::close_with(std::uint16_t code, std::string reason, bool discard_queue) {
  if (closing_ || socket_closed_) return;
  closing_ = true;
  // Either send what is queued first, or keep only what has begun to be written.
  const std::size_t keep = (front_written_ > 0 || writing_) ? 1 : 0;
  while (discard_queue && queue_.size() > keep) {
    queued_bytes_ -= queue_.back().payload->size();
    queue_.pop_back();
  }
  enqueue(ws::Opcode::close,
          std::make_shared<const std::string>(code == 0 ? std::string()
                                                        : ws::close_payload(code, reason)),
          {});
  // The closing handshake may take as long as the opening one (--handshake-timeout).
  close_timer_.expires_after(ctx_.config.handshake_timeout);
  close_timer_.async_wait([weak = this->weak_from_this()](beast::error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->close_socket();
  });
}

template <class Stream>
void WsSession<Stream>::finish_close() {
  // Our close frame is out. Once the peer has closed too (its close frame, or end of stream),
  // TCP can go without a reset; until then its bytes are read and dropped (close_timer_ bounds
  // the wait).
  if (peer_closed_) close_socket();
}

template <class Stream>
void WsSession<Stream>::close_socket() {
  if (socket_closed_) return;
  socket_closed_ = true;
  closing_ = true;
  close_timer_.cancel();
  ping_timer_.cancel();
  queue_.clear();
  queued_bytes_ = 0;
  beast::error_code ignored;
  socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
  leave_room();
}

template <class Stream>
void WsSession<Stream>::leave_room() {
  flush_deferred();
  if (!joined_) return;
  joined_ = false;
  ctx_.hub.leave(origin_.restaurant_id, this);
  room_.reset();
  slog::info("device disconnected",
             {{"restaurant", origin_.restaurant_id}, {"device", origin_.device_id}});
}

template class WsSession<PlainStream>;
template class WsSession<TlsStream>;

}  // namespace possync
