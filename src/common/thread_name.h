// Names threads as `top -H`, `perf` and debuggers show them (at most 15 characters).
#pragma once

#include <pthread.h>

#include <thread>
#include <utility>

namespace possync {

inline void name_this_thread(const char* name) {
  pthread_setname_np(pthread_self(), name);
}

// Runs `body` on a new thread named `name` (a string literal: it outlives the thread).
template <class Body>
std::thread start_named_thread(const char* name, Body body) {
  return std::thread([name, body = std::move(body)]() mutable {
    name_this_thread(name);
    body();
  });
}

}  // namespace possync
