// The `redis:` section: URL forms, overrides, errors at FILE:LINE:COL, and that the
// password never shows (in errors, in `url`, in the summary).
#include "config/redis_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config {
namespace {

constexpr const char* kBase = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes: []
)";

LoadResult load(const std::string& extra) {
  return loadString(std::string(kBase) + extra, "test.yaml");
}

std::vector<std::string> errorsOf(const std::string& extra) {
  std::vector<std::string> out;
  for (const Error& e : load(extra).errors) out.push_back(e.str());
  return out;
}

detail::RedisUrl parse(const std::string& url) {
  detail::RedisUrl out;
  std::string error;
  EXPECT_TRUE(detail::parseRedisUrl(url, out, error)) << url << ": " << error;
  return out;
}

std::string parseError(const std::string& url) {
  detail::RedisUrl out;
  std::string error;
  EXPECT_FALSE(detail::parseRedisUrl(url, out, error)) << url;
  return error;
}

TEST(RedisUrl, Forms) {
  detail::RedisUrl u = parse("redis://127.0.0.1:6380/2");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_TRUE(u.has_db);
  EXPECT_EQ(u.db, 2u);
  EXPECT_FALSE(u.has_password);
  EXPECT_EQ(u.redacted, "redis://127.0.0.1:6380/2");

  u = parse("rediss://localhost");
  EXPECT_TRUE(u.tls);
  EXPECT_EQ(u.host, "localhost");
  EXPECT_EQ(u.port, 6379);
  EXPECT_FALSE(u.has_db);

  u = parse("redis://alice:s%40cret@[::1]:7000/");
  EXPECT_EQ(u.username, "alice");
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 7000);
  EXPECT_FALSE(u.has_db);
  EXPECT_EQ(u.redacted, "redis://alice:***@[::1]:7000/");

  u = parse("REDIS://:only-password@host.example:1");
  EXPECT_EQ(u.username, "");
  EXPECT_EQ(u.password, "only-password");
  EXPECT_EQ(u.redacted, "REDIS://:***@host.example:1");

  u = parse("redis://bob@h");  // a user name alone
  EXPECT_EQ(u.username, "bob");
  EXPECT_FALSE(u.has_password);
}

TEST(RedisUrl, Errors) {
  EXPECT_NE(parseError("http://127.0.0.1").find("expected a URL like redis://"), std::string::npos);
  EXPECT_NE(parseError("127.0.0.1:6379").find("expected a URL"), std::string::npos);
  EXPECT_EQ(parseError("redis://:pw@"), "missing host in the Redis URL");
  EXPECT_EQ(parseError("redis://h:0"), "invalid port in the Redis URL (expected 1 to 65535)");
  EXPECT_EQ(parseError("redis://h:65536"), "invalid port in the Redis URL (expected 1 to 65535)");
  EXPECT_EQ(parseError("redis://h:"), "invalid port in the Redis URL (expected 1 to 65535)");
  EXPECT_EQ(parseError("redis://h/x"),
            "invalid database number in the Redis URL (expected /0, /1, ...)");
  EXPECT_EQ(parseError("redis://[::1/0"), "missing ']' after the IPv6 address in the Redis URL");
  EXPECT_NE(parseError("redis://h/0?timeout=1").find("query strings"), std::string::npos);
  EXPECT_EQ(parseError("redis://u:bad%zzsecret@h"),
            "invalid %-escape in the password of the Redis URL");
}

TEST(RedisConfig, AbsentMeansDisabled) {
  LoadResult r = load("");
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.config->redis.enabled);
}

TEST(RedisConfig, DefaultsAndOverrides) {
  LoadResult r = load("redis: {url: \"redis://u:frompw@127.0.0.1:6390/4\"}\n");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  const Redis c = r.config->redis;  // a copy: `r` is reused below
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.url, "redis://u:***@127.0.0.1:6390/4");
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 6390);
  EXPECT_EQ(detail::numericAddress(c.address), "127.0.0.1:6390");
  EXPECT_EQ(c.username, "u");
  EXPECT_EQ(c.password, "frompw");
  EXPECT_EQ(c.db, 4u);
  EXPECT_EQ(c.connect_timeout, Duration(1000));
  EXPECT_EQ(c.command_timeout, Duration(50));
  EXPECT_EQ(c.pool, 1u);
  EXPECT_FALSE(c.tls);

  setenv("SLUICE_TEST_REDIS_PW", "env-secret", 1);
  r = load(R"(redis:
  url: redis://localhost:6379/1
  username: app
  password: ${SLUICE_TEST_REDIS_PW}
  db: 7
  connect_timeout: 2s
  command_timeout: 20ms
  pool: 4
)");
  unsetenv("SLUICE_TEST_REDIS_PW");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  const Redis& d = r.config->redis;
  EXPECT_EQ(d.username, "app");
  EXPECT_EQ(d.password, "env-secret");
  EXPECT_EQ(d.db, 7u);  // the key beats the URL's /1
  EXPECT_EQ(d.connect_timeout, Duration(2000));
  EXPECT_EQ(d.command_timeout, Duration(20));
  EXPECT_EQ(d.pool, 4u);
  EXPECT_EQ(d.url, "redis://localhost:6379/1");
  EXPECT_FALSE(d.sameAs(c));
  LoadResult again = load("redis: {url: \"redis://u:frompw@127.0.0.1:6390/4\"}\n");
  EXPECT_TRUE(again.config->redis.sameAs(c));
}

TEST(RedisConfig, Tls) {
  char tmpl[] = "/tmp/sluice-redis-ca-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  { std::ofstream(tmpl) << "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"; }
  LoadResult r = load(std::string("redis: {url: \"rediss://127.0.0.1:6380\", tls: {ca: ") + tmpl +
                      ", verify: false}}\n");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  EXPECT_TRUE(r.config->redis.tls);
  EXPECT_EQ(r.config->redis.tls_ca, tmpl);
  EXPECT_FALSE(r.config->redis.tls_verify);
  r = load("redis: {url: \"rediss://127.0.0.1:6380\"}\n");
  ASSERT_TRUE(r.config);
  EXPECT_TRUE(r.config->redis.tls_verify);
  EXPECT_EQ(r.config->redis.tls_ca, "");
  std::remove(tmpl);
}

TEST(RedisConfig, Errors) {
  EXPECT_EQ(errorsOf("redis: {}\n"),
            std::vector<std::string>{"test.yaml:5:8: missing required key 'url'"});
  EXPECT_EQ(errorsOf("redis: {url: \"redis://:hunter2@127.0.0.1:99999\"}\n"),
            std::vector<std::string>{
                "test.yaml:5:14: invalid port in the Redis URL (expected 1 to 65535)"});
  EXPECT_EQ(errorsOf("redis:\n  url: redis://127.0.0.1\n  pool: 17\n"),
            std::vector<std::string>{"test.yaml:7:9: must be between 1 and 16"});
  EXPECT_EQ(errorsOf("redis:\n  url: redis://127.0.0.1\n  command_timeout: 0ms\n"),
            std::vector<std::string>{"test.yaml:7:20: must be greater than 0"});
  EXPECT_EQ(errorsOf("redis:\n  url: redis://127.0.0.1\n  tls: {verify: false}\n"),
            std::vector<std::string>{"test.yaml:7:8: 'tls' settings apply to rediss:// URLs only"});
  EXPECT_EQ(errorsOf("redis:\n  url: rediss://127.0.0.1\n  tls: {ca: /nonexistent/ca.pem}\n"),
            std::vector<std::string>{"test.yaml:7:13: cannot read CA file '/nonexistent/ca.pem'"});
  EXPECT_EQ(errorsOf("redis:\n  url: redis://127.0.0.1\n  username: bob\n"),
            std::vector<std::string>{
                "test.yaml:7:13: a Redis user name needs a password (AUTH takes both)"});
  std::vector<std::string> unknown = errorsOf("redis:\n  url: redis://127.0.0.1\n  port: 1\n");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_NE(unknown[0].find("test.yaml:7:3: unknown key 'port'"), std::string::npos) << unknown[0];
  std::vector<std::string> dns = errorsOf("redis: {url: \"redis://no-such-host.invalid\"}\n");
  ASSERT_EQ(dns.size(), 1u);
  EXPECT_NE(dns[0].find("test.yaml:5:14: Redis host: "), std::string::npos) << dns[0];
}

TEST(RedisConfig, ThePasswordNeverShows) {
  const std::string secret = "hunter2-VERY-secret";
  const std::vector<std::string> bad = {
      "redis: {url: \"redis://:" + secret + "@127.0.0.1:0\"}\n",
      "redis: {url: \"redis://:" + secret + "@\"}\n",
      "redis: {url: \"redis://:" + secret + "@h/x\"}\n",
      "redis: {url: \"redis://:" + secret + "@127.0.0.1\", password: " + secret + ", pool: 0}\n",
      "redis: {url: \"http://:" + secret + "@127.0.0.1\"}\n",
      "redis: {url: \"redis://:" + secret + "@no-such-host.invalid\"}\n",
  };
  for (const std::string& text : bad) {
    LoadResult r = load(text);
    ASSERT_FALSE(r.errors.empty()) << text;
    for (const Error& e : r.errors) EXPECT_EQ(e.str().find(secret), std::string::npos) << e.str();
  }
  LoadResult ok = load("redis: {url: \"redis://:" + secret + "@127.0.0.1\"}\n");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->redis.password, secret);
  EXPECT_EQ(ok.config->redis.url.find(secret), std::string::npos);
  std::string text = summary(*ok.config);
  EXPECT_EQ(text.find(secret), std::string::npos) << text;
  EXPECT_NE(text.find("redis redis://:***@127.0.0.1"), std::string::npos) << text;
}

}  // namespace
}  // namespace sluice::config
