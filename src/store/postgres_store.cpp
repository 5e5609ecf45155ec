#include "store/postgres_store.h"

#include <fmt/format.h>

#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>

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
    {2, R"sql(
CREATE TABLE legacy_devices(
  restaurant TEXT NOT NULL,
  device_id TEXT NOT NULL,
  networks TEXT NOT NULL,
  role TEXT NOT NULL,
  enrolled_at BIGINT NOT NULL,
  PRIMARY KEY(restaurant, device_id)
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

// The head in columns `col` and `col + 1` of the first row.
LogHead head_from(const PgResult& r, int col = 0) {
  LogHead head;
  if (r.rows() == 0) return head;
  head.seq = r.uint64(0, col);
  head.pruned_seq = r.uint64(0, col + 1);
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
//
// A batch costs two round trips, whatever its size (libpq pipeline mode, PgConnection::queue):
// 1. BEGIN; create and lock the head rows of its restaurants; read every change id and record the
//    batch may look up (one statement each, arrays as parameters).
// 2. apply_batch() runs against what was read; the writes it makes are kept and then sent as one
//    statement per table (records, log, change ids, heads, notices), followed by COMMIT.
// Statements in a pipeline run in order, so the reads of step 1 see every commit made before the
// locks were granted, as before. The restaurant rules rely on this: a print job's ticket (read in
// step 1 with the change ids) and the order holding a table (read when needed, later in the same
// transaction) are read under the head locks in READ COMMITTED, so every statement sees what the
// previous holder of the lock committed, from any node; two nodes committing for one restaurant
// take turns on its head row.
class Writer final : public StoreTxn {
 public:
  explicit Writer(const std::string& url)
      : conn_(
            url,
            {
                {"ensure_heads",
                 "INSERT INTO restaurants(id, head_seq, pruned_seq) "
                 "SELECT id, 0, 0 FROM unnest($1::text[]) AS id ORDER BY id "
                 "ON CONFLICT (id) DO NOTHING"},
                {"lock_heads",
                 "SELECT id, head_seq, pruned_seq FROM restaurants WHERE id = ANY($1::text[]) "
                 "ORDER BY id FOR UPDATE"},
                {"find_changes",
                 "SELECT k.restaurant, k.change_id, c.seq "
                 "FROM unnest($1::text[], $2::text[]) AS k(restaurant, change_id) "
                 "JOIN change_ids c ON c.restaurant = k.restaurant AND c.change_id = k.change_id"},
                {"load_records",
                 "SELECT k.restaurant, k.data_type, k.record_id, r.body "
                 "FROM unnest($1::text[], $2::text[], $3::text[]) AS k(restaurant, data_type, "
                 "record_id) JOIN records r ON r.restaurant = k.restaurant AND "
                 "r.data_type = k.data_type AND r.record_id = k.record_id"},
                {"save_records",
                 "INSERT INTO records(restaurant, data_type, record_id, version, body) "
                 "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], "
                 "$5::text[]) ON CONFLICT (restaurant, data_type, record_id) "
                 "DO UPDATE SET version = excluded.version, body = excluded.body"},
                {"delete_records",
                 "DELETE FROM records r "
                 "USING unnest($1::text[], $2::text[], $3::text[]) AS k(restaurant, data_type, "
                 "record_id) WHERE r.restaurant = k.restaurant AND r.data_type = k.data_type "
                 "AND r.record_id = k.record_id"},
                {"append_log",
                 "INSERT INTO log(restaurant, seq, change_id, data_type, action, record_id, "
                 "data, device_id, user_id, committed_at) "
                 "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], "
                 "$5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[])"},
                {"add_changes",
                 "INSERT INTO change_ids(restaurant, change_id, seq) "
                 "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"},
                {"prune_log", "DELETE FROM log WHERE restaurant = $1 AND seq <= $2"},
                {"prune_changes", "DELETE FROM change_ids WHERE restaurant = $1 AND seq <= $2"},
                {"save_heads",
                 "UPDATE restaurants AS h SET head_seq = k.head_seq, pruned_seq = k.pruned_seq "
                 "FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS k(id, head_seq, "
                 "pruned_seq) WHERE h.id = k.id"},
                {"notify", "SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload"},
                // For a lookup outside what step 1 read: a stock alert's change id, the order
                // that holds a table (rare; after the locks, so they see the latest commits).
                {"find_change",
                 "SELECT seq FROM change_ids WHERE restaurant = $1 AND change_id = $2"},
                {"load_record",
                 "SELECT body FROM records WHERE restaurant = $1 AND data_type = $2 AND "
                 "record_id = $3"},
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
    // A connection the server closed while idle fails at the first round trip, before anything
    // was written: open a new one and try once more.
    for (int attempt = 0;; ++attempt) {
      try {
        conn_.ensure();
        begin(batch);
        break;
      } catch (const PgError& e) {
        rollback_quietly(conn_);
        if (e.connection_lost && attempt == 0) {
          conn_.disconnect();
          continue;
        }
        return Error{errc::kStoreUnavailable,
                     fmt::format("cannot begin transaction: {}", e.what())};
      }
    }
    try {
      auto outcomes = apply_batch(*this, batch, options);
      write_and_commit();
      return outcomes;
    } catch (const std::exception& e) {
      rollback_quietly(conn_);
      return Error{errc::kStoreUnavailable, fmt::format("commit failed: {}", e.what())};
    }
  }

  LogHead load_head(std::string_view r) override {
    auto it = heads_.find(r);
    if (it == heads_.end()) throw PgError(fmt::format("restaurant '{}' was not locked", r), false);
    return it->second.loaded;
  }
  void save_head(std::string_view r, const LogHead& head) override {
    auto it = heads_.find(r);
    if (it == heads_.end()) throw PgError(fmt::format("restaurant '{}' was not locked", r), false);
    it->second.saved = head;
    it->second.dirty = true;
  }
  std::optional<std::uint64_t> find_change(std::string_view r, std::string_view id) override {
    auto key = std::make_pair(std::string(r), std::string(id));
    auto it = change_ids_.find(key);
    if (it != change_ids_.end()) return it->second;
    const auto res = conn_.run("find_change", {r, id});
    std::optional<std::uint64_t> seq;
    if (res.rows() > 0) seq = res.uint64(0, 0);
    change_ids_.emplace(std::move(key), seq);
    return seq;
  }
  void add_change_id(std::string_view r, std::string_view id, std::uint64_t seq) override {
    change_ids_[std::make_pair(std::string(r), std::string(id))] = seq;
    new_ids_.restaurant.add(r);
    new_ids_.change_id.add(id);
    new_ids_.seq.add(seq);
  }
  std::optional<boost::json::object> load_record(std::string_view r, DataType type,
                                                 std::string_view id) override {
    RecordKey key{std::string(r), std::string(info(type).name), std::string(id)};
    auto it = records_.find(key);
    if (it == records_.end()) {
      const auto res = conn_.run("load_record", {r, info(type).name, id});
      RecordState state;
      if (res.rows() > 0) state.body = parse_stored_object(res.text(0, 0));
      it = records_.emplace(std::move(key), std::move(state)).first;
    }
    return it->second.body;
  }
  void save_record(std::string_view r, DataType type, std::string_view id,
                   boost::json::object record, std::uint64_t version) override {
    auto& state =
        records_[RecordKey{std::string(r), std::string(info(type).name), std::string(id)}];
    state.body = std::move(record);
    state.version = version;
    state.dirty = true;
  }
  void delete_record(std::string_view r, DataType type, std::string_view id) override {
    auto& state =
        records_[RecordKey{std::string(r), std::string(info(type).name), std::string(id)}];
    state.body.reset();
    state.dirty = true;
  }
  void append_log(const std::shared_ptr<const LogEntry>& entry) override {
    const LogEntry& e = *entry;
    const Change& c = e.change;
    log_.restaurant.add(c.restaurant_id);
    log_.seq.add(e.seq);
    log_.change_id.add(c.change_id);
    log_.data_type.add(info(c.data_type).name);
    log_.action.add(c.action);
    log_.record_id.add(c.record_id);
    log_.data.add(serialize_stored_object(c.data));
    log_.device_id.add(c.device_id);
    log_.user_id.add(c.user_id);
    log_.committed_at.add(e.committed_at_ms);
  }
  void prune(std::string_view r, std::uint64_t up_to_seq) override {
    prunes_.emplace_back(std::string(r), up_to_seq);
  }

 private:
  // Round trip 1: BEGIN, lock the heads, read what the batch may look up.
  void begin(std::span<const ChangeRequest> batch) {
    heads_.clear();
    change_ids_.clear();
    records_.clear();
    log_ = {};
    new_ids_ = {};
    prunes_.clear();

    std::set<std::string_view> restaurants;
    PgArray ids_restaurant, ids_change_id, rec_restaurant, rec_type, rec_id;
    for (const auto& req : batch) {
      const Change& c = req.change;
      restaurants.insert(c.restaurant_id);
      for (const std::string* id : {&c.change_id, &req.twin_of}) {
        if (id->empty()) continue;
        ids_restaurant.add(c.restaurant_id);
        ids_change_id.add(*id);
        change_ids_.emplace(std::make_pair(c.restaurant_id, *id), std::nullopt);
      }
      if (auto key = rule_lookup_key(req)) {  // a print job's ticket
        ids_restaurant.add(c.restaurant_id);
        ids_change_id.add(*key);
        change_ids_.emplace(std::make_pair(c.restaurant_id, std::move(*key)), std::nullopt);
      }
      rec_restaurant.add(c.restaurant_id);
      rec_type.add(info(c.data_type).name);
      rec_id.add(c.record_id);
      records_.emplace(RecordKey{c.restaurant_id, info(c.data_type).name, c.record_id},
                       RecordState{});
    }
    PgArray restaurant_ids;
    for (const auto r : restaurants) restaurant_ids.add(r);
    const std::string restaurants_text = restaurant_ids.text();

    // READ COMMITTED whatever the database's default: each statement must see what the previous
    // holder of a head lock committed (under REPEATABLE READ, locking a head another node moved
    // on fails with a serialization error).
    conn_.queue_sql("BEGIN ISOLATION LEVEL READ COMMITTED");
    conn_.queue("ensure_heads", {restaurants_text});
    conn_.queue("lock_heads", {restaurants_text});
    conn_.queue("find_changes", {ids_restaurant.text(), ids_change_id.text()});
    conn_.queue("load_records", {rec_restaurant.text(), rec_type.text(), rec_id.text()});
    const auto results = conn_.sync();

    const PgResult& locked = results[2];
    for (int i = 0; i < locked.rows(); ++i) {
      LogHead head;
      head.seq = locked.uint64(i, 1);
      head.pruned_seq = locked.uint64(i, 2);
      // A row is created (with seq 0) when a commit locks a restaurant it may not write to.
      head.exists = head.seq > 0;
      heads_[std::string(locked.text(i, 0))] = {head, head, false};
    }
    if (heads_.size() != restaurants.size()) {
      throw PgError("the head rows of the batch's restaurants could not all be locked", false);
    }
    const PgResult& found = results[3];
    for (int i = 0; i < found.rows(); ++i) {
      change_ids_[std::make_pair(std::string(found.text(i, 0)), std::string(found.text(i, 1)))] =
          found.uint64(i, 2);
    }
    const PgResult& recs = results[4];
    for (int i = 0; i < recs.rows(); ++i) {
      records_[RecordKey{std::string(recs.text(i, 0)), std::string(recs.text(i, 1)),
                         std::string(recs.text(i, 2))}]
          .body = parse_stored_object(recs.text(i, 3));
    }
  }

  // Round trip 2: the batch's writes, one statement per table, the notices, COMMIT.
  void write_and_commit() {
    PgArray save_r, save_t, save_id, save_version, save_body, del_r, del_t, del_id;
    for (const auto& [key, state] : records_) {
      if (!state.dirty) continue;
      const auto& [r, type, id] = key;
      if (state.body) {
        save_r.add(r);
        save_t.add(type);
        save_id.add(id);
        save_version.add(state.version);
        save_body.add(serialize_stored_object(*state.body));
      } else {
        del_r.add(r);
        del_t.add(type);
        del_id.add(id);
      }
    }
    if (save_r.size() > 0) {
      conn_.queue("save_records", {save_r.text(), save_t.text(), save_id.text(),
                                   save_version.text(), save_body.text()});
    }
    if (del_r.size() > 0)
      conn_.queue("delete_records", {del_r.text(), del_t.text(), del_id.text()});
    if (log_.seq.size() > 0) {
      conn_.queue("append_log", {log_.restaurant.text(), log_.seq.text(), log_.change_id.text(),
                                 log_.data_type.text(), log_.action.text(), log_.record_id.text(),
                                 log_.data.text(), log_.device_id.text(), log_.user_id.text(),
                                 log_.committed_at.text()});
    }
    if (new_ids_.seq.size() > 0) {
      conn_.queue("add_changes",
                  {new_ids_.restaurant.text(), new_ids_.change_id.text(), new_ids_.seq.text()});
    }
    // After the inserts: a small retention window may prune entries of this very batch.
    for (const auto& [r, up_to] : prunes_) {
      conn_.queue("prune_log", {r, num(up_to)});
      conn_.queue("prune_changes", {r, num(up_to)});
    }
    PgArray head_id, head_seq, head_pruned, payloads;
    for (const auto& [r, heads] : heads_) {
      if (!heads.dirty) continue;
      head_id.add(r);
      head_seq.add(heads.saved.seq);
      head_pruned.add(heads.saved.pruned_seq);
      if (heads.saved.seq <= heads.loaded.seq) continue;
      std::string payload = fmt::format("{}:{}:{}", heads.loaded.seq + 1, heads.saved.seq, r);
      if (payload.size() > kMaxNotifyPayload) {
        payload = fmt::format("{}:{}:", heads.loaded.seq + 1, heads.saved.seq);
      }
      payloads.add(payload);
    }
    if (head_id.size() > 0) {
      conn_.queue("save_heads", {head_id.text(), head_seq.text(), head_pruned.text()});
    }
    if (payloads.size() > 0) conn_.queue("notify", {kCommitChannel, payloads.text()});
    conn_.queue_sql("COMMIT");
    conn_.sync();
  }

  struct Heads {
    LogHead loaded, saved;
    bool dirty = false;
  };
  using RecordKey = std::tuple<std::string, std::string, std::string>;  // restaurant, type, id
  struct RecordState {
    std::optional<boost::json::object> body;  // none: absent (or deleted)
    std::uint64_t version = 0;
    bool dirty = false;  // written by this transaction
  };
  struct LogRows {
    PgArray restaurant, seq, change_id, data_type, action, record_id, data, device_id, user_id,
        committed_at;
  };
  struct ChangeIdRows {
    PgArray restaurant, change_id, seq;
  };

  PgConnection conn_;
  // The open transaction: locked heads, change ids and records as this transaction sees them,
  // and the writes not sent yet.
  std::map<std::string, Heads, std::less<>> heads_;
  std::map<std::pair<std::string, std::string>, std::optional<std::uint64_t>> change_ids_;
  std::map<RecordKey, RecordState> records_;
  LogRows log_;
  ChangeIdRows new_ids_;
  std::vector<std::pair<std::string, std::uint64_t>> prunes_;
};

std::vector<PgConnection::Statement> reader_statements() {
  return {
      {"head", "SELECT head_seq, pruned_seq FROM restaurants WHERE id = $1"},
      // One statement, hence one snapshot: the page and the head it belongs to, in one round
      // trip. One row per entry (log columns first, then the head), or one row with the log
      // columns null when there is none; no row when the restaurant has no head.
      {"log_page",
       fmt::format("SELECT l.*, h.head_seq, h.pruned_seq FROM restaurants h LEFT JOIN LATERAL "
                   "(SELECT {} FROM log WHERE restaurant = h.id AND seq > $2 ORDER BY seq "
                   "LIMIT $3) l ON true WHERE h.id = $1",
                   kLogColumns)},
      {"records", "SELECT data_type, body FROM records WHERE restaurant = $1"},
      // Legacy devices: written on these connections too (rarely, by the admin API), each
      // write one transaction with its notice.
      {"legacy_put",
       "INSERT INTO legacy_devices(restaurant, device_id, networks, role, enrolled_at) "
       "VALUES($1, $2, $3, $4, $5) ON CONFLICT (restaurant, device_id) DO UPDATE SET "
       "networks = excluded.networks, role = excluded.role, enrolled_at = excluded.enrolled_at "
       "RETURNING (xmax = 0)"},
      {"legacy_remove",
       "DELETE FROM legacy_devices WHERE restaurant = $1 AND device_id = $2 RETURNING 1"},
      {"legacy_notify", "SELECT pg_notify($1, $2)"},
      {"legacy_list", fmt::format("SELECT {} FROM legacy_devices WHERE restaurant = $1 "
                                  "ORDER BY device_id COLLATE \"C\"",
                                  kLegacyDeviceColumns)},
      {"legacy_all", fmt::format("SELECT {} FROM legacy_devices "
                                 "ORDER BY restaurant COLLATE \"C\", device_id COLLATE \"C\"",
                                 kLegacyDeviceColumns)},
  };
}

// The notice of a change to `restaurant`'s legacy devices ("0:0:<restaurant>", or "0:0:" for any
// restaurant when the id is too long for a notification).
std::string legacy_notice(std::string_view restaurant) {
  std::string payload = fmt::format("0:0:{}", restaurant);
  if (payload.size() > kMaxNotifyPayload) payload = "0:0:";
  return payload;
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
    return with_reader<LogPage>(false, [&](PgConnection& c) {
      const auto rows = c.run("log_page", {r, num(after), num(static_cast<std::uint64_t>(limit))});
      LogPage page;
      page.head = head_from(rows, rows.columns() - 2);
      page.entries.reserve(static_cast<std::size_t>(rows.rows()));
      for (int i = 0; i < rows.rows() && !rows.is_null(i, 0); ++i)
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
    return open_postgres_change_feed(url_, kCommitChannel);
  }

  Result<bool> put_legacy_device(const LegacyDevice& d) override {
    return legacy_write(d.restaurant_id, [&](PgConnection& c) {
      const auto r =
          c.run("legacy_put", {d.restaurant_id, d.device_id, serialize_networks(d.networks), d.role,
                               std::to_string(d.enrolled_at_ms)});
      return r.rows() == 1 && r.text(0, 0) == "t";
    });
  }
  Result<bool> remove_legacy_device(std::string_view restaurant, std::string_view device) override {
    return legacy_write(restaurant, [&](PgConnection& c) {
      return c.run("legacy_remove", {restaurant, device}).rows() > 0;
    });
  }
  Result<std::vector<LegacyDevice>> legacy_devices(std::string_view restaurant) override {
    return with_reader<std::vector<LegacyDevice>>(
        false, [&](PgConnection& c) { return legacy_rows(c.run("legacy_list", {restaurant})); });
  }
  Result<std::vector<LegacyDevice>> all_legacy_devices() override {
    return with_reader<std::vector<LegacyDevice>>(
        false, [&](PgConnection& c) { return legacy_rows(c.run("legacy_all", {})); });
  }
  std::unique_ptr<ChangeFeed> open_legacy_device_feed() override {
    return open_postgres_change_feed(url_, kLegacyDeviceChannel);
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

  static std::vector<LegacyDevice> legacy_rows(const PgResult& rows) {
    std::vector<LegacyDevice> out;
    out.reserve(static_cast<std::size_t>(rows.rows()));
    for (int i = 0; i < rows.rows(); ++i) out.push_back(legacy_device_from_row(rows.row(i)));
    return out;
  }

  // Runs `fn` and the notice for `restaurant` in one transaction on a pooled connection.
  template <class Fn>
  Result<bool> legacy_write(std::string_view restaurant, Fn&& fn) {
    return with_reader<bool>(false, [&](PgConnection& c) {
      c.exec("BEGIN");
      try {
        const bool result = fn(c);
        c.run("legacy_notify", {kLegacyDeviceChannel, legacy_notice(restaurant)});
        c.exec("COMMIT");
        return result;
      } catch (...) {
        rollback_quietly(c);
        throw;
      }
    });
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
