#include "common/time.h"

#include <gtest/gtest.h>

namespace possync {
namespace {

TEST(Iso8601Utc, FormatsMillisecondsInUtc) {
  EXPECT_EQ(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601_utc(1764128741123), "2025-11-26T03:45:41.123Z");
  EXPECT_EQ(iso8601_utc(1709164800007), "2024-02-29T00:00:00.007Z");  // a leap day
  EXPECT_EQ(iso8601_utc(253402300799999), "9999-12-31T23:59:59.999Z");
}

TEST(Iso8601Utc, PadsEveryField) {
  // 2001-02-03T04:05:06.078Z
  EXPECT_EQ(iso8601_utc(981173106078), "2001-02-03T04:05:06.078Z");
}

TEST(Iso8601Utc, BeforeTheEpoch) {
  EXPECT_EQ(iso8601_utc(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(iso8601_utc(-62198755200000), "-001-01-01T00:00:00.000Z");  // as printf's %04d
}

TEST(NowMs, IsTheSystemClock) {
  const std::int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  const std::int64_t now = now_ms();
  EXPECT_GE(now, before);
  EXPECT_EQ(iso8601_utc(now).size(), 24u);
}

}  // namespace
}  // namespace possync
