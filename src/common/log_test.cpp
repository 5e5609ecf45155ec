#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/json.hpp>
#include <sstream>

#include "common/utf8.h"

namespace possync::slog {
namespace {

// Routes the default logger to a string for the test's duration.
class Captured {
 public:
  explicit Captured(Format format, Level level = Level::info) {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(level);
    spdlog::set_default_logger(logger);
    set_format(format);
  }
  ~Captured() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST(Log, JsonLineCarriesTimeLevelMessageAndTypedFields) {
  Captured log(Format::json);
  const std::string restaurant = "rest-1";
  info("device connected", {{"restaurant", restaurant},
                            {"device", "pos \"1\"\n"},
                            {"close_code", 1009},
                            {"seq", std::uint64_t{18446744073709551615ULL}},
                            {"delta", -3},
                            {"anonymous", true}});
  const std::string line = log.text();
  ASSERT_EQ(line.back(), '\n');
  ASSERT_EQ(line.find('\n'), line.size() - 1);  // one line
  const auto v = boost::json::parse(line).as_object();
  EXPECT_EQ(v.at("level"), "info");
  EXPECT_EQ(v.at("message"), "device connected");
  EXPECT_EQ(v.at("restaurant"), "rest-1");
  EXPECT_EQ(v.at("device"), "pos \"1\"\n");
  EXPECT_EQ(v.at("close_code").as_int64(), 1009);
  EXPECT_EQ(v.at("seq").as_uint64(), 18446744073709551615ULL);
  EXPECT_EQ(v.at("delta").as_int64(), -3);
  EXPECT_EQ(v.at("anonymous"), true);
  // 2025-06-10T14:07:00.123Z
  const std::string time(v.at("time").as_string());
  ASSERT_EQ(time.size(), 24u) << time;
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time[19], '.');
  EXPECT_EQ(time.back(), 'Z');
}

TEST(Log, JsonLineIsValidUtf8WhateverTheText) {
  Captured log(Format::json);
  error("bad \xff bytes", {{"error", std::string_view("caf\xC3\xA9 \xC0\xAF\x01", 9)}});
  const std::string line = log.text();
  EXPECT_TRUE(is_valid_utf8(line));
  const auto v = boost::json::parse(line).as_object();
  EXPECT_EQ(v.at("level"), "error");
  EXPECT_EQ(v.at("message"), "bad \xEF\xBF\xBD bytes");
  EXPECT_EQ(v.at("error"), "caf\xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD\x01");
}

TEST(Log, PlainSpdlogCallsBecomeJsonLinesWithoutFields) {
  Captured log(Format::json);
  spdlog::warn("from {} code", "other");
  const auto v = boost::json::parse(log.text()).as_object();
  EXPECT_EQ(v.at("level"), "warning");
  EXPECT_EQ(v.at("message"), "from other code");
  EXPECT_EQ(v.size(), 3u);
}

TEST(Log, TextLineEndsWithLogfmtFields) {
  Captured log(Format::text);
  warn("closing connection", {{"restaurant", "rest-1"},
                              {"reason", "no traffic"},
                              {"empty", ""},
                              {"quote", "a\"b=c\\"},
                              {"seconds", 90}});
  const std::string line = log.text();
  EXPECT_NE(line.find(" warning closing connection restaurant=rest-1 reason=\"no traffic\" "
                      "empty=\"\" quote=\"a\\\"b=c\\\\\" seconds=90\n"),
            std::string::npos)
      << line;
}

TEST(Log, NothingIsWrittenBelowTheLevel) {
  Captured log(Format::json, Level::info);
  debug("hidden", {{"restaurant", "r"}});
  EXPECT_FALSE(enabled(Level::debug));
  EXPECT_TRUE(enabled(Level::info));
  EXPECT_EQ(log.text(), "");
  // The fields of one call never show up in the next.
  info("first", {{"restaurant", "r"}});
  spdlog::info("second");
  const std::string text = log.text();
  const auto second = boost::json::parse(text.substr(text.find('\n') + 1)).as_object();
  EXPECT_EQ(second.size(), 3u);
}

TEST(Utf8, ValidPrefixAndRepair) {
  EXPECT_EQ(valid_utf8_prefix("abc\xE2\x82\xAC"), 6u);
  EXPECT_EQ(valid_utf8_prefix("abc\xE2\x82"), 3u);
  EXPECT_EQ(valid_utf8_prefix("0123456789\x80"), 10u);
  EXPECT_EQ(repair_utf8("a\x80"
                        "b\xED\xA0\x80"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(repair_utf8("fine \xC3\xA9"), "fine \xC3\xA9");
}

}  // namespace
}  // namespace possync::slog
