// Usage-plan quotas (Amazon API Gateway's DAY/WEEK/MONTH request quotas, plus fixed
// custom windows): which window a moment falls in, the process-wide local counters
// (store: local) and the Lua script of the Redis store (store: redis), which computes
// the window from Redis TIME and never from the gateway's clock. Never blocks, and
// takes no lock per request.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/config.h"

namespace sluice::limits {

// [start, end) in seconds since the epoch (UTC).
struct QuotaWindow {
  int64_t start = 0;
  int64_t end = 0;
};

// The window of `quota` that contains `now` (seconds since the epoch).
QuotaWindow quotaWindow(const config::Quota& quota, int64_t now);

// Tells counters of different periods apart: "D", "W3", "M0", "C10" (seconds).
std::string quotaTag(const config::Quota& quota);

// One key's requests in the current window, shared by every worker: a single atomic
// word (window start in the high 32 bits, count in the low 32), so that counting is
// one compare-and-swap and a new window starts from zero without a lock.
class QuotaCounter {
 public:
  // Counts one request if fewer than `limit` were counted in `window` (its start).
  // `used` is the count after this request (or the count that refused it).
  bool take(int64_t window, uint64_t limit, uint64_t& used);
  // Requests counted in `window` so far.
  uint64_t used(int64_t window) const;

 private:
  std::atomic<uint64_t> state_{0};
};

// The local store: one counter per key name and period, alive for the whole process so
// that a reload does not hand out a fresh quota. Looking a counter up takes a lock: do it
// when a config loads or a key is first seen, not per request.
class QuotaStore {
 public:
  static QuotaStore& instance();
  QuotaCounter* counter(std::string_view key_name, std::string_view tag);
  // Null when nothing was ever counted for it (admin /usage).
  const QuotaCounter* find(std::string_view key_name, std::string_view tag) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<QuotaCounter>> counters_;
};

// What admin /usage needs of the api_key filters that serve now: the store they keep
// quotas and buckets in, and the keys they found in Redis (YAML keys are in the
// config). Written rarely (a worker starting a config, a key cache fill), read by admin.
class UsageDirectory {
 public:
  static UsageDirectory& instance();
  struct RedisKey {
    std::string usage_plan;
    bool enabled = true;
  };
  void noteRedisKey(std::string_view name, std::string_view usage_plan, bool enabled);
  bool findRedisKey(std::string_view name, RedisKey& out) const;
  void setRedisStore(bool redis) { redis_store_.store(redis, std::memory_order_relaxed); }
  bool redisStore() const { return redis_store_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kMaxRedisKeys = 100'000;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, RedisKey> redis_keys_;
  std::atomic<bool> redis_store_{false};
};

// The Redis store. Key: "sluice:quota:<key name>:<tag>:<window start>", expiring a
// minute after its window ends. KEYS[1] = "sluice:quota:<key name>:<tag>";
// ARGV = limit, kind (D|W|M|C), offset, custom length in seconds, take (1) or peek (0).
// Returns {allowed (0|1), used, window end (seconds), seconds until then}.
extern const char* const kQuotaScript;
const char* quotaPeriodKind(config::QuotaPeriod period);  // the script's `kind` argument
std::string redisQuotaPrefix(std::string_view key_name, const config::Quota& quota);

}  // namespace sluice::limits
