#include "filters/access_log/json_line.h"

#include <array>
#include <charconv>
#include <chrono>
#include <cstring>

namespace sluice::access_log {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighs = 0x8080808080808080ull;

// Bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> makePlain() {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[c] = c != '"' && c != '\\';
  return t;
}
constexpr std::array<bool, 256> kPlain = makePlain();

// True if any of the 8 bytes of `w` is not plain: >= 0x80, < 0x20, '"' or '\\'. Paths
// and user agents are almost always plain, so they are copied 8 bytes at a time.
inline bool wordNeedsCare(uint64_t w) {
  auto zeroByte = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  uint64_t control = (w - 0x20 * kOnes) & ~w & kHighs;  // some byte < 0x20 (or >= 0x80)
  return ((w & kHighs) | control | zeroByte(w ^ ('"' * kOnes)) | zeroByte(w ^ ('\\' * kOnes))) != 0;
}

bool continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Length of the valid UTF-8 sequence starting at p (first byte >= 0x80), or 0.
size_t utf8Length(const unsigned char* p, size_t n) {
  unsigned char c = p[0];
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && continuation(p[1]) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (n < 3 || !continuation(p[1]) || !continuation(p[2])) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (c == 0xED && p[1] > 0x9F) return 0;  // UTF-16 surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (n < 4 || !continuation(p[1]) || !continuation(p[2]) || !continuation(p[3])) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (c == 0xF4 && p[1] > 0x8F) return 0;  // beyond U+10FFFF
    return 4;
  }
  return 0;
}

char* writeU00(char* out, unsigned char c) {
  out[0] = '\\';
  out[1] = 'u';
  out[2] = '0';
  out[3] = '0';
  out[4] = kHex[c >> 4];
  out[5] = kHex[c & 0xF];
  return out + 6;
}

struct DateCache {
  int64_t second = -1;
  char text[20];  // "YYYY-MM-DDTHH:MM:SS"
};
thread_local DateCache t_date;

void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

char* writeJsonChars(char* out, std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (wordNeedsCare(w)) break;
      std::memcpy(out, &w, 8);
      out += 8;
      i += 8;
    }
    while (i < n && kPlain[p[i]]) *out++ = static_cast<char>(p[i++]);
    if (i >= n) break;
    unsigned char c = p[i];
    if (c >= 0x80) {
      size_t len = utf8Length(p + i, n - i);
      if (len) {
        std::memcpy(out, p + i, len);
        out += len;
        i += len;
      } else {
        out = writeU00(out, c);
        ++i;
      }
      continue;
    }
    *out++ = '\\';
    switch (c) {
      case '"':
      case '\\':
        *out++ = static_cast<char>(c);
        break;
      case '\n':
        *out++ = 'n';
        break;
      case '\r':
        *out++ = 'r';
        break;
      case '\t':
        *out++ = 't';
        break;
      default:
        out = writeU00(out - 1, c);
    }
    ++i;
  }
  return out;
}

char* writeTimestamp(char* out, uint64_t micros) {
  const int64_t second = static_cast<int64_t>(micros / 1'000'000);
  if (second != t_date.second) {
    using namespace std::chrono;
    const sys_seconds tp{seconds{second}};
    const sys_days day = floor<days>(tp);
    const year_month_day ymd{day};
    const hh_mm_ss<seconds> hms{tp - day};
    char* t = t_date.text;
    const auto year = static_cast<unsigned>(static_cast<int>(ymd.year()));
    put2(t, year / 100 % 100);
    put2(t + 2, year % 100);
    t[4] = '-';
    put2(t + 5, static_cast<unsigned>(ymd.month()));
    t[7] = '-';
    put2(t + 8, static_cast<unsigned>(ymd.day()));
    t[10] = 'T';
    put2(t + 11, static_cast<unsigned>(hms.hours().count()));
    t[13] = ':';
    put2(t + 14, static_cast<unsigned>(hms.minutes().count()));
    t[16] = ':';
    put2(t + 17, static_cast<unsigned>(hms.seconds().count()));
    t_date.second = second;
  }
  std::memcpy(out, t_date.text, 19);
  const auto ms = static_cast<unsigned>(micros / 1000 % 1000);
  out[19] = '.';
  out[20] = static_cast<char>('0' + ms / 100);
  out[21] = static_cast<char>('0' + ms / 10 % 10);
  out[22] = static_cast<char>('0' + ms % 10);
  out[23] = 'Z';
  return out + kTimestampSize;
}

char* writeUint(char* out, uint64_t value) {
  return std::to_chars(out, out + kUintSize, value).ptr;
}

char* writeMillis(char* out, uint64_t micros) {
  out = writeUint(out, micros / 1000);
  const auto frac = static_cast<unsigned>(micros % 1000);
  out[0] = '.';
  out[1] = static_cast<char>('0' + frac / 100);
  out[2] = static_cast<char>('0' + frac / 10 % 10);
  out[3] = static_cast<char>('0' + frac % 10);
  return out + 4;
}

void appendJsonString(std::string& out, std::string_view text) {
  size_t at = out.size();
  out.resize(at + 2 + kMaxEscapedPerByte * text.size());
  char* p = out.data() + at;
  *p++ = '"';
  p = writeJsonChars(p, text);
  *p++ = '"';
  out.resize(static_cast<size_t>(p - out.data()));
}

void appendTimestamp(std::string& out, uint64_t micros) {
  size_t at = out.size();
  out.resize(at + kTimestampSize);
  writeTimestamp(out.data() + at, micros);
}

void appendMillis(std::string& out, uint64_t micros) {
  size_t at = out.size();
  out.resize(at + kMillisSize);
  out.resize(static_cast<size_t>(writeMillis(out.data() + at, micros) - out.data()));
}

}  // namespace sluice::access_log
