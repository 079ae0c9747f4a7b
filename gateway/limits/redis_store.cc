#include "gateway/limits/redis_store.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>

#include "gateway/limits/local_store.h"
#include "gateway/server/log.h"

namespace sluice::limits {

// KEYS: one per bucket. ARGV: rate and burst of each bucket, in KEYS order. Mirrors
// token_bucket.cc: refill from the stored stamp to Redis TIME (a clock that went back
// adds nothing), take one token from every bucket if each has one, else from none.
// A bucket is stored as two packed doubles (tokens, stamp in microseconds: cheaper to
// read and write in Lua than text) and expires when it would be full again, since a
// missing key is a full bucket. Returns the numbers all_allowed, then per bucket: allowed,
// remaining, retry_after_us (until one token is there; 0: there is one), reset_us — as
// one string, space-separated: one reply object for hiredis to build, not 1 + 4n.
// One bucket (the usual case) takes a shorter path without tables: Redis runs scripts
// one at a time, so every microsecond here is a microsecond of every request.
const char* const kTakeScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function load(key, r, b)
  local v = redis.call('GET', key)
  if v and #v == 16 then
    local x, y = struct.unpack('dd', v)
    if now > y then
      x = x + (now - y) * r / 1e6
      y = now
    end
    return math.max(0, math.min(b, x)), y
  end
  return b, now
end
local function answer(out, allowed, left, r, b)
  local retry = 0
  if left + 1e-9 < 1 then retry = math.max(1, math.ceil((1 - left) / r * 1e6 - 1e-9)) end
  out[#out + 1] = allowed
  out[#out + 1] = math.floor(left + 1e-9)
  out[#out + 1] = retry
  out[#out + 1] = math.max(0, math.ceil((b - left) / r * 1e6 - 1e-9))
end
local function store(key, tokens, stamp, r, b)
  redis.call('SET', key, struct.pack('dd', tokens, stamp), 'PX',
             math.floor((b - tokens) / r * 1000) + 1)
end
local n = #KEYS
if n == 1 then
  local r, b = tonumber(ARGV[1]), tonumber(ARGV[2])
  local tokens, stamp = load(KEYS[1], r, b)
  if tokens + 1e-9 >= 1 then
    tokens = math.max(0, tokens - 1)
    store(KEYS[1], tokens, stamp, r, b)
    local out = {1}
    answer(out, 1, tokens, r, b)
    return table.concat(out, ' ')
  end
  local out = {0}
  answer(out, 0, tokens, r, b)
  return table.concat(out, ' ')
end
local tokens, stamp, before, first = {}, {}, {}, {}
local ok = 1
for i = 1, n do
  local key = KEYS[i]
  local j = first[key]
  if not j then
    j = i
    first[key] = i
    tokens[i], stamp[i] = load(key, tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]))
  end
  before[i] = tokens[j]
  if tokens[j] + 1e-9 >= 1 then
    tokens[j] = math.max(0, tokens[j] - 1)
  else
    ok = 0
  end
end
local out = {ok}
for i = 1, n do
  local r, b = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local j = first[KEYS[i]]
  local left = before[i]
  local allowed = 0
  if left + 1e-9 >= 1 then
    allowed = 1
    if ok == 1 then left = tokens[j] end
  end
  answer(out, allowed, left, r, b)
  if ok == 1 and j == i then store(KEYS[i], tokens[i], stamp[i], r, b) end
end
return table.concat(out, ' ')
)lua";

namespace {

constexpr size_t kMaxEmptyCache = 65536;

const redis::Script& script() {
  static const redis::Script* s = new redis::Script(kTakeScript);
  return *s;
}

void appendNumber(std::string& out, double v) {
  char buf[32];
  int len = std::snprintf(buf, sizeof buf, "%.17g", v);
  out.append(buf, static_cast<size_t>(len));
}

}  // namespace

void appendRedisKey(std::string& out, const BucketSpec& spec, std::string_view key) {
  out.append("sluice:rl:");
  appendNumber(out, spec.rate);
  out.push_back(':');
  appendNumber(out, spec.burst);
  out.push_back(':');
  out.append(key);
}

// One request in flight; slots are reused, so their strings keep their capacity.
struct RedisStore::Pending final : redis::Handler {
  RedisStore* owner = nullptr;
  uint32_t slot = 0;
  uint64_t ticket = 0;  // 0 = free
  uint64_t redis_ticket = 0;
  bool* sync_done = nullptr;  // set while the command is being sent
  LimitHandler* handler = nullptr;
  StoreOptions options;
  size_t n = 0;
  BucketSpec specs[Limiter::kMaxLimits];
  std::string keys[Limiter::kMaxLimits];  // full Redis keys
  std::string args[2 * Limiter::kMaxLimits];
  // The spec args[] were formatted for: a slot usually serves the same limits again.
  BucketSpec formatted[Limiter::kMaxLimits];

  void onRedisReply(uint64_t, redis::Status status, const redisReply* reply) override {
    owner->onReply(*this, status, reply);
  }
};

RedisStore::RedisStore(redis::Client* client) : client_(client) {}

RedisStore::~RedisStore() {
  for (auto& p : slots_) {
    if (p->ticket != 0 && p->redis_ticket != 0 && client_) client_->cancel(p->redis_ticket);
  }
}

RedisStore::Pending* RedisStore::acquire() {
  Pending* p;
  if (free_.empty()) {
    slots_.push_back(std::make_unique<Pending>());
    p = slots_.back().get();
    p->owner = this;
    p->slot = static_cast<uint32_t>(slots_.size() - 1);
  } else {
    p = slots_[free_.back()].get();
    free_.pop_back();
  }
  // Low 24 bits: the slot; above: a sequence, so a stale ticket never matches.
  p->ticket = (++seq_ << 24) | p->slot;
  p->redis_ticket = 0;
  p->sync_done = nullptr;
  return p;
}

void RedisStore::release(Pending* p) {
  p->ticket = 0;
  p->handler = nullptr;
  free_.push_back(p->slot);
}

void RedisStore::cancel(uint64_t ticket) {
  size_t slot = ticket & 0xFFFFFF;
  if (ticket == 0 || slot >= slots_.size()) return;
  Pending* p = slots_[slot].get();
  if (p->ticket != ticket) return;
  if (client_ && p->redis_ticket != 0) client_->cancel(p->redis_ticket);
  release(p);
}

bool RedisStore::fromCache(Pending& p, int64_t now_us, Outcome* out) {
  if (empty_.empty()) return false;
  Cached* found[Limiter::kMaxLimits] = {};
  bool hit = false;
  for (size_t i = 0; i < p.n; ++i) {
    auto it = empty_.find(std::string_view(p.keys[i]));
    if (it == empty_.end()) continue;
    found[i] = &it->second;
    if (it->second.due_us > now_us) {
      hit = true;
      Decision& d = out[i].decision;
      d.allowed = false;
      d.remaining = 0;
      d.retry_after_us = it->second.due_us - now_us;
      d.reset_us = std::max<int64_t>(0, it->second.reset_us - now_us);
    }
  }
  if (!hit) {
    for (size_t i = 0; i < p.n; ++i) {
      Cached* c = found[i];
      if (!c) continue;
      for (size_t k = i + 1; k < p.n; ++k) {
        if (found[k] == c) found[k] = nullptr;  // the same bucket twice: once is enough
      }
      if (now_us < c->due_us + c->period_us) {
        // The token that was due is the one this request goes to Redis for; the next
        // one is a period later. Until then, other requests for this bucket would only
        // find it empty again: they are refused here, without piling onto Redis.
        c->due_us += c->period_us;
      } else {
        empty_.erase(p.keys[i]);  // several tokens may be there now
      }
    }
    return false;
  }
  // The other limits were not asked: reported as allowed with their burst left, which
  // never wins the "most restrictive" choice over the empty bucket.
  for (size_t i = 0; i < p.n; ++i) {
    out[i].source = Source::kEmptyCache;
    if (out[i].decision.retry_after_us == 0) {
      out[i].decision = Decision{true, std::floor(p.specs[i].burst), 0, 0};
    }
  }
  return true;
}

void RedisStore::remember(const std::string& key, const BucketSpec& spec, int64_t now_us,
                          const Decision& d) {
  if (d.retry_after_us <= 0) {
    // Tokens are there (e.g. Redis restarted with full buckets): forget the bucket, or
    // its probe window would refuse requests it can serve.
    if (!empty_.empty()) empty_.erase(key);
    return;
  }
  if (empty_.size() >= kMaxEmptyCache) {
    std::erase_if(
        empty_, [now_us](const auto& e) { return e.second.due_us + e.second.period_us <= now_us; });
    if (empty_.size() >= kMaxEmptyCache) return;  // a bound beats a few round trips
  }
  Cached c{now_us + d.retry_after_us, now_us + d.reset_us,
           std::max<int64_t>(1, static_cast<int64_t>(1e6 / spec.rate))};
  auto it = empty_.find(std::string_view(key));
  if (it == empty_.end()) {
    empty_.emplace(key, c);
  } else {
    it->second = c;
  }
}

uint64_t RedisStore::take(const StoreOptions& options, const Limit* limits, size_t n,
                          LimitHandler* handler) {
  n = std::min(n, Limiter::kMaxLimits);
  Pending* p = acquire();
  p->handler = handler;
  p->options = options;
  p->n = n;
  std::string_view keys[Limiter::kMaxLimits];
  std::string_view args[2 * Limiter::kMaxLimits];
  for (size_t i = 0; i < n; ++i) {
    const BucketSpec& spec = limits[i].spec;
    p->specs[i] = spec;
    std::string& rate = p->args[2 * i];
    std::string& burst = p->args[2 * i + 1];
    if (rate.empty() || p->formatted[i].rate != spec.rate || p->formatted[i].burst != spec.burst) {
      rate.clear();
      appendNumber(rate, spec.rate);
      burst.clear();
      appendNumber(burst, spec.burst);
      p->formatted[i] = spec;
    }
    args[2 * i] = rate;
    args[2 * i + 1] = burst;
    std::string& key = p->keys[i];
    key.assign("sluice:rl:").append(rate).append(":").append(burst).append(":");
    key.append(limits[i].key);
    keys[i] = key;
  }
  Outcome out[Limiter::kMaxLimits];
  if (fromCache(*p, LocalStore::nowMicros(), out)) {
    release(p);
    handler->onLimits(0, out, n);
    return 0;
  }
  if (!client_) {
    failed(*p, out);
    release(p);
    handler->onLimits(0, out, n);
    return 0;
  }
  // The client may answer (kUnavailable) before eval() returns; then onReply has
  // already released the slot and called the handler.
  bool done = false;
  p->sync_done = &done;
  uint64_t ticket = p->ticket;
  uint64_t redis_ticket =
      client_->eval(p, script(), static_cast<int>(n), keys, static_cast<int>(2 * n), args);
  if (done) return 0;
  p->sync_done = nullptr;
  p->redis_ticket = redis_ticket;
  return ticket;
}

void RedisStore::failed(Pending& p, Outcome* out) {
  switch (p.options.on_failure) {
    case OnRedisFailure::kAllow:
      for (size_t i = 0; i < p.n; ++i) {
        out[i].source = Source::kFailOpen;
        out[i].decision = Decision{true, std::max(0.0, std::floor(p.specs[i].burst) - 1), 0, 0};
      }
      return;
    case OnRedisFailure::kDeny:
      for (size_t i = 0; i < p.n; ++i) {
        out[i].source = Source::kFailClosed;
        out[i].decision = Decision{false, 0, 1'000'000, 1'000'000};
      }
      return;
    case OnRedisFailure::kLocal: {
      // This instance's share of the limit: rate and burst divided by the number of
      // instances expected to share it.
      double share = std::max(1u, p.options.instances_hint);
      LocalStore::Item items[Limiter::kMaxLimits];
      for (size_t i = 0; i < p.n; ++i) {
        items[i].key = p.keys[i];
        items[i].spec =
            BucketSpec{p.specs[i].rate / share, std::max(1.0, p.specs[i].burst / share)};
      }
      LocalStore::global().takeAll(items, p.n, LocalStore::nowMicros());
      for (size_t i = 0; i < p.n; ++i) {
        out[i].source = Source::kFallback;
        out[i].decision = items[i].decision;
      }
      return;
    }
  }
}

void RedisStore::onReply(Pending& p, redis::Status status, const redisReply* reply) {
  Outcome out[Limiter::kMaxLimits];
  const size_t n = p.n;
  // "all_allowed (allowed remaining retry_after_us reset_us) x n", numbers as Lua prints
  // them (integers, or 1e+15 style when huge).
  double v[1 + 4 * Limiter::kMaxLimits];
  size_t count = 0;
  bool good = status == redis::Status::kReply && reply && reply->type == REDIS_REPLY_STRING;
  if (good) {
    const char* s = reply->str;
    const char* end = s + reply->len;
    while (s < end && count < std::size(v)) {
      // Integers almost always: read digits directly (from_chars on a double costs
      // ten times more); anything else ("1e+15") goes through from_chars.
      const char* p = s;
      int64_t whole = 0;
      while (p < end && *p >= '0' && *p <= '9' && p - s < 15) whole = whole * 10 + (*p++ - '0');
      if (p > s && (p == end || *p == ' ')) {
        v[count] = static_cast<double>(whole);
      } else {
        auto [next, ec] = std::from_chars(s, end, v[count]);
        if (ec != std::errc()) break;
        p = next;
      }
      ++count;
      s = p;
      if (s < end && *s == ' ') ++s;
    }
    good = s == end && count == 1 + 4 * n;
  }
  if (good) {
    int64_t now_us = LocalStore::nowMicros();
    for (size_t i = 0; i < n; ++i) {
      const double* e = v + 1 + 4 * i;
      Decision& d = out[i].decision;
      d.allowed = e[0] == 1;
      d.remaining = e[1];
      d.retry_after_us = static_cast<int64_t>(std::min(e[2], 1e15));
      d.reset_us = static_cast<int64_t>(std::min(e[3], 1e15));
      out[i].source = Source::kRedis;
      remember(p.keys[i], p.specs[i], now_us, d);
    }
  } else {
    if (status == redis::Status::kReply) {
      // Not a timeout or an outage but a wrong answer (an error reply such as OOM or
      // READONLY, or a script of another version): say so, without flooding the log.
      if (std::has_single_bit(++bad_replies_)) {
        LOG_WARN("rate limit: unexpected Redis reply (%s); on_redis_failure applies (%llu so far)",
                 reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "malformed",
                 static_cast<unsigned long long>(bad_replies_));
      }
    }
    failed(p, out);
  }
  if (p.sync_done) *p.sync_done = true;
  LimitHandler* handler = p.handler;
  uint64_t ticket = p.sync_done ? 0 : p.ticket;
  release(&p);
  handler->onLimits(ticket, out, n);
}

}  // namespace sluice::limits
