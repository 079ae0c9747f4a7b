// Reading the clocks in microseconds (CLOCK_MONOTONIC for durations and deadlines,
// CLOCK_REALTIME for timestamps people read; vDSO calls, no system call), and turning
// durations into libevent's timevals.
#pragma once

#include <sys/time.h>
#include <time.h>

#include <chrono>
#include <cstdint>

namespace sluice {

inline uint64_t nowMicros(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// For event_add and friends.
inline timeval microsToTimeval(uint64_t us) {
  return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
}
inline timeval toTimeval(std::chrono::milliseconds d) {
  return microsToTimeval(static_cast<uint64_t>(d.count()) * 1000);
}

}  // namespace sluice
