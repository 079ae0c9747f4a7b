// The process-wide home of `store: local` buckets (and of the on_redis_failure: local
// fallback): exact per instance, shared by every worker and kept across reloads. Buckets
// are spread over shards, each with its own small lock held for a few instructions, so
// workers rarely meet. Memory stays bounded: buckets that are full again are dropped, and
// past `max_buckets` the least recently used bucket of a shard makes room.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "gateway/limits/token_bucket.h"

namespace sluice::limits {

class LocalStore {
 public:
  static constexpr size_t kDefaultMaxBuckets = 1 << 19;

  explicit LocalStore(size_t max_buckets = kDefaultMaxBuckets, size_t shards = 64);
  ~LocalStore();
  LocalStore(const LocalStore&) = delete;
  LocalStore& operator=(const LocalStore&) = delete;

  // The store of this process.
  static LocalStore& global();

  struct Item {
    std::string_view key;
    BucketSpec spec;
    Decision decision;  // out
  };
  // Takes one token from every bucket in `items` if each has one, else from none
  // (a request refused by one limit must not use up another). Atomic over the buckets:
  // their shards are locked together, in shard order. Returns true when allowed.
  bool takeAll(Item* items, size_t n, int64_t now_us);
  // The same for `n` buckets given as (key, spec) pairs; one decision per bucket.
  bool takeAll(const std::string_view* keys, const BucketSpec* specs, Decision* out, size_t n,
               int64_t now_us);
  // A bucket's state without taking from it (a missing bucket is full).
  Decision peek(std::string_view key, const BucketSpec& spec, int64_t now_us);

  size_t size() const;  // buckets held now (tests, metrics)

  // CLOCK_MONOTONIC in microseconds: local buckets never see wall-clock steps.
  static int64_t nowMicros();

 private:
  struct Shard;
  std::unique_ptr<Shard[]> shards_;
  size_t shard_count_;
  size_t max_per_shard_;
};

}  // namespace sluice::limits
