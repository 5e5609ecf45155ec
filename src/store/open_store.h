// Picks and opens a Store from its `--store` URI: "memory", "sqlite:PATH", or a PostgreSQL
// connection URI "postgres://..." / "postgresql://...".
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "store/store.h"

namespace possync {

Result<std::unique_ptr<Store>> open_store(std::string_view uri, std::size_t reader_connections);

// The PATH of a "sqlite:PATH" URI; nothing for any other store.
std::optional<std::string> sqlite_store_path(std::string_view uri);
// Whether the URI names a PostgreSQL store.
bool is_postgres_store_uri(std::string_view uri);

}  // namespace possync
