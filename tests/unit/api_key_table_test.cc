// The api_key filter's pieces that need no server: the digest table (every key found,
// nothing else), the SHA-256, the Redis key name, and the parsing of a key's Redis hash.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "config/api_keys_config.h"
#include "filters/api_key/key_table.h"
#include "filters/api_key/redis_keys.h"

namespace sluice::api_key {
namespace {

std::string digestOf(const std::string& key) {
  unsigned char d[kDigestSize];
  digest(key, d);
  return std::string(reinterpret_cast<const char*>(d), kDigestSize);
}

TEST(KeyTable, FindsEveryKeyAndNothingElse) {
  std::vector<std::string> digests;
  for (int i = 0; i < 1000; ++i) digests.push_back(digestOf("key-" + std::to_string(i)));
  KeyTable table(digests);
  for (int i = 0; i < 1000; ++i) {
    std::string d = digestOf("key-" + std::to_string(i));
    EXPECT_EQ(table.find(reinterpret_cast<const unsigned char*>(d.data())), i);
  }
  for (int i = 1000; i < 2000; ++i) {
    std::string d = digestOf("key-" + std::to_string(i));
    EXPECT_EQ(table.find(reinterpret_cast<const unsigned char*>(d.data())), -1);
  }
}

TEST(KeyTable, EmptyTable) {
  KeyTable table({});
  std::string d = digestOf("anything");
  EXPECT_EQ(table.find(reinterpret_cast<const unsigned char*>(d.data())), -1);
}

TEST(KeyTable, DigestIsSha256) {
  EXPECT_EQ(digestOf("abc"), config::detail::sha256("abc"));
  EXPECT_EQ(config::detail::toHex(digestOf("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(RedisKeys, KeyName) {
  std::string d = digestOf("abc");
  EXPECT_EQ(redisKeyName(reinterpret_cast<const unsigned char*>(d.data())),
            "sluice:apikey:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// A reply as hiredis would build it for HMGET name usage_plan enabled.
struct FakeReply {
  explicit FakeReply(std::vector<const char*> values) : texts(values) {
    for (size_t i = 0; i < texts.size(); ++i) {
      redisReply& e = elements[i];
      if (texts[i] == nullptr) {
        e.type = REDIS_REPLY_NIL;
      } else {
        e.type = REDIS_REPLY_STRING;
        e.str = const_cast<char*>(texts[i]);
        e.len = std::char_traits<char>::length(texts[i]);
      }
      pointers[i] = &e;
    }
    reply.type = REDIS_REPLY_ARRAY;
    reply.elements = texts.size();
    reply.element = pointers;
  }
  std::vector<const char*> texts;
  redisReply elements[4] = {};
  redisReply* pointers[4] = {};
  redisReply reply = {};
};

TEST(RedisKeys, ParsesTheHash) {
  CachedKey k;
  FakeReply full({"carol", "gold", "false"});
  ASSERT_TRUE(parseKeyReply(&full.reply, k));
  EXPECT_TRUE(k.found);
  EXPECT_EQ(k.name, "carol");
  EXPECT_EQ(k.usage_plan, "gold");
  EXPECT_FALSE(k.enabled);
  FakeReply minimal({"dan", nullptr, nullptr});
  ASSERT_TRUE(parseKeyReply(&minimal.reply, k));
  EXPECT_TRUE(k.found);
  EXPECT_EQ(k.usage_plan, "");
  EXPECT_TRUE(k.enabled);
  FakeReply missing({nullptr, nullptr, nullptr});
  ASSERT_TRUE(parseKeyReply(&missing.reply, k));
  EXPECT_FALSE(k.found);
  FakeReply bad_name({"a b", nullptr, nullptr});
  EXPECT_FALSE(parseKeyReply(&bad_name.reply, k));
  FakeReply bad_plan({"erin", "gold\nforged log line", nullptr});
  EXPECT_FALSE(parseKeyReply(&bad_plan.reply, k));
  FakeReply bad_flag({"erin", nullptr, "maybe"});
  EXPECT_FALSE(parseKeyReply(&bad_flag.reply, k));
  FakeReply short_reply({"erin", nullptr});
  EXPECT_FALSE(parseKeyReply(&short_reply.reply, k));
  EXPECT_FALSE(parseKeyReply(nullptr, k));
}

}  // namespace
}  // namespace sluice::api_key
