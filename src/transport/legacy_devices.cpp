#include "transport/legacy_devices.h"

#include <spdlog/spdlog.h>

#include "common/ids.h"
#include "common/thread_name.h"
#include "protocol/close_codes.h"

namespace possync {
namespace {

constexpr auto kFullRefreshEvery = std::chrono::seconds(60);
constexpr auto kRetryEvery = std::chrono::seconds(1);
// Client text in a log line: an id as it is if it is a valid id, else a placeholder.
constexpr std::size_t kLoggedIdBytes = 128;

std::string loggable_id(std::string_view id) {
  return check_id(id, kLoggedIdBytes) ? std::string("(not a valid id)") : std::string(id);
}

// The enrolments of stored rows by restaurant. A row that no longer validates (written by a newer
// server, or by hand) is skipped with an error in the log: it admits nobody.
std::map<std::string, std::map<std::string, LegacyEnrolment, std::less<>>, std::less<>> enrolments(
    const std::vector<LegacyDevice>& rows) {
  std::map<std::string, std::map<std::string, LegacyEnrolment, std::less<>>, std::less<>> out;
  for (const auto& row : rows) {
    auto e = make_legacy_enrolment(row.networks, row.role);
    if (!e) {
      spdlog::error("ignoring the stored legacy device restaurant={} device={}: {}",
                    row.restaurant_id, row.device_id, e.error().message);
      continue;
    }
    out[row.restaurant_id].insert_or_assign(row.device_id, std::move(*e));
  }
  return out;
}

}  // namespace

LegacyDevices::LegacyDevices(Store& store, Hub& hub, Metrics& metrics)
    : store_(store),
      hub_(hub),
      metrics_(metrics),
      log_limit_({RateLimit{1.0 / 60, 1}, 4096}, std::chrono::steady_clock::now()) {}

Result<std::unique_ptr<LegacyDevices>> LegacyDevices::open(Store& store, Hub& hub,
                                                           Metrics& metrics) {
  std::unique_ptr<LegacyDevices> self(new LegacyDevices(store, hub, metrics));
  auto all = store.all_legacy_devices();
  if (!all) return all.error();
  self->replica_ = enrolments(*all);
  self->feed_ = store.open_legacy_device_feed();
  if (self->feed_) {
    self->thread_ = start_named_thread("possync-legacy", [p = self.get()] { p->run(); });
  }
  return self;
}

LegacyDevices::~LegacyDevices() {
  stop();
}

void LegacyDevices::stop() {
  {
    std::lock_guard lock(thread_mutex_);
    stopping_ = true;
  }
  if (feed_) feed_->interrupt();
  if (thread_.joinable()) thread_.join();
}

std::size_t LegacyDevices::size() const {
  std::shared_lock lock(mutex_);
  std::size_t n = 0;
  for (const auto& [restaurant, devices] : replica_) n += devices.size();
  return n;
}

Result<Principal> LegacyDevices::admit(const LegacyClaim& claim) {
  LegacyDecision decision;
  {
    std::shared_lock lock(mutex_);
    const LegacyEnrolment* enrolment = nullptr;
    if (auto r = replica_.find(claim.restaurant); r != replica_.end()) {
      if (auto d = r->second.find(claim.device); d != r->second.end()) enrolment = &d->second;
    }
    decision = admit_legacy(enrolment, claim.restaurant, claim.device, claim.address);
  }
  if (decision.principal) {
    metrics_.legacy_admitted.fetch_add(1, std::memory_order_relaxed);
    return std::move(*decision.principal);
  }
  (decision.refusal == LegacyRefusal::network ? metrics_.legacy_refused_network
                                              : metrics_.legacy_refused_not_enrolled)
      .fetch_add(1, std::memory_order_relaxed);
  log_refusal(claim, decision.refusal);
  return legacy_refused_error();
}

void LegacyDevices::log_refusal(const LegacyClaim& claim, LegacyRefusal reason) {
  if (!log_limit_.try_take(claim.address, std::chrono::steady_clock::now()).allowed) return;
  const auto address = parse_client_address(claim.address);
  spdlog::warn(
      "refused a request without a token from {}: restaurant={} device={} {} (--auth mixed; "
      "logged once per address and minute, possync_legacy_refused_total counts every one)",
      address ? address->to_string() : std::string("(not an address)"),
      loggable_id(claim.restaurant), loggable_id(claim.device),
      reason == LegacyRefusal::network ? "is enrolled, but not from this address's networks"
                                       : "is not enrolled as a legacy device");
}

bool LegacyDevices::admits(std::string_view restaurant, std::string_view device,
                           std::string_view address, Role role) const {
  auto r = replica_.find(restaurant);
  if (r == replica_.end()) return false;
  auto d = r->second.find(device);
  if (d == r->second.end()) return false;
  return d->second.role == role && d->second.admits(parse_client_address(address));
}

bool LegacyDevices::recheck(const Principal& p) const {
  std::shared_lock lock(mutex_);
  return admits(p.restaurant_id, p.device_id, p.address, p.role);
}

Result<std::size_t> LegacyDevices::refresh(const std::string& restaurant) {
  return refresh(restaurant, true);
}

Result<std::size_t> LegacyDevices::refresh_all() {
  return refresh_all(true);
}

Result<std::size_t> LegacyDevices::refresh(const std::string& restaurant, bool wake) {
  std::lock_guard refreshing(refresh_mutex_);
  auto rows = store_.legacy_devices(restaurant);
  if (!rows) {
    // The restaurant's enrolments just changed and cannot be read: fail closed, admit none of
    // its tokenless devices (open connections included) until a refresh succeeds.
    install(restaurant, {});
    retry_later(restaurant, wake);
    return rows.error();
  }
  auto fresh = enrolments(*rows);
  auto it = fresh.find(restaurant);
  return install(restaurant, it == fresh.end() ? Devices{} : std::move(it->second));
}

Result<std::size_t> LegacyDevices::refresh_all(bool wake) {
  std::lock_guard refreshing(refresh_mutex_);
  auto rows = store_.all_legacy_devices();
  if (!rows) {
    // Nothing says anything changed (the store is unreachable, so nobody writes enrolments
    // either): keep what is installed and try again shortly.
    retry_later("", wake);
    return rows.error();
  }
  auto fresh = enrolments(*rows);
  std::set<std::string> restaurants;
  {
    std::unique_lock lock(mutex_);
    for (const auto& [restaurant, devices] : replica_) restaurants.insert(restaurant);
    for (const auto& [restaurant, devices] : fresh) restaurants.insert(restaurant);
    replica_ = std::move(fresh);
  }
  std::size_t closed = 0;
  for (const auto& restaurant : restaurants) closed += close_revoked(restaurant);
  return closed;
}

void LegacyDevices::retry_later(const std::string& restaurant, bool wake) {
  if (!feed_) return;  // a single-process store: the next write's refresh tries again
  {
    std::lock_guard lock(thread_mutex_);
    failed_.insert(restaurant);
  }
  if (wake) feed_->interrupt();
}

std::size_t LegacyDevices::install(const std::string& restaurant, Devices devices) {
  {
    std::unique_lock lock(mutex_);
    if (devices.empty()) {
      replica_.erase(restaurant);
    } else {
      replica_.insert_or_assign(restaurant, std::move(devices));
    }
  }
  return close_revoked(restaurant);
}

std::size_t LegacyDevices::close_revoked(const std::string& restaurant) {
  std::size_t closed = 0;
  for (const auto& s : hub_.subscribers(restaurant)) {
    const DeviceStatus status = s->status();
    if (!status.legacy) continue;
    auto role = parse_role(status.role);
    bool admitted = false;
    if (role) {
      std::shared_lock lock(mutex_);
      admitted = admits(restaurant, status.device_id, status.address, *role);
    }
    if (admitted) continue;
    s->disconnect(kCloseByOperator, "legacy device enrolment withdrawn");
    ++closed;
  }
  if (closed > 0) {
    spdlog::warn(
        "closed {} tokenless connection(s) of restaurant={}: their legacy enrolment "
        "was removed or changed",
        closed, restaurant);
  }
  return closed;
}

void LegacyDevices::run() {
  auto last_full = std::chrono::steady_clock::now();
  bool retrying = false;
  for (;;) {
    {
      std::lock_guard lock(thread_mutex_);
      if (stopping_) return;
    }
    FeedEvents events = feed_->wait(retrying ? kRetryEvery : kFullRefreshEvery);
    std::set<std::string> todo;
    {
      std::lock_guard lock(thread_mutex_);
      if (stopping_) return;
      todo.swap(failed_);
    }
    bool full = todo.contains("") || events.resync ||
                std::chrono::steady_clock::now() - last_full >= kFullRefreshEvery;
    for (const auto& n : events.notices) {
      if (n.restaurant.empty()) full = true;
      todo.insert(n.restaurant);
    }
    retrying = false;
    if (full) {
      if (auto r = refresh_all(false); !r) {
        spdlog::warn("cannot read the legacy devices (keeping the enrolments read before): {}",
                     r.error().message);
        retrying = true;
      } else {
        last_full = std::chrono::steady_clock::now();
      }
      continue;
    }
    for (const auto& restaurant : todo) {
      if (auto r = refresh(restaurant, false); !r) {
        spdlog::warn(
            "cannot read the legacy devices of restaurant={} (its tokenless devices are "
            "refused until it works): {}",
            restaurant, r.error().message);
        retrying = true;
      }
    }
  }
}

Result<Principal> authenticate_caller(const Authenticator& auth, LegacyDevices* legacy,
                                      std::string_view token, const LegacyClaim& claim,
                                      std::int64_t now_s) {
  if (token.empty() && legacy != nullptr && auth.mode() == AuthMode::mixed) {
    return legacy->admit(claim);
  }
  return auth.authenticate(token, now_s);
}

}  // namespace possync
