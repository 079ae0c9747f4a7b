// API keys kept in Redis (`redis_keys: true`), looked up by the SHA-256 of the key:
//   HASH sluice:apikey:<sha256 hex of the key>  {name, usage_plan, enabled}
// Answers (including "no such key") are cached per worker for a short time, so a key
// costs one Redis round trip per worker per TTL. The cache holds digests, never keys.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

#include "filters/api_key/key_table.h"

struct redisReply;

namespace sluice::limits {
class QuotaCounter;
}

namespace sluice::api_key {

constexpr std::string_view kRedisKeyPrefix = "sluice:apikey:";

// "sluice:apikey:" + 64 hex digits.
std::string redisKeyName(const unsigned char* digest);

struct CachedKey {
  bool found = false;
  bool enabled = true;
  std::string name;
  std::string usage_plan;
  int64_t expires_us = 0;  // monotonic
  // The local quota counter of (name, tag), remembered to spare the store's lock.
  std::string counter_tag;
  limits::QuotaCounter* counter = nullptr;
};

// Parses the reply to HMGET key name usage_plan enabled. False if it is malformed (then
// `out` is untouched); a missing hash is found = false.
bool parseKeyReply(const redisReply* reply, CachedKey& out);

// One per worker thread, shared by every api_key filter of that worker (Redis answers
// do not depend on the filter's settings). Bounded: when full, it is emptied of expired
// entries, or cleared.
class KeyCache {
 public:
  static KeyCache& forThisThread();
  // The cached answer (fresh or stale: check expires_us), or null.
  CachedKey* find(const unsigned char* digest);
  CachedKey& put(const unsigned char* digest, CachedKey entry, int64_t now_us);

 private:
  using Digest = std::array<unsigned char, kDigestSize>;
  struct DigestHash {
    size_t operator()(const Digest& d) const {
      size_t h = 0;
      std::memcpy(&h, d.data(), sizeof h);  // already uniformly random
      return h;
    }
  };
  static constexpr size_t kMaxEntries = 16384;
  std::unordered_map<Digest, CachedKey, DigestHash> entries_;
};

}  // namespace sluice::api_key
