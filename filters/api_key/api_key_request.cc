// The api_key filter's request flow: find the key (YAML table, worker cache, Redis),
// then throttle, then quota. See api_key.h for the rules that keep it safe when an
// answer comes before a call returns or after the client has gone.
#include <hiredis/hiredis.h>
#include <time.h>

#include <algorithm>
#include <cstdio>

#include "filters/api_key/api_key.h"
#include "gateway/http/message.h"
#include "gateway/server/log.h"

namespace sluice::api_key {
namespace {

int64_t monotonicMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

int64_t wallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec;
}

// The value of query parameter `name` in `query` ("a=1&b=2"), percent-decoded.
bool queryValue(std::string_view query, std::string_view name, std::string& out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    out.clear();
    for (size_t i = 0; i < value.size(); ++i) {
      if (value[i] == '%' && i + 2 < value.size() && http::hexDigitValue(value[i + 1]) >= 0 &&
          http::hexDigitValue(value[i + 2]) >= 0) {
        out += static_cast<char>(http::hexDigitValue(value[i + 1]) << 4 |
                                 http::hexDigitValue(value[i + 2]));
        i += 2;
      } else {
        out += value[i] == '+' ? ' ' : value[i];
      }
    }
    return true;
  }
  return false;
}

}  // namespace

void ApiKeyRequest::reset(const ApiKeyFactory* factory) {
  factory_ = factory;
  x_ = nullptr;
  step_ = Step::kIdle;
  ticket_ = 0;
  starting_ = false;
  answered_ = false;
  plan_ = nullptr;
  counter_ = nullptr;
}

FilterStatus ApiKeyRequest::onRequest(Exchange& x) {
  x_ = &x;
  const Settings& s = factory_->settings();
  std::string_view key;
  if (!s.query.empty()) x.context().secret_query_param = s.query;  // never logged
  if (const std::string_view* h = x.requestHeaders().get(s.header)) {
    key = *h;
  } else if (!s.query.empty() && x.hasQuery() && queryValue(x.query(), s.query, key_buffer_)) {
    key = key_buffer_;
  }
  // While onRequest runs, resume() and reply() are only noted by the Exchange: run()
  // may finish the request here without anything happening under our feet.
  if (key.empty()) {
    finish(kMissing);
    return FilterStatus::kStop;
  }
  digest(key, digest_);
  key_buffer_.clear();
  int index = factory_->table().find(digest_);
  if (index >= 0) {
    const YamlKey& k = factory_->key(index);
    plan_ = k.plan;
    if (!identified(k.name, plan_ ? std::string_view(plan_->name) : std::string_view(), k.enabled,
                    k.counter)) {
      run();
    }
    return FilterStatus::kStop;
  }
  if (!s.redis_keys) {
    finish(kUnknown);
    return FilterStatus::kStop;
  }
  CachedKey* cached = KeyCache::forThisThread().find(digest_);
  if (cached != nullptr && cached->expires_us > monotonicMicros()) {
    count(kCacheHits);
    if (!cached->found) {
      finish(kUnknown);
      return FilterStatus::kStop;
    }
    plan_ = factory_->findPlan(cached->usage_plan);
    if (plan_ && plan_->quota.set && cached->counter_tag != plan_->quota_tag) {
      cached->counter_tag = plan_->quota_tag;
      cached->counter = limits::QuotaStore::instance().counter(cached->name, cached->counter_tag);
    }
    if (!identified(cached->name, cached->usage_plan, cached->enabled,
                    plan_ && plan_->quota.set ? cached->counter : nullptr)) {
      run();
    }
    return FilterStatus::kStop;
  }
  step_ = Step::kLookup;
  run();
  return FilterStatus::kStop;
}

void ApiKeyRequest::onCancel(Exchange& x) {
  if (ticket_ != 0) {
    if (ticket_redis_) {
      if (redis::Client* c = x.redis()) c->cancel(ticket_);
    } else if (limits::Limiter* l = x.limiter()) {
      l->cancel(ticket_);
    }
  }
  ticket_ = 0;
  step_ = Step::kDone;
}

void ApiKeyRequest::run() {
  for (;;) {
    bool done = false;
    switch (step_) {
      case Step::kLookup:
        done = lookup();
        break;
      case Step::kThrottle:
        done = throttle();
        break;
      case Step::kQuota:
        done = quota();
        break;
      case Step::kIdle:
      case Step::kDone:
        return;
    }
    // Finished (this object may be gone), or waiting for an answer.
    if (done || (!answered_ && ticket_ != 0)) return;
  }
}

void ApiKeyRequest::onLimits(uint64_t, const limits::Outcome* outcomes, size_t n) {
  ticket_ = 0;
  if (step_ != Step::kThrottle) return;
  allowed_ = n == 0 || outcomes[0].decision.allowed;
  // Denied because Redis failed (on_redis_failure: deny), not because the key used its
  // throttle: say so rather than blame the client.
  answer_ok_ = n == 0 || outcomes[0].source != limits::Source::kFailClosed;
  int64_t us = n == 0 ? 0 : outcomes[0].decision.retry_after_us;
  retry_after_s_ = std::max<int64_t>(1, (us + 999'999) / 1'000'000);
  answered_ = true;
  if (!starting_) run();
}

void ApiKeyRequest::onRedisReply(uint64_t, redis::Status status, const redisReply* reply) {
  ticket_ = 0;
  status_ = status;
  answer_ok_ = false;
  if (step_ == Step::kLookup) {
    found_ = CachedKey{};  // nothing of another key's answer may carry over
    if (status == redis::Status::kReply) {
      answer_ok_ = parseKeyReply(reply, found_);
      if (!answer_ok_ && reply->type == REDIS_REPLY_ERROR) {
        LOG_WARN("api_key: Redis refused a key lookup: %.*s", static_cast<int>(reply->len),
                 reply->str);
      } else if (!answer_ok_) {
        // A hash sluice cannot use counts as no key, and is cached as such, so that it
        // is not asked for (and warned about) on every request.
        LOG_WARN("api_key: ignoring malformed API key hash in Redis (name or enabled field)");
        found_ = CachedKey{};
        answer_ok_ = true;
      }
    }
  } else if (step_ == Step::kQuota) {
    // {allowed, used, window end, seconds until then}
    if (status == redis::Status::kReply && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == 4 && reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[3]->type == REDIS_REPLY_INTEGER) {
      answer_ok_ = true;
      allowed_ = reply->element[0]->integer == 1;
      retry_after_s_ = reply->element[3]->integer;
    } else if (status == redis::Status::kReply && reply->type == REDIS_REPLY_ERROR) {
      LOG_WARN("api_key: quota script failed: %.*s", static_cast<int>(reply->len), reply->str);
    }
  } else {
    return;
  }
  answered_ = true;
  if (!starting_) run();
}

bool ApiKeyRequest::lookup() {
  if (!answered_) {
    redis::Client* client = x_->redis();
    if (client == nullptr) {
      status_ = redis::Status::kUnavailable;
      answered_ = true;
    } else {
      count(kRedisLookups);
      redis_key_ = redisKeyName(digest_);
      const char* argv[] = {"HMGET", redis_key_.data(), "name", "usage_plan", "enabled"};
      const size_t lens[] = {5, redis_key_.size(), 4, 10, 7};
      ticket_redis_ = true;
      starting_ = true;
      uint64_t ticket = client->send(this, 5, argv, lens);
      starting_ = false;
      if (!answered_) {
        ticket_ = ticket;
        return false;
      }
    }
  }
  answered_ = false;
  return lookupAnswered();
}

bool ApiKeyRequest::lookupAnswered() {
  KeyCache& cache = KeyCache::forThisThread();
  if (status_ == redis::Status::kReply && answer_ok_) {
    const Settings& s = factory_->settings();
    int64_t now = monotonicMicros();
    found_.expires_us = now + (found_.found ? s.cache_ttl_us : s.negative_ttl_us);
    CachedKey& entry = cache.put(digest_, found_, now);
    if (!entry.found) {
      finish(kUnknown);
      return true;
    }
    limits::UsageDirectory::instance().noteRedisKey(entry.name, entry.usage_plan, entry.enabled);
    plan_ = factory_->findPlan(entry.usage_plan);
    if (plan_ && plan_->quota.set && entry.counter_tag != plan_->quota_tag) {
      entry.counter_tag = plan_->quota_tag;
      entry.counter = limits::QuotaStore::instance().counter(entry.name, entry.counter_tag);
    }
    return identified(entry.name, entry.usage_plan, entry.enabled,
                      plan_ && plan_->quota.set ? entry.counter : nullptr);
  }
  // Redis is down or confused: a stale answer is better than refusing known clients.
  if (CachedKey* stale = cache.find(digest_)) {
    if (!stale->found) {
      finish(kUnknown);
      return true;
    }
    plan_ = factory_->findPlan(stale->usage_plan);
    return identified(stale->name, stale->usage_plan, stale->enabled,
                      plan_ && plan_->quota_tag == stale->counter_tag ? stale->counter : nullptr);
  }
  count(kUnavailable);
  step_ = Step::kDone;
  x_->reply(503, "Service Unavailable");
  return true;
}

bool ApiKeyRequest::identified(std::string_view name, std::string_view plan_name, bool enabled,
                               limits::QuotaCounter* counter) {
  if (!enabled) {
    finish(kDisabled);
    return true;
  }
  if (!plan_name.empty() && plan_ == nullptr) {
    // A Redis key naming a plan this config does not have: refuse rather than serve it
    // without the limits its owner meant.
    if (step_ == Step::kLookup) {  // once per lookup, not on every cached request
      LOG_WARN("api_key: key '%.*s' names unknown usage plan '%.*s'", static_cast<int>(name.size()),
               name.data(), static_cast<int>(plan_name.size()), plan_name.data());
    }
    finish(kUnknown);
    return true;
  }
  name_.assign(name);
  counter_ = counter;
  RequestContext& ctx = x_->context();
  ctx.api_key_name.assign(name);
  ctx.usage_plan.assign(plan_name);
  step_ = Step::kThrottle;
  return false;
}

bool ApiKeyRequest::throttle() {
  if (!answered_) {
    const config::Throttle* t = nullptr;
    if (plan_ != nullptr) {
      auto it = plan_->routes.empty() ? plan_->routes.end() : plan_->routes.find(x_->routeName());
      if (it != plan_->routes.end() && it->second.set) {
        t = &it->second;
        bucket_key_.assign("usage_plan:").append(name_).append(":route:").append(x_->routeName());
      } else if (plan_->throttle.set) {
        t = &plan_->throttle;
        bucket_key_.assign("usage_plan:").append(name_);
      }
    }
    limits::Limiter* limiter = t ? x_->limiter() : nullptr;
    if (limiter == nullptr) {
      step_ = Step::kQuota;
      return false;
    }
    limits::Limit limit{bucket_key_, limits::BucketSpec{t->rate, t->burst}};
    ticket_redis_ = false;
    starting_ = true;
    uint64_t ticket = limiter->take(factory_->settings().store, &limit, 1, this);
    starting_ = false;
    if (!answered_) {
      ticket_ = ticket;
      return false;
    }
  }
  answered_ = false;
  if (!answer_ok_) {
    count(kUnavailable);
    step_ = Step::kDone;
    x_->reply(503, "Service Unavailable");
    return true;
  }
  if (!allowed_) {
    tooManyRequests(retry_after_s_, "Too Many Requests", kThrottled);
    return true;
  }
  step_ = Step::kQuota;
  return false;
}

bool ApiKeyRequest::quota() {
  if (plan_ == nullptr || !plan_->quota.set) {
    finish(kAllowed);
    return true;
  }
  const config::Quota& q = plan_->quota;
  const limits::StoreOptions& store = factory_->settings().store;
  if (store.store == limits::Store::kLocal) {
    if (counter_ == nullptr) {
      counter_ = limits::QuotaStore::instance().counter(name_, plan_->quota_tag);
    }
    int64_t now = wallSeconds();
    limits::QuotaWindow w = limits::quotaWindow(q, now);
    uint64_t used = 0;
    if (counter_->take(w.start, q.limit, used)) {
      finish(kAllowed);
    } else {
      tooManyRequests(w.end - now, "Limit Exceeded", kQuotaExceeded);
    }
    return true;
  }
  if (!answered_) {
    redis::Client* client = x_->redis();
    if (client == nullptr) {
      status_ = redis::Status::kUnavailable;
      answer_ok_ = false;
      answered_ = true;
    } else {
      static const redis::Script kScript(limits::kQuotaScript);
      redis_key_ = limits::redisQuotaPrefix(name_, q);
      char limit[24], offset[16], length[24];
      int nl = snprintf(limit, sizeof limit, "%llu", static_cast<unsigned long long>(q.limit));
      int no = snprintf(offset, sizeof offset, "%d", q.offset);
      int nn =
          snprintf(length, sizeof length, "%lld", static_cast<long long>(q.length.count() / 1000));
      const std::string_view args[5] = {
          std::string_view(limit, nl), limits::quotaPeriodKind(q.period),
          std::string_view(offset, no), std::string_view(length, nn), "1"};
      const std::string_view keys[1] = {redis_key_};
      ticket_redis_ = true;
      starting_ = true;
      uint64_t ticket = client->eval(this, kScript, 1, keys, 5, args);
      starting_ = false;
      if (!answered_) {
        ticket_ = ticket;
        return false;
      }
    }
  }
  answered_ = false;
  if (!answer_ok_) return quotaFailed();
  if (allowed_) {
    finish(kAllowed);
  } else {
    tooManyRequests(retry_after_s_, "Limit Exceeded", kQuotaExceeded);
  }
  return true;
}

bool ApiKeyRequest::quotaFailed() {
  const config::Quota& q = plan_->quota;
  const limits::StoreOptions& store = factory_->settings().store;
  switch (store.on_failure) {
    case limits::OnRedisFailure::kAllow:
      finish(kAllowed);
      return true;
    case limits::OnRedisFailure::kDeny:
      count(kUnavailable);
      step_ = Step::kDone;
      x_->reply(503, "Service Unavailable");
      return true;
    case limits::OnRedisFailure::kLocal:
      break;
  }
  // Per instance, with the limit shared out as the throttle's is.
  uint64_t hint = std::max(1u, store.instances_hint);
  uint64_t limit = std::max<uint64_t>(1, (q.limit + hint - 1) / hint);
  if (counter_ == nullptr)
    counter_ = limits::QuotaStore::instance().counter(name_, plan_->quota_tag);
  int64_t now = wallSeconds();
  limits::QuotaWindow w = limits::quotaWindow(q, now);
  uint64_t used = 0;
  if (counter_->take(w.start, limit, used)) {
    finish(kAllowed);
  } else {
    tooManyRequests(w.end - now, "Limit Exceeded", kQuotaExceeded);
  }
  return true;
}

void ApiKeyRequest::finish(Result r) {
  step_ = Step::kDone;
  count(r);
  if (r == kAllowed) {
    x_->resume();
  } else {
    x_->reply(403, "Forbidden");
  }
}

void ApiKeyRequest::tooManyRequests(int64_t retry_after_s, std::string_view message, Result r) {
  step_ = Step::kDone;
  count(r);
  std::string body = "{\"message\":\"";
  body.append(message).append("\"}");
  x_->replyWith(429,
                {{"Content-Type", "application/json"},
                 {"Retry-After", std::to_string(std::max<int64_t>(1, retry_after_s))}},
                body);
}

}  // namespace sluice::api_key
