// WsSession: one device's WebSocket connection.
//
// A session lives on one loop (transport/io_loops.h) and everything it does runs on that loop's
// thread: reading and decoding messages, submitting changes (through the loop's CommitIntake),
// the catch-up from the Store, and writing. Deliveries and acks reach it from the publishing
// thread as one task per loop and batch (sync/loops.h).
//
// The WebSocket framing is its own (transport/ws_frame.h) on the TCP (or TLS) stream, so that:
// - a message is read with one system call into a small buffer of the session's (1 KiB; longer
//   input continues in the loop's shared buffer), and every frame read is handled before the
//   next read;
// - everything queued during a turn of the loop leaves in one write (writev of the frames'
//   headers and shared payloads), at the end of the turn;
// - the closing handshake follows RFC 6455 section 7.1.1: the session sends its close frame, goes
//   on reading (and discarding) until the peer's close frame or end of stream, and only then
//   closes TCP, bounded by a grace period; so a close code (1009, 1008, 4029, ...) is never lost
//   to a reset caused by unread data.
//
// The send queue is bounded by --max-outbound-bytes; a device that falls further behind is
// disconnected (close 1008 "slow consumer") and catches up by seq on reconnect.
//
// A session is either live (receives each committed change of its restaurant once, in seq order,
// except its own device's) or catching up (pages through the Store from its `since`, then hands
// over to live without gap or duplicate; see Hub). It joins its restaurant's room before the
// 101 response is sent, so every change committed after the device sees the connection open
// reaches it.
#pragma once

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/container/devector.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "sync/catch_up.h"
#include "sync/hub.h"
#include "sync/twin_detector.h"
#include "transport/io_loops.h"
#include "transport/ordered_intake.h"
#include "transport/server_context.h"
#include "transport/streams.h"
#include "transport/ws_frame.h"

namespace possync {

// What the upgrade request said about a connection besides its origin.
struct ConnectionInfo {
  // Read-only (`?observe=1`, docs/protocol.md): receives every change of the restaurant, its own
  // device's too, and may make none (`forbidden`). An operator's console watching a restaurant.
  bool observer = false;
  std::string address;  // the client's address (X-Forwarded-For when trusted)
};

// `Stream` is PlainStream (ws://) or TlsStream (wss://); both are compiled in ws_session.cpp.
template <class Stream>
class WsSession final : public Subscriber,
                        public IoLoops::Writer,
                        public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  // `stream` runs on loop `loop`'s io_context; `keep_alive` holds what the stream needs for as
  // long as the session lives (its TLS context).
  WsSession(WsNextLayer<Stream>&& stream, std::shared_ptr<void> keep_alive, ServerContext& ctx,
            std::size_t loop, Origin origin, Principal caller, Admitted admitted,
            std::optional<std::uint64_t> since, ConnectionInfo info);
  ~WsSession() override;

  // Joins the room, answers the upgrade with `response` (the 101) and starts the session.
  // `early`: bytes the client sent after its upgrade request, read with it.
  void run(std::string response, std::string early);

  std::size_t loop() const override { return loop_; }
  void deliver(std::shared_ptr<const DeliveryBatch> batch) override;
  DeviceStatus status() const override;
  void disconnect(std::uint16_t code, std::string reason) override;
  // Queues a payload outside the seq-ordered stream (e.g. sync_update). Thread-safe.
  void notify(std::shared_ptr<const std::string> payload) override;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  // ---- reading ----
  // Reads what the socket holds, or waits until it is readable (or the server has room again:
  // sync/backpressure.h).
  void read_next();
  void on_received(boost::beast::error_code ec, std::size_t bytes);
  void on_tls_read(boost::beast::error_code ec, std::size_t bytes);
  // Handles every frame in `bytes`; false once the connection is finished.
  void consume(std::span<char> bytes);
  void on_message(std::string_view payload, bool text);
  void end_reading(boost::beast::error_code ec);
  void arm_ping_timer();

  // ---- messages ----
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
  // A change out of ordered_: to the pipeline, or rejected (its secrets could not be hashed).
  void go_on(OrderedIntake::Released&& released);

  void start_catchup(std::uint64_t since);
  void pump_catchup();

  // ---- writing ----
  // Queues a text message; `received_at` (a committed change's receipt time) feeds the fan-out
  // metric.
  void send(std::shared_ptr<const std::string> payload, TimePoint received_at = {});
  void send(std::string text) { send(std::make_shared<const std::string>(std::move(text))); }
  void send_error(const Error& error, std::string_view change_id = {});
  // An `ack` with status rejected: the change was not accepted and may be sent again.
  void send_rejected(std::string change_id, Error error);
  // Queues a frame (or, with `raw`, bytes as they are: the 101 response).
  void enqueue(ws::Opcode opcode, std::shared_ptr<const std::string> payload, TimePoint received_at,
               bool raw = false);
  // Writes at the end of the loop's turn.
  void schedule_write();
  void write_now() override;  // IoLoops::Writer: the end-of-turn write schedule_write() asked for
  void write_queued();
  // Takes `bytes` written off the front of the queue.
  void written(std::size_t bytes);
  void on_writable(boost::beast::error_code ec);
  // Closes with `code`: after sending what is queued, or dropping it (`discard_queue`).
  void close_with(std::uint16_t code, std::string reason, bool discard_queue);
  // The close frame is out (or the peer is gone): close TCP once the peer has closed too.
  void finish_close();
  void close_socket();
  void leave_room();

  // The TCP socket under the stream.
  boost::asio::ip::tcp::socket& socket();

  std::shared_ptr<void> keep_alive_;
  WsNextLayer<Stream> stream_;
  ServerContext& ctx_;
  const std::size_t loop_;
  ws::FrameReader reader_;
  std::array<char, 1024> first_bytes_;  // ws:// reads land here first (then the loop's buffer)
  std::unique_ptr<char[]> tls_in_;      // TLS only: what the TLS stream reads into
  Origin origin_;
  Principal caller_;
  Admitted admitted_;
  DeviceLimiter limiter_;
  std::uint32_t refused_in_a_row_ = 0;  // messages over the rate limit since the last admitted
  std::optional<std::uint64_t> initial_since_;
  const ConnectionInfo info_;

  // Guards origin_.user_id, caller_ (replaced by a token refresh) and last_seen_ms_ for status().
  mutable std::mutex status_mutex_;
  std::int64_t connected_at_ms_;
  std::int64_t last_seen_ms_;

  std::shared_ptr<Room> room_;
  CatchUp catch_up_;  // where this connection is in the log; catching up or live

  // The changes read, in order, while some wait for their secrets to be hashed.
  OrderedIntake ordered_;

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
    std::uint8_t header[ws::kMaxHeaderBytes];
    std::uint8_t header_size = 0;  // 0: raw bytes (the 101 response)
    ws::Opcode opcode = ws::Opcode::text;
    bool counted = false;  // a message for the messages-sent metric
    std::size_t size() const { return header_size + payload->size(); }
  };
  // devector: no allocation while empty (most connections are idle most of the time).
  boost::container::devector<Outgoing> queue_;
  std::size_t queued_bytes_ = 0;   // payload bytes queued (the --max-outbound-bytes bound)
  std::size_t front_written_ = 0;  // bytes of queue_.front() already written
  std::string tls_out_;            // TLS only: the frames of the write under way, contiguous
  bool write_scheduled_ = false;
  bool writing_ = false;  // waiting for the socket to take more (or a TLS write under way)
  bool reading_ended_ = false;
  bool paused_ = false;       // overloaded: frames read but not handled wait in reader_
  bool closing_ = false;      // a close frame is queued or sent; nothing else is sent any more
  bool close_sent_ = false;   // our close frame is written
  bool peer_closed_ = false;  // the peer's close frame (or end of stream) arrived
  bool socket_closed_ = false;
  bool joined_ = false;
  bool activity_ = true;  // bytes arrived since the last ping tick
  bool ping_outstanding_ = false;
  // Until closing: waits for the token's expiry. Once closing: bounds the close handshake.
  boost::asio::steady_timer close_timer_;
  // Sends a ping after half the idle timeout without traffic, closes after the other half.
  boost::asio::steady_timer ping_timer_;
};

}  // namespace possync
