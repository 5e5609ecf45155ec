#include "transport/ordered_intake.h"

#include "auth/secret_hasher.h"

namespace possync {

bool OrderedIntake::needs_hashing(const Change& change) {
  return SecretHasher::needs_hashing(change);
}

void OrderedIntake::settle(std::uint64_t ticket, Result<boost::json::object> hashed) {
  for (auto& h : held_) {
    if (h.ticket != ticket || h.ready) continue;
    h.ready = true;
    if (hashed) {
      h.request.change.data = std::move(*hashed);
    } else {
      h.error = hashed.error();
    }
    return;
  }
}

}  // namespace possync
