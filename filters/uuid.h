// Random version 4 UUIDs, cheap enough to make one per request: request ids
// (request_id filter, function backends) and Lambda invocation ids.
#pragma once

#include <sys/random.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace sluice {
namespace uuid_detail {

struct HexPairs {
  char pairs[256][2];
  constexpr HexPairs() : pairs() {
    constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      pairs[i][0] = kHex[i >> 4];
      pairs[i][1] = kHex[i & 0xF];
    }
  }
  const char* operator[](size_t i) const { return pairs[i]; }
};
inline constexpr HexPairs kHexPairs;

// xoshiro-style generator per thread, seeded from the kernel: ids must be unique, not
// secret, and making one must not cost a system call per request.
class IdGenerator {
 public:
  IdGenerator() {
    if (getrandom(state_, sizeof state_, 0) != sizeof state_) {
      state_[0] = reinterpret_cast<uintptr_t>(this) ^ 0x9E3779B97F4A7C15ull;
      state_[1] = 0xD1B54A32D192ED03ull;
    }
    if ((state_[0] | state_[1]) == 0) state_[1] = 1;
  }
  uint64_t next() {
    // xorshift128+
    uint64_t s1 = state_[0];
    const uint64_t s0 = state_[1];
    state_[0] = s0;
    s1 ^= s1 << 23;
    state_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return state_[1] + s0;
  }
  // RFC 9562 version 4 UUID text. Two hex digits per table lookup: this runs for every
  // request, and a digit-by-digit loop cost more than the rest of the filter.
  void uuid(std::string& out) {
    uint64_t hi = next(), lo = next();
    hi = (hi & ~0xF000ull) | 0x4000ull;
    lo = (lo & ~(3ull << 62)) | (2ull << 62);
    char buf[36];
    char* p = buf;
    auto put = [&p](uint64_t word, int bytes) {
      for (int i = bytes - 1; i >= 0; --i) {
        std::memcpy(p, kHexPairs[(word >> (8 * i)) & 0xFF], 2);
        p += 2;
      }
    };
    put(hi >> 32, 4);
    *p++ = '-';
    put(hi >> 16, 2);
    *p++ = '-';
    put(hi, 2);
    *p++ = '-';
    put(lo >> 48, 2);
    *p++ = '-';
    put(lo, 6);
    out.assign(buf, 36);
  }

 private:
  uint64_t state_[2];
};

}  // namespace uuid_detail

// A new random UUID (RFC 9562 version 4) in `out`. One generator per thread.
inline void newUuid(std::string& out) {
  thread_local uuid_detail::IdGenerator ids;
  ids.uuid(out);
}

}  // namespace sluice
