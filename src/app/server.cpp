#include "app/server.h"
#include "common/log.h"
#include "common/thread_name.h"

#include <fmt/format.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/host_name.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "app/service_notify.h"
#include "app/token_command.h"
#include "store/open_store.h"
#include "store/restaurant_rules.h"
#include "sync/broker.h"
#include "sync/commit_pipeline.h"
#include "sync/hub.h"
#include "transport/commit_intake.h"
#include "transport/io_loops.h"
#include "transport/legacy_devices.h"
#include "transport/listener.h"
#include "transport/rest_api.h"

namespace net = boost::asio;

namespace possync {
namespace {

// A configuration file (--permissions-file, --rules-file) read and parsed by T::parse.
template <class T>
Result<T> parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return Error{errc::kInvalidField, "cannot read the file"};
  return T::parse(text.str());
}

}  // namespace

int run_server(const Config& config, const std::function<void(unsigned short)>& on_listening) {
  const std::size_t threads =
      config.threads > 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());

  std::vector<JwtKey> keys;
  if (config.auth != AuthMode::off) {
    bool created = false;
    auto loaded = configured_keys(config, &created);
    if (!loaded) {
      slog::critical("cannot load token signing keys", {{"error", loaded.error().message}});
      return 2;
    }
    if (created) {
      slog::warn(
          "created a key file with a new token signing key; issue device tokens with "
          "`possync-server token issue` (docs/security.md)",
          {{"path", config.jwt_secret_file}});
    }
    keys = std::move(*loaded);
  } else {
    slog::warn(
        "--auth off: any client that can reach this server can read and write every "
        "restaurant; use it only while devices cannot send tokens yet");
  }
  auto permissions = PermissionTable::defaults();
  if (!config.permissions_file.empty()) {
    auto parsed = parse_file<PermissionTable>(config.permissions_file);
    if (!parsed) {
      slog::critical("cannot use --permissions-file",
                     {{"path", config.permissions_file}, {"error", parsed.error().message}});
      return 2;
    }
    permissions = std::move(*parsed);
  }
  const Authenticator auth(config.auth, std::move(keys), std::move(permissions));
  std::optional<RestaurantRules> rules;
  if (!config.rules_file.empty()) {
    auto parsed = parse_file<RestaurantRules>(config.rules_file);
    if (!parsed) {
      spdlog::critical("--rules-file {}: {}", config.rules_file, parsed.error().message);
      return 2;
    }
    rules = std::move(*parsed);
  }

  std::shared_ptr<TlsContext> tls;
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    slog::critical("--tls-cert and --tls-key go together");
    return 2;
  }
  if (!config.tls_cert.empty()) {
    auto loaded = TlsContext::load(config.tls_cert, config.tls_key);
    if (!loaded) {
      slog::critical("cannot load the TLS certificate", {{"error", loaded.error().message}});
      return 2;
    }
    tls = std::move(*loaded);
  }

  auto store = open_store(config.store, std::max<std::size_t>(4, threads * 2));
  if (!store) {
    slog::critical("cannot open the store", {{"error", store.error().message}});
    return 1;
  }
  Store& db = **store;

  // Outlives the sessions: deliveries posted to them hold charges on it until destroyed.
  Backpressure backpressure({config.max_queued_changes, config.max_fanout_backlog});
  // Declared next so it is destroyed last but one: sessions (held by the hub and by queued
  // handlers) close their sockets through it.
  IoLoops loops(threads);
  net::io_context& ioc = loops.context(0);
  Metrics metrics;
  Hub hub(render_live_change, &loops, &backpressure);
  // A store shared with other processes (PostgreSQL) has a feed of every process's commits: the
  // broker publishes them, and this process's own, in seq order (docs/scaling.md).
  std::unique_ptr<Broker> broker;
  if (auto feed = db.open_change_feed()) {
    broker = std::make_unique<Broker>(db, hub, std::move(feed),
                                      Broker::Options{config.catchup_page, &backpressure});
  }
  CommitPipeline pipeline(
      db,
      {.max_batch = config.commit_batch,
       .retain_changes = config.retain_changes,
       .rules = rules ? &*rules : nullptr,
       .metrics = &metrics,
       .backpressure = &backpressure,
       .loops = &loops,
       .commit_on_caller = db.commits_in_memory()},
      [&hub, b = broker.get()](std::span<const Outcome> outcomes, LoopTasks& tasks) {
        if (b) {
          // The broker hands its deliveries over at once, under its lock: its own catch-ups
          // publish from another thread, and the loops must get both in seq order.
          b->publish_local(outcomes);
        } else {
          hub.publish(outcomes, &tasks);
        }
      });
  // --auth mixed: the devices admitted without a token, read from the store (and, in a cluster,
  // kept up to date from its feed).
  std::unique_ptr<LegacyDevices> legacy;
  if (config.auth == AuthMode::mixed) {
    auto opened = LegacyDevices::open(db, hub, metrics);
    if (!opened) {
      spdlog::critical("cannot read the legacy devices: {}", opened.error().message);
      return 1;
    }
    legacy = std::move(*opened);
    spdlog::warn(
        "--auth mixed: devices without a token are admitted if enrolled as legacy devices "
        "({} enrolled; /api/admin/restaurants/:id/legacy-devices), from their networks",
        legacy->size());
  }
  CommitIntake intake(pipeline, loops, &backpressure);
  SecretHasher hasher(std::max<std::size_t>(1, threads / 2), HashParams{}, 64);
  Admission admission(config);
  ServerContext ctx{config,    loops,       intake,       db,
                    hub,       pipeline,    metrics,      auth,
                    hasher,    admission,   backpressure, {config.max_id_bytes, 64},
                    tls.get(), legacy.get()};
  RestApi api(ctx);

  boost::system::error_code ec;
  auto address = net::ip::make_address(config.host, ec);
  if (ec) {
    slog::critical("invalid --host", {{"host", config.host}, {"error", ec.message()}});
    return 2;
  }
  auto listener = std::make_shared<Listener>(loops, ctx, api);
  auto bound = listener->open({address, config.port});
  if (!bound) {
    slog::critical("cannot listen", {{"error", bound.error().message}});
    return 1;
  }
  ctx.node = fmt::format("{}:{}", boost::asio::ip::host_name(), bound->port());
  listener->start();
  const std::string serving =
      fmt::format("serving on {}:{}", bound->address().to_string(), bound->port());

  // Shutdown: stop accepting, close WebSockets with 1001, then stop once they are gone.
  net::steady_timer drain_timer(ioc);
  const auto deadline = std::chrono::steady_clock::now() + config.shutdown_timeout;
  std::function<void()> wait_for_drain = [&] {
    if (hub.connection_count() == 0 || std::chrono::steady_clock::now() >= deadline) {
      loops.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(50));
    drain_timer.async_wait([&](boost::system::error_code) { wait_for_drain(); });
  };
  net::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](boost::system::error_code e, int signal) {
    if (e) return;
    slog::info("shutting down", {{"signal", signal}});
    notify_stopping();
    ctx.stopping = true;
    listener->stop();
    // Changes arriving from now on are refused (shutting_down); close the WebSockets once every
    // change received before is committed and its ack queued.
    pipeline.stop_intake();
    pipeline.flush([&] {
      net::post(ioc, [&] {
        for (auto& s : hub.all_subscribers()) s->shutdown();
        wait_for_drain();
      });
    });
  });

  // SIGHUP: read the TLS certificate and key again (new connections use them).
  net::signal_set hangup(ioc, SIGHUP);
  std::function<void()> wait_for_hangup = [&] {
    hangup.async_wait([&](boost::system::error_code e, int) {
      if (e) return;
      notify_reloading();
      if (!tls) {
        slog::info("SIGHUP: no TLS certificate to reload");
      } else if (auto reloaded = tls->reload(); !reloaded) {
        slog::error("SIGHUP: keeping the current TLS certificate",
                    {{"error", reloaded.error().message}});
      } else {
        slog::info("SIGHUP: TLS certificate reloaded", {{"path", config.tls_cert}});
      }
      notify_ready(serving);
      wait_for_hangup();
    });
  };
  wait_for_hangup();

  slog::info("possync listening", {{"address", bound->address().to_string()},
                                   {"port", bound->port()},
                                   {"scheme", tls ? "https, wss" : "http, ws"},
                                   {"threads", threads},
                                   {"store", db.describe()}});
  if (on_listening) on_listening(bound->port());
  // Told from inside the running loop: by then the listener accepts and requests are answered.
  net::post(ioc, [&serving] { notify_ready(serving); });

  loops.run();

  // Every change received before the sockets closed is committed before we exit.
  pipeline.stop();
  if (broker) broker->stop();
  if (legacy) legacy->stop();
  hub.clear();
  slog::info("shutdown complete");
  return 0;
}

}  // namespace possync
