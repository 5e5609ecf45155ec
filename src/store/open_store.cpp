#include "store/open_store.h"

#include <fmt/format.h>

#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace possync {

Result<std::unique_ptr<Store>> open_store(std::string_view uri, std::size_t reader_connections) {
  if (uri == "memory") return make_memory_store();
  constexpr std::string_view kSqlite = "sqlite:";
  if (uri.starts_with(kSqlite) && uri.size() > kSqlite.size()) {
    return open_sqlite_store({std::string(uri.substr(kSqlite.size())), reader_connections});
  }
  return Error{errc::kBadRequest,
               fmt::format("unsupported store '{}': use 'memory' or 'sqlite:PATH'", uri)};
}

}  // namespace possync
