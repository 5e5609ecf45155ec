#include "common/error.h"

#include <stdexcept>

namespace possync {

bool errc::carries_current(std::string_view code) {
  return code == kConflict || code == kInvalidTransition || code == kOrderClosed ||
         code == kTableOccupied || code == kLineNotFound;
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error(e.code + ": " + e.message);
}

}  // namespace possync
