#include "common/time.h"

#include <algorithm>
#include <charconv>
#include <chrono>

namespace possync {
namespace {

// Writes `value` in decimal, zero-padded to `width` characters (the sign counts, as in printf).
char* put_padded(char* out, std::int64_t value, int width) {
  if (value < 0) {
    *out++ = '-';
    --width;
    value = -value;
  }
  char digits[20];
  char* end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  for (auto pad = width - (end - digits); pad > 0; --pad) *out++ = '0';
  return std::copy(digits, end, out);
}

}  // namespace

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Written digit by digit: it runs for every committed change (updated_at, the delivered
// timestamp) and every log line, where a format string cost more than the rest of the render.
std::string iso8601_utc(std::int64_t epoch_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> tp{milliseconds{epoch_ms}};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  char text[48];
  char* p = put_padded(text, static_cast<int>(ymd.year()), 4);
  *p++ = '-';
  p = put_padded(p, static_cast<unsigned>(ymd.month()), 2);
  *p++ = '-';
  p = put_padded(p, static_cast<unsigned>(ymd.day()), 2);
  *p++ = 'T';
  p = put_padded(p, hms.hours().count(), 2);
  *p++ = ':';
  p = put_padded(p, hms.minutes().count(), 2);
  *p++ = ':';
  p = put_padded(p, hms.seconds().count(), 2);
  *p++ = '.';
  p = put_padded(p, hms.subseconds().count(), 3);
  *p++ = 'Z';
  return std::string(text, p);
}

}  // namespace possync
