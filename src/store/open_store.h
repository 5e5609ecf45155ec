// Picks and opens a Store from its `--store` URI: "memory", "sqlite:PATH", or a PostgreSQL
// connection URI "postgres://..." / "postgresql://...".
#pragma once

#include <memory>
#include <string_view>

#include "store/store.h"

namespace possync {

Result<std::unique_ptr<Store>> open_store(std::string_view uri, std::size_t reader_connections);

}  // namespace possync
