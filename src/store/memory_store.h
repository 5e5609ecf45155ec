// MemoryStore: a Store kept in process memory, for throwaway runs (`--store memory`) and tests.
// Nothing survives a restart. Thread-safety as the Store contract; one shared_mutex guards all
// data.
#pragma once

#include <memory>

#include "store/store.h"

namespace possync {

std::unique_ptr<Store> make_memory_store();

}  // namespace possync
