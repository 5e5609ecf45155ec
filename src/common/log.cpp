#include "common/log.h"

#include <spdlog/pattern_formatter.h>

#include <chrono>

#include "common/json_text.h"
#include "common/time.h"
#include "common/utf8.h"

namespace possync::slog {
namespace {

// The fields of the write() call in progress on this thread (empty outside one). spdlog's
// synchronous logger formats on the calling thread, inside logger::log.
thread_local std::span<const Field> t_fields;

class FieldsInScope {
 public:
  explicit FieldsInScope(std::span<const Field> fields) { t_fields = fields; }
  ~FieldsInScope() { t_fields = {}; }
  FieldsInScope(const FieldsInScope&) = delete;
  FieldsInScope& operator=(const FieldsInScope&) = delete;
};

void append(spdlog::memory_buf_t& dest, std::string_view text) {
  dest.append(text.data(), text.data() + text.size());
}

template <class T>
void append_integer(spdlog::memory_buf_t& dest, T value) {
  fmt::format_to(std::back_inserter(dest), "{}", value);
}

// A text value as logfmt writes it: bare if it is a plain word, else quoted with `"` and `\`
// escaped and control characters as \n, \t or \xNN.
void append_text_value(spdlog::memory_buf_t& dest, std::string_view value) {
  bool bare = !value.empty();
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') {
      bare = false;
      break;
    }
  }
  if (bare) return append(dest, value);
  dest.push_back('"');
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      dest.push_back('\\');
      dest.push_back(c);
    } else if (c == '\n') {
      append(dest, "\\n");
    } else if (c == '\t') {
      append(dest, "\\t");
    } else if (u < 0x20 || u == 0x7f) {
      fmt::format_to(std::back_inserter(dest), "\\x{:02x}", u);
    } else {
      dest.push_back(c);
    }
  }
  dest.push_back('"');
}

// A field's value: numbers and booleans as they are (the same in text and JSON), a string
// through `put_string`.
template <class PutString>
void append_value(spdlog::memory_buf_t& dest, const Field& f, PutString&& put_string) {
  switch (f.kind()) {
    case Field::Kind::string:
      put_string(f.string());
      break;
    case Field::Kind::signed_integer:
      append_integer(dest, f.signed_integer());
      break;
    case Field::Kind::unsigned_integer:
      append_integer(dest, f.unsigned_integer());
      break;
    case Field::Kind::boolean:
      append(dest, f.boolean() ? "true" : "false");
      break;
  }
}

// " key=value" for each field of the line being written: the `%*` flag of the text pattern.
class TextFieldsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (const Field& f : t_fields) {
      dest.push_back(' ');
      append(dest, f.key());
      dest.push_back('=');
      append_value(dest, f, [&](std::string_view text) { append_text_value(dest, text); });
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TextFieldsFlag>();
  }
};

// One JSON object per line: time (ISO 8601, UTC, milliseconds), level, message, then the fields.
// Text is made valid UTF-8 first (JSON requires it; a byte that is not becomes U+FFFD).
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(msg.time.time_since_epoch()).count();
    append(dest, R"({"time":")");
    append(dest, iso8601_utc(ms));
    append(dest, R"(","level":")");
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    append(dest, R"(","message":)");
    append_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    for (const Field& f : t_fields) {
      dest.push_back(',');
      append_string(dest, f.key());
      dest.push_back(':');
      append_value(dest, f, [&](std::string_view text) { append_string(dest, text); });
    }
    append(dest, "}\n");
  }
  std::unique_ptr<formatter> clone() const override { return std::make_unique<JsonFormatter>(); }

 private:
  void append_string(spdlog::memory_buf_t& dest, std::string_view text) {
    scratch_.clear();
    if (is_valid_utf8(text)) {
      append_json_string(scratch_, text);
    } else {
      append_json_string(scratch_, repair_utf8(text));
    }
    append(dest, scratch_);
  }

  std::string scratch_;  // a sink formats under its own lock: one line at a time
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_formatter(Format format) {
  if (format == Format::json) return std::make_unique<JsonFormatter>();
  auto text = std::make_unique<spdlog::pattern_formatter>();
  text->add_flag<TextFieldsFlag>('*').set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v%*");
  return text;
}

void set_format(Format format) {
  spdlog::set_formatter(make_formatter(format));
}

void write(Level level, std::string_view message, std::span<const Field> fields) {
  FieldsInScope scope(fields);
  spdlog::default_logger_raw()->log(level, message);
}

}  // namespace possync::slog
