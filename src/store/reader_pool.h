// ReaderPool<Conn>: a fixed set of read connections shared by any number of threads. A read checks
// a connection out (waiting while every one is in use) and the returned Lease gives it back when it
// goes out of scope. Used by SqliteStore and PostgresStore, whose reads run on their own pooled
// connections.
//
// Thread-safety: checkout() may be called from any thread; a Lease is used by one thread.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace possync {

template <class Conn>
class ReaderPool {
 public:
  // The connection a read holds; returned to the pool when the lease is destroyed.
  class Lease {
   public:
    Lease(ReaderPool& pool, std::unique_ptr<Conn> conn) : pool_(&pool), conn_(std::move(conn)) {}
    ~Lease() {
      if (conn_) pool_->give_back(std::move(conn_));
    }
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;

    Conn& operator*() const { return *conn_; }
    Conn* operator->() const { return conn_.get(); }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Conn> conn_;
  };

  // `count` connections (at least one), each made by `make()`.
  template <class Make>
  ReaderPool(std::size_t count, Make&& make) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, count); ++i) idle_.push_back(make());
  }
  ReaderPool(const ReaderPool&) = delete;
  ReaderPool& operator=(const ReaderPool&) = delete;

  // An idle connection; waits while all are checked out.
  Lease checkout() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !idle_.empty(); });
    std::unique_ptr<Conn> conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(*this, std::move(conn));
  }

  // Connections not checked out right now.
  std::size_t idle() const {
    std::lock_guard lock(mutex_);
    return idle_.size();
  }

 private:
  void give_back(std::unique_ptr<Conn> conn) {
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(conn));
    }
    cv_.notify_one();
  }

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Conn>> idle_;
};

}  // namespace possync
