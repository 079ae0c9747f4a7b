// Reading the clocks in microseconds: CLOCK_MONOTONIC for durations and deadlines,
// CLOCK_REALTIME for timestamps people read. vDSO calls, no system call.
#pragma once

#include <time.h>

#include <cstdint>

namespace sluice {

inline uint64_t nowMicros(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

}  // namespace sluice
