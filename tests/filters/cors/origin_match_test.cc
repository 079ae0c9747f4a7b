// Origin patterns and header-list checks for the cors filter (filters/cors/origin_match.h).
#include "filters/cors/origin_match.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::cors {
namespace {

OriginPattern pattern(const char* text) {
  OriginPattern p;
  std::string error;
  EXPECT_TRUE(OriginPattern::parse(text, p, error)) << text << ": " << error;
  return p;
}

std::string patternError(const char* text) {
  OriginPattern p;
  std::string error;
  EXPECT_FALSE(OriginPattern::parse(text, p, error)) << text;
  return error;
}

TEST(SplitOrigin, Parts) {
  OriginParts p;
  ASSERT_TRUE(splitOrigin("https://app.example.com", p));
  EXPECT_EQ(p.scheme, "https");
  EXPECT_EQ(p.host, "app.example.com");
  EXPECT_EQ(p.port, "");
  ASSERT_TRUE(splitOrigin("http://localhost:3000", p));
  EXPECT_EQ(p.host, "localhost");
  EXPECT_EQ(p.port, "3000");
  ASSERT_TRUE(splitOrigin("http://[::1]:8080", p));
  EXPECT_EQ(p.host, "[::1]");
  EXPECT_EQ(p.port, "8080");
  for (const char* bad :
       {"", "null", "app.example.com", "https://", "https://a.com/", "https://a.com/x",
        "https://user@a.com", "https://a.com:", "https://a.com:80:80", "https://a..com",
        "https://.a.com", "https://a.com.", "https://a com", "1http://a.com", "https://[::1",
        "https://[zz]", "https://a.com:123456", "https://a.com?x"}) {
    EXPECT_FALSE(splitOrigin(bad, p)) << bad;
  }
}

TEST(OriginPattern, Any) {
  OriginPattern p = pattern("*");
  EXPECT_TRUE(p.any());
  EXPECT_TRUE(p.matches("https://anything.test"));
  EXPECT_TRUE(p.matches("null"));
}

TEST(OriginPattern, ExactIgnoresCaseOnly) {
  OriginPattern p = pattern("https://App.Example.com");
  EXPECT_FALSE(p.any());
  EXPECT_TRUE(p.matches("https://app.example.com"));
  EXPECT_TRUE(p.matches("HTTPS://APP.EXAMPLE.COM"));
  EXPECT_FALSE(p.matches("http://app.example.com"));
  EXPECT_FALSE(p.matches("https://app.example.com:443"));
  EXPECT_FALSE(p.matches("https://app.example.com.evil.com"));
  EXPECT_FALSE(p.matches("https://app.example.co"));
  EXPECT_FALSE(p.matches("https://x.app.example.com"));
  EXPECT_FALSE(p.matches(""));
  OriginPattern with_port = pattern("http://localhost:3000");
  EXPECT_TRUE(with_port.matches("http://localhost:3000"));
  EXPECT_FALSE(with_port.matches("http://localhost:3001"));
  EXPECT_FALSE(with_port.matches("http://localhost"));
  OriginPattern null_origin = pattern("null");
  EXPECT_TRUE(null_origin.matches("null"));
  EXPECT_FALSE(null_origin.matches("https://null"));
}

TEST(OriginPattern, SubdomainWildcard) {
  OriginPattern p = pattern("*.example.com");
  EXPECT_TRUE(p.matches("https://a.example.com"));
  EXPECT_TRUE(p.matches("http://a.example.com"));
  EXPECT_TRUE(p.matches("https://a.b.example.com"));
  EXPECT_TRUE(p.matches("https://A.EXAMPLE.COM"));
  EXPECT_FALSE(p.matches("https://example.com"));
  EXPECT_FALSE(p.matches("https://evil-example.com"));
  EXPECT_FALSE(p.matches("https://evilexample.com"));
  EXPECT_FALSE(p.matches("https://.example.com"));
  EXPECT_FALSE(p.matches("https://a..example.com"));
  EXPECT_FALSE(p.matches("https://a.example.com.evil.com"));
  EXPECT_FALSE(p.matches("https://a.example.com:8443"));  // the pattern has no port
  EXPECT_FALSE(p.matches("https://a.example.com/"));
  EXPECT_FALSE(p.matches("https://evil.com/.example.com"));
  EXPECT_FALSE(p.matches("https://evil.com?.example.com"));
  EXPECT_FALSE(p.matches("https://user@a.example.com"));
  EXPECT_FALSE(p.matches("ftp://a.example.com"));
  EXPECT_FALSE(p.matches("a.example.com"));
  EXPECT_FALSE(p.matches("null"));
}

TEST(OriginPattern, SubdomainWildcardWithSchemeAndPort) {
  OriginPattern https_only = pattern("https://*.example.com");
  EXPECT_TRUE(https_only.matches("https://a.example.com"));
  EXPECT_FALSE(https_only.matches("http://a.example.com"));
  OriginPattern port = pattern("*.example.com:8443");
  EXPECT_TRUE(port.matches("https://a.example.com:8443"));
  EXPECT_FALSE(port.matches("https://a.example.com"));
  EXPECT_FALSE(port.matches("https://a.example.com:8444"));
  OriginPattern custom = pattern("app://*.example.com");
  EXPECT_TRUE(custom.matches("app://x.example.com"));
  EXPECT_FALSE(custom.matches("https://x.example.com"));
}

TEST(OriginPattern, ConfigErrors) {
  EXPECT_NE(patternError("https://app.example.com/").find("write 'https://app.example.com'"),
            std::string::npos);
  EXPECT_NE(patternError("https://app.example.com/path").find("has no path"), std::string::npos);
  EXPECT_NE(patternError("app.example.com").find("expected an origin"), std::string::npos);
  EXPECT_NE(patternError("").find("expected an origin"), std::string::npos);
  EXPECT_NE(patternError("https://").find("expected an origin"), std::string::npos);
  EXPECT_NE(patternError("https://a.com:x").find("expected an origin"), std::string::npos);
  EXPECT_NE(patternError("*example.com").find("expected an origin"), std::string::npos);
  EXPECT_NE(patternError("*.").find("wildcard origin"), std::string::npos);
  EXPECT_NE(patternError("*.*.example.com").find("wildcard origin"), std::string::npos);
  EXPECT_NE(patternError("*.[::1]").find("wildcard origin"), std::string::npos);
  EXPECT_NE(patternError("https://a.*.com").find("expected an origin"), std::string::npos);
  EXPECT_NE(patternError("1x://a.com").find("expected an origin"), std::string::npos);
}

TEST(HeaderLists, AllAllowed) {
  std::vector<std::string> allowed{"content-type", "authorization", "x-api-key"};
  EXPECT_TRUE(allHeadersAllowed("", allowed));
  EXPECT_TRUE(allHeadersAllowed("content-type", allowed));
  EXPECT_TRUE(allHeadersAllowed("Content-Type, Authorization", allowed));
  EXPECT_TRUE(allHeadersAllowed("content-type,x-api-key", allowed));
  EXPECT_TRUE(allHeadersAllowed(" content-type ,, authorization ", allowed));
  EXPECT_FALSE(allHeadersAllowed("content-type, x-other", allowed));
  EXPECT_FALSE(allHeadersAllowed("x-other", allowed));
  EXPECT_FALSE(allHeadersAllowed("content", allowed));
  EXPECT_FALSE(allHeadersAllowed("content-type", {}));
}

TEST(HeaderLists, TokenLists) {
  EXPECT_TRUE(isTokenList(""));
  EXPECT_TRUE(isTokenList("content-type, authorization"));
  EXPECT_TRUE(isTokenList("a,b"));
  EXPECT_FALSE(isTokenList("a b"));
  EXPECT_FALSE(isTokenList("a;b"));
  EXPECT_FALSE(isTokenList("a, \"b\""));
}

}  // namespace
}  // namespace sluice::cors
