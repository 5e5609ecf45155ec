// Micro-benchmarks of the JSON text every committed change goes through once (common/json_text.h)
// against Boost.JSON's own: writing (json_text vs boost::json::serialize) and reading (parse_json
// vs boost::json::parse), on documents shaped like what devices send.
//
//   build/release/bench/possync-microbench --benchmark_filter=Json
#include <benchmark/benchmark.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <random>
#include <string>

#include <fmt/format.h>

#include "common/json_text.h"

namespace json = boost::json;

namespace possync {
namespace {

// An order as today's app sends it: ids, a status, money as fractions, a few line items.
json::value order() {
  json::array items;
  for (int i = 0; i < 4; ++i) {
    items.push_back(json::object{{"menu_item_id", fmt::format("m-{}", 100 + i)},
                                 {"name", "Margherita pizza"},
                                 {"quantity", i + 1},
                                 {"unit_price", 9.5 + i},
                                 {"notes", i == 2 ? "no \"basil\"" : ""}});
  }
  return json::object{{"id", "o-1001"},           {"order_number", "1001"},
                      {"status", "preparing"},    {"table_id", "t-4"},
                      {"total_amount", 25.5},     {"tax", 2.3175},
                      {"items_count", 4},         {"created_at", "2025-06-10T14:03:07.512Z"},
                      {"items", std::move(items)}};
}

// A stock list: numbers only, half of them prices (short decimals), half integers.
json::value numbers() {
  std::mt19937_64 rng(14);
  json::array a;
  for (int i = 0; i < 256; ++i) {
    a.push_back(static_cast<double>(rng() % 1000000) / 100.0);
    a.push_back(static_cast<std::int64_t>(rng() % 100000));
  }
  return a;
}

// Fractions with 16-17 significant digits (ratios, converted units): the writer's slow path.
json::value ratios() {
  std::mt19937_64 rng(14);
  json::array a;
  for (int i = 0; i < 256; ++i) a.push_back(static_cast<double>(rng() % 1000000) / 7.0);
  return a;
}

// Text: names and notes, one with characters to escape.
json::value strings() {
  json::object o;
  for (int i = 0; i < 32; ++i) {
    o[fmt::format("field_{}", i)] =
        i % 8 == 0 ? "line one\nline two \"quoted\"\tend"
                   : "Grilled vegetables with olive oil, garlic and rosemary (seasonal)";
  }
  return o;
}

json::value document(int which) {
  switch (which) {
    case 0:
      return order();
    case 1:
      return numbers();
    case 2:
      return strings();
    default:
      return ratios();
  }
}

const char* document_name(int which) {
  static const char* const kNames[] = {"order", "numbers", "strings", "ratios"};
  return kNames[which];
}

void BM_JsonWriteBoost(benchmark::State& state) {
  const json::value v = document(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = json::serialize(v);
    bytes += text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetLabel(document_name(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_JsonWriteBoost)->DenseRange(0, 3);

void BM_JsonWriteText(benchmark::State& state) {
  const json::value v = document(static_cast<int>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = json_text(v);
    bytes += text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.SetLabel(document_name(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_JsonWriteText)->DenseRange(0, 3);

void BM_JsonParseBoost(benchmark::State& state) {
  const std::string text = json_text(document(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.SetLabel(document_name(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_JsonParseBoost)->DenseRange(0, 3);

void BM_JsonParseText(benchmark::State& state) {
  const std::string text = json_text(document(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    boost::system::error_code ec;
    json::value v = parse_json(text, ec);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
  state.SetLabel(document_name(static_cast<int>(state.range(0))));
}
BENCHMARK(BM_JsonParseText)->DenseRange(0, 3);

}  // namespace
}  // namespace possync
