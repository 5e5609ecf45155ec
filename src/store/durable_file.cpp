#include "store/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace possync {
namespace {

Result<void> sync_path(const std::string& path, int flags, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    return Error{errc::kStoreUnavailable,
                 fmt::format("cannot sync the {} {}: {}", what, path, std::strerror(err))};
  }
  ::close(fd);
  return {};
}

}  // namespace

Result<void> sync_file(const std::string& path) {
  return sync_path(path, O_RDONLY, "file");
}

Result<void> sync_parent_directory(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  return sync_path(dir.string(), O_RDONLY | O_DIRECTORY, "directory");
}

Result<void> durable_rename(const std::string& from, const std::string& to) {
  if (auto synced = sync_file(from); !synced) return synced;
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return Error{errc::kStoreUnavailable,
                 fmt::format("cannot rename {} to {}: {}", from, to, std::strerror(errno))};
  }
  return sync_parent_directory(to);
}

}  // namespace possync
