#include "gateway/limits/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace sluice::limits {
namespace {
// Refills accumulate sums of small products; without a little slack a bucket that should
// hold exactly one token can hold 0.9999999 and refuse a request that is due.
constexpr double kSlack = 1e-9;

int64_t microsFor(double tokens, double rate) {
  if (tokens <= 0) return 0;
  return static_cast<int64_t>(std::ceil(tokens / rate * 1e6 - kSlack));
}
}  // namespace

Decision take(BucketState& state, const BucketSpec& spec, int64_t now_us, double cost) {
  if (state.stamp_us == 0) {
    state.tokens = spec.burst;
    state.stamp_us = now_us;
  } else if (now_us > state.stamp_us) {
    state.tokens = std::min(
        spec.burst, state.tokens + static_cast<double>(now_us - state.stamp_us) * spec.rate / 1e6);
    state.stamp_us = now_us;
  }
  // A clock that went backwards leaves the state as it was: the time between the old
  // stamp and `now` is credited only once the clock has passed the stamp again.
  state.tokens = std::clamp(state.tokens, 0.0, spec.burst);
  Decision d;
  if (state.tokens + kSlack >= cost) {
    d.allowed = true;
    state.tokens = std::max(0.0, state.tokens - cost);
  }
  // Also after an allowed take: a bucket left empty is known to stay so until then.
  double wanted = cost > 0 ? cost : 1;
  if (state.tokens + kSlack < wanted) {
    d.retry_after_us = std::max<int64_t>(1, microsFor(wanted - state.tokens, spec.rate));
  }
  d.remaining = std::floor(state.tokens + kSlack);
  d.reset_us = microsFor(spec.burst - state.tokens, spec.rate);
  return d;
}

}  // namespace sluice::limits
