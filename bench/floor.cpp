// possync-bench floor: what the fan-out scenario's traffic costs this machine when no sync server
// is in the way. The same devices, rate and frame sizes as `fanout`, but the "server" only
// forwards bytes: for each change a device sends, it writes one delivery to each other device of
// the restaurant and one ack back, over real loopback TCP connections, with plain epoll and
// non-blocking sockets (no WebSocket, JSON, store or fsync). What that takes in CPU and latency is
// a floor under any server measured by `fanout` on the same machine: the kernel's TCP work per
// message is in it, and it cannot be optimised away by the server.
#include "bench.h"

#include <fmt/format.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace bench {
namespace {

// A frame: u32 total length, u8 kind, u32 sender device, i64 intended send time (ns), padding.
enum Kind : std::uint8_t { kChange = 1, kDelivery = 2, kAck = 3 };
constexpr std::size_t kHeader = 4 + 1 + 4 + 8;

struct Frame {
  Kind kind;
  std::uint32_t sender;
  std::int64_t intended_ns;
};

void put_frame(std::string& out, std::uint32_t size, const Frame& f) {
  const std::size_t at = out.size();
  out.resize(at + size, 'x');
  char* p = out.data() + at;
  std::memcpy(p, &size, 4);
  p[4] = static_cast<char>(f.kind);
  std::memcpy(p + 5, &f.sender, 4);
  std::memcpy(p + 9, &f.intended_ns, 8);
}

void fail(const char* what) {
  throw std::runtime_error(fmt::format("{}: {}", what, strerror(errno)));
}

// One end of a connection: bytes received but not yet parsed, bytes not yet accepted by the kernel.
struct Conn {
  int fd = -1;
  std::string in;
  std::string out;
  bool want_out = false;  // EPOLLOUT registered
};

// Non-blocking writes with an outbox: what the kernel does not take now waits for EPOLLOUT.
void send_or_queue(int ep, std::uint32_t id, Conn& c, std::string_view bytes) {
  if (c.out.empty()) {
    const ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(bytes.size())) return;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) fail("send");
    bytes.remove_prefix(n > 0 ? static_cast<std::size_t>(n) : 0);
  }
  c.out.append(bytes);
  if (!c.want_out) {
    epoll_event ev{EPOLLIN | EPOLLOUT, {.u32 = id}};
    if (::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev) != 0) fail("epoll_ctl");
    c.want_out = true;
  }
}

void flush(int ep, std::uint32_t id, Conn& c) {
  while (!c.out.empty()) {
    const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0) fail("send");
    c.out.erase(0, static_cast<std::size_t>(n));
  }
  epoll_event ev{EPOLLIN, {.u32 = id}};
  if (::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev) != 0) fail("epoll_ctl");
  c.want_out = false;
}

// Reads what is there and calls on_frame for each complete frame.
template <typename F>
void read_frames(Conn& c, F&& on_frame) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      c.in.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) throw std::runtime_error("floor: a connection closed early");
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    fail("recv");
  }
  std::size_t at = 0;
  while (c.in.size() - at >= kHeader) {
    std::uint32_t size = 0;
    std::memcpy(&size, c.in.data() + at, 4);
    if (c.in.size() - at < size) break;
    Frame f{};
    f.kind = static_cast<Kind>(c.in[at + 4]);
    std::memcpy(&f.sender, c.in.data() + at + 5, 4);
    std::memcpy(&f.intended_ns, c.in.data() + at + 9, 8);
    on_frame(f);
    at += size;
  }
  c.in.erase(0, at);
}

// Handles what epoll reported: outboxes that can take more are flushed, frames read.
template <typename F>
void on_events(int ep, const epoll_event* events, int n, std::vector<Conn>& conns, F&& on_frame) {
  for (int i = 0; i < n; ++i) {
    const std::uint32_t id = events[i].data.u32;
    if (events[i].events & EPOLLOUT) flush(ep, id, conns[id]);
    if (events[i].events & EPOLLIN) read_frames(conns[id], on_frame);
  }
}

// The devices of restaurants thread, thread + threads, ...: a restaurant's devices share a thread.
std::vector<std::uint32_t> devices_of_thread(const FanoutCfg& t, unsigned thread,
                                             unsigned threads) {
  std::vector<std::uint32_t> ids;
  for (unsigned r = thread; r < t.restaurants; r += threads)
    for (unsigned j = 0; j < t.devices; ++j) ids.push_back(r * t.devices + j);
  return ids;
}

int make_epoll(const std::vector<Conn>& conns, const std::vector<std::uint32_t>& ids) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail("epoll_create1");
  for (std::uint32_t id : ids) {
    epoll_event ev{EPOLLIN, {.u32 = id}};
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, conns[id].fd, &ev) != 0) fail("epoll_ctl");
  }
  return ep;
}

// CPU time of this process (both sides: the devices and the forwarder), kernel time included.
struct CpuTimes {
  double user_s = 0, sys_s = 0;
  static CpuTimes now() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return {
        static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6,
        static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6};
  }
};

struct Shared {
  Shared() = default;
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  ~Shared() {
    for (auto* side : {&device_side, &server_side})
      for (auto& c : *side)
        if (c.fd >= 0) ::close(c.fd);
  }
  const FloorCfg* f = nullptr;
  std::vector<Conn> device_side;  // [device]: the device's end
  std::vector<Conn> server_side;  // [device]: the forwarder's end
  std::int64_t start_ns = 0, measure_start_ns = 0, send_end_ns = 0;
  unsigned device_threads = 1;
  std::atomic<unsigned> devices_done{0};
};

struct DeviceStats {
  Stats st;
  std::uint64_t sent = 0, expected = 0, delivered = 0, acks = 0;
};

// Waits for epoll events, at most `wait_ns` (the devices' next send or a poll interval).
int wait_events(int ep, epoll_event* events, int max, std::int64_t wait_ns) {
  const timespec timeout{static_cast<time_t>(wait_ns / 1'000'000'000),
                         static_cast<long>(wait_ns % 1'000'000'000)};
  const int n = ::epoll_pwait2(ep, events, max, &timeout, nullptr);
  if (n < 0 && errno != EINTR) fail("epoll_pwait2");
  return n < 0 ? 0 : n;
}

// The forwarder: one thread per group of restaurants, so a restaurant's connections share one.
void forwarder(Shared& sh, unsigned thread, unsigned threads) {
  const FloorCfg& f = *sh.f;
  const FanoutCfg& t = f.traffic;
  const int ep = make_epoll(sh.server_side, devices_of_thread(t, thread, threads));
  std::string frame;
  epoll_event events[256];
  while (sh.devices_done.load() < sh.device_threads) {
    const int n = wait_events(ep, events, 256, 10'000'000);
    on_events(ep, events, n, sh.server_side, [&](const Frame& in) {
      const std::uint32_t base = in.sender - in.sender % t.devices;
      frame.clear();
      put_frame(frame, f.out_bytes, {kDelivery, in.sender, in.intended_ns});
      for (std::uint32_t peer = base; peer < base + t.devices; ++peer)
        if (peer != in.sender) send_or_queue(ep, peer, sh.server_side[peer], frame);
      if (f.ack_bytes > 0) {
        frame.clear();
        put_frame(frame, f.ack_bytes, {kAck, in.sender, in.intended_ns});
        send_or_queue(ep, in.sender, sh.server_side[in.sender], frame);
      }
    });
  }
  ::close(ep);
}

// The devices of one group of restaurants: send changes on an open-loop schedule, read the rest.
void devices(Shared& sh, unsigned thread, unsigned threads, DeviceStats& out) {
  const FloorCfg& f = *sh.f;
  const FanoutCfg& t = f.traffic;
  const std::vector<std::uint32_t> mine = devices_of_thread(t, thread, threads);
  const int ep = make_epoll(sh.device_side, mine);
  const double total = static_cast<double>(t.restaurants) * t.devices;
  const double interval_ns = 1e9 / (t.rate * static_cast<double>(mine.size()) / total);
  std::string frame;
  epoll_event events[256];
  std::uint64_t k = 0;  // changes of this thread so far; device mine[k % size] sends the k-th
  const std::int64_t drain_end = sh.send_end_ns + static_cast<std::int64_t>(t.drain * 1e9);
  for (;;) {
    std::int64_t now = now_ns();
    std::int64_t due =
        sh.start_ns + static_cast<std::int64_t>(static_cast<double>(k) * interval_ns);
    while (due <= now && due < sh.send_end_ns) {
      const std::uint32_t id = mine[k % mine.size()];
      frame.clear();
      put_frame(frame, f.in_bytes, {kChange, id, due});
      send_or_queue(ep, id, sh.device_side[id], frame);
      ++out.sent;
      out.expected += t.devices - 1;
      if (due >= sh.measure_start_ns) ++out.st.sent_in_window;
      ++k;
      due = sh.start_ns + static_cast<std::int64_t>(static_cast<double>(k) * interval_ns);
    }
    const bool sending = due < sh.send_end_ns;
    const bool all_in = out.delivered >= out.expected && (f.ack_bytes == 0 || out.acks >= out.sent);
    if (!sending && (all_in || now >= drain_end)) break;
    const int n = wait_events(ep, events, 256, sending ? due - now : 10'000'000);
    now = now_ns();
    on_events(ep, events, n, sh.device_side, [&](const Frame& in) {
      if (in.kind == kAck) {
        ++out.acks;
        return;
      }
      ++out.delivered;
      if (in.intended_ns >= sh.measure_start_ns && in.intended_ns < sh.send_end_ns)
        out.st.latency.record(now - in.intended_ns);
      if (now >= sh.measure_start_ns && now < sh.send_end_ns) ++out.st.deliveries_in_window;
    });
  }
  ::close(ep);
  sh.devices_done.fetch_add(1);
}

void set_nodelay(int fd) {
  const int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) fail("TCP_NODELAY");
}

// Connects every device to a listener on 127.0.0.1 (blocking; the forwarder is not running yet).
void connect_all(Shared& sh, std::size_t n) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::listen(listener, 1024) != 0) {
    ::close(listener);
    fail("listen on 127.0.0.1");
  }
  sh.device_side.resize(n);
  sh.server_side.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket");
    sh.device_side[i].fd = fd;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fail("connect");
    const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (accepted < 0) fail("accept");
    sh.server_side[i].fd = accepted;
    set_nodelay(fd);
    set_nodelay(accepted);
  }
  ::close(listener);
}

}  // namespace

json::object run_floor(const FloorCfg& f) {
  const FanoutCfg& t = f.traffic;
  if (t.devices < 2 || t.restaurants == 0 || t.rate <= 0 || t.duration <= 0)
    throw std::invalid_argument(
        "floor needs --restaurants >= 1, --devices >= 2, a rate and a duration");
  if (f.in_bytes < kHeader || f.out_bytes < kHeader || (f.ack_bytes != 0 && f.ack_bytes < kHeader))
    throw std::invalid_argument(fmt::format("floor: frames are at least {} bytes", kHeader));
  Shared sh;
  sh.f = &f;
  json::object out;
  connect_all(sh, static_cast<std::size_t>(t.restaurants) * t.devices);
  const unsigned device_threads = std::clamp(f.device_threads, 1u, t.restaurants);
  const unsigned forwarder_threads = std::clamp(f.forwarder_threads, 1u, t.restaurants);
  sh.device_threads = device_threads;
  sh.start_ns = now_ns() + 50'000'000;
  sh.measure_start_ns = sh.start_ns + static_cast<std::int64_t>(t.warmup * 1e9);
  sh.send_end_ns = sh.measure_start_ns + static_cast<std::int64_t>(t.duration * 1e9);
  std::vector<DeviceStats> stats(device_threads);
  std::vector<std::thread> threads;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto guarded = [&](auto body) {
    return [&, body] {
      try {
        body();
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        sh.devices_done.store(device_threads);  // let the forwarders stop
      }
    };
  };
  for (unsigned i = 0; i < forwarder_threads; ++i)
    threads.emplace_back(
        guarded([&sh, i, forwarder_threads] { forwarder(sh, i, forwarder_threads); }));
  for (unsigned i = 0; i < device_threads; ++i)
    threads.emplace_back(
        guarded([&sh, &stats, i, device_threads] { devices(sh, i, device_threads, stats[i]); }));
  while (now_ns() < sh.measure_start_ns) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const CpuTimes before = CpuTimes::now();
  while (now_ns() < sh.send_end_ns) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const CpuTimes after = CpuTimes::now();
  for (auto& thread : threads) thread.join();
  if (error) std::rethrow_exception(error);

  DeviceStats all;
  for (const auto& s : stats) {
    all.st.merge(s.st);
    all.sent += s.sent;
    all.expected += s.expected;
    all.delivered += s.delivered;
    all.acks += s.acks;
  }
  const double window = t.duration;
  const double user = after.user_s - before.user_s;
  const double sys = after.sys_s - before.sys_s;
  const double messages_per_s =
      static_cast<double>(all.st.sent_in_window) * (1.0 + (f.ack_bytes ? 1 : 0)) / window +
      static_cast<double>(all.st.deliveries_in_window) / window;
  out["sent"] = all.sent;
  out["send_rate"] = static_cast<double>(all.st.sent_in_window) / window;
  out["expected_deliveries"] = all.expected;
  out["delivered"] = all.delivered;
  out["delivery_rate"] = static_cast<double>(all.st.deliveries_in_window) / window;
  out["in_flight_at_end"] = all.expected - all.delivered;  // the drain ended first: overload
  out["acks"] = all.acks;
  out["messages_per_s"] = messages_per_s;  // changes in, deliveries and acks out
  out["latency"] = latency_json(all.st.latency);
  out["cpu_cores"] = (user + sys) / window;
  out["cpu_user_cores"] = user / window;
  out["cpu_sys_cores"] = sys / window;
  out["cpu_us_per_message"] = messages_per_s > 0 ? (user + sys) / window / messages_per_s * 1e6 : 0;
  return out;
}

}  // namespace bench
