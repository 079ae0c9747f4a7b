// The Redis side of the limiter without a server: a fake redis::Client records each
// EVALSHA and the test answers it (or fails it) by hand. Covers the reply format, the
// empty-bucket cache (refusals without a round trip, one probe per due token), every
// on_redis_failure mode, an answer before take() returns, and cancel.
#include "gateway/limits/redis_store.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gateway/limits/local_store.h"

namespace sluice::limits {
namespace {

struct Call {
  redis::Handler* handler;
  uint64_t ticket;
  std::vector<std::string> keys, args;
};

class FakeClient final : public redis::Client {
 public:
  uint64_t send(redis::Handler*, int, const char* const*, const size_t*) override { return 0; }
  uint64_t eval(redis::Handler* handler, const redis::Script& script, int nkeys,
                const std::string_view* keys, int nargs, const std::string_view* args) override {
    EXPECT_EQ(script.source, kTakeScript);
    uint64_t ticket = ++next_;
    if (down) {
      handler->onRedisReply(ticket, redis::Status::kUnavailable, nullptr);
      return ticket;
    }
    Call c{handler, ticket, {}, {}};
    for (int i = 0; i < nkeys; ++i) c.keys.emplace_back(keys[i]);
    for (int i = 0; i < nargs; ++i) c.args.emplace_back(args[i]);
    calls.push_back(std::move(c));
    return ticket;
  }
  void cancel(uint64_t ticket) override { cancelled.push_back(ticket); }
  bool connected() const override { return !down; }

  // Answers the oldest call with the script's reply text (a cancelled call is dropped,
  // as the real client does).
  void answer(const std::string& text) {
    ASSERT_FALSE(calls.empty());
    Call c = calls.front();
    calls.erase(calls.begin());
    if (std::find(cancelled.begin(), cancelled.end(), c.ticket) != cancelled.end()) return;
    redisReply r{};
    r.type = REDIS_REPLY_STRING;
    r.str = const_cast<char*>(text.data());
    r.len = text.size();
    c.handler->onRedisReply(c.ticket, redis::Status::kReply, &r);
  }
  void fail(redis::Status status) {
    Call c = calls.front();
    calls.erase(calls.begin());
    c.handler->onRedisReply(c.ticket, status, nullptr);
  }

  bool down = false;
  std::vector<Call> calls;
  std::vector<uint64_t> cancelled;

 private:
  uint64_t next_ = 0;
};

struct Recorder final : LimitHandler {
  void onLimits(uint64_t ticket, const Outcome* outcomes, size_t n) override {
    ++calls;
    last.assign(outcomes, outcomes + n);
  }
  int calls = 0;
  std::vector<Outcome> last;
};

class RedisStoreTest : public ::testing::Test {
 protected:
  uint64_t takeOne(std::string_view key, BucketSpec spec = {1, 5}) {
    Limit l{key, spec};
    return store.take(options, &l, 1, &rec);
  }
  FakeClient client;
  RedisStore store{&client};
  StoreOptions options{Store::kRedis, OnRedisFailure::kDeny, 1};
  Recorder rec;
};

TEST_F(RedisStoreTest, OneScriptCallForAllLimitsOfARequest) {
  Limit limits[2] = {{"route:0:a", {10, 20}}, {"route:1:b", {0.5, 1}}};
  uint64_t ticket = store.take(options, limits, 2, &rec);
  EXPECT_NE(ticket, 0u);
  ASSERT_EQ(client.calls.size(), 1u);
  EXPECT_EQ(client.calls[0].keys,
            (std::vector<std::string>{"sluice:rl:10:20:route:0:a", "sluice:rl:0.5:1:route:1:b"}));
  EXPECT_EQ(client.calls[0].args, (std::vector<std::string>{"10", "20", "0.5", "1"}));
  EXPECT_EQ(rec.calls, 0);
  client.answer("1 1 19 0 100000 1 0 2000000 2000000");
  ASSERT_EQ(rec.calls, 1);
  ASSERT_EQ(rec.last.size(), 2u);
  EXPECT_TRUE(rec.last[0].decision.allowed);
  EXPECT_EQ(rec.last[0].decision.remaining, 19);
  EXPECT_EQ(rec.last[0].decision.reset_us, 100000);
  EXPECT_EQ(rec.last[1].decision.remaining, 0);
  EXPECT_EQ(rec.last[1].decision.retry_after_us, 2000000);
  EXPECT_EQ(rec.last[0].source, Source::kRedis);
}

TEST_F(RedisStoreTest, HugeNumbersInLuaNotation) {
  takeOne("slow", BucketSpec{1e-9, 1});
  client.answer("0 0 0 1e+15 1.5e+15");  // Lua prints numbers above 1e14 like this
  EXPECT_EQ(rec.last[0].source, Source::kRedis);
  EXPECT_EQ(rec.last[0].decision.retry_after_us, 1'000'000'000'000'000);
  EXPECT_EQ(rec.last[0].decision.reset_us, 1'000'000'000'000'000);  // capped
}

TEST_F(RedisStoreTest, EmptyBucketIsRefusedWithoutARoundTripUntilItsTokenIsDue) {
  BucketSpec spec{0.01, 1};  // a token every 100 s: the cache outlives the test
  takeOne("k", spec);
  client.answer("0 0 0 50000000 100000000");  // refused: next token in 50 s
  EXPECT_FALSE(rec.last[0].decision.allowed);
  EXPECT_EQ(store.emptyCacheSize(), 1u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(takeOne("k", spec), 0u);  // answered at once
    EXPECT_FALSE(rec.last[0].decision.allowed);
    EXPECT_EQ(rec.last[0].source, Source::kEmptyCache);
    EXPECT_GT(rec.last[0].decision.retry_after_us, 49'000'000);
  }
  EXPECT_TRUE(client.calls.empty());
  // Another key, and the same key with another spec, still go to Redis.
  takeOne("other", spec);
  takeOne("k", BucketSpec{0.02, 1});
  EXPECT_EQ(client.calls.size(), 2u);
}

TEST_F(RedisStoreTest, AnAllowedRequestThatEmptiesTheBucketIsRemembered) {
  BucketSpec spec{0.01, 1};
  takeOne("k", spec);
  client.answer("1 1 0 100000000 100000000");  // allowed, nothing left for 100 s
  EXPECT_TRUE(rec.last[0].decision.allowed);
  takeOne("k", spec);
  EXPECT_EQ(rec.last[0].source, Source::kEmptyCache);
  EXPECT_TRUE(client.calls.empty());
}

TEST_F(RedisStoreTest, OneProbePerDueToken) {
  BucketSpec spec{1, 1};  // a token every second
  takeOne("k", spec);
  client.answer("0 0 0 1 1000000");  // the next token is due in 1 us
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // Due: the first request goes to Redis for that token; the ones after it, until the
  // next token (a second later), are refused here instead of piling onto Redis.
  EXPECT_NE(takeOne("k", spec), 0u);
  EXPECT_EQ(takeOne("k", spec), 0u);
  EXPECT_EQ(rec.last[0].source, Source::kEmptyCache);
  EXPECT_EQ(client.calls.size(), 1u);
}

TEST_F(RedisStoreTest, ABucketWithTokensAgainIsForgotten) {
  BucketSpec spec{1, 5};
  takeOne("k", spec);
  client.answer("0 0 0 1 5000000");  // empty; the next token is due in 1 us
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  takeOne("k", spec);                // the probe for that token...
  client.answer("1 1 4 0 1000000");  // ...finds a full bucket (Redis restarted)
  EXPECT_EQ(store.emptyCacheSize(), 0u);
  EXPECT_NE(takeOne("k", spec), 0u);  // not refused from the cache
}

TEST_F(RedisStoreTest, ACacheHitOnOneLimitRefusesTheRequest) {
  BucketSpec spec{0.01, 1};
  takeOne("empty", spec);
  client.answer("0 0 0 50000000 100000000");
  Limit limits[2] = {{"fresh", {100, 100}}, {"empty", spec}};
  EXPECT_EQ(store.take(options, limits, 2, &rec), 0u);
  ASSERT_EQ(rec.last.size(), 2u);
  EXPECT_TRUE(rec.last[0].decision.allowed);  // not asked; never the most restrictive
  EXPECT_FALSE(rec.last[1].decision.allowed);
  EXPECT_TRUE(client.calls.empty());
}

TEST_F(RedisStoreTest, FailureModes) {
  options.on_failure = OnRedisFailure::kAllow;
  takeOne("a");
  client.fail(redis::Status::kTimeout);
  EXPECT_TRUE(rec.last[0].decision.allowed);
  EXPECT_EQ(rec.last[0].source, Source::kFailOpen);

  options.on_failure = OnRedisFailure::kDeny;
  takeOne("a");
  client.fail(redis::Status::kUnavailable);
  EXPECT_FALSE(rec.last[0].decision.allowed);
  EXPECT_EQ(rec.last[0].decision.retry_after_us, 1'000'000);
  EXPECT_EQ(rec.last[0].source, Source::kFailClosed);

  // A malformed answer (another script's, an error) counts as a failure too.
  takeOne("a");
  client.answer("1 2 3");
  EXPECT_EQ(rec.last[0].source, Source::kFailClosed);
  EXPECT_EQ(store.emptyCacheSize(), 0u);

  // local: this instance's share, burst 6 / 3 instances = 2, from the process store.
  options.on_failure = OnRedisFailure::kLocal;
  options.instances_hint = 3;
  std::string key = "fallback-" + std::to_string(LocalStore::nowMicros());
  int allowed = 0;
  for (int i = 0; i < 5; ++i) {
    takeOne(key, BucketSpec{0.001, 6});
    client.fail(redis::Status::kTimeout);
    EXPECT_EQ(rec.last[0].source, Source::kFallback);
    allowed += rec.last[0].decision.allowed;
  }
  EXPECT_EQ(allowed, 2);
}

TEST_F(RedisStoreTest, AnswerBeforeTakeReturns) {
  client.down = true;  // the client fails the command inside eval()
  EXPECT_EQ(takeOne("a"), 0u);
  EXPECT_EQ(rec.calls, 1);
  EXPECT_EQ(rec.last[0].source, Source::kFailClosed);
  // The slot was given back: the next request works normally.
  client.down = false;
  EXPECT_NE(takeOne("a"), 0u);
  client.answer("1 1 4 0 1000000");
  EXPECT_EQ(rec.calls, 2);
}

TEST_F(RedisStoreTest, CancelledTakeIsNeverAnswered) {
  uint64_t first = takeOne("a");
  uint64_t second = takeOne("b");
  store.cancel(first);
  EXPECT_EQ(client.cancelled, std::vector<uint64_t>{1});
  client.answer("1 1 4 0 1000000");  // dropped: cancelled
  store.cancel(first);               // twice, or a stale ticket: nothing happens
  store.cancel(12345);
  client.answer("1 1 4 0 1000000");
  EXPECT_EQ(rec.calls, 1);  // only `second`
  (void)second;
}

TEST_F(RedisStoreTest, NoClientMeansFailureMode) {
  RedisStore none(nullptr);
  Limit l{"a", {1, 1}};
  EXPECT_EQ(none.take(options, &l, 1, &rec), 0u);
  EXPECT_EQ(rec.last[0].source, Source::kFailClosed);
}

}  // namespace
}  // namespace sluice::limits
