// The `api_keys:` and `usage_plans:` sections: values, defaults, every error a user can
// make (at its FILE:LINE:COL), that no error ever quotes a key, and the quota windows.
#include "config/api_keys_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <ctime>
#include <string>
#include <vector>

#include "config/config.h"
#include "gateway/limits/quota.h"

namespace sluice::config {
namespace {

constexpr const char* kBase = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: ping
    match: {path: /ping}
    response: {status: 200}
)";
constexpr const char* kSecret = "s3cr3t-Key_value-0123456789";

LoadResult load(const std::string& extra) {
  return loadString(std::string(kBase) + extra, "test.yaml");
}

std::vector<std::string> errorsOf(const std::string& extra) {
  std::vector<std::string> out;
  for (const Error& e : load(extra).errors) out.push_back(e.str());
  return out;
}

std::string hexOf(std::string_view key) { return detail::toHex(detail::sha256(key)); }

TEST(ApiKeysConfig, Sha256) {
  EXPECT_EQ(hexOf(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hexOf("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiKeysConfig, KeysAndPlans) {
  setenv("SLUICE_TEST_KEY", kSecret, 1);
  LoadResult r = load(R"(usage_plans:
  gold:
    throttle: {rate: 0.5, burst: 3}
    quota: {limit: 1000, period: WEEK, offset: 1}
    routes:
      ping: {throttle: {rate: 100, burst: 200}}
  silver:
    quota: {limit: 5, period: 2s}
  free:
api_keys:
  - {name: alice, key: "${SLUICE_TEST_KEY}", usage_plan: gold}
  - name: bob
    key: sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD
    enabled: false
)");
  unsetenv("SLUICE_TEST_KEY");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  const Config& c = *r.config;
  ASSERT_EQ(c.usage_plans.size(), 3u);
  const UsagePlan& gold = c.usage_plans.at("gold");
  EXPECT_TRUE(gold.throttle.set);
  EXPECT_EQ(gold.throttle.rate, 0.5);
  EXPECT_EQ(gold.throttle.burst, 3);
  EXPECT_TRUE(gold.quota.set);
  EXPECT_EQ(gold.quota.limit, 1000u);
  EXPECT_EQ(gold.quota.period, QuotaPeriod::kWeek);
  EXPECT_EQ(gold.quota.offset, 1);
  ASSERT_EQ(gold.route_throttles.count("ping"), 1u);
  EXPECT_EQ(gold.route_throttles.at("ping").rate, 100);
  const UsagePlan& silver = c.usage_plans.at("silver");
  EXPECT_FALSE(silver.throttle.set);
  EXPECT_EQ(silver.quota.period, QuotaPeriod::kCustom);
  EXPECT_EQ(silver.quota.length, Duration(2000));
  EXPECT_FALSE(c.usage_plans.at("free").quota.set);
  ASSERT_EQ(c.api_keys.size(), 2u);
  EXPECT_EQ(c.api_keys[0].name, "alice");
  EXPECT_EQ(c.api_keys[0].usage_plan, "gold");
  EXPECT_TRUE(c.api_keys[0].enabled);
  EXPECT_EQ(c.api_keys[0].sha256, detail::sha256(kSecret));
  EXPECT_EQ(c.api_keys[1].name, "bob");
  EXPECT_EQ(c.api_keys[1].usage_plan, "");
  EXPECT_FALSE(c.api_keys[1].enabled);
  EXPECT_EQ(c.api_keys[1].sha256, detail::sha256("abc"));
  // The key itself is kept nowhere in the config.
  EXPECT_EQ(summary(c).find(kSecret), std::string::npos);
}

TEST(ApiKeysConfig, KeyErrorsNeverQuoteTheKey) {
  setenv("SLUICE_TEST_KEY", kSecret, 1);
  std::vector<std::string> errors = errorsOf(R"(usage_plans:
  gold: {}
api_keys:
  - {name: a, key: "${SLUICE_TEST_KEY}"}
  - {name: a, key: other}
  - {name: b, key: "${SLUICE_TEST_KEY}"}
  - {name: c, key: "sha256:s3cr3t"}
  - {name: d, key: "sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
  - {name: e, key: "${SLUICE_TEST_UNSET_KEY:-}"}
  - {name: f, key: k6, usage_plan: platinum}
  - {name: "g h", key: k7}
  - {name: i}
  - {key: k9}
  - {name: j, key: [x]}
  - {name: k, key: k10, enabled: maybe}
  - {name: l, key: k11, secret: x}
)");
  unsetenv("SLUICE_TEST_KEY");
  EXPECT_EQ(errors,
            (std::vector<std::string>{
                "test.yaml:12:12: duplicate API key name 'a' (first at line 11)",
                "test.yaml:13:20: this key is the same as the key at line 11",
                "test.yaml:14:20: expected sha256: followed by 64 hex digits (got 6 characters)",
                "test.yaml:15:20: expected sha256: followed by 64 hex digits (found a character "
                "that is not a hex digit)",
                "test.yaml:16:20: the key is empty",
                "test.yaml:17:36: unknown usage plan 'platinum'; defined plans: gold",
                "test.yaml:18:12: invalid name 'g h' (use letters, digits, '_', '-' and '.')",
                "test.yaml:19:5: missing required key 'key'",
                "test.yaml:20:5: missing required key 'name'",
                "test.yaml:21:20: expected a string (the key, or sha256:<64 hex digits>)",
                "test.yaml:22:34: expected true or false",
                "test.yaml:23:25: unknown key 'secret'; allowed keys: name, key, usage_plan, "
                "enabled",
            }));
  for (const std::string& e : errors) {
    EXPECT_EQ(e.find(kSecret), std::string::npos) << e;
    EXPECT_EQ(e.find("s3cr3t"), std::string::npos) << e;
    EXPECT_EQ(e.find("k6"), std::string::npos) << e;
  }
}

TEST(ApiKeysConfig, PlanErrors) {
  EXPECT_EQ(errorsOf(R"(usage_plans:
  a: {throttle: {rate: 0, burst: 0.5}}
  b: {throttle: {rate: fast}}
  c: {quota: {limit: 0, period: DAY}}
  d: {quota: {limit: 10, period: DAY, offset: 1}}
  e: {quota: {limit: 10, period: WEEK, offset: 7}}
  f: {quota: {limit: 10, period: MONTH, offset: 28}}
  g: {quota: {limit: 10, period: YEAR}}
  h: {quota: {limit: 10, period: 1500ms}}
  i: {quota: {period: MONTH, offset: -1}}
  j: {routes: {nowhere: {throttle: {rate: 1, burst: 1}}, ping: {}}}
  k: {burst: 1}
  "l m": {}
)"),
            (std::vector<std::string>{
                "test.yaml:9:24: must be greater than 0",
                "test.yaml:9:34: must be at least 1",
                "test.yaml:10:17: missing required key 'burst'",
                "test.yaml:10:24: expected a number",
                "test.yaml:11:22: must be between 1 and 4000000000",
                "test.yaml:12:47: the offset of DAY must be 0",
                "test.yaml:13:48: the offset of WEEK (0 = Sunday) must be between 0 and 6",
                "test.yaml:14:49: the offset of MONTH (day of the month - 1) must be between 0 "
                "and 27",
                "test.yaml:15:34: expected DAY, WEEK, MONTH or a duration like 10s",
                "test.yaml:16:34: a custom quota period must be a whole number of seconds, at "
                "least 1s",
                "test.yaml:17:14: missing required key 'limit'",
                "test.yaml:17:38: the offset of MONTH (day of the month - 1) must be between 0 "
                "and 27",
                "test.yaml:18:16: usage plan 'j' names unknown route 'nowhere'",
                "test.yaml:18:64: missing required key 'throttle'",
                "test.yaml:19:7: unknown key 'burst'; allowed keys: throttle, quota, routes",
                "test.yaml:20:3: invalid name 'l m' (use letters, digits, '_', '-' and '.')",
            }));
}

TEST(ApiKeysConfig, RouteOverrideOfALaterRouteIsFine) {
  LoadResult r = load(R"(usage_plans:
  p: {routes: {later: {throttle: {rate: 1, burst: 1}}}}
)" + std::string(R"(
)"));
  // `later` is not defined in kBase: unknown.
  ASSERT_FALSE(r.config);
  r = loadString(R"(usage_plans:
  p: {routes: {later: {throttle: {rate: 1, burst: 1}}}}
listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: later
    match: {path: /later}
    response: {status: 200}
)",
                 "test.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].str();
}

// --- quota windows ------------------------------------------------------------------

int64_t utc(int y, int mon, int d, int h = 0, int min = 0, int s = 0) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = min;
  tm.tm_sec = s;
  return timegm(&tm);
}

Quota quota(QuotaPeriod period, int offset = 0, int64_t length_ms = 0) {
  Quota q;
  q.set = true;
  q.limit = 10;
  q.period = period;
  q.offset = offset;
  q.length = Duration(length_ms);
  return q;
}

TEST(QuotaWindow, Day) {
  limits::QuotaWindow w = limits::quotaWindow(quota(QuotaPeriod::kDay), utc(2024, 2, 29, 23, 59));
  EXPECT_EQ(w.start, utc(2024, 2, 29));
  EXPECT_EQ(w.end, utc(2024, 3, 1));
}

TEST(QuotaWindow, WeekStartsOnTheOffsetWeekday) {
  // 2024-05-01 is a Wednesday.
  int64_t now = utc(2024, 5, 1, 12);
  limits::QuotaWindow sunday = limits::quotaWindow(quota(QuotaPeriod::kWeek, 0), now);
  EXPECT_EQ(sunday.start, utc(2024, 4, 28));
  EXPECT_EQ(sunday.end, utc(2024, 5, 5));
  limits::QuotaWindow wednesday = limits::quotaWindow(quota(QuotaPeriod::kWeek, 3), now);
  EXPECT_EQ(wednesday.start, utc(2024, 5, 1));
  limits::QuotaWindow thursday = limits::quotaWindow(quota(QuotaPeriod::kWeek, 4), now);
  EXPECT_EQ(thursday.start, utc(2024, 4, 25));
  EXPECT_EQ(thursday.end, utc(2024, 5, 2));
}

TEST(QuotaWindow, MonthStartsOnTheOffsetDay) {
  limits::QuotaWindow w = limits::quotaWindow(quota(QuotaPeriod::kMonth), utc(2024, 12, 31, 23));
  EXPECT_EQ(w.start, utc(2024, 12, 1));
  EXPECT_EQ(w.end, utc(2025, 1, 1));
  w = limits::quotaWindow(quota(QuotaPeriod::kMonth, 14), utc(2025, 1, 3));
  EXPECT_EQ(w.start, utc(2024, 12, 15));
  EXPECT_EQ(w.end, utc(2025, 1, 15));
  w = limits::quotaWindow(quota(QuotaPeriod::kMonth, 27), utc(2024, 2, 28));
  EXPECT_EQ(w.start, utc(2024, 2, 28));
  EXPECT_EQ(w.end, utc(2024, 3, 28));
  w = limits::quotaWindow(quota(QuotaPeriod::kMonth, 27), utc(2024, 2, 27, 23, 59, 59));
  EXPECT_EQ(w.start, utc(2024, 1, 28));
}

TEST(QuotaWindow, CustomWindowsAreFixedFromTheEpoch) {
  limits::QuotaWindow w = limits::quotaWindow(quota(QuotaPeriod::kCustom, 0, 10'000), 1'000'007);
  EXPECT_EQ(w.start, 1'000'000);
  EXPECT_EQ(w.end, 1'000'010);
}

TEST(QuotaCounter, CountsUpToTheLimitAndRestartsInANewWindow) {
  limits::QuotaCounter c;
  uint64_t used = 0;
  EXPECT_TRUE(c.take(100, 2, used));
  EXPECT_EQ(used, 1u);
  EXPECT_TRUE(c.take(100, 2, used));
  EXPECT_EQ(used, 2u);
  EXPECT_FALSE(c.take(100, 2, used));
  EXPECT_EQ(used, 2u);
  EXPECT_EQ(c.used(100), 2u);
  EXPECT_EQ(c.used(110), 0u);
  EXPECT_TRUE(c.take(110, 2, used));
  EXPECT_EQ(used, 1u);
  EXPECT_EQ(c.used(100), 0u);
}

TEST(QuotaStore, CountersAreSharedByNameAndPeriod) {
  limits::QuotaStore& store = limits::QuotaStore::instance();
  limits::QuotaCounter* a = store.counter("alice", "D");
  EXPECT_EQ(store.counter("alice", "D"), a);
  EXPECT_NE(store.counter("alice", "W0"), a);
  EXPECT_NE(store.counter("alic", "eD"), a);
  EXPECT_EQ(store.find("nobody", "D"), nullptr);
}

}  // namespace
}  // namespace sluice::config
