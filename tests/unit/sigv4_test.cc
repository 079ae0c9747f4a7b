// SigV4 against the values AWS publishes: the signing-key derivation example, the
// Signature Version 4 test suite (get-vanilla and friends, all at 20150830T123600Z with
// AKIDEXAMPLE) and the IAM ListUsers example; then what the Lambda invoker relies on
// (double-encoded ARN paths, the session token, the per-day key cache).
#include "gateway/function/sigv4.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::function::sigv4 {
namespace {

constexpr const char* kAccessKey = "AKIDEXAMPLE";
constexpr const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr std::time_t kSuiteTime = 1440938160;  // 2015-08-30T12:36:00Z
constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 0xf]);
  }
  return s;
}

std::string signatureOf(const std::string& authorization) {
  size_t at = authorization.rfind("Signature=");
  return at == std::string::npos ? "" : authorization.substr(at + 10);
}

TEST(SigV4, DerivesTheDocumentedSigningKey) {
  uint8_t key[32];
  deriveSigningKey(kSecret, "20120215", "us-east-1", "iam", key);
  EXPECT_EQ(hex(key, 32), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4, FormatsAmzDate) {
  char date[kAmzDateLength + 1];
  formatAmzDate(kSuiteTime, date);
  EXPECT_STREQ(date, "20150830T123600Z");
  formatAmzDate(0, date);
  EXPECT_STREQ(date, "19700101T000000Z");
  formatAmzDate(4102444799, date);  // the last second of 2099
  EXPECT_STREQ(date, "20991231T235959Z");
}

TEST(SigV4, HashesThePayload) {
  char out[kSha256HexLength + 1];
  sha256Hex("", out);
  EXPECT_STREQ(out, kEmptySha256);
  sha256Hex("Param1=value1", out);
  EXPECT_STREQ(out, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
}

// The test suite's get-vanilla: GET / on example.amazonaws.com, service "service".
TEST(SigV4, GetVanilla) {
  Signer signer("us-east-1", "service", {kAccessKey, kSecret, ""});
  Request req;
  req.method = "GET";
  req.path = "/";
  req.host = "example.amazonaws.com";
  EXPECT_EQ(signer.canonicalRequest(req, "20150830T123600Z", kEmptySha256),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" +
                std::string(kEmptySha256));
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_STREQ(sig.amz_date, "20150830T123600Z");
  EXPECT_STREQ(sig.payload_sha256, kEmptySha256);
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

// get-vanilla-query-order-key-case, with the query already in canonical order.
TEST(SigV4, GetVanillaQuery) {
  Signer signer("us-east-1", "service", {kAccessKey, kSecret, ""});
  Request req;
  req.method = "GET";
  req.path = "/";
  req.query = "Param1=value1&Param2=value2";
  req.host = "example.amazonaws.com";
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_EQ(signatureOf(sig.authorization),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

// post-x-www-form-urlencoded: a POST with a body and an extra signed header.
TEST(SigV4, PostWithBody) {
  Signer signer("us-east-1", "service", {kAccessKey, kSecret, ""});
  Header headers[] = {{"Content-Type", "application/x-www-form-urlencoded"}};
  Request req;
  req.method = "POST";
  req.path = "/";
  req.host = "example.amazonaws.com";
  req.headers = headers;
  req.header_count = 1;
  req.payload = "Param1=value1";
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_STREQ(sig.payload_sha256,
               "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

// The IAM ListUsers example of the SigV4 documentation (canonical request hash
// f536975d..., signature 5d672d79...).
TEST(SigV4, IamListUsersExample) {
  Signer signer("us-east-1", "iam", {kAccessKey, kSecret, ""});
  Header headers[] = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"}};
  Request req;
  req.method = "GET";
  req.path = "/";
  req.query = "Action=ListUsers&Version=2010-05-08";
  req.host = "iam.amazonaws.com";
  req.headers = headers;
  req.header_count = 1;
  char canonical_hash[kSha256HexLength + 1];
  sha256Hex(signer.canonicalRequest(req, "20150830T123600Z", kEmptySha256), canonical_hash);
  EXPECT_STREQ(canonical_hash, "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date, "
            "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
}

// get-vanilla-with-session-token: x-amz-security-token is signed.
TEST(SigV4, SessionToken) {
  Signer signer(
      "us-east-1", "service",
      {kAccessKey, kSecret, "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"});
  Request req;
  req.method = "GET";
  req.path = "/";
  req.host = "example.amazonaws.com";
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date;x-amz-security-token, "
            "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8");
}

TEST(SigV4, CanonicalHeaderValuesAreTrimmedAndSorted) {
  Signer signer("us-east-1", "service", {kAccessKey, kSecret, ""});
  Header headers[] = {{"My-Header2", "\t\"a   b \t c\"  "}, {"my-header1", "  value1"}};
  Request req;
  req.method = "GET";
  req.path = "/";
  req.host = "example.amazonaws.com";
  req.headers = headers;
  req.header_count = 2;
  EXPECT_EQ(signer.canonicalRequest(req, "20150830T123600Z", kEmptySha256),
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
            "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" +
                std::string(kEmptySha256));
  // The suite's get-header-value-trim signs exactly this canonical request.
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_EQ(signatureOf(sig.authorization),
            "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736");
}

TEST(SigV4, UriEncode) {
  std::string out;
  uriEncode("arn:aws:lambda:us-east-1:123456789012:function:my-fn", false, out);
  EXPECT_EQ(out, "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn");
  out.clear();
  uriEncode("a b/c~d._-*+%\xE1\x88\xB4", false, out);
  EXPECT_EQ(out, "a%20b%2Fc~d._-%2A%2B%25%E1%88%B4");
  out.clear();
  uriEncode("/a b/c", true, out);
  EXPECT_EQ(out, "/a%20b/c");
}

// Every service but S3 signs the wire path encoded once more: an ARN's ':' travels as
// %3A and is signed as %253A (what botocore does, and what Lambda checks).
TEST(SigV4, DoubleEncodesThePathExceptForS3) {
  Request req;
  req.method = "POST";
  req.path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/invocations";
  req.query = "Qualifier=prod";
  req.host = "lambda.us-east-1.amazonaws.com";
  req.payload = "{}";
  Signer lambda("us-east-1", "lambda", {kAccessKey, kSecret, ""});
  std::string canonical = lambda.canonicalRequest(req, "20150830T123600Z", kEmptySha256);
  EXPECT_EQ(canonical.substr(0, canonical.find("\nhost:")),
            "POST\n/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-east-1%253A1%253A"
            "function%253Af/invocations\nQualifier=prod");
  Signer s3("us-east-1", "s3", {kAccessKey, kSecret, ""}, /*double_encode_path=*/false);
  canonical = s3.canonicalRequest(req, "20150830T123600Z", kEmptySha256);
  EXPECT_EQ(canonical.substr(0, canonical.find("\nQualifier")), "POST\n" + std::string(req.path));
}

// An invoke as the Lambda invoker makes it. The expected value comes from an
// independent implementation (tests/support/lambda_stub.py's verifier, which follows
// botocore's canonicalisation), not from this code.
TEST(SigV4, LambdaInvokeMatchesTheIndependentVerifier) {
  Signer signer("eu-west-1", "lambda", {"AKIDLAMBDA", "lambda-secret", "session/token+1"});
  Header headers[] = {{"Content-Type", "application/json"},
                      {"X-Amz-Invocation-Type", "RequestResponse"}};
  Request req;
  req.method = "POST";
  req.path =
      "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3A"
      "hello/invocations";
  req.query = "Qualifier=live";
  req.host = "127.0.0.1:9001";
  req.headers = headers;
  req.header_count = 2;
  req.payload = "{\"rawPath\":\"/hello\"}";
  Signature sig;
  signer.sign(req, 1700000000, sig);  // 2023-11-14T22:13:20Z
  EXPECT_STREQ(sig.amz_date, "20231114T221320Z");
  EXPECT_EQ(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDLAMBDA/20231114/eu-west-1/lambda/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;"
            "x-amz-security-token, "
            "Signature=51e0654944a67936330e721d9958664c9a59f246b2395bd9be42cde96dbcdfda");
}

// The signing key is cached per day: signing across midnight must use the new day's
// key, exactly as a fresh signer would.
TEST(SigV4, KeyCacheFollowsTheDay) {
  Signer reused("us-east-1", "service", {kAccessKey, kSecret, ""});
  Request req;
  req.method = "GET";
  req.path = "/";
  req.host = "example.amazonaws.com";
  Signature a;
  reused.sign(req, kSuiteTime, a);
  EXPECT_EQ(signatureOf(a.authorization),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  for (std::time_t t : {kSuiteTime + 86400, kSuiteTime + 3600, kSuiteTime}) {
    Signature x;
    Signature y;
    reused.sign(req, t, x);
    Signer fresh("us-east-1", "service", {kAccessKey, kSecret, ""});
    fresh.sign(req, t, y);
    EXPECT_EQ(x.authorization, y.authorization);
  }
  Signature next_day;
  reused.sign(req, kSuiteTime + 86400, next_day);
  EXPECT_NE(next_day.authorization.find("Credential=AKIDEXAMPLE/20150831/"), std::string::npos);
  EXPECT_NE(signatureOf(next_day.authorization), signatureOf(a.authorization));
}

TEST(SigV4, ContentSha256Header) {
  Signer signer("us-east-1", "s3", {kAccessKey, kSecret, ""}, false);
  Request req;
  req.method = "PUT";
  req.path = "/key";
  req.host = "bucket.s3.amazonaws.com";
  req.payload = "Param1=value1";
  req.content_sha256_header = true;
  Signature sig;
  signer.sign(req, kSuiteTime, sig);
  EXPECT_NE(sig.authorization.find("SignedHeaders=host;x-amz-content-sha256;x-amz-date,"),
            std::string::npos);
  std::string canonical = signer.canonicalRequest(req, sig.amz_date, sig.payload_sha256);
  EXPECT_NE(canonical.find("\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329"
                           "106275f4c7b24d0b6e\n"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice::function::sigv4
