// PostgresChangeFeed: LISTEN on a channel (possync_commits, possync_legacy_devices) on a dedicated
// connection (store/change_feed.h).
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "common/log.h"

#include <algorithm>
#include <charconv>

#include "store/pg_connection.h"
#include "store/postgres_store.h"

namespace possync {
namespace {

// "first:last:restaurant" (restaurant may be empty: any restaurant).
std::optional<CommitNotice> parse_notice(std::string_view payload) {
  CommitNotice n;
  const char* p = payload.data();
  const char* end = p + payload.size();
  auto r1 = std::from_chars(p, end, n.first_seq);
  if (r1.ec != std::errc() || r1.ptr == end || *r1.ptr != ':') return std::nullopt;
  auto r2 = std::from_chars(r1.ptr + 1, end, n.last_seq);
  if (r2.ec != std::errc() || r2.ptr == end || *r2.ptr != ':') return std::nullopt;
  n.restaurant.assign(r2.ptr + 1, end);
  return n;
}

class PostgresChangeFeed final : public ChangeFeed {
 public:
  PostgresChangeFeed(std::string url, const char* channel)
      : conn_(std::move(url)),
        channel_(channel),
        wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~PostgresChangeFeed() override {
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  FeedEvents wait(std::chrono::milliseconds timeout) override {
    FeedEvents events;
    if (!conn_.connected()) {
      try {
        conn_.ensure();
        conn_.exec(fmt::format("LISTEN {}", channel_).c_str());
      } catch (const PgError& e) {
        conn_.disconnect();
        if (!down_) slog::warn("change feed failed; retrying", {{"error", e.what()}});
        down_ = true;
        sleep(std::min(timeout, backoff_));
        backoff_ = std::min(backoff_ * 2, std::chrono::milliseconds(2000));
        return events;
      }
      if (down_) slog::info("change feed listening again");
      down_ = false;
      backoff_ = std::chrono::milliseconds(50);
      events.resync = true;  // whatever was committed while not listening was missed
      return events;
    }
    pollfd fds[2] = {{PQsocket(conn_.raw()), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    ::poll(fds, 2, static_cast<int>(timeout.count()));
    drain_wake();
    if (fds[0].revents != 0) {
      if (PQconsumeInput(conn_.raw()) == 0 || !conn_.connected()) {
        slog::warn("change feed connection lost", {{"error", PQerrorMessage(conn_.raw())}});
        conn_.disconnect();
        down_ = true;
        return events;
      }
    }
    while (PGnotify* n = PQnotifies(conn_.raw())) {
      if (auto notice = parse_notice(n->extra)) {
        events.notices.push_back(std::move(*notice));
      } else {
        slog::warn("change feed ignoring a malformed notice", {{"notice", n->extra}});
      }
      PQfreemem(n);
    }
    return events;
  }

  void interrupt() override {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }

 private:
  void sleep(std::chrono::milliseconds d) {
    pollfd fd{wake_fd_, POLLIN, 0};
    ::poll(&fd, 1, static_cast<int>(d.count()));
    drain_wake();
  }
  void drain_wake() {
    std::uint64_t v = 0;
    [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
  }

  PgConnection conn_;
  const char* channel_;
  int wake_fd_;
  bool down_ = false;
  std::chrono::milliseconds backoff_{50};
};

}  // namespace

std::unique_ptr<ChangeFeed> open_postgres_change_feed(const std::string& url, const char* channel) {
  return std::make_unique<PostgresChangeFeed>(url, channel);
}

}  // namespace possync
