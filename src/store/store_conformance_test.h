// The Store conformance suite (store/store.h): the fixture and helpers shared by the test files
// that instantiate it. The TEST_P cases are in store_conformance_test.cpp; each backend's test
// file instantiates them with its StoreFactory (sqlite_store_test.cpp: memory and SQLite;
// postgres_store_test.cpp: PostgreSQL).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "store/store.h"

namespace possync::store_test {

namespace json = boost::json;
namespace fs = std::filesystem;

inline constexpr std::int64_t kNow = 1795664741123;  // 2026-11-26T03:45:41.123Z
inline constexpr const char* kNowIso = "2026-11-26T03:45:41.123Z";

// ---- helpers ----

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "possync-store-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct ChangeSpec {
  std::string restaurant = "r1";
  std::string change_id;
  std::string record_id = "rec-1";
  std::string action = "updated";
  DataType type = DataType::orders;
  std::string data = "{}";
  std::optional<std::uint64_t> base_version;
  std::string twin_of;
  std::string device = "dev-1";
  std::string user = "user-1";
};

inline ChangeRequest request(const ChangeSpec& s) {
  ChangeRequest r;
  r.change.restaurant_id = s.restaurant;
  r.change.device_id = s.device;
  r.change.user_id = s.user;
  r.change.change_id = s.change_id;
  r.change.data_type = s.type;
  r.change.action = s.action;
  r.change.record_id = s.record_id;
  r.change.data = json::parse(s.data).as_object();
  r.change.base_version = s.base_version;
  r.twin_of = s.twin_of;
  return r;
}

// A change request for restaurant `restaurant` updating an order with `data`.
inline ChangeRequest upd(std::string change_id, std::string record_id, std::string data = "{}",
                         std::string restaurant = "r1") {
  ChangeSpec s;
  s.restaurant = std::move(restaurant);
  s.change_id = std::move(change_id);
  s.record_id = std::move(record_id);
  s.data = std::move(data);
  return request(s);
}

inline const json::object* find_record(const Snapshot& snap, DataType type, std::string_view id) {
  for (const auto& r : snap.records[static_cast<std::size_t>(type)]) {
    const auto* v = r.if_contains("id");
    if (v != nullptr && v->is_string() && v->get_string() == id) return &r;
  }
  return nullptr;
}

// The record as the store has it now, or null if it does not exist (or cannot be read).
inline json::value record_of(Store& store, std::string_view restaurant, DataType type,
                             std::string_view id) {
  auto snap = store.snapshot(restaurant);
  if (!snap) {
    ADD_FAILURE() << "snapshot failed: " << snap.error().message;
    return nullptr;
  }
  const json::object* r = find_record(*snap, type, id);
  return r ? json::value(*r) : json::value(nullptr);
}

// A member of that record, or null.
inline json::value field_of(Store& store, std::string_view restaurant, DataType type,
                            std::string_view id, std::string_view key) {
  const json::value r = record_of(store, restaurant, type, id);
  const json::value* v = r.is_object() ? r.get_object().if_contains(key) : nullptr;
  return v ? *v : json::value(nullptr);
}

inline std::size_t record_count(const Snapshot& snap) {
  std::size_t n = 0;
  for (const auto& v : snap.records) n += v.size();
  return n;
}

inline std::vector<std::uint64_t> seqs_of(const std::vector<Outcome>& outcomes) {
  std::vector<std::uint64_t> out;
  for (const auto& o : outcomes) out.push_back(o.seq);
  return out;
}

inline std::vector<std::uint64_t> seqs_of(const LogPage& page) {
  std::vector<std::uint64_t> out;
  for (const auto& e : page.entries) out.push_back(e.seq);
  return out;
}

using Seqs = std::vector<std::uint64_t>;

// ---- the parameterized suite ----

// Waits until everything `store` committed so far is durable (and so visible to reads).
inline void wait_durable(Store& store) {
  std::promise<void> durable;
  store.when_durable([&] { durable.set_value(); });
  durable.get_future().wait();
}

// How a backend opens a fresh, empty store for one test (`dir`: a fresh temporary directory).
struct StoreFactory {
  const char* name;
  std::function<std::unique_ptr<Store>(const fs::path& dir)> open;
};

inline void PrintTo(const StoreFactory& f, std::ostream* os) {
  *os << f.name;
}

class StoreConformance : public testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    store_ = GetParam().open(dir_.path());
    ASSERT_NE(store_, nullptr);
  }

  std::vector<Outcome> commit(std::vector<ChangeRequest> batch, std::int64_t now = kNow,
                              std::uint64_t retain = 0) {
    auto result = store_->commit(batch, CommitOptions{now, retain});
    EXPECT_TRUE(result.has_value()) << (result ? "" : result.error().message);
    wait_durable(*store_);
    if (!result) return {};
    EXPECT_EQ(result->size(), batch.size());
    return std::move(*result);
  }
  Outcome commit_one(ChangeRequest r, std::int64_t now = kNow, std::uint64_t retain = 0) {
    auto outcomes = commit({std::move(r)}, now, retain);
    return outcomes.empty() ? Outcome{} : outcomes.front();
  }
  LogHead head(std::string_view restaurant = "r1") {
    auto h = store_->head(restaurant);
    EXPECT_TRUE(h.has_value());
    return h ? *h : LogHead{};
  }
  LogPage log(std::string_view restaurant = "r1", std::uint64_t after = 0,
              std::size_t limit = 1000) {
    auto p = store_->read_log(restaurant, after, limit);
    EXPECT_TRUE(p.has_value());
    return p ? std::move(*p) : LogPage{};
  }
  json::value record(DataType type, std::string_view id) {
    return record_of(*store_, "r1", type, id);
  }
  json::value field(DataType type, std::string_view id, std::string_view key) {
    return field_of(*store_, "r1", type, id, key);
  }
  Snapshot snap(std::string_view restaurant = "r1") {
    auto s = store_->snapshot(restaurant);
    EXPECT_TRUE(s.has_value());
    return s ? std::move(*s) : Snapshot{};
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace possync::store_test
