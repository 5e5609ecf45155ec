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

TEST(Config, AuthIsRequiredByDefaultAndCanBeMixedOrOff) {
  auto defaults = parse({});
  ASSERT_TRUE(defaults.config);
  EXPECT_EQ(defaults.config->auth, AuthMode::required);
  EXPECT_FALSE(defaults.token);
  auto off = parse({"--auth", "off"});
  ASSERT_TRUE(off.config);
  EXPECT_EQ(off.config->auth, AuthMode::off);
  auto mixed = parse({"--auth", "mixed"});
  ASSERT_TRUE(mixed.config);
  EXPECT_EQ(mixed.config->auth, AuthMode::mixed);
  EXPECT_FALSE(parse({"--auth", "maybe"}).config);
}

TEST(Config, LogFormatIsTextByDefaultOrJson) {
  EXPECT_EQ(parse({}).config->log_format, "text");
  EXPECT_EQ(parse({"--log-format", "json"}).config->log_format, "json");
  EXPECT_FALSE(parse({"--log-format", "xml"}).config);
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

// Server options the token command uses (--jwt-secret-file, --max-id-bytes) may be written before
// `token`, between `token` and `issue`, or among the options of `issue`.
TEST(Config, TokenIssueTakesServerOptionsInAnyPosition) {
  const std::vector<std::string> issue = {"--restaurant", "r1",  "--device", "d1",
                                          "--role",       "pos", "--ttl",    "1h"};
  const std::vector<std::vector<std::string>> orders = {
      {"--jwt-secret-file", "/tmp/k", "--max-id-bytes", "64", "token", "issue", "@"},
      {"token", "issue", "@", "--jwt-secret-file", "/tmp/k", "--max-id-bytes", "64"},
      {"token", "issue", "--jwt-secret-file", "/tmp/k", "@", "--max-id-bytes", "64"},
      {"token", "--jwt-secret-file", "/tmp/k", "issue", "--max-id-bytes", "64", "@"},
      {"--max-id-bytes", "64", "token", "issue", "@", "--jwt-secret-file=/tmp/k"},
  };
  for (const auto& order : orders) {
    std::vector<std::string> args;
    for (const auto& a : order) {
      if (a == "@") {
        args.insert(args.end(), issue.begin(), issue.end());
      } else {
        args.push_back(a);
      }
    }
    const auto parsed = parse(args);
    std::string line;
    for (const auto& a : args) line += a + " ";
    ASSERT_TRUE(parsed.config) << line;
    ASSERT_TRUE(parsed.token) << line;
    EXPECT_EQ(parsed.config->jwt_secret_file, "/tmp/k") << line;
    EXPECT_EQ(parsed.config->max_id_bytes, 64u) << line;
    EXPECT_EQ(parsed.token->restaurant_id, "r1") << line;
    EXPECT_EQ(parsed.token->role, "pos") << line;
    EXPECT_EQ(parsed.token->ttl_seconds, 3600) << line;
  }
  // Still refused: options nobody knows, wherever they are, and a missing required option.
  EXPECT_FALSE(parse({"token", "issue", "--restaurant", "r1", "--device", "d1", "--role", "pos",
                      "--no-such-option", "x"})
                   .config);
  EXPECT_FALSE(
      parse({"token", "issue", "--device", "d1", "--role", "pos", "--jwt-secret-file", "/tmp/k"})
          .config);
}

TEST(Config, StoreSubcommandsTakeTheirFileAndTheStoreInAnyPosition) {
  auto backup = parse({"--store", "sqlite:/a.db", "backup", "--to", "/b.db"});
  ASSERT_TRUE(backup.config);
  ASSERT_TRUE(backup.store_command);
  EXPECT_EQ(backup.store_command->kind, StoreCommand::Kind::backup);
  EXPECT_EQ(backup.store_command->file, "/b.db");
  EXPECT_EQ(backup.config->store, "sqlite:/a.db");

  auto restore = parse({"restore", "--from", "/b.db", "--store", "sqlite:/c.db"});
  ASSERT_TRUE(restore.store_command);
  EXPECT_EQ(restore.store_command->kind, StoreCommand::Kind::restore);
  EXPECT_EQ(restore.store_command->file, "/b.db");
  EXPECT_EQ(restore.config->store, "sqlite:/c.db");

  auto verify = parse({"verify"});
  ASSERT_TRUE(verify.store_command);
  EXPECT_EQ(verify.store_command->kind, StoreCommand::Kind::verify);
  EXPECT_TRUE(verify.store_command->file.empty());
  EXPECT_EQ(parse({"verify", "--file", "/b.db"}).store_command->file, "/b.db");

  EXPECT_FALSE(parse({}).store_command);
  EXPECT_FALSE(parse({"backup"}).config);                         // --to is required
  EXPECT_FALSE(parse({"restore"}).config);                        // --from is required
  EXPECT_FALSE(parse({"verify", "backup", "--to", "x"}).config);  // one subcommand at a time
}

}  // namespace
}  // namespace possync
