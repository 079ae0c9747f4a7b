// Token-bucket arithmetic (the throttle of Amazon API Gateway: a steady `rate` of
// tokens per second, at most `burst` of them), shared by the local store, the Lua
// script of the Redis store (which mirrors it) and the unit tests. Pure functions:
// no clock, no state of its own. A clock going backwards never adds tokens.
#pragma once

#include <cstdint>

namespace sluice::limits {

struct BucketSpec {
  double rate = 0;   // tokens per second (fractional allowed); > 0
  double burst = 0;  // capacity; >= 1
};

struct BucketState {
  double tokens = 0;     // tokens left at `stamp_us`
  int64_t stamp_us = 0;  // when `tokens` was computed; 0 = new bucket (full)
};

struct Decision {
  bool allowed = false;
  double remaining = 0;        // whole tokens left after this request
  int64_t retry_after_us = 0;  // until `cost` tokens are there (0: they are there now)
  int64_t reset_us = 0;        // until the bucket is full again
};

// Refills `state` to `now_us`, then takes `cost` tokens if there are enough.
Decision take(BucketState& state, const BucketSpec& spec, int64_t now_us, double cost = 1);

}  // namespace sluice::limits
