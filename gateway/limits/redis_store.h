// The `store: redis` side of one worker's limiter: every request's limits go to Redis as
// one EVALSHA of a Lua script that refills and takes from all its buckets atomically with
// Redis TIME (never this host's clock); buckets Redis reported empty are remembered until
// their next token is due, so clients hammering past a limit cost no round trip. A Redis
// failure becomes an Outcome per OnRedisFailure; it never blocks or throws.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gateway/limits/limiter.h"
#include "gateway/redis/redis_client.h"

namespace sluice::limits {

// The script's source (for tests that run it against a real server).
extern const char* const kTakeScript;

// The Redis key of a bucket: "sluice:rl:<rate>:<burst>:<key>". Appends to `out`.
void appendRedisKey(std::string& out, const BucketSpec& spec, std::string_view key);

class RedisStore {
 public:
  explicit RedisStore(redis::Client* client);
  ~RedisStore();
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // As Limiter::take for the Redis store.
  uint64_t take(const StoreOptions& options, const Limit* limits, size_t n, LimitHandler* handler);
  void cancel(uint64_t ticket);

  size_t emptyCacheSize() const { return empty_.size(); }

 private:
  struct Pending;
  struct Cached {
    int64_t due_us;     // local monotonic time of the bucket's next token
    int64_t reset_us;   // local monotonic time it is full again
    int64_t period_us;  // between two tokens (1 / rate)
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  Pending* acquire();
  void release(Pending* p);
  void onReply(Pending& p, redis::Status status, const redisReply* reply);
  // Fills `out` for a failed call, per p.options.on_failure.
  void failed(Pending& p, Outcome* out);
  bool fromCache(Pending& p, int64_t now_us, Outcome* out);
  void remember(const std::string& key, const BucketSpec& spec, int64_t now_us, const Decision& d);

  redis::Client* client_;
  std::vector<std::unique_ptr<Pending>> slots_;
  std::vector<uint32_t> free_;
  uint64_t seq_ = 0;
  uint64_t bad_replies_ = 0;
  std::unordered_map<std::string, Cached, StringHash, std::equal_to<>> empty_;
};

}  // namespace sluice::limits
