#include "gateway/limits/limiter.h"

#include <algorithm>

#include "gateway/limits/local_store.h"
#include "gateway/limits/redis_store.h"

namespace sluice::limits {
namespace {

class WorkerLimiter final : public Limiter {
 public:
  explicit WorkerLimiter(redis::Client* redis) : redis_(redis) {}

  uint64_t take(const StoreOptions& options, const Limit* limits, size_t n,
                LimitHandler* handler) override {
    n = std::min(n, kMaxLimits);
    if (options.store == Store::kRedis) return redis_.take(options, limits, n, handler);
    std::string_view keys[kMaxLimits];
    BucketSpec specs[kMaxLimits];
    Decision decisions[kMaxLimits];
    for (size_t i = 0; i < n; ++i) {
      keys[i] = limits[i].key;
      specs[i] = limits[i].spec;
    }
    LocalStore::global().takeAll(keys, specs, decisions, n, LocalStore::nowMicros());
    Outcome out[kMaxLimits];
    for (size_t i = 0; i < n; ++i) out[i] = Outcome{decisions[i], Source::kLocal};
    handler->onLimits(0, out, n);
    return 0;
  }

  void cancel(uint64_t ticket) override { redis_.cancel(ticket); }

  bool peek(const Limit& limit, Decision& out) override {
    out = LocalStore::global().peek(limit.key, limit.spec, LocalStore::nowMicros());
    return true;
  }

 private:
  RedisStore redis_;
};

}  // namespace

std::unique_ptr<Limiter> makeLimiter(redis::Client* redis) {
  return std::make_unique<WorkerLimiter>(redis);
}

}  // namespace sluice::limits
