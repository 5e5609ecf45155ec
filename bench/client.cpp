// Client plumbing for possync-bench: thread pool, HTTP and WebSocket clients, message builders and
// scanners, server process control.
#include "bench.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace bench {

std::string iso_now() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

std::int64_t epoch_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- Pool -------------------------------------------------------------------------------------
Pool::Pool(unsigned n) {
  if (n == 0) n = 1;
  for (unsigned i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    w->guard.emplace(w->ioc.get_executor());
    Worker* raw = w.get();
    w->thread = std::thread([raw] { raw->ioc.run(); });
    workers_.push_back(std::move(w));
  }
}

void Pool::join() {
  for (auto& w : workers_) w->guard.reset();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

Pool::~Pool() {
  for (auto& w : workers_) w->ioc.stop();
  join();
}

Stats Pool::merged() const {
  Stats s;
  for (const auto& w : workers_) s.merge(w->stats);
  return s;
}

// ---- HTTP -------------------------------------------------------------------------------------
void HttpClient::close() {
  boost::system::error_code ec;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream_.close();
  connected_ = false;
  reused_ = false;
  buf_.clear();
}

awaitable<HttpResp> HttpClient::request(http::verb verb, std::string target, std::string body,
                                        std::chrono::milliseconds timeout) {
  HttpResp r;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!connected_) {
      stream_.expires_after(timeout);
      auto [ec] = co_await stream_.async_connect(ep_, tuple_awaitable);
      if (ec) {
        r.error = error_kind("http_connect", ec);
        stream_.close();
        co_return r;
      }
      boost::system::error_code ig;
      stream_.socket().set_option(tcp::no_delay(true), ig);
      connected_ = true;
    }
    bool was_reused = reused_;
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "possync-bench");
    req.keep_alive(true);
    if (!body.empty() || verb == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    stream_.expires_after(timeout);
    auto [wec, wn] = co_await http::async_write(stream_, req, tuple_awaitable);
    if (wec) {
      close();
      if (was_reused) continue;  // stale keep-alive connection: one retry on a fresh one
      r.error = error_kind("http_write", wec);
      co_return r;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    auto [rec, rn] = co_await http::async_read(stream_, buf_, parser, tuple_awaitable);
    if (rec) {
      close();
      if (was_reused && rec == http::error::end_of_stream) continue;
      r.error = error_kind("http_read", rec);
      co_return r;
    }
    stream_.expires_never();
    auto res = parser.release();
    r.status = static_cast<int>(res.result_int());
    r.body = std::move(res.body());
    if (!res.keep_alive())
      close();
    else
      reused_ = true;
    co_return r;
  }
  co_return r;
}

static awaitable<void> http_sync_co(Target t, http::verb verb, std::string target, std::string body,
                                    std::chrono::milliseconds timeout, HttpResp* out) {
  HttpClient c(co_await asio::this_coro::executor, t.endpoint, t.hostport());
  *out = co_await c.request(verb, std::move(target), std::move(body), timeout);
  c.close();
}

HttpResp http_sync(const Target& t, http::verb verb, const std::string& target,
                   const std::string& body, std::chrono::milliseconds timeout) {
  asio::io_context ioc{1};
  HttpResp out;
  asio::co_spawn(ioc, http_sync_co(t, verb, target, body, timeout, &out), asio::detached);
  ioc.run();
  return out;
}

// ---- WebSocket --------------------------------------------------------------------------------
static std::atomic<unsigned> g_source_count{1};

std::string error_kind(const std::string& prefix, const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) return prefix + ":timeout";
  if (ec == asio::error::connection_refused) return prefix + ":refused";
  if (ec == asio::error::connection_reset) return prefix + ":reset";
  if (ec == boost::system::errc::address_not_available) return prefix + ":address_not_available";
  if (ec == asio::error::eof || ec == http::error::end_of_stream) return prefix + ":eof";
  if (ec == asio::error::no_descriptors) return prefix + ":too_many_open_files";
  return prefix + ":" + ec.message();
}

static std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
      out += static_cast<char>(ch);
    else
      out += fmt::format("%{:02X}", ch);
  }
  return out;
}

std::string device_query(const Target& t, const std::string& rid, const std::string& did,
                         const std::string& uid, std::int64_t since) {
  std::string q = t.path + "?device_id=" + url_escape(did) + "&restaurant_id=" + url_escape(rid);
  if (!uid.empty()) q += "&user_id=" + url_escape(uid);
  if (since >= 0) q += "&since=" + std::to_string(since);
  return q;
}

awaitable<std::unique_ptr<Ws>> ws_open(const Target& t, std::string target_path_query,
                                       unsigned src_index, const Common& c, Stats& st) {
  auto ex = co_await asio::this_coro::executor;
  const bool loopback_v4 = t.endpoint.address().is_v4() && t.endpoint.address().is_loopback();
  if (g_source_count.load() < c.source_addrs) g_source_count.store(c.source_addrs);
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto ws = std::make_unique<Ws>(ex);
    auto& stream = beast::get_lowest_layer(*ws);
    auto& sock = stream.socket();
    unsigned n = g_source_count.load();
    if (loopback_v4 && (n > 1 || c.always_bind)) {
      boost::system::error_code ec;
      sock.open(tcp::v4(), ec);
      if (ec) {
        st.error(error_kind("socket", ec));
        co_return nullptr;
      }
      int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      asio::ip::address_v4 local(0x7f000001u + (src_index % n));
      sock.bind(tcp::endpoint(local, 0), ec);
      if (ec) {
        st.error(error_kind("bind", ec));
        co_return nullptr;
      }
    }
    stream.expires_after(std::chrono::seconds(15));
    auto [cec] = co_await stream.async_connect(t.endpoint, tuple_awaitable);
    if (cec == boost::system::errc::address_not_available && loopback_v4 && n < 254) {
      // Out of ephemeral ports on this source address: spread over one more 127.0.0.x.
      g_source_count.compare_exchange_strong(n, n + 1);
      continue;
    }
    if (cec) {
      st.error(error_kind("connect", cec));
      co_return nullptr;
    }
    boost::system::error_code ig;
    sock.set_option(tcp::no_delay(true), ig);
    ws->set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(http::field::user_agent, "possync-bench"); }));
    ws->read_message_max(64 * 1024 * 1024);
    websocket::response_type res;
    auto [hec] =
        co_await ws->async_handshake(res, t.hostport(), target_path_query, tuple_awaitable);
    if (hec) {
      if (hec == websocket::error::upgrade_declined)
        st.error("handshake:http_" + std::to_string(res.result_int()));
      else
        st.error(error_kind("handshake", hec));
      co_return nullptr;
    }
    stream.expires_never();
    ws->text(true);
    co_return ws;
  }
  st.error("connect:address_not_available");
  co_return nullptr;
}

awaitable<bool> ws_register(Ws& ws, const std::string& rid, const std::string& did,
                            const std::string& uid, std::int64_t* seq_out, Stats& st) {
  std::string msg = fmt::format(
      R"({{"type":"register","device_id":"{}","restaurant_id":"{}","user_id":"{}","timestamp":"{}"}})",
      did, rid, uid, iso_now());
  auto [wec, wn] = co_await ws.async_write(asio::buffer(msg), tuple_awaitable);
  if (wec) {
    st.error(error_kind("ws_write", wec));
    co_return false;
  }
  beast::flat_buffer buf;
  for (;;) {
    auto [rec, rn] = co_await ws.async_read(buf, tuple_awaitable);
    if (rec) {
      st.error(error_kind("register", rec));
      co_return false;
    }
    std::string_view m(static_cast<const char*>(buf.cdata().data()), buf.size());
    auto type = message_type(m);
    if (type == "registered") {
      if (seq_out) *seq_out = top_level_int(m, "seq");
      co_return true;
    }
    if (type == "error") note_control_message(m, type, false, st);
    buf.consume(buf.size());
  }
}

// ---- message helpers --------------------------------------------------------------------------
std::string_view message_type(std::string_view msg) {
  auto p = msg.find("\"type\":\"");
  if (p == std::string_view::npos) {
    p = msg.find("\"type\": \"");
    if (p == std::string_view::npos) return {};
    p += 9;
  } else {
    p += 8;
  }
  auto e = msg.find('"', p);
  if (e == std::string_view::npos) return {};
  return msg.substr(p, e - p);
}

static bool parse_u64(std::string_view s, std::size_t& p, std::uint64_t& v) {
  std::size_t start = p;
  v = 0;
  while (p < s.size() && s[p] >= '0' && s[p] <= '9')
    v = v * 10 + static_cast<std::uint64_t>(s[p++] - '0');
  return p > start;
}

bool parse_bench_key(std::string_view msg, BenchKey& out) {
  auto p = msg.find("\"bench\":\"");
  if (p == std::string_view::npos) return false;
  p += 9;
  std::uint64_t a = 0, b = 0, c = 0;
  if (!parse_u64(msg, p, a) || p >= msg.size() || msg[p++] != ':') return false;
  if (!parse_u64(msg, p, b) || p >= msg.size() || msg[p++] != ':') return false;
  if (!parse_u64(msg, p, c) || p >= msg.size() || msg[p] != '"') return false;
  out.sender = a;
  out.k = b;
  out.intended_ns = static_cast<std::int64_t>(c);
  return true;
}

std::int64_t top_level_int(std::string_view msg, std::string_view key) {
  std::string pat = "\"" + std::string(key) + "\":";
  auto p = msg.find(pat);
  if (p == std::string_view::npos) return -1;
  p += pat.size();
  while (p < msg.size() && msg[p] == ' ') ++p;
  std::uint64_t v = 0;
  if (!parse_u64(msg, p, v)) return -1;
  return static_cast<std::int64_t>(v);
}

void note_control_message(std::string_view msg, std::string_view type, bool legacy, Stats& st) {
  if (type == "error") {
    std::string code = "unknown";
    boost::system::error_code ec;
    auto v = json::parse(msg, ec);
    if (!ec && v.is_object()) {
      if (auto* c = v.as_object().if_contains("code"); c && c->is_string())
        code = std::string(c->as_string());
    }
    st.error("server_error:" + code);
  } else if (type == "ack" && !legacy) {
    if (msg.find("\"rejected\"") == std::string_view::npos) return;
    std::string code = "unknown";
    boost::system::error_code ec;
    auto v = json::parse(msg, ec);
    if (!ec && v.is_object()) {
      auto& o = v.as_object();
      if (auto* s = o.if_contains("status"); !(s && s->is_string() && s->as_string() == "rejected"))
        return;
      if (auto* e = o.if_contains("error"); e && e->is_object())
        if (auto* c = e->as_object().if_contains("code"); c && c->is_string())
          code = std::string(c->as_string());
    }
    st.error("ack_rejected:" + code);
  } else if (type == "reset_required" && !legacy) {
    st.error("reset_required");
  }
}

namespace {
struct TypeInfo {
  const char* type;
  const char* id_field;
  const char* data_type;
  const char* prefix;
  const char* action;
};
// user_update is left out: possync holds a typed user_update without data.id back for its twin
// (protocol.md section 5), which would add the twin window to every latency.
constexpr TypeInfo kTypes[] = {
    {"order_update", "order_id", "orders", "o", "updated"},
    {"menu_update", "item_id", "menu_items", "m", "availability_changed"},
    {"inventory_update", "item_id", "inventory", "i", "stock_changed"},
    {"table_update", "table_id", "tables", "t", "occupied"},
    {"printer_update", "printer_id", "printers", "p", "configured"},
};

std::string change_data(const BenchKey& key) {
  return fmt::format(
      R"({{"status":"open","total_amount":12.5,"items_count":{},"bench":"{}:{}:{}"}})",
      key.k % 7 + 1, key.sender, key.k, key.intended_ns);
}
}  // namespace

std::string typed_update(const std::string& rid, const std::string& did, const std::string& uid,
                         const BenchKey& key) {
  const auto& ti = kTypes[key.k % std::size(kTypes)];
  return fmt::format(
      R"({{"type":"{}","{}":"{}-{}-{}","action":"{}","data":{},"device_id":"{}","restaurant_id":"{}","user_id":"{}","timestamp":"{}"}})",
      ti.type, ti.id_field, ti.prefix, key.sender, key.k, ti.action, change_data(key), did, rid,
      uid, iso_now());
}

std::string data_change(const std::string& rid, const std::string& did, const std::string& uid,
                        const BenchKey& key) {
  const auto& ti = kTypes[key.k % std::size(kTypes)];
  std::string rec = fmt::format("{}-{}-{}", ti.prefix, key.sender, key.k);
  std::string data = change_data(key);
  data.insert(1, fmt::format(R"("id":"{}",)", rec));
  return fmt::format(
      R"({{"type":"data_change","data_type":"{}","action":"{}","data":{},"device_id":"{}","restaurant_id":"{}","user_id":"{}","timestamp":"{}","change_id":"{}_{}_{}"}})",
      ti.data_type, ti.action, data, did, rid, uid, iso_now(), epoch_ms_now(), did, rec);
}

// ---- process helpers --------------------------------------------------------------------------
long rss_kb(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::optional<CpuTime> process_cpu(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return std::nullopt;
  // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so count from the last ')'.
  // Then field 3 (state) is the first token, utime (field 14) the 12th, stime (15) the 13th.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream is(line.substr(close + 1));
  std::string token;
  unsigned long long utime = 0, stime = 0;
  for (int field = 3; field <= 15 && is >> token; ++field) {
    if (field == 14) utime = std::strtoull(token.c_str(), nullptr, 10);
    if (field == 15) stime = std::strtoull(token.c_str(), nullptr, 10);
  }
  if (!is) return std::nullopt;
  static const double tick_s = 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return CpuTime{static_cast<double>(utime) * tick_s, static_cast<double>(stime) * tick_s};
}

bool Cluster::pids_known() const {
  return !nodes.empty() &&
         std::all_of(nodes.begin(), nodes.end(), [](const Target& t) { return t.pid > 0; });
}

long Cluster::rss_kb() const {
  long sum = 0;
  for (const auto& t : nodes) {
    const long kb = bench::rss_kb(t.pid);
    if (kb < 0) return -1;
    sum += kb;
  }
  return nodes.empty() ? -1 : sum;
}

json::array Cluster::rss_kb_per_node() const {
  json::array a;
  for (const auto& t : nodes) a.push_back(bench::rss_kb(t.pid));
  return a;
}

void raise_nofile_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static std::uint16_t free_port() {
  asio::io_context ioc;
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

const std::string& ServerProcess::tmpdir() {
  if (tmpdir_.empty()) {
    char tmpl[] = "/tmp/possync-bench-XXXXXX";
    if (char* d = mkdtemp(tmpl)) tmpdir_ = d;
  }
  return tmpdir_;
}

std::string ServerProcess::log_tail() const {
  std::ifstream f(log_path_);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > 4000) s = s.substr(s.size() - 4000);
  return s;
}

namespace {
// A wait status as a shell reports it: the exit code, or 128 + the signal that killed the process.
int exit_code(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}
}  // namespace

bool ServerProcess::start(const std::string& bin, const std::string& store,
                          const std::string& extra_args, Target& t, double ready_timeout_s,
                          double* ready_seconds) {
  std::string store_spec = store;
  if (store == "sqlite") store_spec = "sqlite:" + tmpdir() + "/bench.db";
  log_path_ = tmpdir() + "/server.log";
  std::uint16_t port = free_port();
  // The bench speaks the legacy protocol, which has no tokens: the spawned server runs open. All
  // its load comes from one address, so the per-address and per-connection limits are off.
  std::vector<std::string> args = {
      bin,       "--host",   "127.0.0.1", "--port", std::to_string(port),
      "--store", store_spec, "--auth",    "off"};
  for (const char* off :
       {"--ip-connect-rate=0", "--ip-request-rate=0", "--max-connections-per-ip=0",
        "--max-connections-per-restaurant=0", "--device-message-rate=0", "--device-byte-rate=0"}) {
    args.emplace_back(off);
  }
  std::istringstream is(extra_args);
  for (std::string a; is >> a;) args.push_back(a);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string port_env = "PORT=" + std::to_string(port);
  int logfd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

  t.host = "127.0.0.1";
  t.port = port;
  t.endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);

  std::int64_t t0 = now_ns();
  pid_t pid = ::fork();
  if (pid < 0) {
    std::cerr << "possync-bench: fork failed\n";
    return false;
  }
  if (pid == 0) {
    if (logfd >= 0) {
      ::dup2(logfd, 1);
      ::dup2(logfd, 2);
    }
    ::putenv(port_env.data());
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  if (logfd >= 0) ::close(logfd);
  pid_ = pid;
  t.pid = pid;
  // Ready = first successful GET /api/health.
  const std::int64_t deadline = t0 + static_cast<std::int64_t>(ready_timeout_s * 1e9);
  while (now_ns() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = 0;
      std::cerr << "possync-bench: server exited during start-up (exit code " << exit_code(status)
                << ")\n"
                << log_tail();
      return false;
    }
    auto r = http_sync(t, http::verb::get, "/api/health", "", std::chrono::seconds(2));
    if (r.status == 200) {
      if (ready_seconds) *ready_seconds = static_cast<double>(now_ns() - t0) / 1e9;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  std::cerr << "possync-bench: server not ready after " << ready_timeout_s << " s\n" << log_tail();
  stop();
  return false;
}

int ServerProcess::stop() {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const std::int64_t deadline = now_ns() + 30'000'000'000;
  bool done = false;
  while (now_ns() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      done = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!done) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = 0;
  return exit_code(status);
}

ServerProcess::~ServerProcess() {
  stop();
  if (!tmpdir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(tmpdir_, ec);
  }
}

json::object latency_json(const Histogram& h) {
  auto ms = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e6; };
  json::object o;
  o["count"] = h.count();
  o["p50_ms"] = ms(h.percentile(50));
  o["p90_ms"] = ms(h.percentile(90));
  o["p99_ms"] = ms(h.percentile(99));
  o["p99_9_ms"] = ms(h.percentile(99.9));
  o["max_ms"] = ms(h.max());
  return o;
}

json::object errors_json(const std::map<std::string, std::uint64_t>& e) {
  json::object o;
  for (const auto& [k, v] : e) o[k] = v;
  return o;
}

}  // namespace bench
