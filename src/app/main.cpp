// possync-server: entry point. Parses the configuration, sets up logging, runs the server (or the
// `token issue` subcommand).
#include <spdlog/spdlog.h>

#include "app/config.h"
#include "app/server.h"
#include "app/token_command.h"

int main(int argc, char** argv) {
  auto parsed = possync::parse_config(argc, argv);
  if (!parsed.config) return parsed.exit_code;
  if (parsed.token) return possync::run_token_command(*parsed.config, *parsed.token);
  spdlog::set_level(spdlog::level::from_str(parsed.config->log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  return possync::run_server(*parsed.config);
}
