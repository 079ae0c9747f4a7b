// The settings of one `rate_limit` filter, read and validated when the config loads:
// one or several limits (rate, burst, key descriptors), the store and its failure mode.
// Nothing here runs per request; nothing here keeps a pointer into the config.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "filters/filter.h"
#include "gateway/limits/limiter.h"

namespace sluice::rate_limit {

// One part of a bucket key, taken from the request.
struct Descriptor {
  enum class Kind { kClientIp, kApiKey, kRoute, kHeader, kContext, kConstant };
  Kind kind = Kind::kConstant;
  std::string arg;  // header name (lower case), context name, or the escaped constant
};

struct LimitSettings {
  limits::BucketSpec spec;
  std::vector<Descriptor> key;  // empty: one bucket for the filter
};

struct Settings {
  std::vector<LimitSettings> limits;  // 1..Limiter::kMaxLimits
  limits::StoreOptions store;
  // The filter's name: bucket namespace and metrics label. Empty = not set: the route's
  // name for a route filter, "global" for a global one.
  std::string name;
  bool global = false;
};

// Reads ctx.field into `out`; false after reporting errors through ctx.reader.
bool parseSettings(FilterParseContext& ctx, Settings& out);

// Appends `value` to `out` with '%' and ':' escaped, so descriptor values joined with ':'
// never collide ("a:b" + "c" vs "a" + "b:c").
void appendEscaped(std::string& out, std::string_view value);

}  // namespace sluice::rate_limit
