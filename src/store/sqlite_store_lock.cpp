#include "store/sqlite_store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fmt/format.h>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace possync {

Result<SqliteStoreLock> SqliteStoreLock::acquire(const std::string& db_path) {
  std::error_code ec;
  const auto parent = std::filesystem::path(db_path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) {
    return Error{errc::kStoreUnavailable,
                 fmt::format("cannot create directory {}: {}", parent.string(), ec.message())};
  }
  const std::string lock_path = db_path + ".lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error{errc::kStoreUnavailable,
                 fmt::format("cannot open lock file {}: {}", lock_path, std::strerror(errno))};
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return Error{errc::kStoreUnavailable,
                 fmt::format("{} is in use by another possync-server process", db_path)};
  }
  return SqliteStoreLock(fd);
}

SqliteStoreLock& SqliteStoreLock::operator=(SqliteStoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

SqliteStoreLock::~SqliteStoreLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace possync
