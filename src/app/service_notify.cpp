#include "app/service_notify.h"

#include <fmt/format.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <string>

namespace possync {
namespace {

void notify(const std::string& state) {
  sd_notify(0, state.c_str());
}

}  // namespace

void notify_ready(std::string_view status) {
  notify(fmt::format("READY=1\nSTATUS={}", status));
}

void notify_reloading() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                    static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  notify(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", usec));
}

void notify_stopping() {
  notify("STOPPING=1\nSTATUS=shutting down");
}

}  // namespace possync
