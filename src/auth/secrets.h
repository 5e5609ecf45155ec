// Secret fields in records: hashed with Argon2id before anything stores, logs or forwards them.
//
// A *secret field* is a member named `pin`, `password` or `passcode` (ASCII case-insensitive:
// `PIN`, `Password` match; `pin_code`, `new_password` do not) at any depth of a record's data:
// in nested objects and in objects inside arrays. Its value is handled by type:
// - string: the secret itself; replaced by an Argon2id PHC string
//   (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) from libsodium, with a fresh random salt;
// - number: a numeric PIN; its decimal text is hashed (1234 and 1234.0 both hash "1234"; a
//   non-integral or too-large double is rejected);
// - an accepted Argon2id PHC string (is_argon2id_hash) is kept as it is, so a device re-sending a
//   record it received does not hash a hash;
// - null: "clear the secret" (a merge patch removing it); kept;
// - bool, object, array, or a string that starts with `$argon2` but is not an accepted Argon2id
//   PHC string: rejected with `invalid_field`.
// Error messages name the field, never its value.
//
// Cost: hashing takes tens of milliseconds and HashParams::memory_bytes of memory per call, by
// design. Run hash_secrets and verify_secret on a worker pool, never on an I/O thread. Every
// function here is synchronous and thread-safe (libsodium is initialised once, on first use).
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"

namespace possync {

// Argon2id cost. The defaults are OWASP's recommended minimum for Argon2id (m=19 MiB, t=2, p=1;
// libsodium always uses p=1), not libsodium's "interactive" 64 MiB: the server is small and shared,
// the pool may hash several secrets at once, and the memory is held for the whole call. A
// higher cost would not rescue short numeric PINs anyway (10^4 candidates), whose protection is
// keeping the hashes out of logs and off devices that do not need them.
struct HashParams {
  std::uint64_t passes = 2;                     // t (libsodium: opslimit)
  std::size_t memory_bytes = 19 * 1024 * 1024;  // m in bytes (libsodium: memlimit)
  // Most secret fields hashed in one object; more is rejected (invalid_field) before any hashing,
  // so one record cannot buy unbounded CPU time. A user record has one or two.
  std::size_t max_secrets = 8;
};

// The most expensive stored hash accepted (kept by hash_secrets, checked by verify_secret):
// libsodium's "interactive" cost, m=64 MiB and m*t <= 64 MiB * 2. A client-supplied hash with a
// larger cost would make every later verification a denial of service.
inline constexpr std::size_t kMaxHashMemoryBytes = 64 * 1024 * 1024;
inline constexpr std::uint64_t kMaxHashWork = 2 * kMaxHashMemoryBytes / 1024;  // m (KiB) * t

// Ok if `params` can be used by hash_secrets: passes >= 1, memory >= 8 KiB, within the accepted
// cost above (so that what hash_secrets writes, it also keeps), max_secrets >= 1. Check at startup.
Result<void> validate(const HashParams& params);

// True if `name` names a secret field.
bool is_secret_field(std::string_view name);

// True if `text` is an Argon2id PHC string this module accepts:
// `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>` with unpadded standard base64 salt
// and hash of at least 16 bytes each, shorter than 128 bytes in all, and a cost within
// kMaxHashMemoryBytes / kMaxHashWork (lanes 1..16).
bool is_argon2id_hash(std::string_view text);

// True if hash_secrets would do anything to `data`: some secret field holds a value other than
// null or an accepted hash (plaintext to hash, or a value to reject). When false, hash_secrets is a
// no-op that succeeds, so callers can skip the worker pool. Cheap: no hashing.
bool contains_secrets(const boost::json::object& data);

// Replaces every plaintext secret in `data` with its Argon2id hash (see the top of this file). All
// values are checked before the first hash, so a rejected object costs no hashing and is left
// unchanged. Errors: `invalid_field` for a value that cannot be a secret, for more than
// `params.max_secrets` values to hash, or for invalid params; `store_unavailable` (retryable) if
// libsodium cannot hash (out of memory), in which case `data` may be partly hashed and must be
// discarded (it holds no plaintext that was not there before).
Result<void> hash_secrets(boost::json::object& data, const HashParams& params = {});

// Hashes one secret with `params` (which must pass validate()). Nothing on failure.
Result<std::string> hash_secret(std::string_view secret, const HashParams& params = {});

// True if `candidate` is the secret `phc` was made from. False for anything that is not an
// accepted hash (is_argon2id_hash), including over-expensive ones. Constant-time in the
// comparison (libsodium).
bool verify_secret(std::string_view phc, std::string_view candidate);

// A copy of `data` for logs: every secret field's value (whatever its type, hashes and null
// included) replaced by the string "[redacted]". Cheap: no hashing.
boost::json::object redact_secrets(const boost::json::object& data);

}  // namespace possync
