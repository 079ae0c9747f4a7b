#include "filters/api_key/redis_keys.h"

#include <hiredis/hiredis.h>

#include "config/yaml_reader.h"

namespace sluice::api_key {
namespace {

std::string_view text(const redisReply* r) {
  if (r == nullptr || r->type != REDIS_REPLY_STRING) return {};
  return std::string_view(r->str, r->len);
}

}  // namespace

std::string redisKeyName(const unsigned char* digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kRedisKeyPrefix);
  for (size_t i = 0; i < kDigestSize; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xF];
  }
  return out;
}

bool parseKeyReply(const redisReply* reply, CachedKey& out) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return false;
  const redisReply* name = reply->element[0];
  if (name->type == REDIS_REPLY_NIL) {
    out.found = false;
    return true;
  }
  // A name that could not be written in YAML could also break a log line or a label.
  if (!config::detail::isValidName(text(name))) return false;
  const redisReply* plan = reply->element[1];
  const redisReply* enabled = reply->element[2];
  if (!text(plan).empty() && !config::detail::isValidName(text(plan))) return false;
  std::string_view e = text(enabled);
  if (enabled->type != REDIS_REPLY_NIL && e != "true" && e != "false" && e != "1" && e != "0") {
    return false;
  }
  out.found = true;
  out.name.assign(text(name));
  out.usage_plan.assign(text(plan));
  out.enabled = !(e == "false" || e == "0");
  return true;
}

KeyCache& KeyCache::forThisThread() {
  thread_local KeyCache cache;
  return cache;
}

CachedKey* KeyCache::find(const unsigned char* digest) {
  Digest id;
  std::memcpy(id.data(), digest, kDigestSize);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : &it->second;
}

CachedKey& KeyCache::put(const unsigned char* digest, CachedKey entry, int64_t now_us) {
  Digest id;
  std::memcpy(id.data(), digest, kDigestSize);
  auto it = entries_.find(id);
  if (it != entries_.end()) {
    // Keep the counter memo when the identity did not change.
    if (it->second.name == entry.name && !it->second.counter_tag.empty()) {
      entry.counter_tag = std::move(it->second.counter_tag);
      entry.counter = it->second.counter;
    }
    it->second = std::move(entry);
    return it->second;
  }
  if (entries_.size() >= kMaxEntries) {
    std::erase_if(entries_, [now_us](const auto& e) { return e.second.expires_us <= now_us; });
    if (entries_.size() >= kMaxEntries) entries_.clear();
  }
  return entries_.emplace(id, std::move(entry)).first->second;
}

}  // namespace sluice::api_key
