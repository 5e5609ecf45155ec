#include "auth/keys.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace possync {
namespace {

namespace fs = std::filesystem;

std::string secret_text(char fill = 'x', std::size_t n = 32) {
  return base64url_encode(std::string(n, fill));
}

TEST(Keys, ParsesKeysInOrderSkippingCommentsAndBlankLines) {
  auto keys = parse_keys(
      "# comment\n\nnew " + secret_text('n') + "\r\n  old\t" + secret_text('o') + "  \n", "test");
  ASSERT_TRUE(keys) << keys.error().message;
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].kid, "new");
  EXPECT_EQ((*keys)[0].secret, std::string(32, 'n'));
  EXPECT_EQ((*keys)[1].kid, "old");
  EXPECT_EQ((*keys)[1].secret, std::string(32, 'o'));
}

TEST(Keys, RejectsEveryMalformedFileWithTheLineNumber) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "holds no key"},
      {"# only a comment\n", "holds no key"},
      {"k1\n", "line 1"},
      {"k1 " + secret_text('a', 31) + "\n", "at least 32 bytes"},
      {"k1 not+base64url\n", "base64url"},
      {"bad/kid " + secret_text() + "\n", "key id"},
      {std::string(65, 'k') + " " + secret_text() + "\n", "key id"},
      {"k1 " + secret_text() + "\nk1 " + secret_text('y') + "\n", "line 2"},
  };
  for (const auto& [text, why] : cases) {
    auto keys = parse_keys(text, "keyfile");
    ASSERT_FALSE(keys) << text;
    EXPECT_NE(keys.error().message.find(why), std::string::npos) << keys.error().message;
    EXPECT_NE(keys.error().message.find("keyfile"), std::string::npos);
  }
}

TEST(Keys, GeneratedLinesParseAndDiffer) {
  const auto a = generate_key_line("k1");
  const auto b = generate_key_line("k1");
  EXPECT_NE(a, b);
  auto keys = parse_keys(a, "generated");
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->front().kid, "k1");
  EXPECT_EQ(keys->front().secret.size(), kMinSecretBytes);
}

class KeyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "possync-keys-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(KeyFileTest, CreatesAPrivateFileOnceAndReadsItBack) {
  const auto path = (dir_ / "sub" / "jwt.keys").string();
  bool created = false;
  auto first = load_keys(path, true, &created);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto second = load_keys(path, true, &created);
  ASSERT_TRUE(second);
  EXPECT_FALSE(created);
  EXPECT_EQ(second->front().secret, first->front().secret);
}

TEST_F(KeyFileTest, MissingFileWithoutCreateAndReadableByOthersAreErrors) {
  const auto path = (dir_ / "jwt.keys").string();
  EXPECT_FALSE(load_keys(path, false));
  std::ofstream(path) << "k1 " << secret_text() << "\n";
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  auto keys = load_keys(path, false);
  ASSERT_FALSE(keys);
  EXPECT_NE(keys.error().message.find("chmod 600"), std::string::npos);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(load_keys(path, false));
}

}  // namespace
}  // namespace possync
