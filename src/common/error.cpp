#include "common/error.h"

#include <stdexcept>

namespace possync {

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error(e.code + ": " + e.message);
}

}  // namespace possync
