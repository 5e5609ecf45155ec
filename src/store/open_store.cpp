#include "store/open_store.h"

#include <fmt/format.h>

#include "store/memory_store.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace possync {

Result<std::unique_ptr<Store>> open_store(std::string_view uri, std::size_t reader_connections) {
  if (uri == "memory") return make_memory_store();
  if (auto path = sqlite_store_path(uri)) return open_sqlite_store({*path, reader_connections});
  if (is_postgres_store_uri(uri))
    return open_postgres_store({std::string(uri), reader_connections});
  return Error{errc::kBadRequest,
               fmt::format("unsupported store '{}': use 'memory', 'sqlite:PATH' or "
                           "'postgresql://USER@HOST:PORT/DATABASE'",
                           uri)};
}

std::optional<std::string> sqlite_store_path(std::string_view uri) {
  constexpr std::string_view kSqlite = "sqlite:";
  if (!uri.starts_with(kSqlite) || uri.size() == kSqlite.size()) return std::nullopt;
  return std::string(uri.substr(kSqlite.size()));
}

bool is_postgres_store_uri(std::string_view uri) {
  return uri.starts_with("postgres://") || uri.starts_with("postgresql://");
}

}  // namespace possync
