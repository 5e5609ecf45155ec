#include "store/postgres_store.h"

#include <fmt/format.h>

#include <limits>
#include <map>
#include <optional>
#include <set>

#include "store/apply.h"
#include "store/pg_connection.h"
#include "store/reader_pool.h"
#include "store/stored_rows.h"

namespace possync {
namespace {

// Schema versions, applied in order and recorded in schema_migrations. Never edit a released
// entry: add a new version (docs/scaling.md, "Migrations").
struct Migration {
  int version;
  const char* sql;
};
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE restaurants(
  id TEXT PRIMARY KEY,
  head_seq BIGINT NOT NULL,
  pruned_seq BIGINT NOT NULL
);
CREATE TABLE log(
  restaurant TEXT NOT NULL,
  seq BIGINT NOT NULL,
  change_id TEXT NOT NULL,
  data_type TEXT NOT NULL,
  action TEXT NOT NULL,
  record_id TEXT NOT NULL,
  data TEXT NOT NULL,
  device_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  committed_at BIGINT NOT NULL,
  PRIMARY KEY(restaurant, seq)
);
CREATE TABLE change_ids(
  restaurant TEXT NOT NULL,
  change_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY(restaurant, change_id)
);
CREATE INDEX change_ids_by_seq ON change_ids(restaurant, seq);
CREATE TABLE records(
  restaurant TEXT NOT NULL,
  data_type TEXT NOT NULL,
  record_id TEXT NOT NULL,
  version BIGINT NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY(restaurant, data_type, record_id)
);
)sql"},
};

// Serializes schema changes of every node using the same database ("possync" in ASCII).
constexpr const char* kMigrationLock = "SELECT pg_advisory_xact_lock(7381244438725190467)";

// Payloads above this are cut to "first:last:" (any restaurant); NOTIFY's limit is 8000 bytes.
constexpr std::size_t kMaxNotifyPayload = 7900;

// BIGINT text; values beyond its range (a limit of SIZE_MAX) are clamped.
std::string num(std::uint64_t v) {
  return std::to_string(std::min<std::uint64_t>(v, std::numeric_limits<std::int64_t>::max()));
}
std::string num(std::int64_t v) {
  return std::to_string(v);
}

LogHead head_from(const PgResult& r) {
  LogHead head;
  if (r.rows() == 0) return head;
  head.seq = r.uint64(0, 0);
  head.pruned_seq = r.uint64(0, 1);
  // A row is created (with seq 0) when a commit locks a restaurant it may not write to.
  head.exists = head.seq > 0;
  return head;
}

void rollback_quietly(PgConnection& conn) {
  if (!conn.connected()) return;
  try {
    conn.exec("ROLLBACK");
  } catch (const PgError&) {
    conn.disconnect();
  }
}

void migrate(PgConnection& conn) {
  conn.exec("BEGIN");
  try {
    conn.exec(kMigrationLock);
    conn.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
    const auto current = conn.exec("SELECT coalesce(max(version), 0) FROM schema_migrations");
    const std::int64_t found = current.int64(0, 0);
    const int latest = std::end(kMigrations)[-1].version;
    if (found > latest) {
      throw PgError(fmt::format("database schema version {} is newer than this server's {}; "
                                "upgrade the server",
                                found, latest),
                    false);
    }
    for (const auto& m : kMigrations) {
      if (m.version <= found) continue;
      conn.exec(m.sql);
      conn.exec(
          fmt::format("INSERT INTO schema_migrations(version) VALUES({})", m.version).c_str());
    }
    conn.exec("COMMIT");
  } catch (...) {
    rollback_quietly(conn);
    throw;
  }
}

// The writer connection; used by the commit pipeline's writer thread only.
class Writer final : public StoreTxn {
 public:
  explicit Writer(const std::string& url)
      : conn_(url,
              {
                  {"ensure_head",
                   "INSERT INTO restaurants(id, head_seq, pruned_seq) VALUES($1, 0, 0) "
                   "ON CONFLICT (id) DO NOTHING"},
                  {"lock_head",
                   "SELECT head_seq, pruned_seq FROM restaurants WHERE id = $1 FOR UPDATE"},
                  {"save_head",
                   "UPDATE restaurants SET head_seq = $2, pruned_seq = $3 WHERE id = $1"},
                  {"find_change",
                   "SELECT seq FROM change_ids WHERE restaurant = $1 AND change_id = $2"},
                  {"add_change",
                   "INSERT INTO change_ids(restaurant, change_id, seq) VALUES($1, $2, $3)"},
                  {"load_record",
                   "SELECT body FROM records WHERE restaurant = $1 AND data_type = $2 AND "
                   "record_id = $3"},
                  {"save_record",
                   "INSERT INTO records(restaurant, data_type, record_id, version, body) "
                   "VALUES($1, $2, $3, $4, $5) ON CONFLICT (restaurant, data_type, record_id) "
                   "DO UPDATE SET version = excluded.version, body = excluded.body"},
                  {"delete_record",
                   "DELETE FROM records WHERE restaurant = $1 AND data_type = $2 AND "
                   "record_id = $3"},
                  {"append_log",
                   "INSERT INTO log(restaurant, seq, change_id, data_type, action, record_id, "
                   "data, device_id, user_id, committed_at) "
                   "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"},
                  {"prune_log", "DELETE FROM log WHERE restaurant = $1 AND seq <= $2"},
                  {"prune_changes", "DELETE FROM change_ids WHERE restaurant = $1 AND seq <= $2"},
                  {"notify", "SELECT pg_notify($1, $2)"},
              }) {
    {
      // Statements are prepared on connect, so the schema must exist before conn_ connects.
      PgConnection setup(url);
      setup.ensure();
      migrate(setup);
    }
    conn_.ensure();
  }

  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) {
    if (batch.empty()) return std::vector<Outcome>{};
    // A connection the server closed while idle fails at BEGIN, before anything was sent: open
    // a new one and try once more.
    for (int attempt = 0;; ++attempt) {
      try {
        conn_.ensure();
        conn_.exec("BEGIN");
        break;
      } catch (const PgError& e) {
        if (e.connection_lost && attempt == 0) {
          conn_.disconnect();
          continue;
        }
        return Error{errc::kStoreUnavailable,
                     fmt::format("cannot begin transaction: {}", e.what())};
      }
    }
    try {
      locked_.clear();
      std::set<std::string_view> restaurants;
      for (const auto& r : batch) restaurants.insert(r.change.restaurant_id);
      for (const auto restaurant : restaurants) lock_head(restaurant);
      auto outcomes = apply_batch(*this, batch, options);
      for (const auto& [restaurant, heads] : locked_) {
        if (heads.saved.seq <= heads.loaded.seq) continue;
        std::string payload =
            fmt::format("{}:{}:{}", heads.loaded.seq + 1, heads.saved.seq, restaurant);
        if (payload.size() > kMaxNotifyPayload) {
          payload = fmt::format("{}:{}:", heads.loaded.seq + 1, heads.saved.seq);
        }
        conn_.run("notify", {kCommitChannel, payload});
      }
      conn_.exec("COMMIT");
      return outcomes;
    } catch (const std::exception& e) {
      rollback_quietly(conn_);
      return Error{errc::kStoreUnavailable, fmt::format("commit failed: {}", e.what())};
    }
  }

  LogHead load_head(std::string_view r) override {
    auto it = locked_.find(r);
    if (it == locked_.end()) return lock_head(r);
    return it->second.loaded;
  }
  void save_head(std::string_view r, const LogHead& head) override {
    conn_.run("save_head", {r, num(head.seq), num(head.pruned_seq)});
    locked_[std::string(r)].saved = head;
  }
  std::optional<std::uint64_t> find_change(std::string_view r, std::string_view id) override {
    const auto res = conn_.run("find_change", {r, id});
    if (res.rows() == 0) return std::nullopt;
    return res.uint64(0, 0);
  }
  void add_change_id(std::string_view r, std::string_view id, std::uint64_t seq) override {
    conn_.run("add_change", {r, id, num(seq)});
  }
  std::optional<boost::json::object> load_record(std::string_view r, DataType type,
                                                 std::string_view id) override {
    const auto res = conn_.run("load_record", {r, info(type).name, id});
    if (res.rows() == 0) return std::nullopt;
    return parse_stored_object(res.text(0, 0));
  }
  void save_record(std::string_view r, DataType type, std::string_view id,
                   const boost::json::object& record, std::uint64_t version) override {
    conn_.run("save_record",
              {r, info(type).name, id, num(version), serialize_stored_object(record)});
  }
  void delete_record(std::string_view r, DataType type, std::string_view id) override {
    conn_.run("delete_record", {r, info(type).name, id});
  }
  void append_log(const LogEntry& e) override {
    const Change& c = e.change;
    conn_.run("append_log", {c.restaurant_id, num(e.seq), c.change_id, info(c.data_type).name,
                             c.action, c.record_id, serialize_stored_object(c.data), c.device_id,
                             c.user_id, num(e.committed_at_ms)});
  }
  void prune(std::string_view r, std::uint64_t up_to_seq) override {
    conn_.run("prune_log", {r, num(up_to_seq)});
    conn_.run("prune_changes", {r, num(up_to_seq)});
  }

 private:
  // Locks the restaurant's head row for the rest of the transaction (creating it if needed).
  LogHead lock_head(std::string_view r) {
    conn_.run("ensure_head", {r});
    const LogHead head = head_from(conn_.run("lock_head", {r}));
    locked_[std::string(r)] = {head, head};
    return head;
  }

  struct Heads {
    LogHead loaded, saved;
  };
  PgConnection conn_;
  std::map<std::string, Heads, std::less<>> locked_;  // of the open transaction
};

std::vector<PgConnection::Statement> reader_statements() {
  return {
      {"head", "SELECT head_seq, pruned_seq FROM restaurants WHERE id = $1"},
      {"log", fmt::format("SELECT {} FROM log WHERE restaurant = $1 AND seq > $2 ORDER BY seq "
                          "LIMIT $3",
                          kLogColumns)},
      {"records", "SELECT data_type, body FROM records WHERE restaurant = $1"},
  };
}

class PostgresStore final : public Store {
 public:
  PostgresStore(std::string url, std::size_t readers)
      : url_(std::move(url)), writer_(url_), readers_(readers, [&] {
          return std::make_unique<PgConnection>(url_, reader_statements());
        }) {}

  Result<std::vector<Outcome>> commit(std::span<const ChangeRequest> batch,
                                      const CommitOptions& options) override {
    return writer_.commit(batch, options);
  }

  Result<LogPage> read_log(std::string_view r, std::uint64_t after, std::size_t limit) override {
    return with_reader<LogPage>(true, [&](PgConnection& c) {
      LogPage page;
      page.head = head_from(c.run("head", {r}));
      const auto rows = c.run("log", {r, num(after), num(static_cast<std::uint64_t>(limit))});
      page.entries.reserve(static_cast<std::size_t>(rows.rows()));
      for (int i = 0; i < rows.rows(); ++i)
        page.entries.push_back(log_entry_from_row(rows.row(i), r));
      return page;
    });
  }

  Result<Snapshot> snapshot(std::string_view r) override {
    return with_reader<Snapshot>(true, [&](PgConnection& c) {
      Snapshot snap;
      snap.head = head_from(c.run("head", {r}));
      const auto rows = c.run("records", {r});
      for (int i = 0; i < rows.rows(); ++i) {
        const auto type = stored_data_type(rows.text(i, 0));
        snap.records[static_cast<std::size_t>(type)].push_back(
            parse_stored_object(rows.text(i, 1)));
      }
      return snap;
    });
  }

  Result<LogHead> head(std::string_view r) override {
    return with_reader<LogHead>(false,
                                [&](PgConnection& c) { return head_from(c.run("head", {r})); });
  }

  Result<void> ping() override {
    auto r = with_reader<bool>(false, [](PgConnection& c) {
      c.exec("SELECT 1");
      return true;
    });
    if (!r) return r.error();
    return {};
  }

  std::unique_ptr<ChangeFeed> open_change_feed() override {
    return open_postgres_change_feed(url_);
  }

  std::string describe() const override { return redact_pg_url(url_); }

 private:
  // Runs `fn` on a pooled connection, in one REPEATABLE READ transaction if `snapshot`. A
  // connection found broken is reopened and the read tried once more.
  template <class T, class Fn>
  Result<T> with_reader(bool snapshot, Fn&& fn) {
    auto conn = readers_.checkout();
    std::optional<T> value;
    std::string error;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        conn->ensure();
        if (snapshot) conn->exec("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        value.emplace(fn(*conn));
        if (snapshot) conn->exec("COMMIT");
        break;
      } catch (const PgError& e) {
        value.reset();
        if (snapshot) rollback_quietly(*conn);
        error = e.what();
        if (!e.connection_lost) break;
        conn->disconnect();
      } catch (const std::exception& e) {
        value.reset();
        if (snapshot) rollback_quietly(*conn);
        error = e.what();
        break;
      }
    }
    if (!value) return Error{errc::kStoreUnavailable, fmt::format("read failed: {}", error)};
    return std::move(*value);
  }

  std::string url_;
  Writer writer_;
  ReaderPool<PgConnection> readers_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_postgres_store(const PostgresOptions& options) {
  try {
    return std::unique_ptr<Store>(
        std::make_unique<PostgresStore>(options.url, options.reader_connections));
  } catch (const std::exception& e) {
    return Error{errc::kStoreUnavailable, e.what()};
  }
}

}  // namespace possync
