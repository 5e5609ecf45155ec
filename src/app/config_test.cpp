#include "app/config.h"

#include <gtest/gtest.h>

#include <vector>

namespace possync {
namespace {

ParsedConfig parse(std::vector<std::string> args) {
  args.insert(args.begin(), "possync-server");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parse_config(static_cast<int>(argv.size()), argv.data());
}

TEST(Config, DurationsAcceptDaysHoursMinutesSeconds) {
  EXPECT_EQ(parse_duration_seconds("30d"), 30 * 86400);
  EXPECT_EQ(parse_duration_seconds("12h"), 12 * 3600);
  EXPECT_EQ(parse_duration_seconds("15m"), 900);
  EXPECT_EQ(parse_duration_seconds("90s"), 90);
  EXPECT_EQ(parse_duration_seconds("3600"), 3600);
  for (const char* bad : {"", "d", "0d", "-1h", "1.5h", "3w", "99999999d", "1 d"}) {
    EXPECT_FALSE(parse_duration_seconds(bad)) << bad;
  }
}

TEST(Config, AuthIsRequiredByDefaultAndCanBeTurnedOff) {
  auto defaults = parse({});
  ASSERT_TRUE(defaults.config);
  EXPECT_EQ(defaults.config->auth, AuthMode::required);
  EXPECT_FALSE(defaults.token);
  auto off = parse({"--auth", "off"});
  ASSERT_TRUE(off.config);
  EXPECT_EQ(off.config->auth, AuthMode::off);
  EXPECT_FALSE(parse({"--auth", "maybe"}).config);
}

TEST(Config, TokenIssueSubcommand) {
  auto issue = parse({"--jwt-secret-file", "/tmp/k", "token", "issue", "--restaurant", "r1",
                      "--device", "d1", "--role", "kds", "--ttl", "12h"});
  ASSERT_TRUE(issue.config);
  ASSERT_TRUE(issue.token);
  EXPECT_EQ(issue.config->jwt_secret_file, "/tmp/k");
  EXPECT_EQ(issue.token->restaurant_id, "r1");
  EXPECT_EQ(issue.token->device_id, "d1");
  EXPECT_EQ(issue.token->role, "kds");
  EXPECT_EQ(issue.token->ttl_seconds, 12 * 3600);
  EXPECT_FALSE(
      parse({"token", "issue", "--restaurant", "r1", "--device", "d1", "--role", "chef"}).config);
  EXPECT_FALSE(parse({"token", "issue", "--restaurant", "r1", "--device", "d1", "--role", "pos",
                      "--ttl", "soon"})
                   .config);
}

}  // namespace
}  // namespace possync
