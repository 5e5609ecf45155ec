// The two byte streams a connection can run on: plain TCP, or TLS over TCP (--tls-cert).
#pragma once

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <type_traits>

namespace possync {

using PlainStream = boost::beast::tcp_stream;
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

template <class Stream>
inline constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// What a WebSocket session runs on: for ws:// the TCP socket itself (the WebSocket stream's own
// timer bounds the handshake and idle time, so tcp_stream's timers would only cost memory), for
// wss:// the TLS stream.
template <class Stream>
using WsNextLayer = std::conditional_t<kIsTls<Stream>, Stream, boost::asio::ip::tcp::socket>;

}  // namespace possync
