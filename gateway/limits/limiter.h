// Takes tokens from token buckets for one worker, wherever they live: in this process
// (`store: local`, shared by all workers, exact per instance) or in Redis (`store: redis`,
// one atomic Lua script per bucket using Redis TIME, several buckets of one request in
// one pipeline, global across instances). Used by rate_limit and by api_key's usage
// plan throttles. Never blocks the worker; a Redis outage is handled by OnRedisFailure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "gateway/limits/token_bucket.h"

namespace sluice::redis {
class Client;
}

namespace sluice::limits {

enum class Store : uint8_t { kLocal, kRedis };
enum class OnRedisFailure : uint8_t { kAllow, kDeny, kLocal };

struct StoreOptions {
  Store store = Store::kLocal;
  OnRedisFailure on_failure = OnRedisFailure::kLocal;
  unsigned instances_hint = 1;  // kLocal fallback: rate and burst divided by this
};

// One bucket to take a token from. `key` identifies the bucket across instances (the
// caller builds it from its descriptors); equal keys with different specs are
// different buckets (the store adds the spec to the key).
struct Limit {
  std::string_view key;
  BucketSpec spec;
};

enum class Source : uint8_t {
  kLocal,       // the local store (store: local)
  kRedis,       // Redis answered
  kEmptyCache,  // denied from the cache of buckets known to be empty, no round trip
  kFallback,    // Redis failed; the local store decided (on_redis_failure: local)
  kFailOpen,    // Redis failed; allowed (on_redis_failure: allow)
  kFailClosed,  // Redis failed; denied (on_redis_failure: deny)
};

struct Outcome {
  Decision decision;
  Source source = Source::kLocal;
};

class LimitHandler {
 public:
  virtual ~LimitHandler() = default;
  // One outcome per limit, in order. `ticket` is 0 when called before take() returned.
  // Never called after cancel(ticket).
  virtual void onLimits(uint64_t ticket, const Outcome* outcomes, size_t n) = 0;
};

class Limiter {
 public:
  static constexpr size_t kMaxLimits = 8;

  virtual ~Limiter() = default;
  // Takes one token from each of `n` limits (n <= kMaxLimits) — from all of them or,
  // when any is empty, from none: a request refused by one limit does not use up the
  // others. The keys are copied; they need not outlive the call. When every answer is
  // known at once (local store, empty-bucket cache, Redis not connected) the handler is
  // called before take() returns and take() returns 0; otherwise it returns a ticket
  // for cancel().
  virtual uint64_t take(const StoreOptions& options, const Limit* limits, size_t n,
                        LimitHandler* handler) = 0;
  virtual void cancel(uint64_t ticket) = 0;
  // State of a bucket without taking from it (admin /usage). Local store only for now.
  virtual bool peek(const Limit& limit, Decision& out) = 0;
};

// The limiter of one worker snapshot. `redis` (may be null: no `redis:` section) is the
// worker's client and must outlive the limiter; `store: local` buckets live in
// LocalStore::global(), shared by every limiter of the process.
std::unique_ptr<Limiter> makeLimiter(redis::Client* redis);

}  // namespace sluice::limits
