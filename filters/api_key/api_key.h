// Internal to the api_key filter: its settings, its per-config factory (the keys of the
// YAML, the usage plans) and the per-request filter that runs lookup → throttle → quota,
// any step of which may wait for Redis. Never keeps, logs or echoes a presented key.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "filters/api_key/key_table.h"
#include "filters/api_key/redis_keys.h"
#include "filters/exchange.h"
#include "filters/filter.h"
#include "gateway/limits/limiter.h"
#include "gateway/limits/quota.h"
#include "gateway/redis/redis_client.h"

namespace sluice::api_key {

// Outcomes, counted process-wide (one series whatever the number of api_key filters).
enum Result : size_t {
  kAllowed,
  kMissing,
  kUnknown,
  kDisabled,
  kThrottled,
  kQuotaExceeded,
  kUnavailable,
  kResultCount
};
// Further counters, after the results.
enum Counter : size_t { kRedisLookups = kResultCount, kCacheHits, kCounterCount };
// Per thread (no shared cache line on the request path), summed by /metrics.
void count(size_t counter);
uint64_t total(size_t counter);

// Route names and plan names are looked up without building a std::string.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

struct Settings {
  std::string header = "x-api-key";
  std::string query;  // "" = keys only in the header
  limits::StoreOptions store;
  bool redis_keys = false;
  int64_t cache_ttl_us = 30'000'000;
  int64_t negative_ttl_us = 5'000'000;
};

struct Plan {
  std::string name;
  config::Throttle throttle;
  config::Quota quota;
  std::string quota_tag;  // limits::quotaTag(quota) when quota.set
  StringMap<config::Throttle> routes;
};

struct YamlKey {
  std::string name;
  const Plan* plan = nullptr;
  bool enabled = true;
  limits::QuotaCounter* counter = nullptr;  // when the plan has a quota
};

class ApiKeyFactory final : public FilterFactory {
 public:
  ApiKeyFactory(Settings settings, const config::Config& config);
  Filter* create(Exchange& x) const override;
  void destroy(Filter* filter) const override;
  void startWorker(Worker& worker) const override;
  void appendMetrics(std::string& out) const override;

  const Plan* findPlan(std::string_view name) const;
  const Settings& settings() const { return settings_; }
  const KeyTable& table() const { return *table_; }
  const YamlKey& key(int index) const { return keys_[index]; }

 private:
  Settings settings_;
  StringMap<Plan> plans_;
  std::vector<YamlKey> keys_;  // by index in table_
  std::unique_ptr<KeyTable> table_;
};

// One request's use of the filter; recycled per thread, so no allocation once warm.
// run() drives the steps; resume() or reply() on the Exchange is always the very last
// thing it does (the Exchange may destroy this filter inside that call), and answers
// that arrive while a call is being started are only recorded, never acted on there.
class ApiKeyRequest final : public Filter, public limits::LimitHandler, public redis::Handler {
 public:
  void reset(const ApiKeyFactory* factory);

  FilterStatus onRequest(Exchange& x) override;
  void onCancel(Exchange& x) override;
  void onLimits(uint64_t ticket, const limits::Outcome* outcomes, size_t n) override;
  void onRedisReply(uint64_t ticket, redis::Status status, const redisReply* reply) override;

 private:
  enum class Step : uint8_t { kIdle, kLookup, kThrottle, kQuota, kDone };

  void run();
  // Each returns true when the request is finished (resume or reply done).
  bool lookup();
  bool throttle();
  bool quota();
  bool lookupAnswered();
  bool quotaFailed();
  // A key was found: checks it and moves on to the throttle (false) or finishes (true).
  bool identified(std::string_view name, std::string_view plan_name, bool enabled,
                  limits::QuotaCounter* counter);
  void finish(Result r);
  void tooManyRequests(int64_t retry_after_s, std::string_view message, Result r);

  const ApiKeyFactory* factory_ = nullptr;
  Exchange* x_ = nullptr;
  Step step_ = Step::kIdle;
  uint64_t ticket_ = 0;
  bool ticket_redis_ = false;  // ticket_ is the Redis client's (else the limiter's)
  bool starting_ = false;      // inside send()/take(): answers are only recorded
  bool answered_ = false;      // an answer for step_ is recorded below
  unsigned char digest_[kDigestSize];
  const Plan* plan_ = nullptr;
  limits::QuotaCounter* counter_ = nullptr;
  std::string key_buffer_;  // a query value after percent-decoding
  std::string name_;
  std::string bucket_key_;
  std::string redis_key_;
  // Recorded answers.
  redis::Status status_ = redis::Status::kReply;
  bool answer_ok_ = false;  // the reply was understood
  CachedKey found_;         // lookup
  bool allowed_ = false;    // throttle, quota
  int64_t retry_after_s_ = 0;
};

}  // namespace sluice::api_key
