// possync-bench: load generator for possync and any server that speaks the legacy AI POS sync
// protocol. Scenarios: fanout, ramp, connections, catchup, rest, coldstart, and floor (the
// machine's own floor under fanout, floor.cpp) (bench/README.md).
#include "bench.h"

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <random>

#include "common/json_text.h"

namespace bench {
namespace {

// ================================================================================================
// WebSocket runs (fanout, connections, catchup)
// ================================================================================================
enum class Mode { live, catchup_initial, catchup_reconnect };

struct Device {
  unsigned worker = 0;
  const Target* node = nullptr;  // the server it talks to (Cluster::node_for(global))
  unsigned local = 0;            // index within its restaurant
  std::uint64_t global = 0;      // index over the run
  std::string rid, did, uid;
  std::unique_ptr<Ws> ws;
  std::atomic<bool> alive{false};
  bool connected = false;
  std::atomic<std::uint64_t> sent{0};
  std::int64_t phase_ns = 0;
  std::vector<std::vector<std::uint8_t>>
      got;                  // [sender local index][k] deliveries (reader thread only)
  std::int64_t since = -1;  // seq from `registered`, used to reconnect
  std::int64_t last_seq = -1;
  std::int64_t caught_up_seq = -1;
  std::uint64_t gaps = 0;
};
using DevicePtr = std::shared_ptr<Device>;

struct Run {
  Run(const Common& common, const Cluster& cluster, Pool& workers)
      : c(&common), cl(&cluster), pool(&workers) {}
  const Common* c;
  const Cluster* cl;
  Pool* pool;
  Mode mode = Mode::live;
  unsigned per_restaurant = 1;
  bool twins = false;
  std::atomic<bool> stopping{false};
  std::atomic<unsigned> ready{0}, failed{0}, senders_done{0}, caught_up{0}, slots_done{0};
  std::atomic<std::uint64_t> delivered{0}, duplicated{0};
  std::int64_t start_ns = 0, measure_start_ns = 0, send_end_ns = 0, phase_start_ns = 0;
  double interval_ns = 0;
  std::vector<DevicePtr> devs;
};

void make_devices(Run& run, unsigned restaurants, unsigned per_restaurant, const std::string& tag) {
  run.per_restaurant = per_restaurant;
  for (unsigned r = 0; r < restaurants; ++r) {
    for (unsigned j = 0; j < per_restaurant; ++j) {
      auto d = std::make_shared<Device>();
      d->global = run.devs.size();
      d->local = j;
      d->worker = static_cast<unsigned>(d->global % run.pool->size());
      d->node = &run.cl->node_for(d->global);
      d->rid = fmt::format("{}-{}-r{}", run.c->run_id, tag, r);
      d->did = fmt::format("dev{}", j);
      d->uid = fmt::format("u{}", j);
      d->got.resize(per_restaurant);
      run.devs.push_back(std::move(d));
    }
  }
}

void on_change(Run& run, Device& d, const BenchKey& key, std::int64_t now, Stats& st) {
  if (key.sender == d.global) {
    st.error("echo_to_sender");
    return;
  }
  std::uint64_t base = d.global - d.local;
  if (key.sender < base || key.sender >= base + run.per_restaurant) {
    st.error("change_from_other_restaurant");
    return;
  }
  auto& v = d.got[key.sender - base];
  if (v.size() <= key.k) v.resize(key.k + 64);
  if (v[key.k] == 0) {
    run.delivered.fetch_add(1, std::memory_order_relaxed);
    if (run.mode == Mode::live && key.intended_ns >= run.measure_start_ns &&
        key.intended_ns < run.send_end_ns)
      st.latency.record(now - key.intended_ns);
    if (now >= run.measure_start_ns && now < run.send_end_ns) ++st.deliveries_in_window;
  } else {
    run.duplicated.fetch_add(1, std::memory_order_relaxed);
  }
  if (v[key.k] < 255) ++v[key.k];
}

std::string close_kind(Ws& ws, const boost::system::error_code& ec) {
  if (ec == websocket::error::closed)
    return fmt::format("ws_closed:{}", static_cast<unsigned>(ws.reason().code));
  return error_kind("ws_read", ec);
}

awaitable<void> reader(Run* run, DevicePtr d) {
  auto& st = run->pool->at(d->worker).stats;
  beast::flat_buffer buf;
  for (;;) {
    auto [ec, n] = co_await d->ws->async_read(buf, tuple_awaitable);
    if (ec) {
      d->alive = false;
      if (!run->stopping) st.error(close_kind(*d->ws, ec));
      co_return;
    }
    std::int64_t now = now_ns();
    std::string_view m(static_cast<const char*>(buf.cdata().data()), buf.size());
    BenchKey key;
    auto type = message_type(m);
    if (parse_bench_key(m, key) && type != "ack" && type != "error") {
      if (run->mode == Mode::catchup_reconnect && !run->c->legacy) {
        std::int64_t seq = top_level_int(m, "seq");
        if (seq >= 0) {
          if (d->last_seq >= 0 && seq != d->last_seq + 1) {
            ++d->gaps;
            st.error("seq_gap");
          }
          d->last_seq = seq;
        }
      }
      on_change(*run, *d, key, now, st);
    } else if (type == "caught_up" && run->mode == Mode::catchup_reconnect) {
      if (d->caught_up_seq < 0) {
        d->caught_up_seq = std::max<std::int64_t>(top_level_int(m, "seq"), 0);
        st.latency.record(now - run->phase_start_ns);
        run->caught_up.fetch_add(1);
      }
    } else {
      note_control_message(m, type, run->c->legacy, st);
    }
    buf.consume(buf.size());
  }
}

awaitable<void> connect_device(Run* run, DevicePtr d) {
  auto& st = run->pool->at(d->worker).stats;
  std::int64_t t0 = now_ns();
  std::int64_t since = run->mode == Mode::catchup_reconnect ? d->since : -1;
  auto ws = co_await ws_open(*d->node, device_query(*d->node, d->rid, d->did, d->uid, since),
                             static_cast<unsigned>(d->global), *run->c, st);
  if (!ws) {
    run->failed.fetch_add(1);
    co_return;
  }
  d->ws = std::move(ws);
  auto ex = co_await asio::this_coro::executor;
  if (run->mode == Mode::catchup_reconnect) {
    // The catch-up starts on connect; `registered` may arrive in the middle of it.
    d->alive = true;
    d->connected = true;
    asio::co_spawn(ex, reader(run, d), asio::detached);
    std::string reg = fmt::format(
        R"({{"type":"register","device_id":"{}","restaurant_id":"{}","user_id":"{}","timestamp":"{}"}})",
        d->did, d->rid, d->uid, iso_now());
    auto [wec, wn] = co_await d->ws->async_write(asio::buffer(reg), tuple_awaitable);
    if (wec) st.error(error_kind("ws_write", wec));
    run->ready.fetch_add(1);
    co_return;
  }
  std::int64_t seq = -1;
  if (!co_await ws_register(*d->ws, d->rid, d->did, d->uid, &seq, st)) {
    run->failed.fetch_add(1);
    co_return;
  }
  st.aux.record(now_ns() - t0);
  d->since = seq;
  d->connected = true;
  if (run->mode == Mode::catchup_initial) {
    auto [cec] = co_await d->ws->async_close(websocket::close_code::normal, tuple_awaitable);
    (void)cec;
    d->ws.reset();
  } else {
    d->alive = true;
    asio::co_spawn(ex, reader(run, d), asio::detached);
  }
  run->ready.fetch_add(1);
}

awaitable<void> connect_slot(Run* run, std::vector<DevicePtr>* list, std::size_t* next) {
  while (*next < list->size()) {
    DevicePtr d = (*list)[(*next)++];
    co_await connect_device(run, std::move(d));
  }
  run->slots_done.fetch_add(1);
}

// Connects every device (at most c.concurrency attempts in flight) and waits. Returns seconds
// taken.
double connect_all(Run& run, std::vector<DevicePtr> devs) {
  run.ready = 0;
  run.failed = 0;
  run.slots_done = 0;
  unsigned spawned = 0;
  const unsigned nw = run.pool->size();
  std::vector<std::vector<DevicePtr>> lists(nw);
  std::vector<std::size_t> next(nw, 0);
  for (auto& d : devs) lists[d->worker].push_back(d);
  unsigned slots = std::max(1u, run.c->concurrency / nw);
  std::int64_t t0 = now_ns();
  for (unsigned w = 0; w < nw; ++w)
    for (unsigned s = 0; s < slots && s < lists[w].size(); ++s) {
      asio::co_spawn(run.pool->at(w).ioc, connect_slot(&run, &lists[w], &next[w]), asio::detached);
      ++spawned;
    }
  const std::int64_t deadline = t0 + static_cast<std::int64_t>(run.c->timeout * 1e9);
  while (run.slots_done < spawned && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double secs = static_cast<double>(now_ns() - t0) / 1e9;
  if (run.slots_done < spawned) {
    run.pool->at(0).stats.error("connect_phase_timeout");
    // The slots still reference lists/next: stop the workers before they go out of scope.
    run.stopping = true;
    for (unsigned w = 0; w < nw; ++w) run.pool->at(w).ioc.stop();
    throw std::runtime_error("connect phase timed out");
  }
  return secs;
}

// Closes every socket and joins the workers.
void finish(Run& run) {
  run.stopping = true;
  for (auto& d : run.devs) {
    asio::post(run.pool->at(d->worker).ioc, [d] {
      if (d->ws) {
        boost::system::error_code ec;
        beast::get_lowest_layer(*d->ws).socket().close(ec);
      }
    });
  }
  run.pool->join();
}

awaitable<void> sender(Run* run, DevicePtr d) {
  auto& st = run->pool->at(d->worker).stats;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (std::uint64_t k = 0;; ++k) {
    std::int64_t intended =
        run->start_ns + d->phase_ns + std::llround(static_cast<double>(k) * run->interval_ns);
    if (intended >= run->send_end_ns) break;
    std::int64_t now = now_ns();
    if (now < intended) {
      timer.expires_after(std::chrono::nanoseconds(intended - now));
      co_await timer.async_wait(tuple_awaitable);
      now = now_ns();
    }
    if (run->stopping || !d->alive) break;
    BenchKey key{d->global, k, intended};
    std::string msg = typed_update(d->rid, d->did, d->uid, key);
    auto [ec, n] = co_await d->ws->async_write(asio::buffer(msg), tuple_awaitable);
    if (ec) {
      st.error(error_kind("ws_write", ec));
      break;
    }
    if (run->twins) {
      std::string twin = data_change(d->rid, d->did, d->uid, key);
      auto [ec2, n2] = co_await d->ws->async_write(asio::buffer(twin), tuple_awaitable);
      if (ec2) {
        st.error(error_kind("ws_write", ec2));
        break;
      }
    }
    d->sent.store(k + 1, std::memory_order_relaxed);
    if (now >= run->measure_start_ns && now < run->send_end_ns) ++st.sent_in_window;
  }
  run->senders_done.fetch_add(1);
}

struct Tally {
  std::uint64_t sent = 0, expected = 0, delivered = 0, lost = 0, duplicated = 0;
  std::uint64_t in_flight = 0;  // see tally()
};

// Expected deliveries: every change of a connected sender to every other connected device of its
// restaurant. Call after the workers are joined. One sender's changes reach a receiver in order,
// so a change missing before one that arrived is lost. Those missing after the last that arrived
// are lost too, unless `still_delivering` (the drain ended while deliveries were still arriving:
// an overloaded server working through its backlog); they are then counted as in flight.
Tally tally(Run& run, bool still_delivering) {
  Tally t;
  const unsigned D = run.per_restaurant;
  for (std::size_t base = 0; base < run.devs.size(); base += D) {
    for (unsigned s = 0; s < D; ++s) {
      auto& snd = *run.devs[base + s];
      if (!snd.connected) continue;
      std::uint64_t n = snd.sent.load();
      t.sent += n;
      for (unsigned r = 0; r < D; ++r) {
        auto& rcv = *run.devs[base + r];
        if (r == s || !rcv.connected) continue;
        t.expected += n;
        const auto& v = rcv.got[s];
        std::uint64_t tail = n;  // from here on nothing arrived
        while (tail > 0 && (tail > v.size() || v[tail - 1] == 0)) --tail;
        for (std::uint64_t k = 0; k < n; ++k) {
          std::uint8_t cnt = k < v.size() ? v[k] : 0;
          if (cnt == 0 && k >= tail && still_delivering)
            ++t.in_flight;
          else if (cnt == 0)
            ++t.lost;
          else
            t.duplicated += cnt - 1u;
        }
        t.delivered += n;
      }
    }
  }
  t.delivered -= t.lost + t.in_flight;
  return t;
}

std::uint64_t total_errors(const std::map<std::string, std::uint64_t>& e) {
  std::uint64_t n = 0;
  for (const auto& [k, v] : e) n += v;
  return n;
}

// ================================================================================================
// fanout
// ================================================================================================
// The server's VmRSS over time (fanout --sample-rss-every): one sample when due, with the changes
// sent and delivered so far, so memory can be read against the work done. With several nodes,
// `rss_kb` is their sum and `rss_kb_per_node` lists them.
class RssSampler {
 public:
  RssSampler(const Run& run, double every_s)
      : run_(run), every_ns_(static_cast<std::int64_t>(every_s * 1e9)) {}
  bool enabled() const { return every_ns_ > 0 && run_.cl->pids_known(); }
  void poll() {
    if (!enabled()) return;
    const std::int64_t now = now_ns();
    if (now < run_.start_ns + next_ * every_ns_) return;
    sample(now);
    next_ = (now - run_.start_ns) / every_ns_ + 1;
  }
  void sample(std::int64_t now) {
    std::uint64_t sent = 0;
    for (const auto& d : run_.devs) sent += d->sent.load(std::memory_order_relaxed);
    json::object s;
    s["t_s"] = static_cast<double>(now - run_.start_ns) / 1e9;
    s["rss_kb"] = run_.cl->rss_kb();
    if (run_.cl->nodes.size() > 1) s["rss_kb_per_node"] = run_.cl->rss_kb_per_node();
    s["sent"] = sent;
    s["delivered"] = run_.delivered.load(std::memory_order_relaxed);
    samples_.push_back(std::move(s));
  }
  json::array& samples() { return samples_; }

 private:
  const Run& run_;
  std::int64_t every_ns_;
  std::int64_t next_ = 0;
  json::array samples_;
};

// The servers' CPU over the measured send window (utime + stime of every node, /proc/PID/stat):
// sampled when the window opens and when it closes, so neither the connect phase, the warm-up nor
// the drain counts. Reported in cores and per change sent in the window; with several nodes, per
// node too (each node's CPU per change of the whole run, so the nodes' figures add up).
class ServerCpuWindow {
 public:
  ServerCpuWindow(const Cluster& cl, std::int64_t start_ns, std::int64_t end_ns)
      : cl_(cl), start_ns_(start_ns), end_ns_(end_ns) {}
  bool enabled() const { return cl_.pids_known(); }
  void poll() {
    if (!enabled() || have_end_) return;
    const std::int64_t now = now_ns();
    if (!have_start_ && now >= start_ns_) {
      have_start_ = sample(start_, start_at_);
      if (!have_start_) have_end_ = true;  // a node is gone: nothing to report
    } else if (have_start_ && now >= end_ns_) {
      have_end_ = true;
      ok_ = sample(end_, end_at_);
    }
  }
  // After sending and draining: the window's end, if sending and the drain ended before it.
  void close() {
    while (enabled() && !have_end_) {
      const std::int64_t wait = (have_start_ ? end_ns_ : start_ns_) - now_ns();
      if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
      poll();
    }
  }
  void report(json::object& out, std::uint64_t changes) const {
    if (!ok_) return;
    const double window = static_cast<double>(end_at_ - start_at_) / 1e9;
    if (window <= 0) return;
    const auto per_change = [&](double cpu_s) -> json::value {
      if (changes == 0) return nullptr;
      return cpu_s / static_cast<double>(changes) * 1e6;
    };
    double user = 0, sys = 0;
    json::array cores_per_node, per_change_per_node;
    for (std::size_t i = 0; i < start_.size(); ++i) {
      const double u = end_[i].user_s - start_[i].user_s, s = end_[i].sys_s - start_[i].sys_s;
      user += u;
      sys += s;
      cores_per_node.push_back((u + s) / window);
      per_change_per_node.push_back(per_change(u + s));
    }
    out["server_cpu_window_s"] = window;
    out["server_cpu_cores"] = (user + sys) / window;
    out["server_cpu_user_cores"] = user / window;
    out["server_cpu_sys_cores"] = sys / window;
    out["server_cpu_us_per_change"] = per_change(user + sys);
    if (start_.size() > 1) {
      out["server_cpu_cores_per_node"] = std::move(cores_per_node);
      out["server_cpu_us_per_change_per_node"] = std::move(per_change_per_node);
    }
  }

 private:
  bool sample(std::vector<CpuTime>& into, std::int64_t& at) const {
    into.clear();
    at = now_ns();
    for (const auto& node : cl_.nodes) {
      const auto cpu = process_cpu(node.pid);
      if (!cpu) return false;
      into.push_back(*cpu);
    }
    return true;
  }
  const Cluster& cl_;
  std::int64_t start_ns_, end_ns_;
  bool have_start_ = false, have_end_ = false, ok_ = false;
  std::vector<CpuTime> start_, end_;
  std::int64_t start_at_ = 0, end_at_ = 0;
};

json::object run_fanout(const Common& c, const Cluster& cl, const FanoutCfg& f,
                        const std::string& tag, int& status) {
  json::object out;

  Pool pool(c.threads);  // declared first so it outlives the devices' sockets
  Run run(c, cl, pool);
  run.twins = f.twins;
  make_devices(run, f.restaurants, f.devices, tag);
  const std::size_t n = run.devs.size();
  double connect_s = 0;
  try {
    connect_s = connect_all(run, run.devs);
  } catch (const std::exception&) {
    status = 1;
    out["errors"] = errors_json(pool.merged().errors);
    return out;
  }
  json::object conn;
  conn["devices"] = n;
  conn["connected"] = run.ready.load();
  conn["failed"] = run.failed.load();
  conn["seconds"] = connect_s;
  out["connect"] = conn;

  const double rate_dev = f.rate / static_cast<double>(n);
  run.interval_ns = 1e9 / rate_dev;
  run.start_ns = now_ns() + 100'000'000;
  run.measure_start_ns = run.start_ns + static_cast<std::int64_t>(f.warmup * 1e9);
  run.send_end_ns = run.measure_start_ns + static_cast<std::int64_t>(f.duration * 1e9);
  unsigned senders = 0;
  for (auto& d : run.devs) {
    if (!d->connected) continue;
    // Spread the devices' schedules evenly over one interval.
    d->phase_ns = static_cast<std::int64_t>(run.interval_ns * static_cast<double>(d->global) /
                                            static_cast<double>(n));
    asio::co_spawn(pool.at(d->worker).ioc, sender(&run, d), asio::detached);
    ++senders;
  }
  long rss_before = cl.rss_kb();
  RssSampler rss(run, f.sample_rss_every);
  ServerCpuWindow cpu(cl, run.measure_start_ns, run.send_end_ns);
  const std::int64_t deadline = run.send_end_ns + static_cast<std::int64_t>(c.timeout * 1e9);
  while (run.senders_done < senders && now_ns() < deadline) {
    rss.poll();
    cpu.poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (run.senders_done < senders) pool.at(0).stats.error("send_phase_timeout");
  const std::int64_t sends_done = now_ns();

  // Drain: wait until every expected delivery arrived (or the drain time passed).
  std::uint64_t expected = 0;
  {
    const unsigned D = f.devices;
    for (std::size_t base = 0; base < n; base += D) {
      unsigned conn_in_rest = 0;
      for (unsigned j = 0; j < D; ++j) conn_in_rest += run.devs[base + j]->connected ? 1 : 0;
      for (unsigned j = 0; j < D; ++j)
        if (run.devs[base + j]->connected)
          expected += run.devs[base + j]->sent.load() * (conn_in_rest - 1);
    }
  }
  const std::int64_t drain_deadline = now_ns() + static_cast<std::int64_t>(f.drain * 1e9);
  std::uint64_t seen = run.delivered.load();
  std::int64_t last_progress = now_ns();
  while (run.delivered.load() < expected && now_ns() < drain_deadline) {
    rss.poll();
    cpu.poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (const auto d = run.delivered.load(); d != seen) {
      seen = d;
      last_progress = now_ns();
    }
  }
  // Deliveries arrived within the last second of the drain: the server is still working.
  const bool still_delivering =
      run.delivered.load() < expected && now_ns() - last_progress < 1'000'000'000;
  const double drain_s = static_cast<double>(now_ns() - sends_done) / 1e9;
  cpu.close();
  long rss_after = cl.rss_kb();
  json::array rss_after_per_node = cl.rss_kb_per_node();
  if (rss.enabled()) rss.sample(now_ns());
  finish(run);

  Stats st = pool.merged();
  Tally ty = tally(run, still_delivering);
  out["sent"] = ty.sent;
  out["send_rate"] = static_cast<double>(st.sent_in_window) / f.duration;
  out["expected_deliveries"] = ty.expected;
  out["delivered"] = ty.delivered;
  out["delivery_rate"] = static_cast<double>(st.deliveries_in_window) / f.duration;
  out["lost"] = ty.lost;
  // Not yet delivered when the drain ended while deliveries still arrived (overload: not verified).
  out["in_flight_at_end"] = ty.in_flight;
  out["duplicated"] = ty.duplicated;
  out["drain_s"] = drain_s;
  out["latency"] = latency_json(st.latency);
  out["connect_latency"] = latency_json(st.aux);
  out["errors"] = errors_json(st.errors);
  if (rss_after >= 0) {
    out["server_rss_kb_start"] = rss_before;
    out["server_rss_kb_end"] = rss_after;
    if (cl.nodes.size() > 1) out["server_rss_kb_end_per_node"] = std::move(rss_after_per_node);
  }
  if (rss.enabled()) out["server_rss_samples"] = std::move(rss.samples());
  cpu.report(out, st.sent_in_window);
  if (ty.lost || ty.duplicated || total_errors(st.errors) || run.failed) status = 1;
  run.devs.clear();
  return out;
}

// ================================================================================================
// ramp
// ================================================================================================
struct RampCfg {
  FanoutCfg base;
  double start_rate = 500;
  double step = 500;
  double max_rate = 1e9;
  double p99_bound_ms = 50;
};

json::object run_ramp(const Common& c, const Cluster& cl, const RampCfg& r, int& status) {
  json::object out;
  json::array steps;
  double best = 0;
  int step_no = 0;
  for (double rate = r.start_rate; rate <= r.max_rate; rate += r.step, ++step_no) {
    FanoutCfg f = r.base;
    f.rate = rate;
    int st = 0;
    auto res = run_fanout(c, cl, f, fmt::format("ramp{}", step_no), st);
    json::object row;
    row["rate"] = rate;
    row["send_rate"] = res.contains("send_rate") ? res["send_rate"] : json::value(0);
    row["delivery_rate"] = res.contains("delivery_rate") ? res["delivery_rate"] : json::value(0);
    double p99 = 1e18;
    if (auto* lat = res.if_contains("latency")) {
      auto& lo = lat->as_object();
      for (const char* k : {"p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms"}) row[k] = lo[k];
      p99 = lo["p99_ms"].to_number<double>();
    }
    std::uint64_t lost = res.contains("lost") ? res["lost"].to_number<std::uint64_t>() : 1;
    std::uint64_t dup =
        res.contains("duplicated") ? res["duplicated"].to_number<std::uint64_t>() : 0;
    std::uint64_t errs = 0;
    if (auto* e = res.if_contains("errors"))
      for (auto& kv : e->as_object()) errs += kv.value().to_number<std::uint64_t>();
    row["lost"] = lost;
    row["duplicated"] = dup;
    row["errors"] = errs;
    bool ok = p99 <= r.p99_bound_ms && lost == 0 && dup == 0 && errs == 0;
    row["sustained"] = ok;
    std::string cpu_note;
    for (const char* k : {"server_cpu_cores", "server_cpu_us_per_change"})
      if (auto* v = res.if_contains(k)) row[k] = *v;
    if (auto* v = res.if_contains("server_cpu_us_per_change"); v && v->is_double())
      cpu_note = fmt::format(" server CPU {:.0f} us/change", v->as_double());
    steps.push_back(row);
    if (!c.json)
      std::cerr << fmt::format(
          "ramp: rate {:.0f}/s p99 {:.2f} ms lost {} dup {} errors {}{} -> {}\n", rate, p99, lost,
          dup, errs, cpu_note, ok ? "ok" : "over");
    if (dup) status = 1;  // duplicates are wrong at any load; loss under overload is a finding
    if (!ok) break;
    best = rate;
  }
  out["p99_bound_ms"] = r.p99_bound_ms;
  out["steps"] = steps;
  out["highest_sustained_rate"] = best;
  return out;
}

// ================================================================================================
// connections
// ================================================================================================
struct ConnCfg {
  unsigned connections = 1000;
  unsigned per_restaurant = 10;
  double hold = 2;
};

json::object run_connections(const Common& c, const Cluster& cl, const ConnCfg& cc, int& status) {
  json::object out;
  Pool pool(c.threads);  // declared first so it outlives the devices' sockets
  Run run(c, cl, pool);
  unsigned rest = (cc.connections + cc.per_restaurant - 1) / cc.per_restaurant;
  make_devices(run, rest, cc.per_restaurant, "conn");
  run.devs.resize(cc.connections);
  long before = cl.rss_kb();
  double secs = 0;
  try {
    secs = connect_all(run, run.devs);
  } catch (const std::exception&) {
    status = 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(cc.hold * 1000)));
  long after = cl.rss_kb();
  std::int64_t server_count = 0;  // over every node; -1 if one did not answer
  for (const auto& node : cl.nodes) {
    auto health = http_sync(node, http::verb::get, "/api/health", "");
    const std::int64_t n =
        health.status == 200 ? top_level_int(health.body, "totalConnections") : -1;
    server_count = n < 0 || server_count < 0 ? -1 : server_count + n;
  }
  finish(run);
  Stats st = pool.merged();
  out["connections"] = cc.connections;
  out["connected"] = run.ready.load();
  out["failed"] = run.failed.load();
  out["connect_seconds"] = secs;
  out["connects_per_s"] = secs > 0 ? run.ready.load() / secs : 0.0;
  out["connect_latency"] = latency_json(st.aux);
  out["server_total_connections"] = server_count;
  if (before >= 0 && after >= 0) {
    out["server_rss_kb_before"] = before;
    out["server_rss_kb_after"] = after;
    out["server_bytes_per_connection"] =
        run.ready ? static_cast<double>(after - before) * 1024.0 / run.ready.load() : 0.0;
  }
  if (server_count >= 0 && static_cast<std::uint64_t>(server_count) != run.ready.load())
    st.error("server_connection_count_mismatch");
  out["errors"] = errors_json(st.errors);
  if (run.failed || total_errors(st.errors)) status = 1;
  run.devs.clear();
  return out;
}

// ================================================================================================
// REST helpers (rest, catchup writers, coldstart fill)
// ================================================================================================
std::string sync_body(const std::string& rid, const std::string& did, std::uint64_t sender,
                      std::uint64_t first_k, unsigned batch, std::int64_t intended) {
  std::string body = fmt::format(
      R"({{"restaurant_id":"{}","device_id":"{}","user_id":"u-{}","changes":[)", rid, did, sender);
  for (unsigned i = 0; i < batch; ++i) {
    if (i) body += ',';
    body += data_change(rid, did, "u-" + std::to_string(sender),
                        BenchKey{sender, first_k + i, intended});
  }
  body += "]}";
  return body;
}

struct RestRun {
  const Common* c = nullptr;
  const Cluster* cl = nullptr;  // client i posts to node i % N
  Pool* pool = nullptr;
  unsigned batch = 20;
  double rate_per_client = 0;  // requests/s per client; 0 = closed loop
  std::int64_t start_ns = 0, measure_start_ns = 0, end_ns = 0;
  std::uint64_t total_changes = 0;  // > 0: stop after this many changes per client (fill mode)
  std::atomic<unsigned> done{0};
  std::atomic<std::uint64_t> changes_ok{0}, requests{0};
  std::vector<std::string> restaurants;
};

awaitable<void> rest_client(RestRun* rr, unsigned idx) {
  auto& st = rr->pool->at(idx).stats;
  auto ex = co_await asio::this_coro::executor;
  const Target& node = rr->cl->node_for(idx);
  HttpClient http(ex, node.endpoint, node.hostport());
  asio::steady_timer timer(ex);
  const std::string& rid = rr->restaurants[idx % rr->restaurants.size()];
  std::string did = fmt::format("rest-client{}", idx);
  std::uint64_t k = 0;
  for (std::uint64_t req = 0;; ++req) {
    std::int64_t intended = now_ns();
    if (rr->rate_per_client > 0) {
      intended = rr->start_ns + std::llround(static_cast<double>(req) * 1e9 / rr->rate_per_client);
      if (intended >= rr->end_ns) break;
      if (intended > now_ns()) {
        timer.expires_after(std::chrono::nanoseconds(intended - now_ns()));
        co_await timer.async_wait(tuple_awaitable);
      }
    } else if (rr->total_changes ? k >= rr->total_changes : intended >= rr->end_ns) {
      break;
    }
    unsigned batch = rr->batch;
    if (rr->total_changes)
      batch = static_cast<unsigned>(std::min<std::uint64_t>(batch, rr->total_changes - k));
    std::string body = sync_body(rid, did, idx, k, batch, intended);
    k += batch;
    auto res = co_await http.request(http::verb::post, "/api/sync", std::move(body));
    std::int64_t now = now_ns();
    rr->requests.fetch_add(1);
    if (res.status == 0) {
      st.error(res.error);
      continue;
    }
    if (res.status != 200) {
      st.error(fmt::format("http_{}", res.status));
      continue;
    }
    if (top_level_int(res.body, "synced_changes") != static_cast<std::int64_t>(batch)) {
      st.error("synced_changes_mismatch");
      continue;
    }
    if (intended >= rr->measure_start_ns) {
      st.latency.record(now - intended);
      if (now < rr->end_ns || rr->total_changes) st.sent_in_window += batch;
    }
    rr->changes_ok.fetch_add(batch);
  }
  rr->done.fetch_add(1);
}

// Runs `clients` REST clients until done; returns merged stats.
Stats run_rest_clients(RestRun& rr, unsigned clients, double wait_s) {
  Pool pool(rr.c->threads);
  rr.pool = &pool;
  for (unsigned i = 0; i < clients; ++i)
    asio::co_spawn(pool.at(i).ioc, rest_client(&rr, i), asio::detached);
  const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(wait_s * 1e9);
  while (rr.done < clients && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (rr.done < clients) {
    pool.at(0).stats.error("rest_phase_timeout");
    for (unsigned w = 0; w < pool.size(); ++w) pool.at(w).ioc.stop();
  }
  pool.join();
  Stats st = pool.merged();
  rr.pool = nullptr;
  return st;
}

// ================================================================================================
// rest
// ================================================================================================
struct RestCfg {
  unsigned clients = 8;
  unsigned batch = 20;
  unsigned restaurants = 8;
  double duration = 10;
  double warmup = 1;
  double rate = 0;  // requests/s over all clients; 0 = closed loop
};

json::object run_rest(const Common& c, const Cluster& cl, const RestCfg& r, int& status) {
  RestRun rr;
  rr.c = &c;
  rr.cl = &cl;
  rr.batch = r.batch;
  rr.rate_per_client = r.rate / r.clients;
  for (unsigned i = 0; i < r.restaurants; ++i)
    rr.restaurants.push_back(fmt::format("{}-rest-r{}", c.run_id, i));
  rr.start_ns = now_ns();
  rr.measure_start_ns = rr.start_ns + static_cast<std::int64_t>(r.warmup * 1e9);
  rr.end_ns = rr.measure_start_ns + static_cast<std::int64_t>(r.duration * 1e9);
  Stats st = run_rest_clients(rr, r.clients, r.warmup + r.duration + c.timeout);
  json::object out;
  out["requests"] = rr.requests.load();
  out["changes_synced"] = rr.changes_ok.load();
  out["changes_per_s"] = static_cast<double>(st.sent_in_window) / r.duration;
  out["requests_per_s"] = static_cast<double>(st.latency.count()) / r.duration;
  out["request_latency"] = latency_json(st.latency);
  out["errors"] = errors_json(st.errors);
  if (cl.pids_known()) out["server_rss_kb"] = cl.rss_kb();
  if (total_errors(st.errors)) status = 1;
  return out;
}

// ================================================================================================
// catchup
// ================================================================================================
struct CatchupCfg {
  unsigned restaurants = 4;
  unsigned offline = 4;     // devices per restaurant that are offline and catch up
  unsigned writers = 1;     // devices per restaurant that write while they are away
  unsigned changes = 1000;  // per restaurant
  unsigned batch = 100;
};

json::object run_catchup(const Common& c, const Cluster& cl, const CatchupCfg& cu, int& status) {
  json::object out;

  Pool pool(c.threads);  // declared first so it outlives the devices' sockets
  Run run(c, cl, pool);
  const unsigned D = cu.offline + cu.writers;
  make_devices(run, cu.restaurants, D, "catchup");
  std::vector<DevicePtr> offline;
  for (auto& d : run.devs)
    if (d->local < cu.offline) offline.push_back(d);

  // 1. The offline devices connect once, learn their seq from `registered`, and leave.
  run.mode = Mode::catchup_initial;
  try {
    connect_all(run, offline);
  } catch (const std::exception&) {
    status = 1;
    out["errors"] = errors_json(pool.merged().errors);
    return out;
  }
  for (auto& d : offline)
    if (d->since < 0) pool.at(0).stats.error("registered_without_seq");

  // 2. The writers write M changes per restaurant with POST /api/sync (each writer its share).
  std::int64_t w0 = now_ns();
  std::uint64_t written = 0;
  std::map<std::string, std::uint64_t> write_errors;
  {
    // One REST client per writer device; client index = the writer's global device index.
    struct Job {
      Target t;
      std::string rid, did;
      std::uint64_t sender, count;
      unsigned batch;
    };
    std::vector<Job> jobs;
    for (auto& d : run.devs) {
      if (d->local < cu.offline) continue;
      unsigned w = d->local - cu.offline;
      std::uint64_t share = cu.changes / cu.writers + (w < cu.changes % cu.writers ? 1 : 0);
      jobs.push_back({*d->node, d->rid, d->did, d->global, share, cu.batch});
    }
    for (auto& j : jobs) {
      for (std::uint64_t k = 0; k < j.count; k += j.batch) {
        unsigned b = static_cast<unsigned>(std::min<std::uint64_t>(j.batch, j.count - k));
        auto r = http_sync(j.t, http::verb::post, "/api/sync",
                           sync_body(j.rid, j.did, j.sender, k, b, 0));
        if (r.status != 200) {
          ++write_errors[r.status ? fmt::format("write_http_{}", r.status) : r.error];
          continue;
        }
        written += b;
      }
      run.devs[j.sender]->sent = j.count;
      run.devs[j.sender]->connected = true;  // counts as a sender in the tally
    }
  }
  double write_s = static_cast<double>(now_ns() - w0) / 1e9;

  // 3. Everyone reconnects with ?since= at once; time until the last `caught_up`.
  run.mode = Mode::catchup_reconnect;
  run.measure_start_ns = 0;
  run.send_end_ns = INT64_MAX;
  for (auto& d : offline) d->connected = false;
  run.phase_start_ns = now_ns();
  double connect_s = 0;
  try {
    connect_s = connect_all(run, offline);
  } catch (const std::exception&) {
    status = 1;
  }
  const std::int64_t deadline = now_ns() + static_cast<std::int64_t>(c.timeout * 1e9);
  while (run.caught_up < run.ready && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double catchup_s = static_cast<double>(now_ns() - run.phase_start_ns) / 1e9;
  if (run.caught_up < run.ready) pool.at(0).stats.error("catchup_timeout");
  finish(run);

  Stats st = pool.merged();
  for (const auto& [k, v] : write_errors) st.errors[k] += v;
  // Writers never receive here; count only what the offline devices got.
  for (auto& d : run.devs)
    if (d->local >= cu.offline) d->connected = true;
  std::uint64_t expected = 0, lost = 0, dup = 0, wrong_caught_up = 0;
  for (auto& d : offline) {
    if (!d->connected) continue;
    std::uint64_t base = d->global - d->local;
    for (unsigned s = cu.offline; s < D; ++s) {
      std::uint64_t n = run.devs[base + s]->sent.load();
      expected += n;
      const auto& v = d->got[s];
      for (std::uint64_t k = 0; k < n; ++k) {
        std::uint8_t cnt = k < v.size() ? v[k] : 0;
        if (!cnt)
          ++lost;
        else
          dup += cnt - 1u;
      }
    }
    if (!c.legacy && d->since >= 0 &&
        d->caught_up_seq != d->since + static_cast<std::int64_t>(cu.changes))
      ++wrong_caught_up;
  }
  if (wrong_caught_up) st.errors["caught_up_seq_mismatch"] += wrong_caught_up;
  out["written"] = written;
  out["write_seconds"] = write_s;
  out["reconnected"] = run.ready.load();
  out["reconnect_seconds"] = connect_s;
  out["caught_up"] = run.caught_up.load();
  out["catchup_seconds"] = catchup_s;
  out["changes_delivered"] = expected - lost;
  out["changes_per_s"] = catchup_s > 0 ? static_cast<double>(expected - lost) / catchup_s : 0.0;
  out["expected"] = expected;
  out["lost"] = lost;
  out["duplicated"] = dup;
  out["time_to_caught_up"] = latency_json(st.latency);
  out["errors"] = errors_json(st.errors);
  if (cl.pids_known()) out["server_rss_kb"] = cl.rss_kb();
  if (lost || dup || total_errors(st.errors) || run.failed) status = 1;
  run.devs.clear();
  return out;
}

// ================================================================================================
// coldstart
// ================================================================================================
struct ColdCfg {
  unsigned changes = 10000;
  unsigned restaurants = 10;
  unsigned batch = 500;
  unsigned runs = 3;
};

json::object run_coldstart(const Common& c, const ColdCfg& cs, int& status) {
  json::object out;
  std::map<std::string, std::uint64_t> errors;

  ServerProcess filler;
  std::string db = filler.tmpdir() + "/coldstart.db";
  std::string store = "sqlite:" + db;
  Cluster fill_cluster{{Target{}}};
  if (!filler.start(c.server_bin, store, c.server_args, fill_cluster.nodes[0], c.timeout)) {
    status = 2;
    return out;
  }
  std::int64_t f0 = now_ns();
  RestRun rr;
  rr.c = &c;
  rr.cl = &fill_cluster;
  rr.batch = cs.batch;
  for (unsigned i = 0; i < cs.restaurants; ++i)
    rr.restaurants.push_back(fmt::format("{}-cold-r{}", c.run_id, i));
  rr.total_changes = (cs.changes + cs.restaurants - 1) / cs.restaurants;
  rr.end_ns = INT64_MAX;
  Stats fst = run_rest_clients(rr, cs.restaurants, c.timeout + cs.changes / 100.0);
  for (const auto& [k, v] : fst.errors) errors["fill:" + k] += v;
  out["filled_changes"] = rr.changes_ok.load();
  out["fill_seconds"] = static_cast<double>(now_ns() - f0) / 1e9;
  int rc = filler.stop();
  if (rc != 0) ++errors[fmt::format("fill_server_exit_{}", rc)];
  std::error_code fec;
  out["store_bytes"] = static_cast<std::uint64_t>(std::filesystem::file_size(db, fec));

  Histogram ready;
  json::array runs;
  for (unsigned i = 0; i < cs.runs; ++i) {
    ServerProcess p;
    Target pt;
    double secs = 0;
    if (!p.start(c.server_bin, store, c.server_args, pt, c.timeout, &secs)) {
      ++errors["start_failed"];
      continue;
    }
    json::object row;
    row["ready_ms"] = secs * 1000.0;
    row["rss_kb"] = rss_kb(p.pid());
    ready.record(static_cast<std::int64_t>(secs * 1e9));
    // Check the store really was loaded: the first restaurant's status answers (404 if unknown).
    auto st =
        http_sync(pt, http::verb::get, "/api/restaurants/" + rr.restaurants[0] + "/status", "");
    if (st.status != 200) ++errors[fmt::format("status_http_{}", st.status)];
    int prc = p.stop();
    if (prc != 0) ++errors[fmt::format("server_exit_{}", prc)];
    runs.push_back(row);
  }
  out["runs"] = runs;
  out["ready_min_ms"] = static_cast<double>(ready.min()) / 1e6;
  out["ready_p50_ms"] = static_cast<double>(ready.percentile(50)) / 1e6;
  out["ready_max_ms"] = static_cast<double>(ready.max()) / 1e6;
  out["errors"] = errors_json(errors);
  if (total_errors(errors) || rr.changes_ok < cs.changes) status = 1;
  return out;
}

// ================================================================================================
// output
// ================================================================================================
std::string scalar(const json::value& v) {
  if (v.is_double()) return fmt::format("{:.3f}", v.as_double());
  if (v.is_string()) return std::string(v.as_string());
  return possync::json_text(v);
}

void print_table(const json::object& o, int indent = 0) {
  std::string pad(static_cast<std::size_t>(indent), ' ');
  for (const auto& kv : o) {
    const auto& v = kv.value();
    std::string key(kv.key());
    if (v.is_object() && v.as_object().contains("p50_ms")) {
      const auto& l = v.as_object();
      std::cout << fmt::format(
          "{}{:<28} n={:<9} p50 {:>9.3f}  p90 {:>9.3f}  p99 {:>9.3f}  p99.9 {:>9.3f}  max {:>9.3f} "
          "ms\n",
          pad, key, scalar(l.at("count")), l.at("p50_ms").to_number<double>(),
          l.at("p90_ms").to_number<double>(), l.at("p99_ms").to_number<double>(),
          l.at("p99_9_ms").to_number<double>(), l.at("max_ms").to_number<double>());
    } else if (v.is_object()) {
      if (v.as_object().empty()) {
        std::cout << fmt::format("{}{:<28} none\n", pad, key);
      } else {
        std::cout << pad << key << ":\n";
        print_table(v.as_object(), indent + 2);
      }
    } else if (v.is_array() && !v.as_array().empty() && v.as_array()[0].is_object()) {
      std::cout << pad << key << ":\n";
      const auto& first = v.as_array()[0].as_object();
      // Columns 14 wide, or wider for a longer name (one space between columns).
      const auto width = [](const json::key_value_pair& c) {
        return std::max<std::size_t>(14, c.key().size() + 1);
      };
      std::string head = pad + "  ";
      for (const auto& c : first) head += fmt::format("{:>{}}", std::string(c.key()), width(c));
      std::cout << head << "\n";
      for (const auto& row : v.as_array()) {
        std::string line = pad + "  ";
        for (const auto& c : first) {
          auto* cell = row.as_object().if_contains(c.key());
          line += fmt::format("{:>{}}", cell ? scalar(*cell) : "", width(c));
        }
        std::cout << line << "\n";
      }
    } else {
      std::cout << fmt::format("{}{:<28} {}\n", pad, key, scalar(v));
    }
  }
}

// Every option of `app` (not of its subcommands) with its value, given or default: the one place
// that echoes a run's configuration into its result. Numbers and booleans stay JSON numbers and
// booleans; flags are true when given.
void add_options_json(const CLI::App& app, json::object& out) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt == app.get_help_ptr() || opt == app.get_help_all_ptr()) continue;
    std::string name = opt->get_single_name();
    if (opt->get_expected_min() == 0) {
      out[name] = opt->count() > 0;
      continue;
    }
    std::string text = opt->count() ? opt->results().back() : opt->get_default_str();
    boost::system::error_code ec;
    json::value v = possync::parse_json(text, ec);
    out[name] = ec || v.is_object() || v.is_array() ? json::value(text) : v;
  }
}

// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    if (end > start) items.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

bool is_postgres_store(const std::string& store) {
  return store.rfind("postgres://", 0) == 0 || store.rfind("postgresql://", 0) == 0;
}

bool parse_url(const std::string& url, Target& t) {
  std::string rest = url;
  if (rest.rfind("ws://", 0) == 0)
    rest = rest.substr(5);
  else if (rest.rfind("http://", 0) == 0)
    rest = rest.substr(7);
  else
    return false;
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  t.path = slash == std::string::npos ? "/" : rest.substr(slash);
  auto colon = hostport.rfind(':');
  t.host = colon == std::string::npos ? hostport : hostport.substr(0, colon);
  t.port = colon == std::string::npos
               ? 80
               : static_cast<std::uint16_t>(std::stoi(hostport.substr(colon + 1)));
  asio::io_context ioc;
  tcp::resolver res(ioc);
  boost::system::error_code ec;
  auto eps = res.resolve(t.host, std::to_string(t.port), ec);
  if (ec || eps.empty()) return false;
  t.endpoint = *eps.begin();
  return true;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  using namespace bench;
  raise_nofile_limit();
  ::signal(SIGPIPE, SIG_IGN);

  CLI::App app{"possync-bench: load generator for possync and legacy-protocol POS sync servers"};
  app.require_subcommand(1);
  app.fallthrough();
  Common c;
  app.add_option("--url", c.url,
                 "Server to measure, ws://host:port[/path]; several nodes of one cluster "
                 "comma-separated (ignored with --server-bin)")
      ->capture_default_str();
  app.add_option("--server-bin", c.server_bin,
                 "Spawn this server binary on a free port and stop it afterwards");
  app.add_option("--server-args", c.server_args, "Extra arguments for the spawned server")
      ->capture_default_str();
  app.add_option("--store", c.store,
                 "Store of the spawned server: memory, sqlite (temporary file), sqlite:PATH or "
                 "postgresql://USER@HOST:PORT/DB")
      ->capture_default_str();
  app.add_option("--nodes", c.nodes,
                 "Spawned servers sharing the --store (a postgresql:// URL when > 1); device i "
                 "talks to node i % N")
      ->capture_default_str();
  std::string server_pids;
  app.add_option("--server-pid", server_pids,
                 "PID of the server given by --url, for its resident memory and CPU "
                 "(comma-separated, one per --url)");
  app.add_option("--threads", c.threads, "Client I/O threads")->capture_default_str();
  app.add_option("--concurrency", c.concurrency, "Connection attempts in flight")
      ->capture_default_str();
  app.add_option("--source-addresses", c.source_addrs,
                 "Spread connections over 127.0.0.1..127.0.0.N (grows by itself on EADDRNOTAVAIL)")
      ->capture_default_str();
  app.add_flag("--always-bind", c.always_bind,
               "Bind every connection to its 127.0.0.x source address");
  app.add_flag("--json", c.json, "Print the result as JSON");
  app.add_flag("--legacy", c.legacy,
               "Use no possync extensions (acks ignored; catchup refuses to run)");
  app.add_option("--timeout", c.timeout, "Seconds allowed for any setup, connect or drain phase")
      ->capture_default_str();

  FanoutCfg fan;
  // `duration`: the option names of the measured time (the ramp's is per step).
  auto add_traffic_opts = [](CLI::App* sc, FanoutCfg& f, const std::string& duration,
                             const std::string& duration_help) {
    sc->add_option("--restaurants,-R", f.restaurants, "Restaurants")->capture_default_str();
    sc->add_option("--devices,-D", f.devices, "Devices per restaurant (>= 2)")
        ->capture_default_str();
    sc->add_option(duration, f.duration, duration_help)->capture_default_str();
    sc->add_option("--warmup", f.warmup, "Seconds sent before measuring")->capture_default_str();
    sc->add_option("--drain", f.drain, "Most seconds to wait for outstanding deliveries")
        ->capture_default_str();
  };
  auto add_fanout_opts = [&](CLI::App* sc, FanoutCfg& f, const std::string& duration,
                             const std::string& duration_help) {
    add_traffic_opts(sc, f, duration, duration_help);
    sc->add_flag(
        "--twins", f.twins,
        "Send each change as a typed update followed by its data_change twin (like the app)");
  };
  auto* s_fan = app.add_subcommand(
      "fanout", "R restaurants x D devices sending typed updates at a fixed total rate");
  add_fanout_opts(s_fan, fan, "--duration", "Measured seconds");
  s_fan->add_option("--rate", fan.rate, "Changes per second, all devices together")
      ->capture_default_str();
  s_fan
      ->add_option("--sample-rss-every", fan.sample_rss_every,
                   "Record the server's RSS every this often (5s, 500ms; 0 = off) as a time series "
                   "(needs --server-bin or --server-pid)")
      ->transform(CLI::AsNumberWithUnit(std::map<std::string, double>{{"s", 1.0}, {"ms", 1e-3}},
                                        CLI::AsNumberWithUnit::CASE_SENSITIVE))
      ->capture_default_str()
      ->option_text("DURATION=0");

  RampCfg ramp;
  ramp.base.duration = 5;
  auto* s_ramp =
      app.add_subcommand("ramp", "Fanout steps of increasing rate until p99 passes a bound");
  add_fanout_opts(s_ramp, ramp.base, "--step-duration,--duration", "Measured seconds per step");
  s_ramp->add_option("--start-rate", ramp.start_rate, "First step's rate")->capture_default_str();
  s_ramp->add_option("--step", ramp.step, "Rate added per step")->capture_default_str();
  s_ramp->add_option("--max-rate", ramp.max_rate, "Stop after this rate")->capture_default_str();
  s_ramp->add_option("--p99-bound-ms", ramp.p99_bound_ms, "p99 latency bound")
      ->capture_default_str();

  ConnCfg conn;
  auto* s_conn = app.add_subcommand(
      "connections", "N idle WebSockets: server memory per connection, connect rate");
  s_conn->add_option("--connections,-N", conn.connections, "Connections")->capture_default_str();
  s_conn->add_option("--devices-per-restaurant", conn.per_restaurant, "Connections per restaurant")
      ->capture_default_str();
  s_conn->add_option("--hold", conn.hold, "Seconds to hold them open before measuring")
      ->capture_default_str();

  CatchupCfg cu;
  auto* s_cu = app.add_subcommand(
      "catchup", "Offline devices reconnect with since= after others wrote M changes");
  s_cu->add_option("--restaurants,-R", cu.restaurants, "Restaurants")->capture_default_str();
  s_cu->add_option("--offline,-N", cu.offline, "Offline devices per restaurant")
      ->capture_default_str();
  s_cu->add_option("--writers,-W", cu.writers, "Writer devices per restaurant")
      ->capture_default_str();
  s_cu->add_option("--changes,-M", cu.changes, "Changes written per restaurant while away")
      ->capture_default_str();
  s_cu->add_option("--batch", cu.batch, "Changes per POST /api/sync of the writers")
      ->capture_default_str();

  RestCfg rest;
  auto* s_rest = app.add_subcommand("rest", "POST /api/sync throughput and latency with batches");
  s_rest->add_option("--clients", rest.clients, "Concurrent keep-alive clients")
      ->capture_default_str();
  s_rest->add_option("--batch", rest.batch, "Changes per request")->capture_default_str();
  s_rest->add_option("--restaurants,-R", rest.restaurants, "Restaurants the clients post to")
      ->capture_default_str();
  s_rest->add_option("--duration", rest.duration, "Measured seconds")->capture_default_str();
  s_rest->add_option("--warmup", rest.warmup, "Seconds before measuring")->capture_default_str();
  s_rest
      ->add_option("--rate", rest.rate, "Requests/s over all clients (open loop); 0 = closed loop")
      ->capture_default_str();

  ColdCfg cold;
  auto* s_cold = app.add_subcommand(
      "coldstart", "Time from exec to the first healthy answer, on a store with K changes");
  s_cold->add_option("--changes,-K", cold.changes, "Changes in the store")->capture_default_str();
  s_cold->add_option("--restaurants,-R", cold.restaurants, "Restaurants they are spread over")
      ->capture_default_str();
  s_cold->add_option("--batch", cold.batch, "Changes per POST while filling")
      ->capture_default_str();
  s_cold->add_option("--runs", cold.runs, "Start-ups measured")->capture_default_str();

  FloorCfg floor;
  auto* s_floor = app.add_subcommand(
      "floor",
      "The fanout's traffic through a byte forwarder instead of a server: the machine's floor");
  add_traffic_opts(s_floor, floor.traffic, "--duration", "Measured seconds");
  s_floor->add_option("--rate", floor.traffic.rate, "Changes per second, all devices together")
      ->capture_default_str();
  s_floor->add_option("--forwarder-threads", floor.forwarder_threads, "Threads of the forwarder")
      ->capture_default_str();
  s_floor->add_option("--in-bytes", floor.in_bytes, "Bytes of a change frame (device to server)")
      ->capture_default_str();
  s_floor->add_option("--out-bytes", floor.out_bytes, "Bytes of a delivery frame")
      ->capture_default_str();
  s_floor->add_option("--ack-bytes", floor.ack_bytes, "Bytes of an ack frame (0: no acks)")
      ->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; any other parse error is bad usage: exit 2 (bench/README.md).
    return app.exit(e) == 0 ? 0 : 2;
  }

  {
    std::random_device rd;
    c.run_id = fmt::format("bench{:08x}", rd());
  }
  if (c.threads == 0) c.threads = 1;
  const CLI::App& sub = *app.get_subcommands().front();
  const std::string scenario = sub.get_name();
  if ((scenario == "fanout" && fan.devices < 2) || (scenario == "ramp" && ramp.base.devices < 2) ||
      (scenario == "floor" && floor.traffic.devices < 2)) {
    std::cerr << "possync-bench: --devices must be at least 2\n";
    return 2;
  }
  if (scenario == "catchup" && c.legacy) {
    std::cerr << "possync-bench: catchup needs possync's `since` extension; it cannot run with "
                 "--legacy\n";
    return 2;
  }
  if (scenario == "coldstart" && c.server_bin.empty()) {
    std::cerr << "possync-bench: coldstart needs --server-bin\n";
    return 2;
  }
  try {
    for (const auto& pid : split_commas(server_pids)) c.server_pids.push_back(std::stoi(pid));
  } catch (const std::exception&) {
    std::cerr << "possync-bench: --server-pid takes numbers, comma-separated\n";
    return 2;
  }
  if (scenario == "fanout" && fan.sample_rss_every > 0 && c.server_bin.empty() &&
      c.server_pids.empty()) {
    std::cerr << "possync-bench: --sample-rss-every needs --server-bin or --server-pid\n";
    return 2;
  }
  if (c.nodes == 0) c.nodes = 1;
  if (c.nodes > 1 && !is_postgres_store(c.store)) {
    std::cerr << "possync-bench: --nodes > 1 needs a shared store (--store postgresql://...)\n";
    return 2;
  }
  if (scenario == "coldstart" && c.nodes > 1) {
    std::cerr << "possync-bench: coldstart measures one server (--nodes 1)\n";
    return 2;
  }

  int status = 0;
  json::object result;
  result["scenario"] = scenario;
  json::object config;
  add_options_json(app, config);
  add_options_json(sub, config);
  result["config"] = std::move(config);
  try {
    if (scenario == "coldstart") {
      result["result"] = run_coldstart(c, cold, status);
    } else if (scenario == "floor") {
      floor.device_threads = c.threads;
      result["result"] = run_floor(floor);
    } else {
      Cluster cl;
      // One ServerProcess per node, all started the same way on the same store.
      std::vector<std::unique_ptr<ServerProcess>> servers;
      if (!c.server_bin.empty()) {
        json::array ports;
        for (unsigned i = 0; i < c.nodes; ++i) {
          auto& server = servers.emplace_back(std::make_unique<ServerProcess>());
          Target& t = cl.nodes.emplace_back();
          if (!server->start(c.server_bin, c.store, c.server_args, t, c.timeout)) return 2;
          ports.push_back(t.port);
        }
        result["server"] = fmt::format("spawned {} x{} (store {})", c.server_bin, c.nodes, c.store);
        result["server_ports"] = std::move(ports);
      } else {
        const auto urls = split_commas(c.url);
        if (!c.server_pids.empty() && c.server_pids.size() != urls.size()) {
          std::cerr << "possync-bench: --server-pid needs one pid per --url\n";
          return 2;
        }
        for (std::size_t i = 0; i < urls.size(); ++i) {
          Target& t = cl.nodes.emplace_back();
          if (!parse_url(urls[i], t)) {
            std::cerr << "possync-bench: cannot use --url " << urls[i] << "\n";
            return 2;
          }
          if (!c.server_pids.empty()) t.pid = c.server_pids[i];
        }
        if (cl.nodes.empty()) {
          std::cerr << "possync-bench: --url names no server\n";
          return 2;
        }
        result["server"] = c.url;
      }
      if (scenario == "fanout")
        result["result"] = run_fanout(c, cl, fan, "fanout", status);
      else if (scenario == "ramp")
        result["result"] = run_ramp(c, cl, ramp, status);
      else if (scenario == "connections")
        result["result"] = run_connections(c, cl, conn, status);
      else if (scenario == "catchup")
        result["result"] = run_catchup(c, cl, cu, status);
      else if (scenario == "rest")
        result["result"] = run_rest(c, cl, rest, status);
      if (!servers.empty()) {
        json::array codes;
        int worst = 0;
        for (auto& server : servers) {
          const int rc = server->stop();
          codes.push_back(rc);
          if (rc != 0) {
            worst = rc;
            std::cerr << server->log_tail();
          }
        }
        result["server_exit_code"] = worst;
        if (servers.size() > 1) result["server_exit_codes"] = std::move(codes);
        if (worst != 0) status = 1;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "possync-bench: " << e.what() << "\n";
    return 2;
  }
  result["status"] = status == 0 ? "ok" : "FAILED (lost, duplicated or errors; see above)";
  if (c.json)
    std::cout << possync::json_text(result) << "\n";
  else
    print_table(result);
  return status;
}
