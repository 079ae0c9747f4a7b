// rate_limit: token buckets per key (client IP, API key, route, header, context value or
// a constant), in this instance (`store: local`) or shared through Redis
// (`store: redis`). Every limit of the filter must have a token; a refused request is
// answered 429 with Retry-After, and every answer carries RateLimit-* fields. Never
// waits on Redis beyond its command timeout and never holds a lock across a callback.
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "filters/exchange.h"
#include "filters/filter.h"
#include "filters/rate_limit/rate_limit_config.h"
#include "gateway/limits/limiter.h"
#include "gateway/server/worker.h"

namespace sluice {
namespace {

using limits::Outcome;
using limits::Source;
using rate_limit::Descriptor;
using rate_limit::Settings;

// ---- Metrics: process-wide by filter name, so a reload does not reset them ----

constexpr size_t kSources = 6;  // limits::Source
constexpr const char* kSourceNames[kSources] = {"local",    "redis",     "empty_cache",
                                                "fallback", "fail_open", "fail_closed"};
constexpr size_t kSlots = 64;  // per worker id (mod kSlots): writers rarely share a line

struct alignas(64) StatSlot {
  std::atomic<uint64_t> allowed[kSources];
  std::atomic<uint64_t> denied[kSources];
  std::atomic<uint64_t> unlimited;    // no limit applied (descriptors missing)
  std::atomic<uint64_t> redis_calls;  // script calls sent (round trips)
};

struct Stats {
  StatSlot slots[kSlots];
  static void add(std::atomic<uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }
};

struct StatsRegistry {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<Stats>, std::less<>> by_name;
  static StatsRegistry& get() {
    static StatsRegistry* r = new StatsRegistry();  // never destroyed: workers may outlive
    return *r;
  }
  Stats* of(std::string_view name) {
    std::lock_guard lock(mu);
    auto it = by_name.find(name);
    if (it == by_name.end()) it = by_name.emplace(name, std::make_unique<Stats>()).first;
    return it->second.get();
  }
};

constexpr std::string_view kRequestsType = "# TYPE sluice_rate_limit_requests_total ";

void appendAllMetrics(std::string& out) {
  StatsRegistry& r = StatsRegistry::get();
  std::lock_guard lock(r.mu);
  out.append(
      "# HELP sluice_rate_limit_requests_total Requests a rate_limit filter decided, by filter "
      "name, result (allowed, denied, unlimited) and source of the decision.\n"
      "# TYPE sluice_rate_limit_requests_total counter\n");
  auto sum = [](const Stats& s, auto field) {
    uint64_t total = 0;
    for (const StatSlot& slot : s.slots) total += field(slot).load(std::memory_order_relaxed);
    return total;
  };
  for (const auto& [name, stats] : r.by_name) {
    for (size_t src = 0; src < kSources; ++src) {
      for (int allowed = 1; allowed >= 0; --allowed) {
        uint64_t v = sum(*stats, [&](const StatSlot& s) -> const std::atomic<uint64_t>& {
          return allowed ? s.allowed[src] : s.denied[src];
        });
        out.append("sluice_rate_limit_requests_total{filter=\"").append(name);
        out.append(allowed ? "\",result=\"allowed\",source=\"" : "\",result=\"denied\",source=\"");
        out.append(kSourceNames[src]).append("\"} ").append(std::to_string(v)).push_back('\n');
      }
    }
    uint64_t v =
        sum(*stats, [](const StatSlot& s) -> const std::atomic<uint64_t>& { return s.unlimited; });
    out.append("sluice_rate_limit_requests_total{filter=\"").append(name);
    out.append("\",result=\"unlimited\",source=\"none\"} ").append(std::to_string(v));
    out.push_back('\n');
  }
  out.append(
      "# HELP sluice_rate_limit_redis_calls_total Token-bucket scripts sent to Redis (one round "
      "trip each, for all limits of a request), by filter name.\n"
      "# TYPE sluice_rate_limit_redis_calls_total counter\n");
  for (const auto& [name, stats] : r.by_name) {
    uint64_t v = sum(
        *stats, [](const StatSlot& s) -> const std::atomic<uint64_t>& { return s.redis_calls; });
    out.append("sluice_rate_limit_redis_calls_total{filter=\"").append(name).append("\"} ");
    out.append(std::to_string(v)).push_back('\n');
  }
}

// ---- The filter ----

class RateLimitFactory;

// One request's pass through the filter. Pooled per thread: no allocation once warm.
class RateLimitCall final : public Filter, public limits::LimitHandler {
 public:
  void start(const RateLimitFactory* factory) {
    factory_ = factory;
    x_ = nullptr;
    limiter_ = nullptr;
    ticket_ = 0;
    pending_ = in_request_ = decided_ = show_ = allowed_ = false;
    n_ = 0;
  }

  FilterStatus onRequest(Exchange& x) override;
  FilterStatus onResponse(Exchange& x) override;
  void onCancel(Exchange& x) override;
  void onLimits(uint64_t ticket, const Outcome* outcomes, size_t n) override;

 private:
  // Builds the key of limit `i`; false when a descriptor is missing (limit skipped).
  bool buildKey(Exchange& x, size_t i, std::string& key);
  struct Fields {
    char limit[24], remaining[24], reset[24], retry[24];
  };
  void deny(Exchange& x);
  void formatFields(Fields& out) const;

  const RateLimitFactory* factory_ = nullptr;
  Exchange* x_ = nullptr;
  limits::Limiter* limiter_ = nullptr;
  uint64_t ticket_ = 0;
  bool pending_ = false;
  bool in_request_ = false;
  bool decided_ = false;
  bool show_ = false;  // fields to add to the response
  bool allowed_ = false;
  size_t n_ = 0;
  size_t applied_[limits::Limiter::kMaxLimits];  // settings index of each limit taken
  std::string keys_[limits::Limiter::kMaxLimits];
  // The most restrictive limit's numbers, for the response fields.
  double limit_ = 0;
  double remaining_ = 0;
  int64_t reset_us_ = 0;
  int64_t retry_us_ = 0;
};

thread_local std::vector<std::unique_ptr<RateLimitCall>> t_free_calls;

class RateLimitFactory final : public FilterFactory {
 public:
  explicit RateLimitFactory(Settings settings) : settings_(std::move(settings)) {
    if (!settings_.name.empty()) {
      stats_.store(StatsRegistry::get().of(settings_.name));
    } else if (settings_.global) {
      stats_.store(StatsRegistry::get().of("global"));
    }
  }

  Filter* create(Exchange&) const override {
    std::unique_ptr<RateLimitCall> call;
    if (t_free_calls.empty()) {
      call = std::make_unique<RateLimitCall>();
    } else {
      call = std::move(t_free_calls.back());
      t_free_calls.pop_back();
    }
    call->start(this);
    return call.release();
  }

  void destroy(Filter* filter) const override {
    t_free_calls.emplace_back(static_cast<RateLimitCall*>(filter));
  }

  void appendMetrics(std::string& out) const override {
    // Every rate_limit filter shares one registry: the first one asked emits it all.
    if (out.find(kRequestsType) != std::string::npos) return;
    appendAllMetrics(out);
  }

  const Settings& settings() const { return settings_; }

  // The bucket namespace: the filter's name, else its route's, else "global".
  std::string_view space(const Exchange& x) const {
    if (!settings_.name.empty()) return settings_.name;
    if (settings_.global) return "global";
    return x.routeName();
  }

  StatSlot& stats(Exchange& x) const {
    Stats* s = stats_.load(std::memory_order_acquire);
    if (!s) {
      // A route filter without a name is labelled with its route's name, known at the
      // first request (a route's own filter belongs to that route only).
      s = StatsRegistry::get().of(x.routeName());
      stats_.store(s, std::memory_order_release);
    }
    return s->slots[x.worker().id() % kSlots];
  }

 private:
  Settings settings_;
  mutable std::atomic<Stats*> stats_{nullptr};
};

bool RateLimitCall::buildKey(Exchange& x, size_t i, std::string& key) {
  const rate_limit::LimitSettings& limit = factory_->settings().limits[i];
  // Names are letters, digits, '_', '-' and '.' (checked when the config loads): nothing
  // to escape. The limit's index keeps the limits of one filter apart.
  key.assign(factory_->space(x)).push_back(':');
  key.push_back(static_cast<char>('0' + i));
  for (const Descriptor& d : limit.key) {
    key.push_back(':');
    switch (d.kind) {
      case Descriptor::Kind::kClientIp:
        rate_limit::appendEscaped(key, x.clientAddress());
        break;
      case Descriptor::Kind::kApiKey:
        if (x.context().api_key_name.empty()) return false;
        rate_limit::appendEscaped(key, x.context().api_key_name);
        break;
      case Descriptor::Kind::kRoute:
        if (x.routeName().empty()) return false;
        rate_limit::appendEscaped(key, x.routeName());
        break;
      case Descriptor::Kind::kHeader: {
        const std::string_view* v = x.requestHeaders().get(d.arg);
        if (!v) return false;
        rate_limit::appendEscaped(key, *v);
        break;
      }
      case Descriptor::Kind::kContext: {
        const auto& values = x.context().values;
        auto it = values.find(d.arg);
        if (it == values.end()) return false;
        rate_limit::appendEscaped(key, it->second);
        break;
      }
      case Descriptor::Kind::kConstant:
        key.append(d.arg);  // escaped when the config was read
        break;
    }
  }
  return true;
}

FilterStatus RateLimitCall::onRequest(Exchange& x) {
  x_ = &x;
  const Settings& settings = factory_->settings();
  limits::Limit limits[limits::Limiter::kMaxLimits];
  n_ = 0;
  for (size_t i = 0; i < settings.limits.size(); ++i) {
    if (!buildKey(x, i, keys_[n_])) continue;  // a missing descriptor: the limit does not apply
    applied_[n_] = i;
    limits[n_] = limits::Limit{keys_[n_], settings.limits[i].spec};
    ++n_;
  }
  limiter_ = x.limiter();
  if (n_ == 0 || !limiter_) {
    Stats::add(factory_->stats(x).unlimited);
    return FilterStatus::kContinue;
  }
  in_request_ = true;
  uint64_t ticket = limiter_->take(settings.store, limits, n_, this);
  in_request_ = false;
  if (decided_) {
    if (allowed_) return FilterStatus::kContinue;
    deny(x);
    return FilterStatus::kStop;
  }
  ticket_ = ticket;
  pending_ = true;
  Stats::add(factory_->stats(x).redis_calls);
  return FilterStatus::kStop;
}

void RateLimitCall::onLimits(uint64_t, const Outcome* outcomes, size_t n) {
  pending_ = false;
  decided_ = true;
  allowed_ = true;
  for (size_t i = 0; i < n; ++i) allowed_ = allowed_ && outcomes[i].decision.allowed;
  // The most restrictive limit: when refused, the one that frees up last; else the one
  // with the fewest requests left (then the one that takes longest to refill).
  size_t pick = 0;
  for (size_t i = 1; i < n; ++i) {
    const limits::Decision& a = outcomes[i].decision;
    const limits::Decision& b = outcomes[pick].decision;
    bool better;
    if (!allowed_) {
      better = !a.allowed && (b.allowed || a.retry_after_us > b.retry_after_us);
    } else {
      better = a.remaining < b.remaining || (a.remaining == b.remaining && a.reset_us > b.reset_us);
    }
    if (better) pick = i;
  }
  const limits::Decision& d = outcomes[pick].decision;
  limit_ = std::floor(factory_->settings().limits[applied_[pick]].spec.burst);
  remaining_ = allowed_ ? d.remaining : 0;
  reset_us_ = d.reset_us;
  retry_us_ = d.retry_after_us;
  show_ = true;
  size_t source = static_cast<size_t>(n ? outcomes[0].source : Source::kLocal);
  StatSlot& slot = factory_->stats(*x_);
  Stats::add(allowed_ ? slot.allowed[source] : slot.denied[source]);
  if (in_request_) return;  // onRequest goes on with the answer
  if (allowed_) {
    x_->resume();
  } else {
    deny(*x_);
  }
}

void RateLimitCall::formatFields(Fields& out) const {
  // std::to_chars on integers: printf's "%.0f" of a large double costs thousands of
  // instructions, on every response.
  auto put = [](char* buf, size_t size, int64_t v) {
    *std::to_chars(buf, buf + size - 1, v).ptr = 0;
  };
  put(out.limit, sizeof out.limit, static_cast<int64_t>(limit_));
  put(out.remaining, sizeof out.remaining, static_cast<int64_t>(remaining_));
  // Whole seconds, rounded up: never announces a bucket full (or a token there) early.
  put(out.reset, sizeof out.reset, (reset_us_ + 999'999) / 1'000'000);
  if (!allowed_) {
    put(out.retry, sizeof out.retry, std::max<int64_t>(1, (retry_us_ + 999'999) / 1'000'000));
  }
}

void RateLimitCall::deny(Exchange& x) {
  Fields f;
  formatFields(f);
  show_ = false;
  // Reused per thread: the strings keep their capacity across refusals.
  thread_local std::vector<std::pair<std::string, std::string>> fields{
      {"Content-Type", "application/json"},
      {"Retry-After", ""},
      {"RateLimit-Limit", ""},
      {"RateLimit-Remaining", ""},
      {"RateLimit-Reset", ""}};
  fields[1].second.assign(f.retry);
  fields[2].second.assign(f.limit);
  fields[3].second.assign(f.remaining);
  fields[4].second.assign(f.reset);
  x.replyWith(429, fields, R"({"message":"Too Many Requests"})");
}

FilterStatus RateLimitCall::onResponse(Exchange& x) {
  if (show_) {
    Fields f;
    formatFields(f);
    HeaderList& headers = x.responseHeaders();
    headers.set("RateLimit-Limit", f.limit);
    headers.set("RateLimit-Remaining", f.remaining);
    headers.set("RateLimit-Reset", f.reset);
  }
  return FilterStatus::kContinue;
}

void RateLimitCall::onCancel(Exchange&) {
  if (pending_ && limiter_) limiter_->cancel(ticket_);
  pending_ = false;
}

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  Settings settings;
  if (!rate_limit::parseSettings(ctx, settings)) return nullptr;
  return std::make_shared<RateLimitFactory>(std::move(settings));
}

}  // namespace

SLUICE_REGISTER_FILTER("rate_limit", parse);

}  // namespace sluice
