#include "auth/secret_hasher.h"

#include <boost/asio/post.hpp>

namespace possync {

SecretHasher::SecretHasher(std::size_t threads, HashParams params, std::size_t max_pending)
    : params_(params), max_pending_(max_pending), pool_(threads) {}

SecretHasher::~SecretHasher() {
  pool_.join();
}

bool SecretHasher::needs_hashing(const Change& change) {
  return change.data_type == DataType::users && contains_secrets(change.data);
}

void SecretHasher::hash(boost::json::object data, Done done) {
  if (pending_.fetch_add(1) >= max_pending_) {
    pending_.fetch_sub(1);
    done(Error{errc::kRateLimited, "too many secrets are being hashed right now; retry shortly"});
    return;
  }
  boost::asio::post(pool_, [this, data = std::move(data), done = std::move(done)]() mutable {
    auto hashed = hash_secrets(data, params_);
    pending_.fetch_sub(1);
    if (!hashed) return done(hashed.error());
    done(std::move(data));
  });
}

}  // namespace possync
