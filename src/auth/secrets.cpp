#include "auth/secrets.h"

#include <sodium.h>

#include <fmt/format.h>
#include <array>
#include <boost/json/value.hpp>
#include <cmath>
#include <optional>
#include <utility>

namespace json = boost::json;

namespace possync {
namespace {

constexpr std::array<std::string_view, 3> kSecretFieldNames{"pin", "password", "passcode"};
constexpr std::string_view kRedacted = "[redacted]";
constexpr std::size_t kMinBase64Chars = 22;  // 16 bytes, unpadded
constexpr std::uint64_t kMaxLanes = 16;
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

// libsodium must be initialised once before use; a function-local static makes that thread-safe.
bool sodium_ready() {
  static const bool ready = sodium_init() >= 0;
  return ready;
}

bool equals_ignoring_ascii_case(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// --- Reading a PHC string --------------------------------------------------------------------

bool consume(std::string_view& text, std::string_view prefix) {
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// A decimal number without leading zeros (PHC string format), at most 10 digits.
std::optional<std::uint64_t> consume_number(std::string_view& text) {
  std::size_t n = 0;
  while (n < text.size() && n <= 10 && text[n] >= '0' && text[n] <= '9') ++n;
  if (n == 0 || n > 10 || (n > 1 && text[0] == '0')) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < n; ++i)
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
  text.remove_prefix(n);
  return value;
}

// Unpadded standard base64 of at least 16 bytes; consumes it.
bool consume_base64(std::string_view& text) {
  std::size_t n = 0;
  const auto is_base64 = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  };
  while (n < text.size() && is_base64(text[n])) ++n;
  if (n < kMinBase64Chars || n % 4 == 1) return false;
  text.remove_prefix(n);
  return true;
}

// --- Secret fields -----------------------------------------------------------------------------

template <class Value, class Fn>
bool for_each_secret_below(Value& value, Fn& fn);

// Calls fn(name, value) for every secret field of `object` at any depth (nested objects, objects
// inside arrays), in document order; stops when fn returns false. Returns false if stopped.
// Works on const and mutable objects alike. The value of a secret field is not descended into.
template <class Object, class Fn>
bool for_each_secret(Object& object, Fn& fn) {
  for (auto& member : object) {
    if (is_secret_field(member.key())) {
      if (!fn(member.key(), member.value())) return false;
    } else if (!for_each_secret_below(member.value(), fn)) {
      return false;
    }
  }
  return true;
}

template <class Value, class Fn>
bool for_each_secret_below(Value& value, Fn& fn) {
  if (auto* object = value.if_object()) return for_each_secret(*object, fn);
  if (auto* array = value.if_array()) {
    for (auto& element : *array) {
      if (!for_each_secret_below(element, fn)) return false;
    }
  }
  return true;
}

// What hash_secrets does with the value of a secret field; for `reject`, why.
struct Treatment {
  enum Kind { keep, hash, reject } kind;
  std::string_view why = {};
};

Treatment treatment_of(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null:
      return {Treatment::keep};
    case json::kind::string: {
      const std::string_view text = value.get_string();
      if (is_argon2id_hash(text)) return {Treatment::keep};
      if (text.starts_with("$argon2")) {
        return {Treatment::reject,
                "looks like an Argon2 hash but is not an accepted Argon2id hash"};
      }
      return {Treatment::hash};
    }
    case json::kind::int64:
    case json::kind::uint64:
      return {Treatment::hash};
    case json::kind::double_: {
      const double d = value.get_double();
      if (d != std::trunc(d) || std::fabs(d) > kMaxExactInteger) {
        return {Treatment::reject, "must be an integer when it is a number"};
      }
      return {Treatment::hash};
    }
    default:
      return {Treatment::reject, "must be a string, a number or null"};
  }
}

// The text hashed for a value whose treatment is `hash`.
std::string secret_text(const json::value& value) {
  switch (value.kind()) {
    case json::kind::int64:
      return std::to_string(value.get_int64());
    case json::kind::uint64:
      return std::to_string(value.get_uint64());
    case json::kind::double_:
      return std::to_string(static_cast<std::int64_t>(value.get_double()));
    default:
      return std::string(value.get_string());
  }
}

Error invalid(std::string message) {
  return {errc::kInvalidField, std::move(message)};
}

}  // namespace

Result<void> validate(const HashParams& params) {
  const std::uint64_t memory_kib = params.memory_bytes / 1024;
  if (params.passes < crypto_pwhash_argon2id_OPSLIMIT_MIN) {
    return invalid("hash parameters: passes must be at least 1");
  }
  if (params.memory_bytes < crypto_pwhash_argon2id_MEMLIMIT_MIN) {
    return invalid("hash parameters: memory must be at least 8 KiB");
  }
  if (params.memory_bytes > kMaxHashMemoryBytes || params.passes > kMaxHashWork ||
      memory_kib * params.passes > kMaxHashWork) {
    return invalid(
        "hash parameters: cost above the accepted maximum (64 MiB, memory x passes <= "
        "128 MiB)");
  }
  if (params.max_secrets < 1) return invalid("hash parameters: max_secrets must be at least 1");
  return {};
}

bool is_secret_field(std::string_view name) {
  for (const auto secret_name : kSecretFieldNames) {
    if (equals_ignoring_ascii_case(name, secret_name)) return true;
  }
  return false;
}

bool is_argon2id_hash(std::string_view text) {
  if (text.size() >= crypto_pwhash_argon2id_STRBYTES) return false;
  if (!consume(text, "$argon2id$v=19$m=")) return false;
  const auto memory_kib = consume_number(text);
  if (!memory_kib || !consume(text, ",t=")) return false;
  const auto passes = consume_number(text);
  if (!passes || !consume(text, ",p=")) return false;
  const auto lanes = consume_number(text);
  if (!lanes || !consume(text, "$") || !consume_base64(text) || !consume(text, "$") ||
      !consume_base64(text) || !text.empty()) {
    return false;
  }
  return *memory_kib >= crypto_pwhash_argon2id_MEMLIMIT_MIN / 1024 &&
         *memory_kib <= kMaxHashMemoryBytes / 1024 && *passes >= 1 &&
         *memory_kib * *passes <= kMaxHashWork && *lanes >= 1 && *lanes <= kMaxLanes;
}

bool contains_secrets(const json::object& data) {
  bool found = false;
  auto check = [&](std::string_view, const json::value& value) {
    found = treatment_of(value).kind != Treatment::keep;
    return !found;
  };
  for_each_secret(data, check);
  return found;
}

Result<void> hash_secrets(json::object& data, const HashParams& params) {
  if (auto valid = validate(params); !valid) return valid.error();
  // Check everything first: a rejected object costs no hashing and stays unchanged.
  std::optional<Error> rejected;
  std::size_t to_hash = 0;
  auto check = [&](std::string_view name, const json::value& value) {
    const Treatment t = treatment_of(value);
    if (t.kind == Treatment::reject) {
      rejected = invalid(fmt::format("secret field '{}' {}", name, t.why));
    } else if (t.kind == Treatment::hash && ++to_hash > params.max_secrets) {
      rejected = invalid(fmt::format("more than {} secret fields to hash", params.max_secrets));
    }
    return !rejected;
  };
  for_each_secret(std::as_const(data), check);
  if (rejected) return *rejected;
  if (to_hash == 0) return {};

  std::optional<Error> failed;
  auto replace = [&](std::string_view, json::value& value) {
    if (treatment_of(value).kind != Treatment::hash) return true;
    auto hashed = hash_secret(secret_text(value), params);
    if (!hashed) {
      failed = hashed.error();
      return false;
    }
    value = std::string_view(*hashed);
    return true;
  };
  for_each_secret(data, replace);
  if (failed) return *failed;
  return {};
}

Result<std::string> hash_secret(std::string_view secret, const HashParams& params) {
  if (auto valid = validate(params); !valid) return valid.error();
  if (!sodium_ready()) return Error{errc::kStoreUnavailable, "libsodium could not be initialised"};
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str_alg(out.data(), secret.data(), secret.size(), params.passes,
                            params.memory_bytes, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return Error{errc::kStoreUnavailable, "could not hash a secret (out of memory); retry"};
  }
  return Result<std::string>(boost::system::in_place_value, out.data());
}

bool verify_secret(std::string_view phc, std::string_view candidate) {
  if (!is_argon2id_hash(phc) || !sodium_ready()) return false;
  std::array<char, crypto_pwhash_argon2id_STRBYTES> stored{};  // NUL-terminated for libsodium
  phc.copy(stored.data(), phc.size());
  return crypto_pwhash_argon2id_str_verify(stored.data(), candidate.data(), candidate.size()) == 0;
}

json::object redact_secrets(const json::object& data) {
  json::object copy = data;
  auto redact = [](std::string_view, json::value& value) {
    value = kRedacted;
    return true;
  };
  for_each_secret(copy, redact);
  return copy;
}

}  // namespace possync
