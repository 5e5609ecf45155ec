// WsSession: one device's WebSocket connection.
//
// Everything a session does runs on its strand: reading and decoding messages, submitting changes
// to the commit pipeline, the catch-up from the Store, and writing. It has one outstanding write
// and a queue of shared immutable payloads bounded by --max-outbound-bytes; a device that falls
// further behind is disconnected (close 1008 "slow consumer") and catches up by seq on reconnect.
//
// A session is either live (receives each committed change of its restaurant once, in seq order,
// except its own device's) or catching up (pages through the Store from its `since`, then hands
// over to live without gap or duplicate; see Hub).
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/container/devector.hpp>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "sync/hub.h"
#include "sync/twin_detector.h"
#include "transport/server_context.h"
#include "transport/streams.h"

namespace possync {

// `Stream` is PlainStream (ws://) or TlsStream (wss://); both are compiled in ws_session.cpp.
template <class Stream>
class WsSession final : public Subscriber, public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  // `keep_alive` holds what the stream needs for as long as the session lives (its TLS context).
  WsSession(Stream&& stream, std::shared_ptr<void> keep_alive, ServerContext& ctx, Origin origin,
            Principal caller, Admitted admitted, std::optional<std::uint64_t> since);
  ~WsSession() override;

  // Completes the WebSocket handshake for `req` (answering with `subprotocol` if not empty) and
  // starts the session.
  void run(Request req, std::string subprotocol);

  void deliver(std::shared_ptr<const DeliveryBatch> batch) override;
  DeviceStatus status() const override;
  void disconnect(std::uint16_t code, std::string reason) override;
  // Queues a payload outside the seq-ordered stream (e.g. sync_update). Thread-safe.
  void notify(std::shared_ptr<const std::string> payload) override;

 private:
  enum class Mode { live, catching_up };

  void on_accept(boost::beast::error_code ec);
  // Waits for the next message with a one-byte buffer of the session's own: an idle connection
  // holds no read buffer. Once a message has begun, on_message_begun reads the rest into buffer_.
  void do_read();
  void on_message_begun(boost::beast::error_code ec, std::size_t bytes);
  // Reads the next message, or waits while the server is overloaded (sync/backpressure.h).
  void read_next();
  void on_read(boost::beast::error_code ec, std::size_t bytes);
  // `within_budget`: the message fit the connection's rate limit (see refuse_over_budget).
  void handle_text(std::string_view text, bool within_budget);
  // Answers a message over the rate limit with `rate_limited`; closes (4029) after many in a row.
  void refuse_over_budget(std::string_view change_id);
  // Whether `message` is the data_change twin the session is waiting for (deferred or candidate).
  bool is_awaited_twin(const ClientMessage& message) const;
  void handle_change(ChangeMsg msg);
  void handle_auth(const AuthMsg& msg);
  // Closes the connection when the token expires (close_timer_ waits for it until closing).
  void arm_token_expiry();
  void flush_deferred();
  // Submits to the commit pipeline in arrival order; a change with secrets to hash waits for its
  // hash (on the SecretHasher) and holds back the changes after it.
  void submit(ChangeRequest request);
  void commit(ChangeRequest request);
  void release_held();

  void start_catchup(std::uint64_t since);
  void pump_catchup();

  using TimePoint = std::chrono::steady_clock::time_point;
  // Queues a payload; `received_at` (a committed change's receipt time) feeds the fan-out metric.
  void send(std::shared_ptr<const std::string> payload, TimePoint received_at = {});
  void send(std::string text) { send(std::make_shared<const std::string>(std::move(text))); }
  void send_error(const Error& error, std::string_view change_id = {});
  // An `ack` with status rejected: the change was not accepted and may be sent again.
  void send_rejected(std::string change_id, Error error);
  void do_write();
  void on_write(boost::beast::error_code ec, std::size_t bytes);
  // Closes with `code`: after sending what is queued, or dropping it (`discard_queue`).
  void close_with(boost::beast::websocket::close_code code, std::string reason, bool discard_queue);
  void set_corked(bool corked);
  void leave_room();

  // The TCP socket under the WebSocket (and TLS) stream.
  boost::asio::ip::tcp::socket& socket();

  std::shared_ptr<void> keep_alive_;
  // Without permessage-deflate support (never offered: it is off by default), which the stream
  // would otherwise carry per connection.
  boost::beast::websocket::stream<WsNextLayer<Stream>, false> ws_;
  // The message being read; empty (no allocation) between messages.
  boost::beast::flat_buffer buffer_;
  char first_byte_ = 0;  // where do_read receives the first byte of a message
  ServerContext& ctx_;
  Origin origin_;
  Principal caller_;
  Admitted admitted_;
  DeviceLimiter limiter_;
  std::uint32_t refused_in_a_row_ = 0;  // messages over the rate limit since the last admitted
  std::optional<std::uint64_t> initial_since_;

  mutable std::mutex status_mutex_;  // guards origin_.user_id and last_seen_ms_ for status()
  std::int64_t connected_at_ms_;
  std::int64_t last_seen_ms_;

  std::shared_ptr<Room> room_;
  Mode mode_ = Mode::live;
  std::uint64_t last_sent_ = 0;                // highest seq sent on this connection
  std::uint64_t first_live_ = 0;               // first seq delivered live (0: none yet)
  std::uint64_t cursor_ = 0;                   // catch-up position in the log
  std::uint64_t skip_from_ = 0, skip_to_ = 0;  // [from, to]: already delivered live
  bool catchup_started_ = false;

  struct Held {
    std::uint64_t ticket = 0;
    ChangeRequest request;
    bool ready = false;
    std::optional<Error> error;
  };
  // Changes waiting behind a hash, in arrival order (allocated only while there are some).
  std::unique_ptr<std::deque<Held>> held_;
  std::uint64_t next_ticket_ = 0;

  TwinDetector twins_;
  // A typed user_update waiting for its twin, and the timer that ends the wait (allocated only
  // while there is one: most connections never defer anything).
  struct Deferred {
    Deferred(ChangeMsg m, const boost::asio::any_io_executor& executor)
        : msg(std::move(m)), timer(executor) {}
    ChangeMsg msg;
    boost::asio::steady_timer timer;
  };
  std::unique_ptr<Deferred> deferred_;

  struct Outgoing {
    std::shared_ptr<const std::string> payload;
    TimePoint received_at;
  };
  // devector: no allocation while empty (most connections are idle most of the time).
  boost::container::devector<Outgoing> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool corked_ = false;  // TCP_CORK set while a burst of messages is being written
  bool closing_ = false;
  bool joined_ = false;
  // Until closing: waits for the token's expiry. Once closing: bounds the close handshake.
  boost::asio::steady_timer close_timer_;
  boost::beast::websocket::close_reason close_reason_;
};

}  // namespace possync
