// possync-bench internals shared by the scenario code (bench/main.cpp) and the client plumbing
// (bench/client.cpp). Everything here speaks the legacy protocol (docs: bench/README.md).
#pragma once

#include "histogram.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using asio::awaitable;
inline constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
using Ws = websocket::stream<beast::tcp_stream>;

// ---- time -------------------------------------------------------------------------------------
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
std::string iso_now();        // ISO-8601 UTC with milliseconds
std::int64_t epoch_ms_now();  // for change ids

// ---- options common to every scenario ---------------------------------------------------------
struct Common {
  std::string url = "ws://127.0.0.1:3000";
  std::string server_bin;
  std::string server_args = "--log-level warn";
  std::string store = "memory";
  unsigned nodes = 1;            // spawned servers sharing the store (PostgreSQL only when > 1)
  std::vector<int> server_pids;  // of the servers given by --url, in the same order
  unsigned threads = 2;
  unsigned concurrency = 256;  // connection attempts in flight
  unsigned source_addrs = 1;   // 127.0.0.1 .. 127.0.0.N as local addresses (grows on EADDRNOTAVAIL)
  bool always_bind = false;
  bool json = false;
  bool legacy = false;  // no possync extensions (acks are ignored, `since` scenarios refuse to run)
  double timeout = 60;  // seconds allowed for any setup / drain phase
  std::string run_id;   // prefix of restaurant ids, unique per run
};

// Where the server is: host/port/path of the WebSocket URL, plus its pid when known.
struct Target {
  std::string host = "127.0.0.1";
  std::uint16_t port = 3000;
  std::string path = "/";
  tcp::endpoint endpoint;
  int pid = 0;
  std::string hostport() const { return host + ":" + std::to_string(port); }
};

// The servers measured: one node, or several possync nodes sharing one PostgreSQL. Device,
// client or writer number i talks to node i % N, so with N > 1 most deliveries cross nodes.
struct Cluster {
  std::vector<Target> nodes;
  const Target& node_for(std::uint64_t i) const { return nodes[i % nodes.size()]; }
  bool pids_known() const;
  long rss_kb() const;                  // sum of the nodes' VmRSS; -1 if any is unknown
  json::array rss_kb_per_node() const;  // each node's VmRSS (-1 where unknown)
};

// CPU time a process has used so far, every thread of it: utime and stime from /proc/PID/stat
// (clock ticks of sysconf(_SC_CLK_TCK), usually 10 ms), in seconds.
struct CpuTime {
  double user_s = 0, sys_s = 0;
  double total_s() const { return user_s + sys_s; }
};
std::optional<CpuTime> process_cpu(int pid);  // nullopt when the pid is unknown or gone

// ---- per-thread statistics --------------------------------------------------------------------
struct Stats {
  Histogram latency;
  Histogram aux;  // scenario-specific second histogram (connect time, request latency, ...)
  std::map<std::string, std::uint64_t> errors;
  std::uint64_t deliveries_in_window = 0;
  std::uint64_t sent_in_window = 0;
  void error(const std::string& kind) { ++errors[kind]; }
  void merge(const Stats& o) {
    latency.merge(o.latency);
    aux.merge(o.aux);
    for (const auto& [k, v] : o.errors) errors[k] += v;
    deliveries_in_window += o.deliveries_in_window;
    sent_in_window += o.sent_in_window;
  }
};

// A few io_context threads; each connection lives on one of them, so its state and the thread's
// Stats are touched by that thread only.
class Pool {
 public:
  struct Worker {
    asio::io_context ioc{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::thread thread;
    Stats stats;
  };
  explicit Pool(unsigned n);
  ~Pool();
  unsigned size() const { return static_cast<unsigned>(workers_.size()); }
  Worker& at(std::size_t i) { return *workers_[i % workers_.size()]; }
  void join();  // lets the io_contexts run out of work, then joins
  Stats merged() const;

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
};

// ---- HTTP ------------------------------------------------------------------------------------
struct HttpResp {
  int status = 0;  // 0: transport error, see error
  std::string body;
  std::string error;
};

class HttpClient {  // one keep-alive connection
 public:
  HttpClient(asio::any_io_executor ex, tcp::endpoint ep, std::string host)
      : stream_(ex), ep_(ep), host_(std::move(host)) {}
  awaitable<HttpResp> request(http::verb verb, std::string target, std::string body,
                              std::chrono::milliseconds timeout = std::chrono::seconds(30));
  void close();

 private:
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  tcp::endpoint ep_;
  std::string host_;
  bool connected_ = false;
  bool reused_ = false;
};

// Blocking helper for setup work (runs its own io_context on the calling thread).
HttpResp http_sync(const Target& t, http::verb verb, const std::string& target,
                   const std::string& body,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

// ---- WebSocket -------------------------------------------------------------------------------
// Opens a WebSocket to `target_path_query` (TCP connect, optional source-address bind, upgrade).
// Returns nullptr after recording an error kind in `st`.
awaitable<std::unique_ptr<Ws>> ws_open(const Target& t, std::string target_path_query,
                                       unsigned src_index, const Common& c, Stats& st);

// Sends `register` and reads until `registered` (other messages are skipped). seq from the reply
// when present (possync), else -1.
awaitable<bool> ws_register(Ws& ws, const std::string& rid, const std::string& did,
                            const std::string& uid, std::int64_t* seq_out, Stats& st);

std::string device_query(const Target& t, const std::string& rid, const std::string& did,
                         const std::string& uid, std::int64_t since = -1);

// ---- message helpers --------------------------------------------------------------------------
// A change carries `"bench":"<sender>:<k>:<intended ns>"` inside `data`.
struct BenchKey {
  std::uint64_t sender = 0;
  std::uint64_t k = 0;
  std::int64_t intended_ns = 0;
};
bool parse_bench_key(std::string_view msg, BenchKey& out);
std::string_view message_type(std::string_view msg);
std::int64_t top_level_int(std::string_view msg,
                           std::string_view key);  // first "key":N, -1 if absent
// Counts protocol-level problems in a non-change message (error, rejected ack, reset_required).
void note_control_message(std::string_view msg, std::string_view type, bool legacy, Stats& st);

// A typed update (rotating over order/menu/inventory/table/printer) and, when `twin`, its
// data_change.
std::string typed_update(const std::string& rid, const std::string& did, const std::string& uid,
                         const BenchKey& key);
std::string data_change(const std::string& rid, const std::string& did, const std::string& uid,
                        const BenchKey& key);

std::string error_kind(const std::string& prefix, const boost::system::error_code& ec);

// ---- process helpers --------------------------------------------------------------------------
long rss_kb(int pid);  // VmRSS from /proc/PID/status, -1 if unknown
void raise_nofile_limit();

class ServerProcess {  // spawn mode
 public:
  ~ServerProcess();
  // store: "memory", "sqlite" (temporary file), "sqlite:PATH" or a postgres:// / postgresql:// URL
  // (passed as it is, so several servers can share it). Returns false (message on stderr) on
  // failure.
  bool start(const std::string& bin, const std::string& store, const std::string& extra_args,
             Target& t, double ready_timeout_s, double* ready_seconds = nullptr);
  int stop();  // SIGTERM, wait; returns the exit status (128+signal if killed)
  int pid() const { return pid_; }
  const std::string& tmpdir();
  std::string log_tail() const;

 private:
  int pid_ = 0;
  std::string tmpdir_;
  std::string log_path_;
};

// ---- fan-out traffic ---------------------------------------------------------------------------
// R restaurants x D devices sending changes at a fixed total rate (fanout, ramp, floor).
struct FanoutCfg {
  unsigned restaurants = 10;
  unsigned devices = 5;
  double rate = 1000;  // changes/s, all devices together
  double duration = 10;
  double warmup = 1;
  double drain = 10;
  bool twins = false;
  double sample_rss_every = 0;  // seconds; > 0: a time series of the server's RSS
};

// ---- floor (floor.cpp) --------------------------------------------------------------------------
// The fan-out's traffic with a forwarder that only copies bytes in place of a server: the floor
// under `fanout` on this machine. Frame sizes default to what possync sends and receives for the
// bench's typed updates (change in, delivery out, ack back; 0 = no acks, like a legacy server).
struct FloorCfg {
  FanoutCfg traffic{200, 5, 2000, 5, 1, 5};
  unsigned forwarder_threads = 2;
  unsigned device_threads = 2;  // --threads
  std::uint32_t in_bytes = 280, out_bytes = 356, ack_bytes = 92;
};
json::object run_floor(const FloorCfg& f);  // throws on a setup error or bad configuration

// JSON helpers for results
json::object latency_json(const Histogram& h);
json::object errors_json(const std::map<std::string, std::uint64_t>& e);

}  // namespace bench
