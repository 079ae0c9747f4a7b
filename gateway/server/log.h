// Minimal process log to stderr: one line per event, written with a single write(2) so
// lines from different workers never interleave. Never log secrets or request bodies.
#pragma once

#include <cstdarg>

namespace sluice::log {

enum class Level { kDebug, kInfo, kWarn, kError };

void setLevel(Level level);
bool enabled(Level level);
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace sluice::log

#define SLUICE_LOG(level, ...)                                        \
  do {                                                                \
    if (::sluice::log::enabled(::sluice::log::Level::level))          \
      ::sluice::log::write(::sluice::log::Level::level, __VA_ARGS__); \
  } while (0)
#define LOG_DEBUG(...) SLUICE_LOG(kDebug, __VA_ARGS__)
#define LOG_INFO(...) SLUICE_LOG(kInfo, __VA_ARGS__)
#define LOG_WARN(...) SLUICE_LOG(kWarn, __VA_ARGS__)
#define LOG_ERROR(...) SLUICE_LOG(kError, __VA_ARGS__)
