// Internal to the config loader: the top-level `usage_plans:` and `api_keys:` sections
// (Amazon API Gateway's usage plans and API keys). A key is kept only as its SHA-256;
// the key itself never reaches an error message, a log line or `sluice validate`.
#pragma once

#include <string>
#include <string_view>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config::detail {

// `usage_plans: {NAME: {throttle: {rate, burst}, quota: {limit, period, offset},
// routes: {ROUTE: {throttle: {rate, burst}}}}}`. Route names are checked later
// (checkUsagePlanRoutes), once the routes are read.
void readUsagePlans(Reader& reader, const Field& field, std::map<std::string, UsagePlan>& out);

// `api_keys: [{name, key, usage_plan, enabled}]`; `plans` are already read (a key may
// name only one of them).
void readApiKeys(Reader& reader, const Field& field, const std::map<std::string, UsagePlan>& plans,
                 std::vector<ApiKey>& out);

// Every route named in a plan's `routes:` must exist.
void checkUsagePlanRoutes(Reader& reader, const Config& config);

// The SHA-256 of `data`: 32 raw bytes.
std::string sha256(std::string_view data);
// 64 lower-case hex digits of 32 raw bytes (or of whatever `raw` holds).
std::string toHex(std::string_view raw);

}  // namespace sluice::config::detail
