// possync-server: entry point. Parses the configuration, sets up logging, runs the server (or the
// `token issue` subcommand, or the store's backup, restore and verify).
#include <spdlog/spdlog.h>

#include <csignal>

#include "app/config.h"
#include "app/server.h"
#include "app/store_commands.h"
#include "app/token_command.h"
#include "common/log.h"

int main(int argc, char** argv) {
  auto parsed = possync::parse_config(argc, argv);
  if (!parsed.config) return parsed.exit_code;
  // A file-size limit (RLIMIT_FSIZE, systemd's LimitFSIZE=) reached by the store must fail that
  // write (EFBIG: a commit rejected as on a full disk, a backup that fails), not kill the process
  // with SIGXFSZ.
  std::signal(SIGXFSZ, SIG_IGN);
  if (parsed.token) return possync::run_token_command(*parsed.config, *parsed.token);
  if (parsed.store_command) {
    return possync::run_store_command(*parsed.config, *parsed.store_command);
  }
  spdlog::set_level(spdlog::level::from_str(parsed.config->log_level));
  possync::slog::set_format(parsed.config->log_format == "json" ? possync::slog::Format::json
                                                                : possync::slog::Format::text);
  return possync::run_server(*parsed.config);
}
