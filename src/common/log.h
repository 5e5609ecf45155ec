// Structured log lines: a fixed message and the fields it carries (restaurant, device, remote
// address, error code, ...), written through spdlog's default logger and rendered by the format
// the process chose (--log-format):
//
//   text  2025-06-10T14:07:00.123+0000 info device connected restaurant=rest-1 device=pos-1
//   json  {"time":"2025-06-10T14:07:00.123Z","level":"info","message":"device connected",
//          "restaurant":"rest-1","device":"pos-1"}            (one object per line)
//
//   slog::info("device connected", {{"restaurant", origin.restaurant_id}, {"device", id}});
//
// Keep the message constant and put what varies in fields: log stores group and search by them.
// Field names in use: restaurant, device, user, remote, method, path, status, code (an error code
// of docs/protocol.md section 9), error (a human-readable reason), close_code, and a few named
// after their quantity (seq, changes, pages, limit_bytes, ...). `time`, `level` and `message` are
// taken by the line itself.
//
// Never pass a token, a signing key, a password or PIN, or a request's query string (it may hold
// a token) as a field or in a message.
//
// Cost: a call whose level is off returns after one comparison; fields are views of the caller's
// values held on the stack, so nothing is allocated or formatted. Arguments are still evaluated
// at the call site: guard one that is expensive to compute with `slog::enabled(level)`.
//
// Thread-safety: any thread. The fields reach the formatter through a thread-local pointer for the
// duration of the call, so the default logger must be synchronous (no async sinks): set_format()
// installs the formatter and keeps spdlog's synchronous default logger.
#pragma once

#include <spdlog/spdlog.h>

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace possync::slog {

using Level = spdlog::level::level_enum;

// One named value of a log line: a string, an integer or a bool (a view: the value must outlive
// the call, which any argument of the call does).
class Field {
 public:
  enum class Kind { string, signed_integer, unsigned_integer, boolean };

  Field(std::string_view key, std::string_view value) : key_(key), kind_(Kind::string), s_(value) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value) : key_(key), kind_(Kind::boolean), b_(value) {}
  template <std::signed_integral T>
  Field(std::string_view key, T value)
      : key_(key), kind_(Kind::signed_integer), i_(static_cast<std::int64_t>(value)) {}
  template <std::unsigned_integral T>
  requires(!std::same_as<T, bool>) Field(std::string_view key, T value)
      : key_(key), kind_(Kind::unsigned_integer), u_(static_cast<std::uint64_t>(value)) {}

  std::string_view key() const { return key_; }
  Kind kind() const { return kind_; }
  std::string_view string() const { return s_; }
  std::int64_t signed_integer() const { return i_; }
  std::uint64_t unsigned_integer() const { return u_; }
  bool boolean() const { return b_; }

 private:
  std::string_view key_;
  Kind kind_;
  union {
    std::string_view s_;
    std::int64_t i_;
    std::uint64_t u_;
    bool b_;
  };
};

using Fields = std::initializer_list<Field>;

enum class Format { text, json };

// Installs `format` on spdlog's default logger (main does, once, before any thread starts).
void set_format(Format format);

// Whether a line at `level` would be written.
inline bool enabled(Level level) {
  return spdlog::default_logger_raw()->should_log(level);
}

// Writes one line (whatever the level; the functions below check it first).
void write(Level level, std::string_view message, std::span<const Field> fields);

inline void log(Level level, std::string_view message, Fields fields = {}) {
  if (enabled(level)) write(level, message, {fields.begin(), fields.size()});
}
inline void trace(std::string_view message, Fields fields = {}) {
  log(Level::trace, message, fields);
}
inline void debug(std::string_view message, Fields fields = {}) {
  log(Level::debug, message, fields);
}
inline void info(std::string_view message, Fields fields = {}) {
  log(Level::info, message, fields);
}
inline void warn(std::string_view message, Fields fields = {}) {
  log(Level::warn, message, fields);
}
inline void error(std::string_view message, Fields fields = {}) {
  log(Level::err, message, fields);
}
inline void critical(std::string_view message, Fields fields = {}) {
  log(Level::critical, message, fields);
}

// The formatters behind set_format (for tests): render one spdlog message, with the fields of
// the write() call in progress on this thread, if any.
std::unique_ptr<spdlog::formatter> make_formatter(Format format);

}  // namespace possync::slog
