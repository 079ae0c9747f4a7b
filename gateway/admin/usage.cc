#include "gateway/admin/usage.h"

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <time.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <vector>

#include "gateway/limits/local_store.h"
#include "gateway/limits/quota.h"
#include "gateway/limits/redis_store.h"
#include "gateway/redis/redis_client.h"

namespace sluice {
namespace {

using json = nlohmann::ordered_json;

constexpr int64_t kPollMicros = 20'000;  // while the admin Redis client connects

// Bucket state for /usage, from what the limiter's script stores (two packed doubles:
// tokens, stamp in microseconds; see kTakeScript in gateway/limits/redis_store.cc — keep
// the two in step), refilled to Redis TIME. A missing key is a full bucket.
// KEYS = bucket keys; ARGV = rate, burst for each. Returns tokens as strings.
const char* const kBucketsScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tokens = burst
  local v = redis.call('GET', key)
  if v and #v == 16 then
    local x, y = struct.unpack('dd', v)
    tokens = math.max(0, math.min(burst, x + math.max(0, now - y) * rate / 1e6))
  end
  out[i] = string.format('%.6f', tokens)
end
return out
)lua";

std::string jsonMessage(std::string_view message) {
  return json{{"message", message}}.dump() + "\n";
}

std::string isoTime(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t wallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec;
}

int64_t monotonicMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

std::string periodName(const config::Quota& q) {
  switch (q.period) {
    case config::QuotaPeriod::kDay:
      return "DAY";
    case config::QuotaPeriod::kWeek:
      return "WEEK";
    case config::QuotaPeriod::kMonth:
      return "MONTH";
    case config::QuotaPeriod::kCustom:
      return std::to_string(q.length.count() / 1000) + "s";
  }
  return "";
}

// `key` of a query string; names are plain ([A-Za-z0-9_.-]), so no decoding is needed
// beyond refusing what a name cannot hold.
bool queryKey(std::string_view query, std::string& out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.starts_with("key=")) {
      out.assign(pair.substr(4));
      return !out.empty();
    }
  }
  return false;
}

struct Bucket {
  std::string route;  // "" = the plan's own throttle
  config::Throttle throttle;
  std::string key;  // the limiter's bucket key (as the api_key filter builds it)
};

json quotaJson(const config::Quota& q, uint64_t used, int64_t window_end, int64_t now) {
  uint64_t shown = std::min(used, q.limit);
  json j{{"limit", q.limit},
         {"used", shown},
         {"remaining", q.limit - shown},
         {"period", periodName(q)}};
  if (q.period == config::QuotaPeriod::kWeek || q.period == config::QuotaPeriod::kMonth) {
    j["offset"] = q.offset;
  }
  j["resets_at"] = isoTime(window_end);
  j["resets_in_seconds"] = std::max<int64_t>(0, window_end - now);
  return j;
}

json bucketJson(const config::Throttle& t, double tokens) {
  return {{"rate", t.rate}, {"burst", t.burst}, {"tokens", std::floor(tokens * 1000) / 1000}};
}

}  // namespace

// A /usage answer that needs Redis: quota (peek) and buckets in one pipeline.
struct UsageEndpoint::Query final : redis::Handler {
  UsageEndpoint* owner = nullptr;
  uint64_t id = 0;
  Done done;
  json doc;
  config::Quota quota;
  std::string key_name;
  std::vector<Bucket> buckets;
  config::Redis redis_config;
  int64_t deadline_us = 0;
  event* timer = nullptr;
  uint64_t tickets[2] = {0, 0};
  int pending = 0;
  bool failed = false;
  bool finished = false;

  ~Query() override {
    if (timer) event_free(timer);
    cancelAll();
  }

  void cancelAll() {
    redis::Client* c = owner->redis_.get();
    for (uint64_t& t : tickets) {
      if (t != 0 && c != nullptr) c->cancel(t);
      t = 0;
    }
  }

  static void onTimer(evutil_socket_t, short, void* arg) { static_cast<Query*>(arg)->start(); }

  void start() {
    redis::Client* c = owner->client(redis_config);
    if (c == nullptr) return finish(503, jsonMessage("Redis unavailable"));
    if (!c->connected() && monotonicMicros() < deadline_us) {
      if (!timer) timer = evtimer_new(owner->base_, &onTimer, this);
      timeval tv{0, kPollMicros};
      evtimer_add(timer, &tv);
      return;
    }
    pending = 0;
    if (quota.set) {
      static const redis::Script kScript(limits::kQuotaScript);
      std::string prefix = limits::redisQuotaPrefix(key_name, quota);
      std::string limit = std::to_string(quota.limit), offset = std::to_string(quota.offset),
                  length = std::to_string(quota.length.count() / 1000);
      const std::string_view keys[1] = {prefix};
      const std::string_view args[5] = {limit, limits::quotaPeriodKind(quota.period), offset,
                                        length, "0"};
      ++pending;
      tickets[0] = c->eval(this, kScript, 1, keys, 5, args);
      if (finished) return;
    }
    if (!buckets.empty()) {
      static const redis::Script kScript(kBucketsScript);
      std::vector<std::string> keys, args;
      for (const Bucket& b : buckets) {
        std::string k;
        limits::appendRedisKey(k, limits::BucketSpec{b.throttle.rate, b.throttle.burst}, b.key);
        keys.push_back(std::move(k));
        char buf[64];
        args.emplace_back(buf, snprintf(buf, sizeof buf, "%.17g", b.throttle.rate));
        args.emplace_back(buf, snprintf(buf, sizeof buf, "%.17g", b.throttle.burst));
      }
      std::vector<std::string_view> kv(keys.begin(), keys.end()), av(args.begin(), args.end());
      ++pending;
      tickets[1] = c->eval(this, kScript, static_cast<int>(kv.size()), kv.data(),
                           static_cast<int>(av.size()), av.data());
      if (finished) return;
    }
    if (pending == 0) finish(200, doc.dump(2) + "\n");
  }

  void onRedisReply(uint64_t ticket, redis::Status status, const redisReply* reply) override {
    bool is_quota = quota.set && (ticket == tickets[0] || tickets[0] == 0) && !quota_done;
    if (is_quota) {
      quota_done = true;
      tickets[0] = 0;
      if (status == redis::Status::kReply && reply->type == REDIS_REPLY_ARRAY &&
          reply->elements == 4) {
        int64_t now = wallSeconds();
        int64_t end = reply->element[2]->integer;
        doc["quota"] =
            quotaJson(quota, static_cast<uint64_t>(reply->element[1]->integer), end, now);
        doc["quota"]["resets_in_seconds"] = reply->element[3]->integer;
      } else {
        failed = true;
      }
    } else {
      tickets[1] = 0;
      if (status == redis::Status::kReply && reply->type == REDIS_REPLY_ARRAY &&
          reply->elements == buckets.size()) {
        for (size_t i = 0; i < buckets.size(); ++i) {
          const redisReply* e = reply->element[i];
          double tokens = e->type == REDIS_REPLY_STRING ? std::strtod(e->str, nullptr) : 0;
          json b = bucketJson(buckets[i].throttle, tokens);
          if (buckets[i].route.empty()) {
            doc["throttle"] = b;
          } else {
            doc["routes"][buckets[i].route]["throttle"] = b;
          }
        }
      } else {
        failed = true;
      }
    }
    if (--pending > 0) return;
    if (failed) return finish(503, jsonMessage("Redis unavailable"));
    finish(200, doc.dump(2) + "\n");
  }

  void finish(uint16_t status, const std::string& body) {
    if (finished) return;
    finished = true;
    cancelAll();
    if (timer) evtimer_del(timer);
    Done d = std::move(done);
    owner->finished(id);  // this object lives on until the next /usage or shutdown
    d(status, body);
  }

  bool quota_done = false;
};

UsageEndpoint::UsageEndpoint(event_base* base) : base_(base) {}

UsageEndpoint::~UsageEndpoint() {
  queries_.clear();  // cancels their commands while the client is alive
  redis_.reset();
}

redis::Client* UsageEndpoint::client(const config::Redis& config) {
  if (!config.enabled) return nullptr;
  if (redis_ && !redis_config_.sameAs(config)) {
    // Another server: queries still waiting on the old client are answered first.
    for (auto& [id, q] : queries_) {
      if (!q->finished) q->finish(503, jsonMessage("Redis configuration changed"));
    }
    redis_.reset();
  }
  if (!redis_) {
    redis_ = redis::makeClient(base_, config);
    redis_config_ = config;
  }
  return redis_.get();
}

void UsageEndpoint::finished(uint64_t id) { (void)id; }

bool UsageEndpoint::handle(const config::Config& config, std::string_view query, uint16_t& status,
                           std::string& body, Done done) {
  std::erase_if(queries_, [](const auto& q) { return q.second->finished; });
  std::string name;
  if (!queryKey(query, name)) {
    status = 400;
    body = jsonMessage("expected /usage?key=NAME");
    return true;
  }
  std::string plan_name;
  bool enabled = true;
  const char* source = "config";
  bool found = false;
  for (const config::ApiKey& k : config.api_keys) {
    if (k.name == name) {
      plan_name = k.usage_plan;
      enabled = k.enabled;
      found = true;
      break;
    }
  }
  limits::UsageDirectory& directory = limits::UsageDirectory::instance();
  if (!found) {
    limits::UsageDirectory::RedisKey rk;
    if (directory.findRedisKey(name, rk)) {
      plan_name = rk.usage_plan;
      enabled = rk.enabled;
      source = "redis";
      found = true;
    }
  }
  if (!found) {
    status = 404;
    body = jsonMessage("Unknown API key");
    return true;
  }
  bool redis_store = directory.redisStore() && config.redis.enabled;
  json doc{{"name", name},
           {"usage_plan", plan_name.empty() ? json(nullptr) : json(plan_name)},
           {"enabled", enabled},
           {"source", source},
           {"store", redis_store ? "redis" : "local"},
           {"quota", nullptr},
           {"throttle", nullptr}};
  auto plan_it = config.usage_plans.find(plan_name);
  const config::UsagePlan* plan = plan_it == config.usage_plans.end() ? nullptr : &plan_it->second;
  std::vector<Bucket> buckets;
  if (plan != nullptr) {
    if (plan->throttle.set) buckets.push_back({"", plan->throttle, "usage_plan:" + name});
    for (const auto& [route, t] : plan->route_throttles) {
      if (t.set) buckets.push_back({route, t, "usage_plan:" + name + ":route:" + route});
    }
    if (!plan->route_throttles.empty()) doc["routes"] = json::object();
  }
  if (!redis_store) {
    int64_t now = wallSeconds();
    if (plan != nullptr && plan->quota.set) {
      const limits::QuotaCounter* c =
          limits::QuotaStore::instance().find(name, limits::quotaTag(plan->quota));
      limits::QuotaWindow w = limits::quotaWindow(plan->quota, now);
      doc["quota"] = quotaJson(plan->quota, c ? c->used(w.start) : 0, w.end, now);
    }
    for (const Bucket& b : buckets) {
      limits::Decision d = limits::LocalStore::global().peek(
          b.key, limits::BucketSpec{b.throttle.rate, b.throttle.burst},
          limits::LocalStore::nowMicros());
      json j = bucketJson(b.throttle, d.remaining);
      if (b.route.empty()) {
        doc["throttle"] = j;
      } else {
        doc["routes"][b.route]["throttle"] = j;
      }
    }
    status = 200;
    body = doc.dump(2) + "\n";
    return true;
  }
  auto q = std::make_unique<Query>();
  Query* query_ptr = q.get();
  q->owner = this;
  q->id = next_id_++;
  q->done = std::move(done);
  q->doc = std::move(doc);
  if (plan != nullptr) q->quota = plan->quota;
  q->key_name = name;
  q->buckets = std::move(buckets);
  q->redis_config = config.redis;
  q->deadline_us = monotonicMicros() + config.redis.connect_timeout.count() * 1000 + 100'000;
  queries_.emplace(q->id, std::move(q));
  query_ptr->start();
  return false;
}

}  // namespace sluice
