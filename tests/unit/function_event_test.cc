// API Gateway proxy events (payload 1.0 and 2.0) and the mapping of function replies
// (gateway/function/event.h). Assertions are on parsed JSON, never on formatting.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "gateway/function/event.h"

namespace sluice::function {
namespace {

using Json = nlohmann::json;
using config::PayloadFormat;
using Headers = std::vector<std::pair<std::string, std::string>>;

// 2020-03-12 19:03:58.390 UTC, the time of AWS's own 2.0 sample event.
constexpr uint64_t kSampleEpochMs = 1584039838390;

// Owns everything an EventRequest points into, so each test only states what differs.
struct Req {
  PayloadFormat format = PayloadFormat::kV2;
  std::string method = "GET";
  std::string raw_path = "/hello/world";
  std::string raw_query;
  std::string protocol = "HTTP/1.1";
  Headers headers = {{"Host", "api.example.com"}, {"User-Agent", "curl/8.0"}};
  std::string source_ip = "203.0.113.7";
  std::string request_id = "req-123";
  std::string resource = "/hello/{name}";
  std::string route_key = "GET /hello/{name}";
  std::string stage = "$default";
  std::vector<std::pair<std::string, std::string>> stage_variables;
  std::vector<std::pair<std::string, std::string>> path_parameters;
  std::string api_key;
  std::string api_key_id;
  std::string principal;
  std::vector<std::pair<std::string, std::string>> authorizer;
  uint64_t time_epoch_ms = kSampleEpochMs;
  std::string domain_name = "api.example.com";
  std::string body;
  std::vector<std::string> binary_media_types;

  Json build() const {
    std::vector<http::Header> hs;
    for (const auto& [n, v] : headers) hs.push_back({n, v});
    std::vector<std::pair<std::string_view, std::string_view>> auth;
    for (const auto& [k, v] : authorizer) auth.emplace_back(k, v);
    EventRequest r;
    r.format = format;
    r.method = method;
    r.raw_path = raw_path;
    r.raw_query = raw_query;
    r.protocol = protocol;
    r.headers = hs.data();
    r.header_count = hs.size();
    r.source_ip = source_ip;
    r.request_id = request_id;
    r.resource = resource;
    r.route_key = route_key;
    r.stage = stage;
    r.stage_variables = &stage_variables;
    for (const auto& [k, v] : path_parameters) r.path_parameters.emplace_back(k, v);
    r.api_key = api_key;
    r.api_key_id = api_key_id;
    r.principal = principal;
    r.authorizer = &auth;
    r.time_epoch_ms = time_epoch_ms;
    r.domain_name = domain_name;
    r.body = body;
    r.binary_media_types = &binary_media_types;
    const std::string text = buildEvent(r);
    EXPECT_TRUE(Json::accept(text)) << text;
    return Json::parse(text);
  }
};

Req v1() {
  Req r;
  r.format = PayloadFormat::kV1;
  return r;
}

// The value of the only header called `name` (case-insensitive); fails when there are
// zero or several.
std::string headerValue(const MappedResponse& m, std::string_view name) {
  std::vector<std::string> found;
  for (const auto& [n, v] : m.headers) {
    if (http::iequals(n, name)) found.push_back(v);
  }
  EXPECT_EQ(found.size(), 1u) << name;
  return found.empty() ? std::string() : found.front();
}

std::vector<std::string> headerValues(const MappedResponse& m, std::string_view name) {
  std::vector<std::string> found;
  for (const auto& [n, v] : m.headers) {
    if (http::iequals(n, name)) found.push_back(v);
  }
  return found;
}

// ---------------------------------------------------------------------------------------
// Payload format 2.0

TEST(EventV2, TopLevelShape) {
  Req r;
  r.raw_query = "a=1";
  Json e = r.build();
  EXPECT_EQ(e["version"], "2.0");
  EXPECT_EQ(e["routeKey"], "GET /hello/{name}");
  EXPECT_EQ(e["rawPath"], "/hello/world");
  EXPECT_EQ(e["rawQueryString"], "a=1");
  EXPECT_TRUE(e["headers"].is_object());
  EXPECT_EQ(e["isBase64Encoded"], false);
  EXPECT_TRUE(e["requestContext"].is_object());
  // 1.0-only fields never appear in 2.0.
  for (const char* key :
       {"resource", "path", "httpMethod", "multiValueHeaders", "multiValueQueryStringParameters"}) {
    EXPECT_FALSE(e.contains(key)) << key;
  }
}

TEST(EventV2, RequestContext) {
  Req r;
  r.stage = "prod";
  Json ctx = r.build()["requestContext"];
  EXPECT_EQ(ctx["accountId"], "000000000000");
  EXPECT_EQ(ctx["apiId"], "sluice");
  EXPECT_EQ(ctx["domainName"], "api.example.com");
  EXPECT_EQ(ctx["domainPrefix"], "api");
  EXPECT_EQ(ctx["requestId"], "req-123");
  EXPECT_EQ(ctx["routeKey"], "GET /hello/{name}");
  EXPECT_EQ(ctx["stage"], "prod");
  EXPECT_EQ(ctx["time"], "12/Mar/2020:19:03:58 +0000");
  ASSERT_TRUE(ctx["timeEpoch"].is_number_integer());
  EXPECT_EQ(ctx["timeEpoch"].get<uint64_t>(), kSampleEpochMs);
  Json http = ctx["http"];
  EXPECT_EQ(http["method"], "GET");
  EXPECT_EQ(http["path"], "/hello/world");
  EXPECT_EQ(http["protocol"], "HTTP/1.1");
  EXPECT_EQ(http["sourceIp"], "203.0.113.7");
  EXPECT_EQ(http["userAgent"], "curl/8.0");
  EXPECT_FALSE(ctx.contains("authorizer"));
  EXPECT_FALSE(ctx.contains("identity"));
}

TEST(EventV2, AbsentWhenEmpty) {
  Req r;  // no query, no cookies, no path parameters, no stage variables, no body
  Json e = r.build();
  for (const char* key :
       {"cookies", "queryStringParameters", "pathParameters", "stageVariables", "body"}) {
    EXPECT_FALSE(e.contains(key)) << key;
  }
  EXPECT_EQ(e["rawQueryString"], "");
  EXPECT_EQ(e["isBase64Encoded"], false);
}

TEST(EventV2, DefaultsForEmptyRouteKeyStageAndUserAgent) {
  Req r;
  r.route_key = "";
  r.stage = "";
  r.headers = {{"Host", "api.example.com"}};
  Json e = r.build();
  EXPECT_EQ(e["routeKey"], "$default");
  EXPECT_EQ(e["requestContext"]["routeKey"], "$default");
  EXPECT_EQ(e["requestContext"]["stage"], "$default");
  EXPECT_EQ(e["requestContext"]["http"]["userAgent"], "");
}

TEST(EventV2, HeadersLowerCasedAndRepeatedOnesCommaJoined) {
  Req r;
  r.headers = {{"Host", "api.example.com"},
               {"X-Multi", "one"},
               {"Accept", "text/html"},
               {"x-multi", "two"},
               {"X-MULTI", "three, four"}};
  Json h = r.build()["headers"];
  EXPECT_EQ(h, (Json{{"host", "api.example.com"},
                     {"x-multi", "one,two,three, four"},
                     {"accept", "text/html"}}));
}

TEST(EventV2, CookiesSplitAndRemovedFromHeaders) {
  Req r;
  r.headers = {{"Host", "h"}, {"Cookie", "a=1; b=2"}, {"cookie", "c=3;d=4; ;"}};
  Json e = r.build();
  EXPECT_EQ(e["cookies"], (Json{"a=1", "b=2", "c=3", "d=4"}));
  EXPECT_FALSE(e["headers"].contains("cookie"));
  EXPECT_EQ(e["headers"], (Json{{"host", "h"}}));
}

TEST(EventV2, EmptyCookieHeaderGivesNoCookies) {
  Req r;
  r.headers = {{"Cookie", ""}};
  Json e = r.build();
  EXPECT_FALSE(e.contains("cookies"));
  EXPECT_EQ(e["headers"], Json::object());  // headers is always an object
}

TEST(EventV2, QueryRepeatedKeysCommaJoinedAndRawKept) {
  Req r;
  r.raw_query = "parameter1=value1&parameter1=value2&parameter2=value";
  Json e = r.build();
  EXPECT_EQ(e["rawQueryString"], "parameter1=value1&parameter1=value2&parameter2=value");
  EXPECT_EQ(e["queryStringParameters"],
            (Json{{"parameter1", "value1,value2"}, {"parameter2", "value"}}));
}

TEST(EventV2, QueryKeysWithoutValues) {
  Req r;
  r.raw_query = "a&b=&c=3&&=orphan";
  Json e = r.build();
  EXPECT_EQ(e["queryStringParameters"], (Json{{"a", ""}, {"b", ""}, {"c", "3"}}));
  EXPECT_EQ(e["rawQueryString"], "a&b=&c=3&&=orphan");
}

TEST(EventV2, QueryPercentDecodedButRawQueryStringAsReceived) {
  Req r;
  r.raw_query = "q=a%20b+c&%C3%A9t%C3%A9=%E2%9C%93&bad=%zz%4&x=%2B%26%3D";
  Json e = r.build();
  EXPECT_EQ(e["rawQueryString"], "q=a%20b+c&%C3%A9t%C3%A9=%E2%9C%93&bad=%zz%4&x=%2B%26%3D");
  Json q = e["queryStringParameters"];
  EXPECT_EQ(q["q"], "a b c");
  EXPECT_EQ(q["\xC3\xA9t\xC3\xA9"], "\xE2\x9C\x93");
  EXPECT_EQ(q["bad"], "%zz%4");  // malformed escapes are kept, not fatal
  EXPECT_EQ(q["x"], "+&=");
}

TEST(EventV2, QueryOnlySeparatorsGivesNoParameters) {
  Req r;
  r.raw_query = "&&&";
  Json e = r.build();
  EXPECT_FALSE(e.contains("queryStringParameters"));
  EXPECT_EQ(e["rawQueryString"], "&&&");
}

TEST(EventV2, PathParametersAndStageVariables) {
  Req r;
  r.path_parameters = {{"name", "a b"}, {"proxy", "x/y/z"}};
  r.stage_variables = {{"env", "prod"}, {"lambdaAlias", "live"}};
  Json e = r.build();
  EXPECT_EQ(e["pathParameters"], (Json{{"name", "a b"}, {"proxy", "x/y/z"}}));
  EXPECT_EQ(e["stageVariables"], (Json{{"env", "prod"}, {"lambdaAlias", "live"}}));
}

TEST(EventV2, RawPathKeepsPercentEncodingAndUnicode) {
  Req r;
  r.raw_path = "/hello/a%20b/%2F/caf\xC3\xA9";
  Json e = r.build();
  EXPECT_EQ(e["rawPath"], "/hello/a%20b/%2F/caf\xC3\xA9");
  EXPECT_EQ(e["requestContext"]["http"]["path"], "/hello/a%20b/%2F/caf\xC3\xA9");
}

TEST(EventV2, InvalidUtf8InPathAndQueryIsEscapedNotLost) {
  Req r;
  r.raw_path = "/x\xFF\xC3";
  r.raw_query = "k=\xFE";
  Json e = r.build();
  EXPECT_EQ(e["rawPath"], "/x%FF%C3");
  EXPECT_EQ(e["rawQueryString"], "k=%FE");
}

TEST(EventV2, InvalidUtf8InHeaderStillGivesValidJson) {
  Req r;
  r.headers = {{"X-Latin1", "caf\xE9"}};
  Json e = r.build();  // build() asserts the text is valid JSON (valid UTF-8)
  EXPECT_EQ(e["headers"]["x-latin1"], "caf\xEF\xBF\xBD");  // U+FFFD
}

TEST(EventV2, TextBodyAsIs) {
  Req r;
  r.method = "POST";
  r.headers = {{"Content-Type", "application/json"}};
  r.body = "{\"a\": \"\xE2\x9C\x93\"}";
  Json e = r.build();
  EXPECT_EQ(e["body"], "{\"a\": \"\xE2\x9C\x93\"}");
  EXPECT_EQ(e["isBase64Encoded"], false);
}

TEST(EventV2, BinaryMediaTypeBodyIsBase64) {
  Req r;
  r.method = "POST";
  r.headers = {{"Content-Type", "IMAGE/PNG; charset=binary"}};
  r.binary_media_types = {"image/*"};
  r.body = "\x89PNG\r\n\x1a\n";
  Json e = r.build();
  EXPECT_EQ(e["isBase64Encoded"], true);
  EXPECT_EQ(e["body"], "iVBORw0KGgo=");
}

TEST(EventV2, TextBodyOfBinaryTypeIsStillBase64) {
  Req r;
  r.headers = {{"Content-Type", "text/plain"}};
  r.binary_media_types = {"*/*"};
  r.body = "hello";
  Json e = r.build();
  EXPECT_EQ(e["isBase64Encoded"], true);
  EXPECT_EQ(e["body"], "aGVsbG8=");
}

TEST(EventV2, InvalidUtf8BodyIsBase64WhateverTheType) {
  Req r;
  r.headers = {{"Content-Type", "text/plain"}};
  r.body = std::string("ab\xFF\x00", 4);
  Json e = r.build();
  EXPECT_EQ(e["isBase64Encoded"], true);
  std::string decoded;
  ASSERT_TRUE(base64Decode(e["body"].get<std::string>(), decoded));
  EXPECT_EQ(decoded, std::string("ab\xFF\x00", 4));
}

TEST(EventV2, NulBytesInATextBodySurvive) {
  Req r;
  r.body = std::string("a\0b", 3);  // valid UTF-8, so it stays text
  Json e = r.build();
  EXPECT_EQ(e["isBase64Encoded"], false);
  EXPECT_EQ(e["body"], std::string("a\0b", 3));
}

TEST(EventV2, AuthorizerUnderLambdaKey) {
  Req r;
  r.principal = "user-42";
  r.authorizer = {{"scope", "read"}, {"tenant", "acme"}};
  Json a = r.build()["requestContext"]["authorizer"];
  EXPECT_EQ(
      a, (Json{{"lambda", {{"principalId", "user-42"}, {"scope", "read"}, {"tenant", "acme"}}}}));
}

TEST(EventV2, AuthorizerWithoutPrincipal) {
  Req r;
  r.authorizer = {{"sub", "abc"}};
  Json a = r.build()["requestContext"]["authorizer"];
  EXPECT_EQ(a, (Json{{"lambda", {{"sub", "abc"}}}}));
}

TEST(EventV2, DomainPrefix) {
  Req r;
  r.domain_name = "localhost:8080";
  EXPECT_EQ(r.build()["requestContext"]["domainPrefix"], "localhost");
  r.domain_name = "id.execute-api.us-east-1.amazonaws.com";
  EXPECT_EQ(r.build()["requestContext"]["domainPrefix"], "id");
  r.domain_name = "127.0.0.1:9000";
  EXPECT_EQ(r.build()["requestContext"]["domainPrefix"], "127.0.0.1");
  r.domain_name = "[::1]:9000";
  EXPECT_EQ(r.build()["requestContext"]["domainPrefix"], "[::1]");
  r.domain_name = "";
  EXPECT_EQ(r.build()["requestContext"]["domainPrefix"], "");
}

TEST(EventV2, TimeFormatting) {
  Req r;
  r.time_epoch_ms = 0;
  EXPECT_EQ(r.build()["requestContext"]["time"], "01/Jan/1970:00:00:00 +0000");
  r.time_epoch_ms = 951782400999;  // 2000-02-29 00:00:00.999 UTC
  EXPECT_EQ(r.build()["requestContext"]["time"], "29/Feb/2000:00:00:00 +0000");
  r.time_epoch_ms = 1703980799000;  // 2023-12-30 23:59:59 UTC
  EXPECT_EQ(r.build()["requestContext"]["time"], "30/Dec/2023:23:59:59 +0000");
}

TEST(EventV2, NoHeadersAtAll) {
  Req r;
  r.headers.clear();
  Json e = r.build();
  EXPECT_EQ(e["headers"], Json::object());
  EXPECT_EQ(e["requestContext"]["http"]["userAgent"], "");
}

TEST(EventV2, NullOptionalPointersAreSafe) {
  EventRequest r;  // every pointer null, every view empty
  const std::string text = buildEvent(r);
  ASSERT_TRUE(Json::accept(text));
  Json e = Json::parse(text);
  EXPECT_EQ(e["version"], "2.0");
  EXPECT_EQ(e["headers"], Json::object());
  EXPECT_FALSE(e.contains("stageVariables"));
}

TEST(EventV2, LargeBodyAndManyHeaders) {
  Req r;
  r.headers.clear();
  for (int i = 0; i < 100; ++i) r.headers.emplace_back("X-H" + std::to_string(i % 10), "v");
  r.body.assign(2 * 1024 * 1024, 'x');
  r.raw_query.clear();
  for (int i = 0; i < 2000; ++i) r.raw_query += "k" + std::to_string(i % 50) + "=v&";
  Json e = r.build();
  EXPECT_EQ(e["headers"].size(), 10u);
  EXPECT_EQ(e["headers"]["x-h3"], "v,v,v,v,v,v,v,v,v,v");
  EXPECT_EQ(e["body"].get_ref<const std::string&>().size(), 2u * 1024 * 1024);
  EXPECT_EQ(e["queryStringParameters"].size(), 50u);
}

// ---------------------------------------------------------------------------------------
// Payload format 1.0

TEST(EventV1, TopLevelShape) {
  Req r = v1();
  r.method = "POST";
  r.resource = "/{proxy+}";
  r.raw_path = "/hello/world";
  Json e = r.build();
  EXPECT_EQ(e["resource"], "/{proxy+}");
  EXPECT_EQ(e["path"], "/hello/world");
  EXPECT_EQ(e["httpMethod"], "POST");
  EXPECT_FALSE(e.contains("version"));  // REST API events have none
  for (const char* key : {"rawPath", "rawQueryString", "cookies", "routeKey"}) {
    EXPECT_FALSE(e.contains(key)) << key;
  }
}

TEST(EventV1, NullWhenEmpty) {
  Req r = v1();
  Json e = r.build();
  for (const char* key : {"queryStringParameters", "multiValueQueryStringParameters",
                          "pathParameters", "stageVariables", "body"}) {
    ASSERT_TRUE(e.contains(key)) << key;
    EXPECT_TRUE(e[key].is_null()) << key;
  }
  EXPECT_EQ(e["isBase64Encoded"], false);
  EXPECT_TRUE(e["requestContext"].contains("authorizer"));
  EXPECT_TRUE(e["requestContext"]["authorizer"].is_null());
}

TEST(EventV1, HeadersLastWinsAndMultiValueKeepsAll) {
  Req r = v1();
  r.headers = {{"Host", "api.example.com"},
               {"X-Multi", "one"},
               {"x-multi", "two"},
               {"Cookie", "a=1; b=2"},
               {"X-Multi", "three"}};
  Json e = r.build();
  // Names keep their first spelling; Cookie stays an ordinary header in 1.0.
  EXPECT_EQ(e["headers"],
            (Json{{"Host", "api.example.com"}, {"X-Multi", "three"}, {"Cookie", "a=1; b=2"}}));
  EXPECT_EQ(e["multiValueHeaders"], (Json{{"Host", {"api.example.com"}},
                                          {"X-Multi", {"one", "two", "three"}},
                                          {"Cookie", {"a=1; b=2"}}}));
}

TEST(EventV1, QueryLastValueAndMultiValueLists) {
  Req r = v1();
  r.raw_query = "name=me&multivalueName=you&multivalueName=me&flag&empty=";
  Json e = r.build();
  EXPECT_EQ(e["queryStringParameters"],
            (Json{{"name", "me"}, {"multivalueName", "me"}, {"flag", ""}, {"empty", ""}}));
  EXPECT_EQ(
      e["multiValueQueryStringParameters"],
      (Json{{"name", {"me"}}, {"multivalueName", {"you", "me"}}, {"flag", {""}}, {"empty", {""}}}));
}

TEST(EventV1, QueryValuesDecoded) {
  Req r = v1();
  r.raw_query = "sort=-+createdAt&u=%E2%82%AC%20x&raw=%25";
  Json q = r.build()["queryStringParameters"];
  EXPECT_EQ(q["sort"], "- createdAt");
  EXPECT_EQ(q["u"], "\xE2\x82\xAC x");
  EXPECT_EQ(q["raw"], "%");
}

TEST(EventV1, DecodedInvalidUtf8BecomesReplacementCharacter) {
  Req r = v1();
  r.raw_query = "k=%FF";
  Json q = r.build()["queryStringParameters"];
  EXPECT_EQ(q["k"], "\xEF\xBF\xBD");
}

TEST(EventV1, PathParametersAndStageVariables) {
  Req r = v1();
  r.path_parameters = {{"proxy", "hello/world"}};
  r.stage_variables = {{"stageVariableName", "stageVariableValue"}};
  Json e = r.build();
  EXPECT_EQ(e["pathParameters"], (Json{{"proxy", "hello/world"}}));
  EXPECT_EQ(e["stageVariables"], (Json{{"stageVariableName", "stageVariableValue"}}));
}

TEST(EventV1, RequestContext) {
  Req r = v1();
  r.method = "POST";
  r.stage = "testStage";
  r.resource = "/{proxy+}";
  Json ctx = r.build()["requestContext"];
  EXPECT_EQ(ctx["accountId"], "000000000000");
  EXPECT_EQ(ctx["apiId"], "sluice");
  EXPECT_EQ(ctx["domainName"], "api.example.com");
  EXPECT_EQ(ctx["domainPrefix"], "api");
  EXPECT_EQ(ctx["extendedRequestId"], "req-123");
  EXPECT_EQ(ctx["requestId"], "req-123");
  EXPECT_EQ(ctx["httpMethod"], "POST");
  EXPECT_EQ(ctx["path"], "/testStage/hello/world");
  EXPECT_EQ(ctx["protocol"], "HTTP/1.1");
  EXPECT_EQ(ctx["requestTime"], "12/Mar/2020:19:03:58 +0000");
  ASSERT_TRUE(ctx["requestTimeEpoch"].is_number_integer());
  EXPECT_EQ(ctx["requestTimeEpoch"].get<uint64_t>(), kSampleEpochMs);
  EXPECT_TRUE(ctx["resourceId"].is_null());
  EXPECT_EQ(ctx["resourcePath"], "/{proxy+}");
  EXPECT_EQ(ctx["stage"], "testStage");
}

TEST(EventV1, DefaultStageHasNoPathPrefix) {
  Req r = v1();
  r.stage = "$default";
  EXPECT_EQ(r.build()["requestContext"]["path"], "/hello/world");
  r.stage = "";
  Json ctx = r.build()["requestContext"];
  EXPECT_EQ(ctx["path"], "/hello/world");
  EXPECT_EQ(ctx["stage"], "$default");
}

TEST(EventV1, Identity) {
  Req r = v1();
  Json id = r.build()["requestContext"]["identity"];
  EXPECT_EQ(id["sourceIp"], "203.0.113.7");
  EXPECT_EQ(id["userAgent"], "curl/8.0");
  for (const char* key :
       {"apiKey", "apiKeyId", "accessKey", "accountId", "caller", "cognitoAuthenticationProvider",
        "cognitoAuthenticationType", "cognitoIdentityId", "cognitoIdentityPoolId", "principalOrgId",
        "user", "userArn"}) {
    ASSERT_TRUE(id.contains(key)) << key;
    EXPECT_TRUE(id[key].is_null()) << key;
  }

  r.api_key = "theApiKey";
  r.api_key_id = "theApiKeyId";
  r.headers = {{"Host", "h"}};
  id = r.build()["requestContext"]["identity"];
  EXPECT_EQ(id["apiKey"], "theApiKey");
  EXPECT_EQ(id["apiKeyId"], "theApiKeyId");
  EXPECT_TRUE(id["userAgent"].is_null());
}

TEST(EventV1, AuthorizerIsAFlatMap) {
  Req r = v1();
  r.principal = "admin";
  r.authorizer = {{"clientName", "Exata"}};
  EXPECT_EQ(r.build()["requestContext"]["authorizer"],
            (Json{{"principalId", "admin"}, {"clientName", "Exata"}}));

  r.authorizer.clear();
  EXPECT_EQ(r.build()["requestContext"]["authorizer"], (Json{{"principalId", "admin"}}));
}

TEST(EventV1, BodyTextBinaryAndEmpty) {
  Req r = v1();
  r.body = "{\r\n\t\"a\": 1\r\n}";
  Json e = r.build();
  EXPECT_EQ(e["body"], "{\r\n\t\"a\": 1\r\n}");
  EXPECT_EQ(e["isBase64Encoded"], false);

  r.headers = {{"Content-Type", "application/octet-stream"}};
  r.binary_media_types = {"application/octet-stream"};
  r.body = "\x01\x02\x03";
  e = r.build();
  EXPECT_EQ(e["body"], "AQID");
  EXPECT_EQ(e["isBase64Encoded"], true);

  r.body.clear();  // binary type but nothing to encode
  e = r.build();
  EXPECT_TRUE(e["body"].is_null());
  EXPECT_EQ(e["isBase64Encoded"], false);
}

TEST(EventV1, UnicodeEverywhere) {
  Req r = v1();
  r.raw_path = "/\xE6\x97\xA5\xE6\x9C\xAC/%F0%9F%98%80";
  r.headers = {{"X-Name", "J\xC3\xBCrgen"}};
  r.path_parameters = {{"name", "\xF0\x9F\x98\x80"}};
  r.body = "\xE2\x82\xAC";
  Json e = r.build();
  EXPECT_EQ(e["path"], "/\xE6\x97\xA5\xE6\x9C\xAC/%F0%9F%98%80");
  EXPECT_EQ(e["headers"]["X-Name"], "J\xC3\xBCrgen");
  EXPECT_EQ(e["pathParameters"]["name"], "\xF0\x9F\x98\x80");
  EXPECT_EQ(e["body"], "\xE2\x82\xAC");
  EXPECT_EQ(e["isBase64Encoded"], false);
}

// ---------------------------------------------------------------------------------------
// Helpers

TEST(BinaryMediaType, Matching) {
  const std::vector<std::string> types = {"image/*", "application/pdf", " Application/Zip ; q=1"};
  EXPECT_TRUE(isBinaryMediaType("image/png", types));
  EXPECT_TRUE(isBinaryMediaType("IMAGE/JPEG", types));
  EXPECT_TRUE(isBinaryMediaType("application/pdf; name=x.pdf", types));
  EXPECT_TRUE(isBinaryMediaType("application/zip", types));
  EXPECT_FALSE(isBinaryMediaType("application/pdfx", types));
  EXPECT_FALSE(isBinaryMediaType("imagex/png", types));
  EXPECT_FALSE(isBinaryMediaType("text/plain", types));
  EXPECT_FALSE(isBinaryMediaType("", types));
  EXPECT_FALSE(isBinaryMediaType("image", types));
  EXPECT_FALSE(isBinaryMediaType("image/png", {}));
  EXPECT_TRUE(isBinaryMediaType("text/plain", {"*/*"}));
  EXPECT_TRUE(isBinaryMediaType("", {"*/*"}));
  EXPECT_FALSE(isBinaryMediaType("text/plain", {""}));
}

TEST(Base64, RoundTripsEveryLength) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    const std::string encoded = base64Encode(data);
    EXPECT_EQ(encoded.size() % 4, 0u);
    std::string decoded;
    ASSERT_TRUE(base64Decode(encoded, decoded)) << i;
    EXPECT_EQ(decoded, data);
    data += static_cast<char>(i * 37);
  }
}

TEST(Base64, KnownVectors) {
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(base64Encode("f"), "Zg==");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Encode("foo"), "Zm9v");
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("\xFF\xFE"), "//4=");
}

TEST(Base64, DecodeAcceptsMissingPaddingRejectsGarbage) {
  std::string out;
  EXPECT_TRUE(base64Decode("Zm8", out));
  EXPECT_EQ(out, "fo");
  EXPECT_TRUE(base64Decode("Zg", out));
  EXPECT_EQ(out, "f");
  EXPECT_TRUE(base64Decode("", out));
  EXPECT_EQ(out, "");
  for (const char* bad : {"Z", "Zg=", "Zg===", "Z===", "====", "Zm9v!", "Zm 9v", "Zm9v\n", "Zm=v",
                          "Zg==Zg==", "-_8=", "Zm9vY"}) {
    EXPECT_FALSE(base64Decode(bad, out)) << bad;
  }
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("plain ascii"));
  EXPECT_TRUE(isValidUtf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF"));
  EXPECT_TRUE(isValidUtf8(std::string("\0", 1)));
  EXPECT_FALSE(isValidUtf8("\xC3"));              // truncated
  EXPECT_FALSE(isValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(isValidUtf8("\xE0\x80\xAF"));      // overlong
  EXPECT_FALSE(isValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(isValidUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(isValidUtf8("\xF8\x88\x80\x80\x80"));
  EXPECT_FALSE(isValidUtf8("\x80"));
  EXPECT_FALSE(isValidUtf8("ok\xFF"));
}

// ---------------------------------------------------------------------------------------
// Responses, format 2.0

TEST(MapV2, FullResponse) {
  MappedResponse m = mapResponse(PayloadFormat::kV2, R"({
    "statusCode": 201,
    "headers": {"Content-Type": "text/html", "X-Custom": "yes"},
    "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
    "body": "<p>hi</p>",
    "isBase64Encoded": false})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.status, 201);
  EXPECT_EQ(m.body, "<p>hi</p>");
  EXPECT_EQ(headerValue(m, "Content-Type"), "text/html");
  EXPECT_EQ(headerValue(m, "X-Custom"), "yes");
  EXPECT_EQ(headerValues(m, "Set-Cookie"),
            (std::vector<std::string>{"a=1; Path=/", "b=2; HttpOnly"}));
}

TEST(MapV2, ValuesOfOneNameKeepTheirOrder) {
  MappedResponse m =
      mapResponse(PayloadFormat::kV2,
                  R"({"statusCode":200,"cookies":["z=1","a=2","m=3"],"headers":{"B":"1"}})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(headerValues(m, "Set-Cookie"), (std::vector<std::string>{"z=1", "a=2", "m=3"}));
}

TEST(MapV2, StatusCodeWithoutContentTypeGetsTextPlain) {
  MappedResponse m = mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"body":"hi"})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(headerValue(m, "content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(m.body, "hi");
}

TEST(MapV2, ContentTypeAnyCaseIsRespected) {
  MappedResponse m =
      mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"headers":{"content-TYPE":"a/b"}})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(headerValue(m, "Content-Type"), "a/b");
}

TEST(MapV2, NullContentTypeSuppressesTheDefault) {
  MappedResponse m =
      mapResponse(PayloadFormat::kV2, R"({"statusCode":204,"headers":{"Content-Type":null}})");
  ASSERT_TRUE(m.ok);
  EXPECT_TRUE(headerValues(m, "Content-Type").empty());
  EXPECT_TRUE(m.headers.empty());
}

TEST(MapV2, MissingStatusCodeObjectBecomesJsonBody) {
  const std::string reply = R"({ "message": "Hello from Lambda!" })";
  MappedResponse m = mapResponse(PayloadFormat::kV2, reply);
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(headerValue(m, "Content-Type"), "application/json");
  EXPECT_EQ(m.body, reply);  // exactly as the function sent it
}

TEST(MapV2, StringReplyIsTheBodyText) {
  MappedResponse m = mapResponse(PayloadFormat::kV2, R"("Hello from Lambda!")");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, "Hello from Lambda!");
  EXPECT_EQ(headerValue(m, "Content-Type"), "application/json");
}

TEST(MapV2, OtherJsonValuesAreTheBody) {
  for (const char* reply :
       {"42", "true", "null", "[1, 2, 3]", "{}", "{\"body\":\"x\"}", "{\"StatusCode\":500}"}) {
    MappedResponse m = mapResponse(PayloadFormat::kV2, reply);
    ASSERT_TRUE(m.ok) << reply;
    EXPECT_EQ(m.status, 200) << reply;
    EXPECT_EQ(m.body, reply);
    EXPECT_EQ(headerValue(m, "Content-Type"), "application/json");
  }
}

TEST(MapV2, NonJsonReplyIsMalformed) {
  for (const char* reply : {"", "Hello", "{\"statusCode\": 200", "{'statusCode': 200}", "\xFF"}) {
    MappedResponse m = mapResponse(PayloadFormat::kV2, reply);
    EXPECT_FALSE(m.ok) << reply;
    EXPECT_FALSE(m.error.empty());
  }
}

TEST(MapV2, Base64Body) {
  MappedResponse m = mapResponse(
      PayloadFormat::kV2,
      R"({"statusCode":200,"isBase64Encoded":true,"headers":{"Content-Type":"image/png"},)"
      R"("body":"iVBORw0KGgo="})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.body, "\x89PNG\r\n\x1a\n");
}

TEST(MapV2, BadBase64IsMalformed) {
  MappedResponse m =
      mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"isBase64Encoded":true,"body":"%%%"})");
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.error.find("base64"), std::string::npos);
}

TEST(MapV2, MultiValueHeadersAreIgnored) {
  MappedResponse m = mapResponse(
      PayloadFormat::kV2, R"({"statusCode":200,"multiValueHeaders":{"X-A":["1","2"]},"x":1})");
  ASSERT_TRUE(m.ok);
  EXPECT_TRUE(headerValues(m, "X-A").empty());
}

TEST(MapV2, CookiesMustBeStrings) {
  EXPECT_FALSE(mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"cookies":"a=1"})").ok);
  EXPECT_FALSE(mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"cookies":[1]})").ok);
  EXPECT_FALSE(
      mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"cookies":["a=1\r\nX: y"]})").ok);
  EXPECT_TRUE(mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"cookies":null})").ok);
}

TEST(MapV2, EmptyAndNullBody) {
  MappedResponse m = mapResponse(PayloadFormat::kV2, R"({"statusCode":204})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.status, 204);
  EXPECT_EQ(m.body, "");
  m = mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"body":null})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "");
}

TEST(MapV2, NullStatusCodeIsMalformed) {
  EXPECT_FALSE(mapResponse(PayloadFormat::kV2, R"({"statusCode":null})").ok);
}

// ---------------------------------------------------------------------------------------
// Responses, format 1.0

TEST(MapV1, FullResponse) {
  MappedResponse m = mapResponse(PayloadFormat::kV1, R"({
    "isBase64Encoded": false,
    "statusCode": 404,
    "headers": {"X-Single": "s"},
    "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
    "body": "{\"message\":\"nope\"}"})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.status, 404);
  EXPECT_EQ(m.body, "{\"message\":\"nope\"}");
  EXPECT_EQ(headerValue(m, "X-Single"), "s");
  EXPECT_EQ(headerValues(m, "Set-Cookie"), (std::vector<std::string>{"a=1", "b=2"}));
}

TEST(MapV1, DefaultContentTypeIsJson) {
  MappedResponse m = mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"body":"x"})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(headerValue(m, "Content-Type"), "application/json");
  m = mapResponse(PayloadFormat::kV1,
                  R"({"statusCode":200,"multiValueHeaders":{"content-type":["text/csv"]}})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(headerValue(m, "Content-Type"), "text/csv");
}

TEST(MapV1, MultiValueHeadersWinOverHeadersOfTheSameName) {
  MappedResponse m = mapResponse(PayloadFormat::kV1, R"({
    "statusCode": 200,
    "headers": {"X-Both": "single", "x-other": "o", "Content-Type": "text/plain"},
    "multiValueHeaders": {"x-both": ["m1", "m2"]}})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(headerValues(m, "X-Both"), (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(headerValue(m, "X-Other"), "o");
  EXPECT_EQ(headerValue(m, "Content-Type"), "text/plain");
}

TEST(MapV1, ScalarHeaderValuesAreCoerced) {
  MappedResponse m = mapResponse(PayloadFormat::kV1, R"({
    "statusCode": 200,
    "headers": {"X-Int": 5, "X-Bool": true, "X-Float": 1.5, "X-Null": null},
    "multiValueHeaders": {"X-List": [1, false, null, "s"]}})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(headerValue(m, "X-Int"), "5");
  EXPECT_EQ(headerValue(m, "X-Bool"), "true");
  EXPECT_EQ(headerValue(m, "X-Float"), "1.5");
  EXPECT_TRUE(headerValues(m, "X-Null").empty());
  EXPECT_EQ(headerValues(m, "X-List"), (std::vector<std::string>{"1", "false", "s"}));
}

TEST(MapV1, StructuredHeaderValuesAreMalformed) {
  for (const char* reply :
       {R"({"statusCode":200,"headers":{"X":{"a":1}}})",
        R"({"statusCode":200,"headers":{"X":[1]}})", R"({"statusCode":200,"headers":"X: 1"})",
        R"({"statusCode":200,"headers":[]})", R"({"statusCode":200,"multiValueHeaders":{"X":"1"}})",
        R"({"statusCode":200,"multiValueHeaders":{"X":[{"a":1}]}})",
        R"({"statusCode":200,"multiValueHeaders":["X"]})"}) {
    EXPECT_FALSE(mapResponse(PayloadFormat::kV1, reply).ok) << reply;
  }
}

TEST(MapV1, MissingStatusCodeIsMalformed) {
  MappedResponse m = mapResponse(PayloadFormat::kV1, R"({"body":"hi"})");
  EXPECT_FALSE(m.ok);
  EXPECT_NE(m.error.find("statusCode"), std::string::npos);
}

TEST(MapV1, NonObjectRepliesAreMalformed) {
  for (const char* reply : {"\"Hello\"", "42", "null", "[]", "true", "", "not json", "{"}) {
    MappedResponse m = mapResponse(PayloadFormat::kV1, reply);
    EXPECT_FALSE(m.ok) << reply;
    EXPECT_FALSE(m.error.empty()) << reply;
  }
}

TEST(MapV1, UnknownFieldsAreMalformed) {
  EXPECT_FALSE(mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"cookies":["a=1"]})").ok);
  EXPECT_FALSE(mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"message":"x"})").ok);
}

TEST(MapV1, BodyMustBeAString) {
  EXPECT_FALSE(mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"body":{"a":1}})").ok);
  EXPECT_FALSE(mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"body":5})").ok);
  EXPECT_FALSE(mapResponse(PayloadFormat::kV2, R"({"statusCode":200,"body":["x"]})").ok);
}

TEST(MapV1, Base64BodyAndLegacyFlagName) {
  MappedResponse m =
      mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"isBase64Encoded":true,"body":"AQID"})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "\x01\x02\x03");
  m = mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"base64Encoded":true,"body":"AQID"})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.body, "\x01\x02\x03");
  m = mapResponse(PayloadFormat::kV1,
                  R"({"statusCode":200,"isBase64Encoded":"true","body":"Zm9v"})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "foo");
  EXPECT_FALSE(
      mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"isBase64Encoded":1,"body":"x"})").ok);
  EXPECT_FALSE(
      mapResponse(PayloadFormat::kV1, R"({"statusCode":200,"isBase64Encoded":true,"body":"A"})")
          .ok);
}

TEST(MapV1, NotBase64MeansTheBodyIsLeftAlone) {
  MappedResponse m = mapResponse(PayloadFormat::kV1,
                                 R"({"statusCode":200,"isBase64Encoded":false,"body":"AQID"})");
  ASSERT_TRUE(m.ok);
  EXPECT_EQ(m.body, "AQID");
}

// ---------------------------------------------------------------------------------------
// Status codes and header safety, both formats

class BothFormats : public testing::TestWithParam<PayloadFormat> {};

TEST_P(BothFormats, StatusCodeForms) {
  struct Case {
    const char* json;
    bool ok;
    uint16_t status;
  };
  const Case cases[] = {
      {"200", true, 200},     {"\"302\"", true, 302},
      {"599", true, 599},     {"418.0", true, 418},
      {"99", false, 0},       {"100", false, 0},
      {"101", false, 0},      {"199", false, 0},
      {"600", false, 0},      {"0", false, 0},
      {"-200", false, 0},     {"200.5", false, 0},
      {"\"abc\"", false, 0},  {"\"\"", false, 0},
      {"\" 200\"", false, 0}, {"\"2000000\"", false, 0},
      {"true", false, 0},     {"[200]", false, 0},
      {"{}", false, 0},       {"18446744073709551615", false, 0},
      {"1e300", false, 0},    {"-9223372036854775808", false, 0},
  };
  for (const Case& c : cases) {
    const std::string reply = std::string(R"({"statusCode":)") + c.json + "}";
    MappedResponse m = mapResponse(GetParam(), reply);
    EXPECT_EQ(m.ok, c.ok) << reply << " " << m.error;
    if (c.ok) {
      EXPECT_EQ(m.status, c.status) << reply;
    } else {
      EXPECT_FALSE(m.error.empty()) << reply;
    }
  }
}

TEST_P(BothFormats, HeaderInjectionIsMalformed) {
  for (const char* reply : {
           R"({"statusCode":200,"headers":{"X-A":"ok\r\nSet-Cookie: evil=1"}})",
           R"({"statusCode":200,"headers":{"X-A":"ok\nX-B: 1"}})",
           R"({"statusCode":200,"headers":{"X-A":"ok\r"}})",
           R"({"statusCode":200,"headers":{"X-A":"nul\u0000"}})",
           R"({"statusCode":200,"headers":{"X-A":"del\u007f"}})",
           R"({"statusCode":200,"headers":{"X-A\r\nX-B":"1"}})",
           R"({"statusCode":200,"headers":{"X A":"1"}})",
           R"({"statusCode":200,"headers":{"X:A":"1"}})",
           R"({"statusCode":200,"headers":{"":"1"}})",
           R"({"statusCode":200,"headers":{"X-\u00e9":"1"}})",
       }) {
    MappedResponse m = mapResponse(GetParam(), reply);
    EXPECT_FALSE(m.ok) << reply;
    EXPECT_FALSE(m.error.empty()) << reply;
  }
}

TEST_P(BothFormats, TabsAndUnicodeInHeaderValuesAreFine) {
  MappedResponse m =
      mapResponse(GetParam(), R"({"statusCode":200,"headers":{"X-A":"a\tb caf\u00e9"}})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(headerValue(m, "X-A"), "a\tb caf\xC3\xA9");
}

TEST_P(BothFormats, FramingHeadersAreRemapped) {
  MappedResponse m = mapResponse(GetParam(), R"({"statusCode":200,"body":"hello","headers":{
      "Content-Length":"999","Transfer-Encoding":"chunked","Connection":"close",
      "Upgrade":"websocket","X-Ok":"1"}})");
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_TRUE(headerValues(m, "Content-Length").empty());
  EXPECT_TRUE(headerValues(m, "Transfer-Encoding").empty());
  EXPECT_TRUE(headerValues(m, "Connection").empty());
  EXPECT_TRUE(headerValues(m, "Upgrade").empty());
  EXPECT_EQ(headerValue(m, "x-amzn-Remapped-Content-Length"), "999");
  EXPECT_EQ(headerValue(m, "x-amzn-Remapped-Transfer-Encoding"), "chunked");
  EXPECT_EQ(headerValue(m, "X-Ok"), "1");
  EXPECT_EQ(m.body, "hello");
}

TEST_P(BothFormats, MalformedRepliesNeverThrow) {
  const std::string deep_array = std::string(100000, '[') + std::string(100000, ']');
  const std::string deep_object = [] {
    std::string s;
    for (int i = 0; i < 50000; ++i) s += "{\"a\":";
    s += "1";
    s += std::string(50000, '}');
    return s;
  }();
  const std::string huge_body =
      R"({"statusCode":200,"body":")" + std::string(8 * 1024 * 1024, 'x') + "\"}";
  const std::string many_headers = [] {
    std::string s = R"({"statusCode":200,"headers":{)";
    for (int i = 0; i < 5000; ++i) s += (i ? "," : "") + ("\"X-" + std::to_string(i) + "\":\"v\"");
    return s + "}}";
  }();
  // Wide objects must parse in n log n, not n^2 (this one would take seconds).
  const std::string wide_object = [] {
    std::string s = R"({"statusCode":200,"x":{)";
    for (int i = 0; i < 100000; ++i) s += (i ? "," : "") + ("\"k" + std::to_string(i) + "\":1");
    return s + "}}";
  }();
  const std::string inputs[] = {
      deep_array,
      wide_object,
      deep_object,
      huge_body,
      many_headers,
      std::string("\0\0\0", 3),
      "1e99999",
      R"({"statusCode":200,"body":"\ud800"})",  // lone surrogate escape
      "\xEF\xBB\xBF{\"statusCode\":200}",       // UTF-8 BOM
      R"({"statusCode":200,"statusCode":201})",
      "[{\"statusCode\":200}]",
      R"({"statusCode":200,"headers":null,"multiValueHeaders":null,"body":null})",
  };
  for (const std::string& input : inputs) {
    MappedResponse m;
    EXPECT_NO_THROW(m = mapResponse(GetParam(), input)) << input.substr(0, 40);
    if (!m.ok) {
      EXPECT_FALSE(m.error.empty());
    }
  }
  MappedResponse big = mapResponse(GetParam(), huge_body);
  ASSERT_TRUE(big.ok);
  EXPECT_EQ(big.body.size(), 8u * 1024 * 1024);
  MappedResponse many = mapResponse(GetParam(), many_headers);
  ASSERT_TRUE(many.ok);
  EXPECT_EQ(many.headers.size(), 5001u);  // plus the default Content-Type
  MappedResponse dup = mapResponse(GetParam(), R"({"statusCode":200,"statusCode":201})");
  ASSERT_TRUE(dup.ok);
  EXPECT_EQ(dup.status, 201);  // the last duplicate key wins, as in most JSON readers
}

INSTANTIATE_TEST_SUITE_P(Formats, BothFormats,
                         testing::Values(PayloadFormat::kV1, PayloadFormat::kV2),
                         [](const testing::TestParamInfo<PayloadFormat>& info) {
                           return info.param == PayloadFormat::kV1 ? "V1" : "V2";
                         });

// ---------------------------------------------------------------------------------------
// Round trip: what a function echoes back is what the client receives.

TEST(RoundTrip, BinaryBodyThroughBothDirections) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
  Req r;
  r.headers = {{"Content-Type", "application/octet-stream"}};
  r.body = binary;
  Json e = r.build();
  ASSERT_EQ(e["isBase64Encoded"], true);
  Json reply = {{"statusCode", 200},
                {"isBase64Encoded", true},
                {"headers", {{"Content-Type", "application/octet-stream"}}},
                {"body", e["body"]}};
  MappedResponse m = mapResponse(PayloadFormat::kV2, reply.dump());
  ASSERT_TRUE(m.ok) << m.error;
  EXPECT_EQ(m.body, binary);
}

}  // namespace
}  // namespace sluice::function
