#include "common/json_text.h"

#include <gtest/gtest.h>

#include <bit>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <random>

namespace json = boost::json;

namespace possync {
namespace {

std::string number_text(double d) {
  std::string out;
  append_json_number(out, d);
  return out;
}

json::value parsed(std::string_view text) {
  boost::system::error_code ec;
  auto v = parse_json(text, ec);
  EXPECT_FALSE(ec) << text << ": " << ec.message();
  return v;
}

// Number::toString(x) the plain way, as a reference for the writer's shortcuts: the shortest
// round-trip digits from std::to_chars, laid out by the ECMAScript rules.
std::string reference_number_text(double x) {
  if (x == 0) return "0";
  if (x < 0) return "-" + reference_number_text(-x);
  char sci[32];
  const std::string text(
      sci, std::to_chars(sci, sci + sizeof sci, x, std::chars_format::scientific).ptr);
  const std::size_t e = text.find('e');
  std::string digits = text.substr(0, e);
  if (digits.size() > 1) digits.erase(1, 1);  // the point
  const int k = static_cast<int>(digits.size());
  const int n = std::stoi(text.substr(e + 1)) + 1;
  if (k <= n && n <= 21) return digits + std::string(static_cast<std::size_t>(n - k), '0');
  if (0 < n && n <= 21) return digits.substr(0, n) + "." + digits.substr(n);
  if (-6 < n && n <= 0) return "0." + std::string(static_cast<std::size_t>(-n), '0') + digits;
  const int exponent = n - 1;
  return digits.substr(0, 1) + (k > 1 ? "." + digits.substr(1) : "") + "e" +
         (exponent < 0 ? "-" : "+") + std::to_string(std::abs(exponent));
}

// What JavaScript prints for the same double: String(x), which JSON.stringify uses for numbers
// (ECMAScript Number::toString; values checked in node).
TEST(JsonText, DoublesAreWrittenAsJavaScriptWritesThem) {
  const std::pair<double, const char*> table[] = {
      {0.1, "0.1"},
      {25.5, "25.5"},
      {-25.5, "-25.5"},
      {1.0, "1"},
      {500.0, "500"},
      {100.0, "100"},
      {-3.0, "-3"},
      {123.456, "123.456"},
      {12345678.9, "12345678.9"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0 / 3.0, "0.3333333333333333"},
      {100.0 / 3.0, "33.333333333333336"},
      {1238.8249400479617, "1238.8249400479617"},
      // Decimal notation down to 1e-6, exponent below.
      {0.000001, "0.000001"},
      {0.0000012345, "0.0000012345"},
      {0.000123, "0.000123"},
      {1e-7, "1e-7"},
      {-1e-7, "-1e-7"},
      {1.5e-7, "1.5e-7"},
      {1.2345e-10, "1.2345e-10"},
      // Integers in decimal notation up to 21 digits, exponent from 1e21.
      {9007199254740992.0, "9007199254740992"},  // 2^53
      {9007199254740994.0, "9007199254740994"},
      {1152921504606846976.0, "1152921504606847000"},  // 2^60: shortest digits, then zeros
      {1e20, "100000000000000000000"},
      {123456789012345680000.0, "123456789012345680000"},
      {999999999999999900000.0, "999999999999999900000"},
      {1e21, "1e+21"},
      {1.5e21, "1.5e+21"},
      {-1e21, "-1e+21"},
      {1e100, "1e+100"},
      {1.2345678901234568e29, "1.2345678901234568e+29"},
      // The ends of the range.
      {std::numeric_limits<double>::max(), "1.7976931348623157e+308"},
      {std::numeric_limits<double>::min(), "2.2250738585072014e-308"},
      {std::numeric_limits<double>::denorm_min(), "5e-324"},
      {-std::numeric_limits<double>::denorm_min(), "-5e-324"},
      // Zero has no sign; what JSON cannot hold is null, as in JSON.stringify.
      {0.0, "0"},
      {-0.0, "0"},
      {std::numeric_limits<double>::infinity(), "null"},
      {-std::numeric_limits<double>::infinity(), "null"},
      {std::numeric_limits<double>::quiet_NaN(), "null"},
  };
  for (const auto& [d, expected] : table) {
    EXPECT_EQ(number_text(d), expected) << "for " << expected;
    if (std::isfinite(d)) {
      EXPECT_EQ(reference_number_text(d), expected);
    }
    EXPECT_EQ(json_text(json::value(d)), expected);
  }
}

TEST(JsonText, IntegersAreWrittenAsSent) {
  EXPECT_EQ(json_text(json::value(0)), "0");
  EXPECT_EQ(json_text(json::value(-42)), "-42");
  EXPECT_EQ(json_text(json::value(std::int64_t{9007199254740993})), "9007199254740993");  // 2^53+1
  EXPECT_EQ(json_text(json::value(std::numeric_limits<std::int64_t>::min())),
            "-9223372036854775808");
  EXPECT_EQ(json_text(json::value(std::numeric_limits<std::uint64_t>::max())),
            "18446744073709551615");
}

// Text a client sends -> the text it gets back.
TEST(JsonText, NumbersReadAndWrittenBack) {
  const std::pair<const char*, const char*> table[] = {
      {"25.5", "25.5"},
      {"2.55E1", "25.5"},
      {"0.1", "0.1"},
      {"1e-7", "1e-7"},
      {"0.0000001", "1e-7"},
      {"0.000001", "0.000001"},
      {"5E2", "500"},
      {"100.0", "100"},
      {"-0", "0"},
      {"-0.0", "0"},
      {"1e21", "1e+21"},
      {"123456789012345680000", "123456789012345680000"},
      {"123456789012345678901234567890", "1.2345678901234568e+29"},
      {"9007199254740993", "9007199254740993"},  // 2^53 + 1, an integer: as sent
      {"18446744073709551615", "18446744073709551615"},
      {"-9223372036854775808", "-9223372036854775808"},
      // Boost.JSON 1.81's own parser reads these one unit in the last place off (or as 0).
      {"1238.8249400479617", "1238.8249400479617"},
      {"122118.47236842105", "122118.47236842105"},
      {"12581.827722772277", "12581.827722772277"},
      {"5.409760742964738e+124", "5.409760742964738e+124"},
      {"2.4703282292062328e-324", "5e-324"},
      {"1e-400", "0"},
  };
  for (const auto& [text, expected] : table) {
    EXPECT_EQ(json_text(parsed(text)), expected) << "for " << text;
  }
  // Still refused later (codec: invalid_number), but read as the parser reads it.
  EXPECT_EQ(parsed("1e400"), json::value(std::numeric_limits<double>::infinity()));
  EXPECT_EQ(parsed("-1e400"), json::value(-std::numeric_limits<double>::infinity()));
}

// Short decimals (prices, quantities, rates) take a shortcut past std::to_chars: the same text.
TEST(JsonText, ShortDecimalsAreWrittenAsTheGeneralRuleWritesThem) {
  for (std::int64_t cents = 0; cents <= 1000000; ++cents) {
    const double d = static_cast<double>(cents) / 100.0;
    ASSERT_EQ(number_text(d), reference_number_text(d)) << cents;
    ASSERT_EQ(number_text(-d), reference_number_text(-d)) << cents;
  }
  std::mt19937_64 rng(25);
  const double scales[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e12, 1e15};
  for (int i = 0; i < 400000; ++i) {
    const auto mantissa = static_cast<double>(rng() % 10000000000000000ull >> (rng() % 50));
    const double d = mantissa / scales[rng() % std::size(scales)];
    ASSERT_EQ(number_text(d), reference_number_text(d)) << mantissa;
  }
  for (const double d :
       {1e-6, 1.5e-6, 9.99e-7, 1e-7, 0.1, 0.2, 0.3, 0.7, 1.1, 2.675, 1e15, 999999999999999.9,
        123456789.12345678, 4.35, 0.000123456789, 8.41e-6, 1e9, 1e8 + 0.5}) {
    EXPECT_EQ(number_text(d), reference_number_text(d)) << d;
  }
}

// Every finite double survives writing and reading back bit for bit, and its text is what
// boost::json::parse and std::from_chars agree it is.
TEST(JsonText, RandomDoublesRoundTripExactly) {
  std::mt19937_64 rng(14);
  std::uniform_int_distribution<std::int64_t> cents(-100000000, 100000000);
  for (int i = 0; i < 200000; ++i) {
    double d = 0;
    if (i % 2 == 0) {
      d = std::bit_cast<double>(rng());
      if (!std::isfinite(d)) continue;
    } else {
      d = static_cast<double>(cents(rng)) / (i % 3 == 0 ? 100.0 : 7.0);
    }
    const std::string text = number_text(d);
    const json::value back = parsed(text);
    const double got = back.is_double()  ? back.get_double()
                       : back.is_int64() ? static_cast<double>(back.get_int64())
                                         : static_cast<double>(back.get_uint64());
    ASSERT_EQ(got, d) << text;
    double via_from_chars = 0;
    std::from_chars(text.data(), text.data() + text.size(), via_from_chars);
    ASSERT_EQ(via_from_chars, d) << text;
    ASSERT_EQ(json_text(back), d == 0 ? "0" : text);
  }
}

// Apart from doubles, the text is boost::json::serialize's, byte for byte.
TEST(JsonText, OtherValuesAreWrittenAsBoostJsonWritesThem) {
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  const json::value values[] = {
      nullptr,
      true,
      false,
      "",
      "plain",
      "quote \" backslash \\ slash / tab \t newline \n cr \r bell \a del \x7f",
      "eight..\"",  // the quote in the second half of an 8-byte word
      "0123456789abcdef\x01",
      "Grüße, 寿司 🍣",
      json::string(all_bytes),
      json::array{},
      json::object{},
      json::array{1, -2, "x", nullptr, json::array{json::object{}}, true},
      json::object{{"a", 1},
                   {"b\n", json::array{json::object{{"c", "d"}}, 18446744073709551615ull}},
                   {"", json::object{{"e", nullptr}}}},
  };
  for (const auto& v : values) {
    EXPECT_EQ(json_text(v), json::serialize(v));
    if (v.is_object()) {
      EXPECT_EQ(json_text(v.get_object()), json::serialize(v));
    }
    std::string appended = "prefix";
    append_json(appended, v);
    EXPECT_EQ(appended, "prefix" + json::serialize(v));
  }
  std::string escaped;
  append_json_string(escaped, all_bytes);
  EXPECT_EQ(escaped, json::serialize(json::value(json::string(all_bytes))));
}

TEST(JsonText, ParsesAsBoostJsonParses) {
  const char* texts[] = {
      R"({"a":[1,2,{"b":null}],"c":"d\u00e9\n","e":true,"f":false,"g":-7,"h":1.5})",
      R"([])",
      R"("just a string")",
      R"(  {"spaced" : [ 1 , 2 ]}  )",
  };
  for (const char* text : texts) EXPECT_EQ(parsed(text), json::parse(text)) << text;

  for (const char* bad : {"", "{", "[1,]", "{\"a\":1} x", "01", "1.", "nul", "\"\x01\"", "{} {}"}) {
    boost::system::error_code ec;
    const auto v = parse_json(bad, ec);
    EXPECT_TRUE(ec) << bad;
    EXPECT_TRUE(v.is_null());
  }
  // Options are honoured: nesting depth and extensions.
  json::parse_options shallow;
  shallow.max_depth = 2;
  boost::system::error_code ec;
  parse_json("[[1]]", ec, shallow);
  EXPECT_FALSE(ec);
  parse_json("[[[1]]]", ec, shallow);
  EXPECT_TRUE(ec);
  json::parse_options lenient;
  lenient.allow_comments = true;
  lenient.allow_trailing_commas = true;
  EXPECT_EQ(parse_json("[1, /* two */ 2.5,]", ec, lenient), json::parse("[1,2.5]"));
  EXPECT_FALSE(ec);
}

}  // namespace
}  // namespace possync
