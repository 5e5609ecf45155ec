#include "common/ids.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace possync {
namespace {

constexpr std::size_t kMax = 128;

// The reasons check_id gives, as optionals so that failures print readably.
const std::optional<std::string> kOk;
const std::optional<std::string> kNotUtf8{"is not valid UTF-8"};
const std::optional<std::string> kControl{"contains a control character"};

// Builds a string from raw bytes (which may contain NUL).
std::string bytes(std::initializer_list<unsigned char> b) {
  return std::string(b.begin(), b.end());
}

TEST(CheckId, AcceptsOrdinaryIds) {
  EXPECT_EQ(check_id("restaurant-42", kMax), kOk);
  EXPECT_EQ(check_id("a", kMax), kOk);
  EXPECT_EQ(check_id("1712345678901_device-7_order-9", kMax), kOk);
  EXPECT_EQ(check_id("with space and ~!@#$%^&*()", kMax), kOk);
  EXPECT_EQ(check_id("~", kMax), kOk);  // 0x7e, just below DEL
}

TEST(CheckId, AcceptsMultiByteUtf8) {
  EXPECT_EQ(check_id("café", kMax), kOk);                    // 2-byte é
  EXPECT_EQ(check_id("\xC2\xA0nbsp", kMax), kOk);            // U+00A0, first after C1
  EXPECT_EQ(check_id("レストラン", kMax), kOk);              // 3-byte
  EXPECT_EQ(check_id("\xF0\x9F\x8D\x95 pizza", kMax), kOk);  // 4-byte emoji
  EXPECT_EQ(check_id("\xF4\x8F\xBF\xBF", kMax), kOk);        // U+10FFFF, the last
  EXPECT_EQ(check_id("\xEF\xBF\xBD", kMax), kOk);            // U+FFFD
  EXPECT_EQ(check_id("\xE0\xA0\x80", kMax), kOk);            // U+0800, smallest 3-byte
  EXPECT_EQ(check_id("\xF0\x90\x80\x80", kMax), kOk);        // U+10000
}

TEST(CheckId, RejectsEmpty) {
  const auto why = check_id("", kMax);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "is empty");
}

TEST(CheckId, LengthLimitIsInclusiveAndCountsBytes) {
  EXPECT_EQ(check_id(std::string(kMax, 'x'), kMax), kOk);
  const auto why = check_id(std::string(kMax + 1, 'x'), kMax);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "is longer than 128 bytes");

  // Two 2-byte characters are 4 bytes: over a limit of 3 although only 2 characters.
  EXPECT_TRUE(check_id("éé", 3).has_value());
  EXPECT_EQ(check_id("éé", 4), kOk);
  EXPECT_EQ(*check_id("abcd", 3), "is longer than 3 bytes");
}

TEST(CheckId, RejectsC0ControlCharactersAndDel) {
  for (int c = 0; c < 0x20; ++c) {
    std::string id = "ab";
    id.insert(id.begin() + 1, static_cast<char>(c));
    const auto why = check_id(id, kMax);
    ASSERT_TRUE(why.has_value()) << "byte 0x" << std::hex << c;
    EXPECT_EQ(*why, kControl) << "byte 0x" << std::hex << c;
  }
  EXPECT_EQ(check_id("a\x7f", kMax), kControl);
  EXPECT_EQ(check_id(std::string_view("a\0b", 3), kMax), kControl);
  EXPECT_EQ(check_id("line\nbreak", kMax), kControl);
  EXPECT_EQ(check_id("tab\there", kMax), kControl);
}

TEST(CheckId, RejectsC1ControlCharacters) {
  for (unsigned char second = 0x80; second <= 0x9f; ++second) {
    const std::string id = "x" + bytes({0xC2, second}) + "y";
    const auto why = check_id(id, kMax);
    ASSERT_TRUE(why.has_value()) << "U+00" << std::hex << static_cast<int>(second);
    EXPECT_EQ(*why, kControl);
  }
  EXPECT_EQ(check_id(bytes({0xC2, 0xA0}), kMax), kOk);  // U+00A0 is not a control
}

TEST(CheckId, RejectsTruncatedSequences) {
  const std::string cases[] = {
      bytes({0xC3}),                   // 2-byte lead at the end
      "ab" + bytes({0xE3, 0x83}),      // 3-byte sequence cut after 2 bytes
      bytes({0xE3}),                   // 3-byte lead alone
      bytes({0xF0, 0x9F, 0x8D}),       // 4-byte sequence cut after 3 bytes
      bytes({0xC3, 'a'}),              // lead followed by a non-continuation byte
      bytes({0xE3, 0x83, 'a'}),        // 3-byte sequence broken in its last byte
      bytes({0xF0, 0x9F, 'a', 0x95}),  // 4-byte sequence broken in the middle
  };
  for (const auto& id : cases) {
    EXPECT_EQ(check_id(id, kMax), kNotUtf8) << testing::PrintToString(id);
  }
}

TEST(CheckId, RejectsLoneContinuationBytes) {
  EXPECT_EQ(check_id(bytes({0x80}), kMax), kNotUtf8);
  EXPECT_EQ(check_id("a" + bytes({0xBF}) + "b", kMax), kNotUtf8);
}

TEST(CheckId, RejectsTwoByteOverlongs) {
  EXPECT_EQ(check_id(bytes({0xC0, 0x80}), kMax), kNotUtf8);  // overlong NUL
  EXPECT_EQ(check_id(bytes({0xC0, 0xAF}), kMax), kNotUtf8);  // overlong '/'
  EXPECT_EQ(check_id(bytes({0xC1, 0xBF}), kMax), kNotUtf8);  // overlong DEL
}

TEST(CheckId, RejectsLeadBytesAboveF4) {
  for (int lead = 0xF5; lead <= 0xFF; ++lead) {
    const std::string id = bytes({static_cast<unsigned char>(lead), 0x80, 0x80, 0x80});
    EXPECT_EQ(check_id(id, kMax), kNotUtf8) << "lead 0x" << std::hex << lead;
  }
}

// The following sequences are not valid UTF-8 (RFC 3629, section 4; Unicode Table 3-7): overlong
// 3- and 4-byte forms, UTF-16 surrogates, and code points above U+10FFFF. check_id's contract is
// "valid UTF-8", so each must be rejected.
TEST(CheckId, RejectsThreeByteOverlongs) {
  EXPECT_EQ(check_id(bytes({0xE0, 0x80, 0xAF}), kMax), kNotUtf8);  // overlong '/'
  EXPECT_EQ(check_id(bytes({0xE0, 0x9F, 0xBF}), kMax), kNotUtf8);  // overlong U+07FF
}

TEST(CheckId, RejectsFourByteOverlongs) {
  EXPECT_EQ(check_id(bytes({0xF0, 0x80, 0x80, 0xAF}), kMax), kNotUtf8);
  EXPECT_EQ(check_id(bytes({0xF0, 0x8F, 0xBF, 0xBF}), kMax), kNotUtf8);  // U+FFFF
}

TEST(CheckId, RejectsSurrogates) {
  EXPECT_EQ(check_id(bytes({0xED, 0xA0, 0x80}), kMax), kNotUtf8);  // U+D800
  EXPECT_EQ(check_id(bytes({0xED, 0xBF, 0xBF}), kMax), kNotUtf8);  // U+DFFF
  EXPECT_EQ(check_id(bytes({0xED, 0x9F, 0xBF}), kMax), kOk);       // U+D7FF is fine
}

TEST(CheckId, RejectsCodePointsAboveMax) {
  EXPECT_EQ(check_id(bytes({0xF4, 0x90, 0x80, 0x80}), kMax), kNotUtf8);  // U+110000
  EXPECT_EQ(check_id(bytes({0xF4, 0xBF, 0xBF, 0xBF}), kMax), kNotUtf8);
}

}  // namespace
}  // namespace possync
