// SecretHasher: hashes the secrets of user records (auth/secrets.h) on worker threads, so the
// tens of milliseconds Argon2id takes never stall an I/O thread.
//
// Only `users` changes are hashed (a printer's `password` is a device setting devices must read).
// At most `max_pending` jobs wait at once; beyond that hash() refuses at once with `rate_limited`
// (retryable: nothing was accepted). Every callback runs exactly once, on a worker thread, or on
// the caller's thread when refused.
//
// Thread-safety: hash() may be called from any thread.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <functional>

#include "auth/secrets.h"
#include "common/error.h"
#include "model/change.h"

namespace possync {

class SecretHasher {
 public:
  using Done = std::function<void(Result<boost::json::object>)>;

  SecretHasher(std::size_t threads, HashParams params, std::size_t max_pending);
  ~SecretHasher();  // waits for the jobs in progress

  // Whether `change` has secrets to hash (or to reject) before it may be committed.
  static bool needs_hashing(const Change& change);

  // Calls `done` with `data` with its secrets hashed, or with the Error of hash_secrets.
  void hash(boost::json::object data, Done done);

 private:
  HashParams params_;
  std::size_t max_pending_;
  std::atomic<std::size_t> pending_{0};
  boost::asio::thread_pool pool_;
};

}  // namespace possync
