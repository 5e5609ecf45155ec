#include "auth/keys.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace possync {
namespace {

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > 64) return false;
  for (char c : kid) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::vector<JwtKey>> parse_keys(std::string_view text, std::string_view source) {
  std::vector<JwtKey> keys;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](std::string_view why) {
      return Error{errc::kInvalidField, fmt::format("{} line {}: {}", source, line_no, why)};
    };
    const auto space = line.find_first_of(" \t");
    if (space == std::string_view::npos) return bad("expected '<kid> <secret>'");
    const std::string_view kid = line.substr(0, space);
    const std::string_view secret_text = trim(line.substr(space));
    if (!valid_kid(kid)) return bad("key id must be 1-64 characters of A-Z a-z 0-9 . _ -");
    auto secret = base64url_decode(secret_text);
    if (!secret) return bad("secret must be base64url (no padding)");
    if (secret->size() < kMinSecretBytes) {
      return bad(fmt::format("secret must be at least {} bytes", kMinSecretBytes));
    }
    for (const auto& k : keys) {
      if (k.kid == kid) return bad(fmt::format("key id '{}' appears twice", kid));
    }
    keys.push_back({std::string(kid), std::move(*secret)});
  }
  if (keys.empty()) return Error{errc::kMissingField, fmt::format("{} holds no key", source)};
  return keys;
}

std::string generate_key_line(std::string_view kid) {
  unsigned char bytes[kMinSecretBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  return fmt::format("{} {}", kid,
                     base64url_encode({reinterpret_cast<const char*>(bytes), sizeof bytes}));
}

Result<std::vector<JwtKey>> load_keys(const std::string& path, bool create, bool* created) {
  namespace fs = std::filesystem;
  if (created) *created = false;
  std::error_code ec;
  if (create && !fs::exists(path, ec)) {
    if (auto parent = fs::path(path).parent_path(); !parent.empty()) {
      fs::create_directories(parent, ec);
    }
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno != EEXIST) {
      return Error{errc::kInvalidField,
                   fmt::format("cannot create key file {}: {}", path, std::strerror(errno))};
    }
    if (fd >= 0) {
      const std::string text = fmt::format(
          "# possync token signing keys: \"<kid> <secret>\" per line; the first signs.\n{}\n",
          generate_key_line("k1"));
      const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                      ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return Error{errc::kInvalidField, fmt::format("cannot write key file {}", path)};
      if (created) *created = true;
    }
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{errc::kInvalidField, fmt::format("cannot read key file {}", path)};
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Error{errc::kInvalidField,
                 fmt::format("key file {} is readable by others; chmod 600 it", path)};
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_keys(text.str(), path);
}

}  // namespace possync
