#include "common/json_text.h"

#include <algorithm>
#include <array>
#include <bit>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/value_stack.hpp>
#include <charconv>
#include <cmath>
#include <cstring>
#include <iterator>
#include <memory>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace json = boost::json;

namespace possync {
namespace {

// What follows the backslash for each byte that needs escaping in a JSON string, as
// boost::json::serialize escapes: the short forms \b \t \n \f \r, `u` for the other control
// characters (\u00XX), and `"` and `\` themselves; 0 for bytes written as they are.
constexpr std::array<char, 256> kEscapes = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['\b'] = 'b';
  t['\t'] = 't';
  t['\n'] = 'n';
  t['\f'] = 'f';
  t['\r'] = 'r';
  t['"'] = '"';
  t['\\'] = '\\';
  return t;
}();

// put_double() writes at most 25 bytes of text but needs this much room at `out`: it copies
// digits 24 bytes at a time, whatever their number (at most 17), and the text ends where it says.
constexpr std::size_t kDoubleRoom = 48;

// Writes `size` digits (from 24 readable bytes at `digits`) with a point after the first `point`
// of them (0 < point < size) at `out`; returns the end. Writes up to 42 bytes.
char* put_with_point(char* out, const char* digits, int size, int point) {
  std::memcpy(out, digits, 24);
  std::memmove(out + point + 1, out + point, 24);
  out[point] = '.';
  return out + size + 1;
}

// Writes "0.", -point zeros (0 <= -point < 6) and `size` digits (from 24 readable bytes at
// `digits`) at `out`; returns the end. Writes up to 31 bytes.
char* put_below_one(char* out, const char* digits, int size, int point) {
  std::memcpy(out, "0.000000", 8);
  out += 2 - point;
  std::memcpy(out, digits, 24);
  return out + size;
}

// Writes x > 0 as Number::toString(x) does if it is a short decimal (prices, quantities, rates:
// 25.5, 1234.56, 0.0825), without std::to_chars (its costliest part); returns the end, or nullptr
// for other numbers.
//
// For i = 0, 1, ..., 8 it takes s = round(x * 10^i) and stops at the first i where s / 10^i reads
// back as x (that division is the correctly rounded read of the decimal s * 10^-i, as s < 2^53 and
// 10^i are exact). While x * 10^i < 10^15 < 2^50 the product is off by less than 1/8 and a decimal
// with i fraction digits that reads back as x is within 1/8 of the exact product, so rounding finds
// that decimal and it is the only one: the first i gives the fewest fraction digits, hence the
// fewest digits, and no tie, as Number::toString asks.
char* put_short_decimal(char* out, double x) {
  static constexpr double kPow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
  if (x < 1e-6) return nullptr;  // decimal notation needs x > 1e-7, and 0.000000x is not short
  // Most other numbers fail at once: a short decimal s * 10^-i (i <= 8) that reads back as x is
  // within x * 2^-53 of it, so x * 10^8 (off by at most as much again) is within x * 10^8 * 2^-52
  // of the integer s * 10^(8-i).
  if (const double scaled = x * 1e8; scaled < 1e15) {
    const auto nearest = static_cast<double>(static_cast<std::uint64_t>(scaled + 0.5));
    if (std::fabs(scaled - nearest) > scaled * 0x1p-51) return nullptr;
  }
  for (int i = 0; i < static_cast<int>(std::size(kPow10)); ++i) {
    const double scaled = x * kPow10[i];
    if (!(scaled < 1e15)) return nullptr;
    const auto rounded = static_cast<std::uint64_t>(scaled + 0.5);  // exact: scaled < 2^50
    if (static_cast<double>(rounded) / kPow10[i] != x) continue;
    char digits[24] = {};  // at most 15 digits
    const int size =
        static_cast<int>(std::to_chars(digits, digits + sizeof digits, rounded).ptr - digits);
    const int point = size - i;  // digits before the point
    if (i == 0) {
      std::memcpy(out, digits, 24);
      return out + size;
    }
    if (point > 0) return put_with_point(out, digits, size, point);
    if (point <= -6) return nullptr;  // 1e-7 and below: exponent form
    return put_below_one(out, digits, size, point);
  }
  return nullptr;
}

// Writes `d` as ECMAScript's Number::toString(d) writes it (for finite d) at `out`, which has
// kDoubleRoom bytes; returns the end.
char* put_double(char* out, double d) {
  if (d == 0) {  // also -0
    *out++ = '0';
    return out;
  }
  if (d < 0) *out++ = '-';
  if (char* end = put_short_decimal(out, std::fabs(d))) return end;
  // Number::toString(x): x = 0.d1d2...dk * 10^n with the fewest digits k that read back as x (the
  // closest to x when several are as short). std::to_chars without a precision gives exactly
  // those digits; its scientific form d1[.d2...dk]e(+|-)XX[X] is taken apart here.
  char sci[40] = {};
  const char* const sci_end =
      std::to_chars(sci, sci + 32, std::fabs(d), std::chars_format::scientific).ptr;
  const char* const e = sci_end[-4] == 'e' ? sci_end - 4 : sci_end - 5;  // 2 or 3 digits
  int exponent = (e[2] - '0') * 10 + (e[3] - '0');
  if (e + 5 == sci_end) exponent = exponent * 10 + (e[4] - '0');
  const bool negative_exponent = e[1] == '-';
  if (negative_exponent) exponent = -exponent;
  const int k = e == sci + 1 ? 1 : static_cast<int>(e - sci) - 1;
  const int n = exponent + 1;
  // The k digits without the point, in the first k of 24 readable bytes.
  char digits[24] = {};
  digits[0] = sci[0];
  std::memcpy(digits + 1, sci + 2, 16);

  if (k <= n && n <= 21) {  // an integer: the digits, then n - k zeros (up to 41 bytes written)
    std::memcpy(out, digits, 24);
    std::memset(out + k, '0', 24);
    return out + n;
  }
  if (0 < n && n <= 21) return put_with_point(out, digits, k, n);
  if (-6 < n && n <= 0) return put_below_one(out, digits, k, n);
  // d.ddde+XX or d.ddde-XX: to_chars's text without the exponent's leading zero.
  const auto mantissa = static_cast<std::size_t>(e - sci);
  std::memcpy(out, sci, 24);
  out += mantissa;
  *out++ = 'e';
  *out++ = negative_exponent ? '-' : '+';
  const int magnitude = std::abs(exponent);
  if (magnitude >= 100) *out++ = static_cast<char>('0' + magnitude / 100);
  if (magnitude >= 10) *out++ = static_cast<char>('0' + magnitude / 10 % 10);
  *out++ = static_cast<char>('0' + magnitude % 10);
  return out;
}

// Where JSON text is written: a buffer on the stack for the first 4 KiB, then on the heap, written
// through a pointer (no capacity check per character, no zero-filling as std::string::resize
// does). Copied into a std::string once, at the end.
class TextBuffer {
 public:
  TextBuffer() = default;
  TextBuffer(const TextBuffer&) = delete;
  TextBuffer& operator=(const TextBuffer&) = delete;

  // At least `n` writable bytes at the returned position; commit() what was written.
  char* room(std::size_t n) {
    if (static_cast<std::size_t>(end_ - next_) < n) grow(n);
    return next_;
  }
  void commit(char* end) { next_ = end; }
  void put(char c) {
    room(1);
    *next_++ = c;
  }
  void put(const char* text, std::size_t n) {
    std::memcpy(room(n), text, n);
    next_ += n;
  }
  const char* data() const { return begin_; }
  std::size_t size() const { return static_cast<std::size_t>(next_ - begin_); }

 private:
  void grow(std::size_t n) {
    const std::size_t used = size();
    const std::size_t capacity = std::max(2 * static_cast<std::size_t>(end_ - begin_), used + n);
    auto bigger = std::make_unique_for_overwrite<char[]>(capacity);
    std::memcpy(bigger.get(), begin_, used);
    heap_ = std::move(bigger);
    begin_ = heap_.get();
    next_ = begin_ + used;
    end_ = begin_ + capacity;
  }

  char stack_[4096];
  std::unique_ptr<char[]> heap_;
  char* begin_ = stack_;
  char* next_ = stack_;
  char* end_ = stack_ + sizeof stack_;
};

#if !defined(__SSE2__)
// Whether any of the 8 bytes in `w` needs escaping (below 0x20, '"' or '\'): the bit tricks for
// "has a byte less than n" and "has a zero byte", exact for the whole word.
constexpr bool word_needs_escape(std::uint64_t w) {
  constexpr std::uint64_t kOnes = 0x0101010101010101;
  constexpr std::uint64_t kHighs = 0x8080808080808080;
  const std::uint64_t quote = w ^ (kOnes * '"');
  const std::uint64_t backslash = w ^ (kOnes * '\\');
  return (((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) |
          ((backslash - kOnes) & ~backslash)) &
         kHighs;
}
#endif

// How many of the 16 bytes at `p` come before the first that needs escaping (16: none does).
unsigned clean_prefix16(const char* p) {
#if defined(__SSE2__)
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
  const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
  const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);  // v <= 0x1f
  const auto mask = static_cast<unsigned>(
      _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)));
  return mask == 0 ? 16 : static_cast<unsigned>(std::countr_zero(mask));
#else
  std::uint64_t words[2];
  std::memcpy(words, p, sizeof words);
  if (!word_needs_escape(words[0]) && !word_needs_escape(words[1])) return 16;
  unsigned n = 0;
  while (kEscapes[static_cast<unsigned char>(p[n])] == 0) ++n;
  return n;
#endif
}

// A JSON string literal at the end of `b`: 16 bytes at a time up to the next byte that needs
// escaping, byte by byte in the last 15.
void put_string(TextBuffer& b, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  const char* p = s.data();
  const char* const end = p + s.size();
  // Room for the rest and the closing quote if nothing needs escaping; each escape asks for more.
  char* o = b.room(s.size() + 2);
  *o++ = '"';
  while (p != end) {
    if (end - p >= 16) {
      const unsigned clean = clean_prefix16(p);
      std::memcpy(o, p, 16);
      o += clean;
      p += clean;
      if (clean == 16) continue;
    } else {
      while (p != end && kEscapes[static_cast<unsigned char>(*p)] == 0) *o++ = *p++;
      if (p == end) break;
    }
    const auto c = static_cast<unsigned char>(*p++);
    b.commit(o);
    o = b.room(6 + static_cast<std::size_t>(end - p) + 1);
    *o++ = '\\';
    if (kEscapes[c] != 'u') {
      *o++ = kEscapes[c];
    } else {
      const char text[5] = {'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      std::memcpy(o, text, 5);
      o += 5;
    }
  }
  *o++ = '"';
  b.commit(o);
}

template <class Int>
char* put_integer(char* out, Int n) {
  return std::to_chars(out, out + 24, n).ptr;
}

void put_value(TextBuffer& b, const json::value& v);

void put_object(TextBuffer& b, const json::object& o) {
  if (o.empty()) {
    b.put("{}", 2);
    return;
  }
  char separator = '{';
  for (const auto& member : o) {
    b.put(separator);
    separator = ',';
    put_string(b, std::string_view(member.key()));
    b.put(':');
    put_value(b, member.value());
  }
  b.put('}');
}

void put_array(TextBuffer& b, const json::array& a) {
  if (a.empty()) {
    b.put("[]", 2);
    return;
  }
  char separator = '[';
  for (const auto& element : a) {
    b.put(separator);
    separator = ',';
    put_value(b, element);
  }
  b.put(']');
}

void put_value(TextBuffer& b, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      b.put("null", 4);
      return;
    case json::kind::bool_:
      if (v.get_bool()) {
        b.put("true", 4);
      } else {
        b.put("false", 5);
      }
      return;
    case json::kind::int64:
      b.commit(put_integer(b.room(24), v.get_int64()));
      return;
    case json::kind::uint64:
      b.commit(put_integer(b.room(24), v.get_uint64()));
      return;
    case json::kind::double_:
      if (std::isfinite(v.get_double())) {
        b.commit(put_double(b.room(kDoubleRoom), v.get_double()));
      } else {
        b.put("null", 4);
      }
      return;
    case json::kind::string:
      put_string(b, std::string_view(v.get_string()));
      return;
    case json::kind::array:
      put_array(b, v.get_array());
      return;
    case json::kind::object:
      put_object(b, v.get_object());
      return;
  }
}

// Whether Boost.JSON's own reading of a number is already the nearest double: it computes
// mantissa / 10^k or mantissa * 10^k, one correctly rounded operation on exact operands when the
// mantissa is below 2^53 and k at most 22 (Clinger's fast path). A number of at most 15 characters
// without an exponent (25.5, -1234.56) is such a case, and the most common one. Of the characters
// of a JSON number only `e` and `E` have bit 0x40 set.
bool boost_reads_exactly(std::string_view text) {
  if (text.size() > 15) return false;
  unsigned bits = 0;
  for (const char c : text) bits |= static_cast<unsigned char>(c);
  return (bits & 0x40) == 0;
}

// JSON text <- UTF-8: boost::json::basic_parser's handler, building the value as boost::json's own
// parser does (value_stack), except that a number with a fraction or an exponent that the parser
// may have read inexactly (boost_reads_exactly) is read again from its text with std::from_chars.
class ExactNumberHandler {
 public:
  static constexpr std::size_t max_object_size = json::object::max_size();
  static constexpr std::size_t max_array_size = json::array::max_size();
  static constexpr std::size_t max_key_size = json::string::max_size();
  static constexpr std::size_t max_string_size = json::string::max_size();

  ExactNumberHandler(unsigned char* buffer, std::size_t size)
      : stack(json::storage_ptr(), buffer, size) {}

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) { return true; }
  bool on_object_end(std::size_t n, json::error_code&) {
    stack.push_object(n);
    return true;
  }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t n, json::error_code&) {
    stack.push_array(n);
    return true;
  }
  bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
    stack.push_chars(s);
    return true;
  }
  bool on_key(json::string_view s, std::size_t, json::error_code&) {
    stack.push_key(s);
    return true;
  }
  bool on_string_part(json::string_view s, std::size_t, json::error_code&) {
    stack.push_chars(s);
    return true;
  }
  bool on_string(json::string_view s, std::size_t, json::error_code&) {
    stack.push_string(s);
    return true;
  }
  // A number split across two writes arrives in parts; parse_json writes once, so this is only
  // for completeness.
  bool on_number_part(json::string_view s, json::error_code&) {
    number_.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, json::string_view, json::error_code&) {
    number_.clear();
    stack.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, json::string_view, json::error_code&) {
    number_.clear();
    stack.push_uint64(u);
    return true;
  }
  bool on_double(double d, json::string_view s, json::error_code&) {
    std::string_view text(s.data(), s.size());
    if (!number_.empty()) {
      number_.append(text);
      text = number_;
    }
    if (!boost_reads_exactly(text)) {
      // Out of range (beyond ±1.8e308, or so small it is zero) keeps the parser's ±inf or ±0;
      // the callers refuse infinities.
      double exact = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), exact);
      if (ec == std::errc() && end == text.data() + text.size()) d = exact;
    }
    number_.clear();
    stack.push_double(d);
    return true;
  }
  bool on_bool(bool b, json::error_code&) {
    stack.push_bool(b);
    return true;
  }
  bool on_null(json::error_code&) {
    stack.push_null();
    return true;
  }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

  json::value_stack stack;

 private:
  std::string number_;
};

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  TextBuffer b;
  put_string(b, s);
  out.append(b.data(), b.size());
}

void append_json_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out.append("null", 4);
    return;
  }
  char text[kDoubleRoom];
  out.append(text, static_cast<std::size_t>(put_double(text, d) - text));
}

void append_json_number(std::string& out, std::int64_t n) {
  char text[24];
  out.append(text, static_cast<std::size_t>(put_integer(text, n) - text));
}

void append_json_number(std::string& out, std::uint64_t n) {
  char text[24];
  out.append(text, static_cast<std::size_t>(put_integer(text, n) - text));
}

void append_json(std::string& out, const json::value& v) {
  TextBuffer b;
  put_value(b, v);
  out.append(b.data(), b.size());
}

void append_json(std::string& out, const json::object& o) {
  TextBuffer b;
  put_object(b, o);
  out.append(b.data(), b.size());
}

void append_json(std::string& out, const json::array& a) {
  TextBuffer b;
  put_array(b, a);
  out.append(b.data(), b.size());
}

std::string json_text(const json::value& v) {
  TextBuffer b;
  put_value(b, v);
  return std::string(b.data(), b.size());
}

std::string json_text(const json::object& o) {
  TextBuffer b;
  put_object(b, o);
  return std::string(b.data(), b.size());
}

json::value parse_json(std::string_view text, boost::system::error_code& ec,
                       const json::parse_options& options) {
  // The value stack's scratch space, as boost::json::parse has on its stack.
  unsigned char scratch[BOOST_JSON_STACK_BUFFER_SIZE];
  json::basic_parser<ExactNumberHandler> parser(options, scratch, sizeof scratch);
  parser.handler().stack.reset();
  ec = {};
  const std::size_t used = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && used < text.size()) ec = json::make_error_code(json::error::extra_data);
  if (!ec && !parser.done()) ec = json::make_error_code(json::error::incomplete);
  if (ec) return nullptr;
  return parser.handler().stack.release();
}

}  // namespace possync
