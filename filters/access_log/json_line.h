// The text pieces of an access log line: JSON string escaping that always yields valid
// JSON (whatever bytes a client sent), RFC 3339 timestamps and fixed-point milliseconds.
// The write* functions store at `out` without bounds checks and return the new end:
// the caller reserves the worst case first (kMaxEscapedPerByte per input byte, the
// k*Size constants for the rest). They never allocate.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::access_log {

inline constexpr size_t kMaxEscapedPerByte = 6;  // \u00XX
inline constexpr size_t kTimestampSize = 24;     // 2024-05-01T12:34:56.789Z
inline constexpr size_t kUintSize = 20;
inline constexpr size_t kMillisSize = kUintSize + 4;

// The inside of a JSON string (no quotes). Valid UTF-8 passes through; quotes,
// backslashes and control bytes are escaped; a byte that is not part of valid UTF-8 is
// read as ISO-8859-1 (what obs-text in HTTP fields historically meant) and written as
// \u00XX, so the line stays valid JSON and nothing is silently lost.
char* writeJsonChars(char* out, std::string_view text);

// "2024-05-01T12:34:56.789Z" for `micros` since the Unix epoch (UTC). The date part is
// cached per thread by second.
char* writeTimestamp(char* out, uint64_t micros);

// `micros` as milliseconds with three decimals: 1234 -> "1.234".
char* writeMillis(char* out, uint64_t micros);

char* writeUint(char* out, uint64_t value);

// Conveniences over std::string (tests, cold paths).
void appendJsonString(std::string& out, std::string_view text);  // with quotes
void appendTimestamp(std::string& out, uint64_t micros);
void appendMillis(std::string& out, uint64_t micros);

}  // namespace sluice::access_log
