// The token-bucket arithmetic (gateway/limits/token_bucket.h) and the local store's
// all-or-nothing takes, bounds and eviction (gateway/limits/local_store.h).
#include "gateway/limits/token_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gateway/limits/local_store.h"

namespace sluice::limits {
namespace {

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kT0 = 1'000 * kSec;  // an arbitrary "now"

TEST(TokenBucket, NewBucketStartsFull) {
  BucketState s;
  Decision d = take(s, BucketSpec{1, 5}, kT0);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 4);
  EXPECT_EQ(d.retry_after_us, 0);
  EXPECT_EQ(d.reset_us, kSec);  // one token short of full at 1/s
  EXPECT_EQ(s.stamp_us, kT0);
}

TEST(TokenBucket, BurstThenDenied) {
  BucketState s;
  BucketSpec spec{2, 3};
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(take(s, spec, kT0).allowed) << i;
  Decision d = take(s, spec, kT0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.retry_after_us, kSec / 2);  // one token at 2/s
  EXPECT_EQ(d.reset_us, 3 * kSec / 2);    // three tokens at 2/s
}

TEST(TokenBucket, RefillsAtRate) {
  BucketState s;
  BucketSpec spec{10, 10};
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(take(s, spec, kT0).allowed);
  ASSERT_FALSE(take(s, spec, kT0).allowed);
  // 350 ms at 10/s: 3.5 tokens.
  int64_t t = kT0 + 350'000;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(take(s, spec, t).allowed) << i;
  Decision d = take(s, spec, t);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_us, 50'000);  // the half token left needs 50 ms more
  EXPECT_TRUE(take(s, spec, t + 50'000).allowed);
}

TEST(TokenBucket, BurstCapsTheRefill) {
  BucketState s;
  BucketSpec spec{100, 5};
  ASSERT_TRUE(take(s, spec, kT0).allowed);
  // An hour idle refills to the burst, not to 360000 tokens.
  int64_t t = kT0 + 3600 * kSec;
  int allowed = 0;
  while (take(s, spec, t).allowed) ++allowed;
  EXPECT_EQ(allowed, 5);
}

TEST(TokenBucket, FractionalRate) {
  BucketState s;
  BucketSpec spec{0.5, 1};  // one request every two seconds
  ASSERT_TRUE(take(s, spec, kT0).allowed);
  Decision d = take(s, spec, kT0 + kSec);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after_us, kSec);  // half a token there, half to go at 0.5/s
  EXPECT_EQ(d.reset_us, kSec);
  EXPECT_FALSE(take(s, spec, kT0 + 2 * kSec - 1).allowed);
  EXPECT_TRUE(take(s, spec, kT0 + 2 * kSec).allowed);
}

TEST(TokenBucket, ManyTinyStepsAddUpExactly) {
  // 1000 refills of 1 ms at 1/s must make exactly one token, float error or not.
  BucketState s;
  BucketSpec spec{1, 1};
  ASSERT_TRUE(take(s, spec, kT0).allowed);
  int64_t t = kT0;
  for (int i = 0; i < 999; ++i) {
    t += 1000;
    ASSERT_FALSE(take(s, spec, t).allowed) << i;
  }
  EXPECT_TRUE(take(s, spec, t + 1000).allowed);
}

TEST(TokenBucket, Cost) {
  BucketState s;
  BucketSpec spec{1, 10};
  Decision d = take(s, spec, kT0, 4);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 6);
  d = take(s, spec, kT0, 7);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 6);          // a refused take takes nothing
  EXPECT_EQ(d.retry_after_us, kSec);  // one token short
  EXPECT_TRUE(take(s, spec, kT0, 6).allowed);
  EXPECT_EQ(take(s, spec, kT0, 0).remaining, 0);
}

TEST(TokenBucket, ClockGoingBackwardsIsHarmless) {
  BucketState s;
  BucketSpec spec{10, 2};
  ASSERT_TRUE(take(s, spec, kT0).allowed);
  ASSERT_TRUE(take(s, spec, kT0).allowed);
  // Ten seconds back: no tokens appear, nothing goes negative.
  Decision d = take(s, spec, kT0 - 10 * kSec);
  EXPECT_FALSE(d.allowed);
  EXPECT_GE(s.tokens, 0);
  EXPECT_GE(d.retry_after_us, 0);
  EXPECT_GE(d.reset_us, 0);
  EXPECT_EQ(s.stamp_us, kT0);
  // Nor when the clock comes back: only time past the old stamp counts.
  d = take(s, spec, kT0 + 100'000);  // one token after 100 ms
  EXPECT_TRUE(d.allowed);
  EXPECT_FALSE(take(s, spec, kT0 + 100'000).allowed);
}

TEST(TokenBucket, CorruptStateIsClamped) {
  BucketState s{-5, kT0};
  Decision d = take(s, BucketSpec{1, 3}, kT0);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(s.tokens, 0);
  BucketState big{1e9, kT0};
  d = take(big, BucketSpec{1, 3}, kT0);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 2);
}

// ---- LocalStore ----

TEST(LocalStore, TakesFromAllOrNone) {
  LocalStore store(1024, 4);
  BucketSpec wide{1, 10}, narrow{1, 1};
  LocalStore::Item items[2] = {{"route", wide, {}}, {"ip", narrow, {}}};
  EXPECT_TRUE(store.takeAll(items, 2, kT0));
  EXPECT_EQ(items[0].decision.remaining, 9);
  EXPECT_EQ(items[1].decision.remaining, 0);
  // The narrow limit refuses: the wide one keeps its token.
  EXPECT_FALSE(store.takeAll(items, 2, kT0));
  EXPECT_TRUE(items[0].decision.allowed);
  EXPECT_EQ(items[0].decision.remaining, 9);
  EXPECT_FALSE(items[1].decision.allowed);
  EXPECT_EQ(items[1].decision.retry_after_us, kSec);
  EXPECT_EQ(store.peek("route", wide, kT0).remaining, 9);
}

TEST(LocalStore, SameKeyDifferentSpecIsAnotherBucket) {
  LocalStore store(1024, 4);
  LocalStore::Item a{"k", {1, 1}, {}};
  LocalStore::Item b{"k", {2, 1}, {}};
  EXPECT_TRUE(store.takeAll(&a, 1, kT0));
  EXPECT_TRUE(store.takeAll(&b, 1, kT0));
  EXPECT_FALSE(store.takeAll(&a, 1, kT0));
  EXPECT_EQ(store.size(), 2u);
}

TEST(LocalStore, SameBucketTwiceInOneTake) {
  LocalStore store(1024, 4);
  LocalStore::Item items[2] = {{"k", {1, 3}, {}}, {"k", {1, 3}, {}}};
  EXPECT_TRUE(store.takeAll(items, 2, kT0));
  EXPECT_EQ(items[1].decision.remaining, 1);
  EXPECT_FALSE(store.takeAll(items, 2, kT0));  // one left, two wanted: none taken
  LocalStore::Item one{"k", {1, 3}, {}};
  EXPECT_TRUE(store.takeAll(&one, 1, kT0));
}

TEST(LocalStore, FullBucketsAreSweptAway) {
  LocalStore store(1 << 20, 1);
  BucketSpec spec{1000, 2};
  for (int i = 0; i < 1000; ++i) {
    LocalStore::Item item{"", spec, {}};
    std::string key = "k" + std::to_string(i);
    item.key = key;
    store.takeAll(&item, 1, kT0);
  }
  EXPECT_GE(store.size(), 500u);
  // A second later every bucket is full again; new keys trigger sweeps that drop them.
  for (int i = 0; i < 200; ++i) {
    std::string key = "n" + std::to_string(i);
    LocalStore::Item item{key, spec, {}};
    store.takeAll(&item, 1, kT0 + kSec);
  }
  EXPECT_LT(store.size(), 400u);
}

TEST(LocalStore, BoundedByLeastRecentlyUsed) {
  LocalStore store(64, 1);  // 64 buckets, one shard
  BucketSpec slow{0.001, 5};
  LocalStore::Item hot{"hot", slow, {}};
  store.takeAll(&hot, 1, kT0);
  for (int i = 0; i < 1000; ++i) {
    std::string key = "k" + std::to_string(i);
    LocalStore::Item item{key, slow, {}};
    store.takeAll(&item, 1, kT0);
    if (i % 10 == 0) store.takeAll(&hot, 1, kT0);  // keep "hot" recently used
  }
  EXPECT_LE(store.size(), 64u);
  // "hot" survived the churn: its tokens were taken, not reset by an eviction.
  Decision d = store.peek("hot", slow, kT0);
  EXPECT_EQ(d.remaining, 0);
}

TEST(LocalStore, ExactUnderConcurrency) {
  LocalStore store(1024, 8);
  BucketSpec spec{0.000001, 1000};  // no refill during the test
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        LocalStore::Item items[2] = {{"shared", spec, {}}, {"other", {1e-6, 1e9}, {}}};
        if (store.takeAll(items, 2, LocalStore::nowMicros())) allowed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1000);
}

}  // namespace
}  // namespace sluice::limits
