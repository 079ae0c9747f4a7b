#include "gateway/limits/quota.h"

#include <algorithm>

namespace sluice::limits {
namespace {

constexpr int64_t kDay = 86'400;

int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Days since 1970-01-01 ↔ proleptic Gregorian date (H. Hinnant's civil calendar
// algorithms; the Lua script below mirrors them line for line).
void civilFromDays(int64_t z, int64_t& y, int64_t& m, int64_t& d) {
  z += 719'468;
  const int64_t era = floorDiv(z, 146'097);
  const int64_t doe = z - era * 146'097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

int64_t daysFromCivil(int64_t y, int64_t m, int64_t d) {
  if (m <= 2) --y;
  const int64_t era = floorDiv(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t mp = m > 2 ? m - 3 : m + 9;
  const int64_t doy = (153 * mp + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146'097 + doe - 719'468;
}

constexpr uint64_t kCountMask = 0xFFFF'FFFFull;

uint64_t pack(int64_t window, uint64_t count) {
  return (static_cast<uint64_t>(window) << 32) | (count & kCountMask);
}

}  // namespace

QuotaWindow quotaWindow(const config::Quota& quota, int64_t now) {
  switch (quota.period) {
    case config::QuotaPeriod::kCustom: {
      const int64_t length = std::max<int64_t>(1, quota.length.count() / 1000);
      const int64_t start = floorDiv(now, length) * length;
      return {start, start + length};
    }
    case config::QuotaPeriod::kDay: {
      const int64_t start = floorDiv(now, kDay) * kDay;
      return {start, start + kDay};
    }
    case config::QuotaPeriod::kWeek: {
      const int64_t day = floorDiv(now, kDay);
      const int64_t weekday = ((day + 4) % 7 + 7) % 7;  // 1970-01-01 was a Thursday (4)
      const int64_t back = ((weekday - quota.offset) % 7 + 7) % 7;
      const int64_t start = (day - back) * kDay;
      return {start, start + 7 * kDay};
    }
    case config::QuotaPeriod::kMonth: {
      int64_t y = 0, m = 0, d = 0;
      civilFromDays(floorDiv(now, kDay), y, m, d);
      const int64_t first = quota.offset + 1;  // offset <= 27: every month has that day
      if (d < first) {
        if (--m == 0) m = 12, --y;
      }
      int64_t ny = y, nm = m + 1;
      if (nm == 13) nm = 1, ++ny;
      return {daysFromCivil(y, m, first) * kDay, daysFromCivil(ny, nm, first) * kDay};
    }
  }
  return {};
}

std::string quotaTag(const config::Quota& quota) {
  switch (quota.period) {
    case config::QuotaPeriod::kDay:
      return "D";
    case config::QuotaPeriod::kWeek:
      return "W" + std::to_string(quota.offset);
    case config::QuotaPeriod::kMonth:
      return "M" + std::to_string(quota.offset);
    case config::QuotaPeriod::kCustom:
      return "C" + std::to_string(quota.length.count() / 1000);
  }
  return "";
}

bool QuotaCounter::take(int64_t window, uint64_t limit, uint64_t& used) {
  uint64_t current = state_.load(std::memory_order_relaxed);
  for (;;) {
    const bool same = (current >> 32) == (static_cast<uint64_t>(window) & kCountMask);
    const uint64_t count = same ? current & kCountMask : 0;
    if (count >= limit) {
      used = count;
      return false;
    }
    if (state_.compare_exchange_weak(current, pack(window, count + 1), std::memory_order_relaxed)) {
      used = count + 1;
      return true;
    }
  }
}

uint64_t QuotaCounter::used(int64_t window) const {
  const uint64_t current = state_.load(std::memory_order_relaxed);
  return (current >> 32) == (static_cast<uint64_t>(window) & kCountMask) ? current & kCountMask : 0;
}

QuotaStore& QuotaStore::instance() {
  static QuotaStore* store = new QuotaStore();  // never destroyed: workers may outlive exit
  return *store;
}

QuotaCounter* QuotaStore::counter(std::string_view key_name, std::string_view tag) {
  std::string id;
  id.append(key_name).append(1, '\0').append(tag);
  std::lock_guard<std::mutex> lock(mutex_);
  std::unique_ptr<QuotaCounter>& slot = counters_[id];
  if (!slot) slot = std::make_unique<QuotaCounter>();
  return slot.get();
}

const QuotaCounter* QuotaStore::find(std::string_view key_name, std::string_view tag) const {
  std::string id;
  id.append(key_name).append(1, '\0').append(tag);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = counters_.find(id);
  return it == counters_.end() ? nullptr : it->second.get();
}

UsageDirectory& UsageDirectory::instance() {
  static UsageDirectory* directory = new UsageDirectory();  // never destroyed, as the store
  return *directory;
}

void UsageDirectory::noteRedisKey(std::string_view name, std::string_view usage_plan,
                                  bool enabled) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = redis_keys_.find(std::string(name));
  if (it == redis_keys_.end()) {
    if (redis_keys_.size() >= kMaxRedisKeys) return;
    it = redis_keys_.emplace(std::string(name), RedisKey{}).first;
  }
  it->second.usage_plan.assign(usage_plan);
  it->second.enabled = enabled;
}

bool UsageDirectory::findRedisKey(std::string_view name, RedisKey& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = redis_keys_.find(std::string(name));
  if (it == redis_keys_.end()) return false;
  out = it->second;
  return true;
}

std::string redisQuotaPrefix(std::string_view key_name, const config::Quota& quota) {
  std::string out = "sluice:quota:";
  out.append(key_name).append(":").append(quotaTag(quota));
  return out;
}

// Integer arithmetic on Lua doubles: every value here stays far below 2^53.
const char* const kQuotaScript = R"lua(
local function fdiv(a, b) return math.floor(a / b) end
local function civil(z)
  z = z + 719468
  local era = fdiv(z, 146097)
  local doe = z - era * 146097
  local yoe = fdiv(doe - fdiv(doe, 1460) + fdiv(doe, 36524) - fdiv(doe, 146096), 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + fdiv(yoe, 4) - fdiv(yoe, 100))
  local mp = fdiv(5 * doy + 2, 153)
  local d = doy - fdiv(153 * mp + 2, 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = fdiv(y, 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = fdiv(153 * mp + 2, 5) + d - 1
  local doe = yoe * 365 + fdiv(yoe, 4) - fdiv(yoe, 100) + doy
  return era * 146097 + doe - 719468
end
local limit = tonumber(ARGV[1])
local kind = ARGV[2]
local offset = tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
local start, stop
if kind == 'C' then
  local length = tonumber(ARGV[4])
  start = fdiv(now, length) * length
  stop = start + length
elseif kind == 'D' then
  start = fdiv(now, 86400) * 86400
  stop = start + 86400
elseif kind == 'W' then
  local day = fdiv(now, 86400)
  local back = ((day + 4) % 7 - offset) % 7
  start = (day - back) * 86400
  stop = start + 7 * 86400
else
  local y, m, d = civil(fdiv(now, 86400))
  local first = offset + 1
  if d < first then
    m = m - 1
    if m == 0 then m = 12; y = y - 1 end
  end
  local ny, nm = y, m + 1
  if nm == 13 then nm = 1; ny = y + 1 end
  start = days(y, m, first) * 86400
  stop = days(ny, nm, first) * 86400
end
local key = KEYS[1] .. ':' .. string.format('%d', start)
local used = tonumber(redis.call('GET', key) or '0')
if ARGV[5] ~= '1' then return {1, used, stop, stop - now} end
if used >= limit then return {0, used, stop, stop - now} end
used = redis.call('INCR', key)
if used == 1 then redis.call('EXPIREAT', key, stop + 60) end
return {1, used, stop, stop - now}
)lua";

const char* quotaPeriodKind(config::QuotaPeriod p) {
  switch (p) {
    case config::QuotaPeriod::kDay:
      return "D";
    case config::QuotaPeriod::kWeek:
      return "W";
    case config::QuotaPeriod::kMonth:
      return "M";
    case config::QuotaPeriod::kCustom:
      return "C";
  }
  return "D";
}

}  // namespace sluice::limits
