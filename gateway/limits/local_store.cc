#include "gateway/limits/local_store.h"

#include <time.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace sluice::limits {
namespace {

size_t hashOf(std::string_view key, const BucketSpec& spec) {
  size_t h = std::hash<std::string_view>()(key);
  h ^= std::bit_cast<uint64_t>(spec.rate) * 0x9E3779B97F4A7C15ull;
  h ^= std::bit_cast<uint64_t>(spec.burst) * 0xC2B2AE3D27D4EB4Full;
  return h ^ (h >> 29);
}

// A bucket's identity, with its hash computed once (it picks the shard, then the slot).
struct KeyRef {
  std::string_view key;
  double rate;
  double burst;
  size_t hash;
  bool operator==(const KeyRef& o) const {
    return rate == o.rate && burst == o.burst && key == o.key;
  }
};

struct KeyHash {
  size_t operator()(const KeyRef& k) const { return k.hash; }
};

// A bucket, on its shard's recently-used list (most recent first).
struct Entry {
  std::string key;
  size_t hash = 0;
  BucketSpec spec;
  BucketState state;
  Entry* prev = nullptr;
  Entry* next = nullptr;
};

bool fullAt(const Entry& e, int64_t now_us) {
  double elapsed = now_us > e.state.stamp_us ? static_cast<double>(now_us - e.state.stamp_us) : 0;
  return e.state.tokens + elapsed * e.spec.rate / 1e6 >= e.spec.burst;
}

}  // namespace

struct alignas(64) LocalStore::Shard {
  std::mutex mu;
  // Keys are views into their Entry, which never moves.
  std::unordered_map<KeyRef, std::unique_ptr<Entry>, KeyHash> buckets;
  Entry lru;  // sentinel: lru.next is the most recent, lru.prev the least
  size_t sweep_at = 64;

  Shard() { lru.prev = lru.next = &lru; }

  void unlink(Entry* e) {
    e->prev->next = e->next;
    e->next->prev = e->prev;
  }
  void pushFront(Entry* e) {
    e->next = lru.next;
    e->prev = &lru;
    lru.next->prev = e;
    lru.next = e;
  }
  void erase(Entry* e) {
    unlink(e);
    buckets.erase(KeyRef{e->key, e->spec.rate, e->spec.burst, e->hash});
  }

  Entry* find(const KeyRef& ref) {
    auto it = buckets.find(ref);
    if (it == buckets.end()) return nullptr;
    Entry* e = it->second.get();
    unlink(e);
    pushFront(e);
    return e;
  }

  Entry* findOrCreate(const KeyRef& ref, int64_t now_us, size_t max_size) {
    if (Entry* e = find(ref)) return e;
    if (buckets.size() >= sweep_at) {
      // Amortized: a sweep runs after the shard doubled since the last one. A bucket
      // that is full again is the same as no bucket, so dropping it changes nothing.
      for (Entry* e = lru.prev; e != &lru;) {
        Entry* prev = e->prev;
        if (fullAt(*e, now_us)) erase(e);
        e = prev;
      }
      sweep_at = std::max<size_t>(64, buckets.size() * 2);
    }
    // Still too many live buckets (many distinct keys, all busy): the least recently
    // used one goes. It starts full if it comes back — a bound on memory is worth more
    // than the exactness of the coldest bucket.
    while (buckets.size() >= max_size && lru.prev != &lru) erase(lru.prev);
    auto owned = std::make_unique<Entry>();
    Entry* e = owned.get();
    e->key.assign(ref.key);
    e->hash = ref.hash;
    e->spec = BucketSpec{ref.rate, ref.burst};
    buckets.emplace(KeyRef{e->key, ref.rate, ref.burst, ref.hash}, std::move(owned));
    pushFront(e);
    return e;
  }
};

LocalStore::LocalStore(size_t max_buckets, size_t shards)
    : shards_(std::make_unique<Shard[]>(shards)),
      shard_count_(shards),
      max_per_shard_(std::max<size_t>(8, max_buckets / shards)) {}

LocalStore::~LocalStore() = default;

LocalStore& LocalStore::global() {
  // Never destroyed: workers may still take tokens while the process exits.
  static LocalStore* store = new LocalStore();
  return *store;
}

int64_t LocalStore::nowMicros() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  // +1: a stamp of 0 means "new bucket".
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000 + 1;
}

bool LocalStore::takeAll(Item* items, size_t n, int64_t now_us) {
  constexpr size_t kMax = 8;
  n = std::min(n, kMax);
  std::string_view keys[kMax];
  BucketSpec specs[kMax];
  Decision out[kMax];
  for (size_t i = 0; i < n; ++i) {
    keys[i] = items[i].key;
    specs[i] = items[i].spec;
  }
  bool allowed = takeAll(keys, specs, out, n, now_us);
  for (size_t i = 0; i < n; ++i) items[i].decision = out[i];
  return allowed;
}

bool LocalStore::takeAll(const std::string_view* keys, const BucketSpec* specs, Decision* out,
                         size_t n, int64_t now_us) {
  constexpr size_t kMax = 8;
  n = std::min(n, kMax);
  KeyRef refs[kMax];
  size_t shard_of[kMax];
  size_t order[kMax];
  size_t locked = 0;
  for (size_t i = 0; i < n; ++i) {
    refs[i] = KeyRef{keys[i], specs[i].rate, specs[i].burst, hashOf(keys[i], specs[i])};
    // The high bits pick the shard; the map uses the whole hash (mostly its low bits).
    shard_of[i] = (refs[i].hash >> 40) % shard_count_;
    // Sorted, distinct shard indices: locks are always taken in the same order.
    size_t s = shard_of[i];
    size_t pos = 0;
    while (pos < locked && order[pos] < s) ++pos;
    if (pos < locked && order[pos] == s) continue;
    for (size_t j = locked; j > pos; --j) order[j] = order[j - 1];
    order[pos] = s;
    ++locked;
  }
  for (size_t i = 0; i < locked; ++i) shards_[order[i]].mu.lock();

  Entry* entries[kMax];
  BucketState saved[kMax];
  bool allowed = true;
  for (size_t i = 0; i < n; ++i) {
    entries[i] = shards_[shard_of[i]].findOrCreate(refs[i], now_us, max_per_shard_);
    saved[i] = entries[i]->state;
    out[i] = take(entries[i]->state, specs[i], now_us);
    if (!out[i].allowed) allowed = false;
  }
  if (!allowed) {
    // Undo in reverse (the same bucket may appear twice), then report each bucket as it
    // stands: a limit that had a token says so, but keeps it.
    for (size_t i = n; i-- > 0;) entries[i]->state = saved[i];
    for (size_t i = 0; i < n; ++i) {
      if (!out[i].allowed) continue;
      BucketState probe = entries[i]->state;
      out[i] = take(probe, specs[i], now_us, 0);
    }
  }
  for (size_t i = locked; i-- > 0;) shards_[order[i]].mu.unlock();
  return allowed;
}

Decision LocalStore::peek(std::string_view key, const BucketSpec& spec, int64_t now_us) {
  KeyRef ref{key, spec.rate, spec.burst, hashOf(key, spec)};
  Shard& shard = shards_[(ref.hash >> 40) % shard_count_];
  BucketState state;
  {
    std::lock_guard lock(shard.mu);
    if (Entry* e = shard.find(ref)) state = e->state;
  }
  return take(state, spec, now_us, 0);
}

size_t LocalStore::size() const {
  size_t total = 0;
  for (size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    total += shards_[i].buckets.size();
  }
  return total;
}

}  // namespace sluice::limits
