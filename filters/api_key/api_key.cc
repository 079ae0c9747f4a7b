// api_key: Amazon API Gateway's API keys and usage plans. The key (a header, or a query
// parameter when allowed) is hashed and looked up among the `api_keys:` of the config
// and, with `redis_keys: true`, in Redis; then the key's usage plan is applied: its
// throttle (token bucket through the worker's Limiter) and then its quota (a throttled
// request never uses quota). This file: settings, the factory, metrics.
#include "filters/api_key/api_key.h"

#include <mutex>

#include "config/admin_config.h"
#include "config/yaml_reader.h"

namespace sluice::api_key {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;

constexpr const char* kResultNames[kResultCount] = {
    "allowed", "missing", "unknown", "disabled", "throttled", "quota_exceeded", "unavailable"};
// One block of counters per thread that ever counted, never freed (threads are few);
// each is written by its own thread only.
struct Counters {
  std::atomic<uint64_t> v[kCounterCount];
};
std::mutex g_counters_mutex;
std::vector<Counters*>* g_counters = new std::vector<Counters*>();

Counters* threadCounters() {
  thread_local Counters* mine = [] {
    auto* c = new Counters();
    std::lock_guard<std::mutex> lock(g_counters_mutex);
    g_counters->push_back(c);
    return c;
  }();
  return mine;
}
constexpr std::string_view kResultsType = "# TYPE sluice_api_key_requests_total ";

thread_local std::vector<std::unique_ptr<ApiKeyRequest>> t_free;
constexpr size_t kMaxFree = 1024;

}  // namespace

void count(size_t counter) {
  std::atomic<uint64_t>& v = threadCounters()->v[counter];
  v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

uint64_t total(size_t counter) {
  std::lock_guard<std::mutex> lock(g_counters_mutex);
  uint64_t sum = 0;
  for (const Counters* c : *g_counters) sum += c->v[counter].load(std::memory_order_relaxed);
  return sum;
}

ApiKeyFactory::ApiKeyFactory(Settings settings, const config::Config& config)
    : settings_(std::move(settings)) {
  for (const auto& [name, p] : config.usage_plans) {
    Plan& plan = plans_[name];
    plan.name = name;
    plan.throttle = p.throttle;
    plan.quota = p.quota;
    if (p.quota.set) plan.quota_tag = limits::quotaTag(p.quota);
    for (const auto& [route, t] : p.route_throttles) plan.routes.emplace(route, t);
  }
  std::vector<std::string> digests;
  for (const config::ApiKey& k : config.api_keys) {
    YamlKey key;
    key.name = k.name;
    key.enabled = k.enabled;
    key.plan = findPlan(k.usage_plan);
    if (key.plan && key.plan->quota.set) {
      key.counter = limits::QuotaStore::instance().counter(k.name, key.plan->quota_tag);
    }
    keys_.push_back(std::move(key));
    digests.push_back(k.sha256);
  }
  table_ = std::make_unique<KeyTable>(digests);
}

Filter* ApiKeyFactory::create(Exchange&) const {
  std::unique_ptr<ApiKeyRequest> r;
  if (t_free.empty()) {
    r = std::make_unique<ApiKeyRequest>();
  } else {
    r = std::move(t_free.back());
    t_free.pop_back();
  }
  r->reset(this);
  return r.release();
}

void ApiKeyFactory::destroy(Filter* filter) const {
  std::unique_ptr<ApiKeyRequest> r(static_cast<ApiKeyRequest*>(filter));
  if (t_free.size() < kMaxFree) t_free.push_back(std::move(r));
}

void ApiKeyFactory::startWorker(Worker&) const {
  limits::UsageDirectory::instance().setRedisStore(settings_.store.store == limits::Store::kRedis);
}

void ApiKeyFactory::appendMetrics(std::string& out) const {
  if (out.find(kResultsType) != std::string::npos) return;
  out += "# HELP sluice_api_key_requests_total Requests seen by api_key filters, by outcome.\n";
  out.append(kResultsType).append("counter\n");
  for (size_t i = 0; i < kResultCount; ++i) {
    out += "sluice_api_key_requests_total{result=\"";
    out += kResultNames[i];
    out += "\"} " + std::to_string(total(i)) + "\n";
  }
  out += "# HELP sluice_api_key_redis_lookups_total Keys looked up in Redis (cache misses).\n";
  out += "# TYPE sluice_api_key_redis_lookups_total counter\n";
  out += "sluice_api_key_redis_lookups_total " + std::to_string(total(kRedisLookups)) + "\n";
  out += "# HELP sluice_api_key_cache_hits_total Keys answered from the local Redis key cache.\n";
  out += "# TYPE sluice_api_key_cache_hits_total counter\n";
  out += "sluice_api_key_cache_hits_total " + std::to_string(total(kCacheHits)) + "\n";
}

const Plan* ApiKeyFactory::findPlan(std::string_view name) const {
  if (name.empty()) return nullptr;
  auto it = plans_.find(name);
  return it == plans_.end() ? nullptr : &it->second;
}

namespace {

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"header", "query", "store", "redis_keys", "cache_ttl",
                               "negative_cache_ttl", "on_redis_failure", "instances_hint"}};
  Fields fields;
  if (!ctx.field.value.IsNull() && !ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  size_t errors = ctx.reader.errorCount();
  Settings s;
  auto name = [&](const char* key, std::string& out) {
    const Field* f = fields.get(key);
    if (f == nullptr) return;
    std::optional<std::string> value = ctx.reader.string(*f);
    if (!value) return;
    bool header = key == std::string_view("header");
    if (header && !config::detail::isToken(*value)) {
      ctx.reader.error(*f, "expected a header name");
    } else if (!header && (value->empty() || value->find_first_of("&=#%+ ?") != std::string::npos ||
                           !config::detail::isToken(*value))) {
      ctx.reader.error(*f, "expected a query parameter name");
    } else {
      out = *value;
    }
  };
  name("header", s.header);
  for (char& c : s.header) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  name("query", s.query);
  const Field* store = fields.get("store");
  if (store != nullptr) {
    if (std::optional<std::string> v = ctx.reader.string(*store)) {
      if (*v == "local") {
        s.store.store = limits::Store::kLocal;
      } else if (*v == "redis") {
        s.store.store = limits::Store::kRedis;
      } else {
        ctx.reader.error(*store, "expected local or redis");
      }
    }
  }
  const Field* redis_keys = fields.get("redis_keys");
  if (redis_keys != nullptr) config::detail::readBool(ctx.reader, *redis_keys, s.redis_keys);
  bool redis_configured = ctx.config != nullptr && ctx.config->redis.enabled;
  if (s.store.store == limits::Store::kRedis && !redis_configured) {
    ctx.reader.error(*store, "store: redis needs a top-level 'redis:' section");
  }
  if (s.redis_keys && !redis_configured) {
    ctx.reader.error(*redis_keys, "redis_keys: true needs a top-level 'redis:' section");
  }
  config::Duration d{0};
  if (const Field* f = fields.get("cache_ttl")) {
    if (ctx.reader.duration(*f, false, d)) s.cache_ttl_us = d.count() * 1000;
  }
  if (const Field* f = fields.get("negative_cache_ttl")) {
    if (ctx.reader.duration(*f, false, d)) s.negative_ttl_us = d.count() * 1000;
  } else {
    s.negative_ttl_us = std::min(s.negative_ttl_us, s.cache_ttl_us);
  }
  if (const Field* f = fields.get("on_redis_failure")) {
    if (std::optional<std::string> v = ctx.reader.string(*f)) {
      if (*v == "allow") {
        s.store.on_failure = limits::OnRedisFailure::kAllow;
      } else if (*v == "deny") {
        s.store.on_failure = limits::OnRedisFailure::kDeny;
      } else if (*v == "local") {
        s.store.on_failure = limits::OnRedisFailure::kLocal;
      } else {
        ctx.reader.error(*f, "expected allow, deny or local");
      }
    }
  }
  if (const Field* f = fields.get("instances_hint")) {
    int64_t n = 0;
    if (ctx.reader.integer(*f, 1, 10'000, n)) s.store.instances_hint = static_cast<unsigned>(n);
  }
  if (ctx.config != nullptr && ctx.config->api_keys.empty() && !s.redis_keys &&
      errors == ctx.reader.errorCount()) {
    ctx.reader.error(ctx.field,
                     "api_key has no keys: add top-level 'api_keys:' or set "
                     "redis_keys: true");
  }
  if (errors != ctx.reader.errorCount() || ctx.config == nullptr) return nullptr;
  return std::make_shared<ApiKeyFactory>(std::move(s), *ctx.config);
}

}  // namespace

SLUICE_REGISTER_FILTER("api_key", parse);

}  // namespace sluice::api_key
