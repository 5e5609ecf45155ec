#include "store/sqlite_verify.h"

#include <fmt/format.h>
#include <map>
#include <span>

#include "common/json_text.h"
#include "store/memory_store.h"
#include "store/sqlite_db.h"
#include "store/stored_rows.h"

namespace possync {
namespace {

// A difference found: ends the verification.
struct Difference {
  std::string what;
};

// At most `limit` characters of a JSON text, for a message.
std::string excerpt(const boost::json::object& o, std::size_t limit = 400) {
  std::string text = json_text(o);
  if (text.size() > limit) text = text.substr(0, limit) + "...";
  return text;
}

class Verifier {
 public:
  explicit Verifier(Db& db)
      : db_(db),
        restaurants_(db, "SELECT id, head_seq, pruned_seq FROM restaurants ORDER BY id"),
        log_(db, fmt::format("SELECT {} FROM log WHERE restaurant = ?1 ORDER BY seq", kLogColumns)
                     .c_str()),
        indexed_(db, "SELECT seq FROM change_ids WHERE restaurant = ?1 AND change_id = ?2"),
        change_ids_(db, "SELECT change_id, seq FROM change_ids WHERE restaurant = ?1"),
        records_(db,
                 "SELECT data_type, record_id, version, body FROM records WHERE restaurant = ?1 "
                 "ORDER BY data_type, record_id") {}

  VerifyResult run() {
    VerifyResult result;
    try {
      check_file();
      ResetOnExit guard{restaurants_};
      while (restaurants_.step()) {
        check_restaurant(std::string(restaurants_.text(0)), restaurants_.uint64(1),
                         restaurants_.uint64(2));
      }
    } catch (const Difference& d) {
      result.difference = d.what;
    }
    result.summary = summary_;
    return result;
  }

 private:
  void check_file() {
    if (auto problem = sqlite_integrity_problem(db_, true); !problem.empty()) {
      throw Difference{"SQLite integrity_check: " + problem};
    }
    Stmt orphans(db_,
                 "SELECT 'log', restaurant FROM log WHERE restaurant NOT IN "
                 "(SELECT id FROM restaurants) UNION ALL "
                 "SELECT 'change_ids', restaurant FROM change_ids WHERE restaurant NOT IN "
                 "(SELECT id FROM restaurants) UNION ALL "
                 "SELECT 'records', restaurant FROM records WHERE restaurant NOT IN "
                 "(SELECT id FROM restaurants) LIMIT 1");
    ResetOnExit guard{orphans};
    if (orphans.step()) {
      throw Difference{
          fmt::format("the {} table has rows of restaurant '{}', which the "
                      "restaurants table does not list",
                      orphans.text(0), orphans.text(1))};
    }
  }

  void check_restaurant(const std::string& id, std::uint64_t head, std::uint64_t pruned) {
    auto differs = [&](const std::string& what) {
      return Difference{fmt::format("restaurant '{}': {}", id, what)};
    };
    ++summary_.restaurants;
    if (pruned > head) {
      throw differs(fmt::format("the retention point {} is beyond the head {}", pruned, head));
    }
    const bool replay = pruned == 0;
    std::unique_ptr<Store> replayed = replay ? make_memory_store() : nullptr;

    // The log: pruned+1 .. head, each entry readable and indexed at its own seq.
    std::uint64_t expected = pruned + 1;
    {
      ResetOnExit guard{log_};
      log_.bind(1, id);
      while (log_.step()) {
        const std::uint64_t seq = log_.uint64(0);
        if (seq <= pruned) {
          throw differs(
              fmt::format("the log holds seq {}, at or below the retention point {}", seq, pruned));
        }
        if (seq != expected) {
          throw differs(seq > head
                            ? fmt::format("the log holds seq {}, beyond the head {}", seq, head)
                            : fmt::format("seq {} is missing from the log (the next "
                                          "entry is seq {})",
                                          expected, seq));
        }
        if (seq > head) {
          throw differs(fmt::format("the log holds seq {}, beyond the head {}", seq, head));
        }
        LogEntry entry;
        try {
          entry = log_entry_from_row(log_, id);
        } catch (const std::exception& e) {
          throw differs(fmt::format("the log entry of seq {} cannot be read: {}", seq, e.what()));
        }
        check_indexed(entry, differs);
        if (replay) replay_entry(*replayed, entry, differs);
        ++expected;
        ++summary_.log_entries;
      }
    }
    if (expected != head + 1) {
      throw differs(expected == head
                        ? fmt::format("seq {} (the head) is missing from the log", head)
                        : fmt::format("seqs {}..{} (up to the head) are missing "
                                      "from the log",
                                      expected, head));
    }

    // Every indexed change id (a logged change's or a twin's alias) points into the log.
    {
      ResetOnExit guard{change_ids_};
      change_ids_.bind(1, id);
      while (change_ids_.step()) {
        const std::uint64_t seq = change_ids_.uint64(1);
        if (seq <= pruned || seq > head) {
          throw differs(
              fmt::format("change id '{}' is indexed at seq {}, outside the retained log {}..{}",
                          change_ids_.text(0), seq, pruned + 1, head));
        }
        ++summary_.change_ids;
      }
    }

    check_records(id, head, replayed.get(), differs);
    if (replay) ++summary_.replayed;
  }

  template <class Differs>
  void check_indexed(const LogEntry& entry, const Differs& differs) {
    ResetOnExit guard{indexed_};
    indexed_.bind(1, entry.change.restaurant_id).bind(2, entry.change.change_id);
    if (!indexed_.step()) {
      throw differs(fmt::format("change id '{}' of seq {} is not indexed", entry.change.change_id,
                                entry.seq));
    }
    if (indexed_.uint64(0) != entry.seq) {
      throw differs(fmt::format("change id '{}' of seq {} is indexed at seq {} (logged twice?)",
                                entry.change.change_id, entry.seq, indexed_.uint64(0)));
    }
  }

  // Applies the entry as its commit did: at its commit time, through apply_batch.
  template <class Differs>
  static void replay_entry(Store& replayed, const LogEntry& entry, const Differs& differs) {
    ChangeRequest request;
    request.change = entry.change;
    // Retaining one entry keeps the replay's memory to the records; the change ids were checked
    // against the index above.
    // As committed: the restaurant rules refuse nothing and add nothing (store/store.h).
    auto outcomes =
        replayed.commit(std::span(&request, 1),
                        {.now_ms = entry.committed_at_ms, .retain_changes = 1, .replay = true});
    if (!outcomes || outcomes->size() != 1) {
      throw differs(fmt::format("replaying seq {} failed", entry.seq));
    }
    const Outcome& o = outcomes->front();
    if (o.status != OutcomeStatus::applied || o.seq != entry.seq) {
      throw differs(fmt::format("replaying seq {} did not apply it as seq {} ({})", entry.seq,
                                entry.seq, o.error.message));
    }
  }

  // Compares the stored records with the replay, or (history pruned) checks them one by one.
  template <class Differs>
  void check_records(const std::string& id, std::uint64_t head, Store* replayed,
                     const Differs& differs) {
    std::map<std::pair<std::size_t, std::string>, boost::json::object> expected;
    if (replayed != nullptr) {
      auto snap = replayed->snapshot(id);
      if (!snap) throw differs("the replay cannot be read: " + snap.error().message);
      for (std::size_t t = 0; t < snap->records.size(); ++t) {
        for (auto& record : snap->records[t]) {
          std::string record_id(record.at("id").as_string());
          expected.emplace(std::make_pair(t, std::move(record_id)), std::move(record));
        }
      }
    }
    ResetOnExit guard{records_};
    records_.bind(1, id);
    while (records_.step()) {
      const std::string type_name(records_.text(0));
      const std::string record_id(records_.text(1));
      const std::string name = type_name + "/" + record_id;
      const std::uint64_t version = records_.uint64(2);
      DataType type{};
      boost::json::object body;
      try {
        type = stored_data_type(type_name);
        body = parse_stored_object(records_.text(3));
      } catch (const std::exception& e) {
        throw differs(fmt::format("record {} cannot be read: {}", name, e.what()));
      }
      const auto* body_version = body.if_contains("version");
      const bool same_version =
          body_version && ((body_version->is_uint64() && body_version->as_uint64() == version) ||
                           (body_version->is_int64() && body_version->as_int64() >= 0 &&
                            static_cast<std::uint64_t>(body_version->as_int64()) == version));
      if (!same_version) {
        throw differs(
            fmt::format("record {}: its version column {} is not its body's version "
                        "{}",
                        name, version, body_version ? json_text(*body_version) : "(none)"));
      }
      const auto* body_id = body.if_contains("id");
      if (!body_id || !body_id->is_string() || body_id->as_string() != record_id) {
        throw differs(fmt::format("record {}: its body's id is not {}", name, record_id));
      }
      if (version == 0 || version > head) {
        throw differs(fmt::format("record {}: version {} is not a seq of the log (head {})", name,
                                  version, head));
      }
      if (replayed != nullptr) {
        auto it = expected.find({static_cast<std::size_t>(type), record_id});
        if (it == expected.end()) {
          throw differs(fmt::format(
              "record {} (version {}) is stored, but a replay of the log deletes it or never "
              "writes it",
              name, version));
        }
        if (it->second != body) {
          throw differs(
              fmt::format("record {} differs from a replay of the log: stored {}, "
                          "replayed {}",
                          name, excerpt(body), excerpt(it->second)));
        }
        expected.erase(it);
      }
      ++summary_.records;
    }
    if (!expected.empty()) {
      const auto& [key, record] = *expected.begin();
      throw differs(
          fmt::format("record {}/{} is missing; a replay of the log writes it (version "
                      "{})",
                      info(static_cast<DataType>(key.first)).name, key.second,
                      json_text(record.at("version"))));
    }
  }

  Db& db_;
  Stmt restaurants_, log_, indexed_, change_ids_, records_;
  VerifySummary summary_;
};

}  // namespace

Result<VerifyResult> verify_sqlite_store(const std::string& path) {
  try {
    Db db(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
    check_possync_schema(db);
    // One read transaction: one consistent state of the file throughout.
    db.exec("BEGIN");
    Verifier verifier(db);
    auto result = verifier.run();
    db.exec("COMMIT");
    return result;
  } catch (const std::exception& e) {
    return Error{errc::kStoreUnavailable, fmt::format("cannot verify {}: {}", path, e.what())};
  }
}

}  // namespace possync
