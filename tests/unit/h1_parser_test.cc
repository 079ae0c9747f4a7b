#include "gateway/http/h1_parser.h"

#include <gtest/gtest.h>

#include <cctype>
#include <memory>
#include <string>
#include <vector>

namespace sluice::http {
namespace {

using std::string_literals::operator""s;

constexpr uint16_t kOk = 200;

// The status a server would answer: the scanner's verdict first, then the parser's on the
// delimited head; kOk when both accept, 0 when the scanner still wants bytes.
uint16_t requestStatus(const std::string& raw, RequestHead& h) {
  HeadScanner scanner(true);
  ParseResult r = scanner.scan(raw.data(), raw.size());
  if (r.state == ParseState::kError) return r.error_status;
  if (r.state == ParseState::kIncomplete) return 0;
  r = parseRequestHead(raw.data(), r.head_length, h);
  if (r.state == ParseState::kError) return r.error_status;
  return r.state == ParseState::kComplete ? kOk : 0;
}

// The parser alone must reach the same verdict: it may be handed bytes no scanner saw.
uint16_t parserOnlyStatus(const std::string& raw, RequestHead& h) {
  ParseResult r = parseRequestHead(raw.data(), raw.size(), h);
  if (r.state == ParseState::kError) return r.error_status;
  return r.state == ParseState::kComplete ? kOk : 0;
}

std::string get(std::string_view fields) {
  return "GET / HTTP/1.1\r\nHost: a\r\n"s + std::string(fields) + "\r\n";
}

std::string withHeaders(size_t n) {  // n header fields in total, Host included
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (size_t i = 1; i < n; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
  return s + "\r\n";
}

std::string withLineLength(size_t line) {  // a request line of exactly `line` bytes
  return "GET /" + std::string(line - 14, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
}

std::string withHeadLength(size_t total) {  // a complete head of exactly `total` bytes
  std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  return start + std::string(total - start.size() - 4, 'p') + "\r\n\r\n";
}

struct BadRequest {
  const char* name;
  std::string raw;
  uint16_t status;
};

std::vector<BadRequest> badRequests() {
  return {
      {"double SP after target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"double SP after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"HTAB separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"leading SP", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"trailing SP", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
      {"method not a token", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"empty method", "/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"no version", "GET /\r\nHost: a\r\n\r\n", 400},
      {"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
      {"garbage version", "GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
      {"empty target", "GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"SP in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"HTAB in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"obs-text in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"NUL in target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"s, 400},
      {"asterisk outside OPTIONS", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501},
      {"authority-form outside CONNECT", "GET a:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"ftp scheme", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"userinfo", "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"empty authority", "GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"Host differs from target", "GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400},
      {"bare LF ends request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
      {"bare LF ends field", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400},
      {"bare LF ends head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400},
      {"bare CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
      {"bare CR in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"NUL in value", get("X: a\0b\r\n"s), 400},
      {"NUL in name", get("X\0: b\r\n"s), 400},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"duplicate Host", get("Host: a\r\n"), 400},
      {"Host with SP", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"Host with comma", "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
      {"Host bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400},
      {"Host unclosed IPv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      {"Host bad percent", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400},
      {"SP before colon", get("X-A : b\r\n"), 400},
      {"SP inside name", get("X A: b\r\n"), 400},
      {"empty name", get(": b\r\n"), 400},
      {"no colon", get("NoColon\r\n"), 400},
      {"non-ASCII name", get("X-\xc3\xa9: b\r\n"), 400},
      {"obs-fold SP", get("X-A: b\r\n c\r\n"), 400},
      {"obs-fold HTAB", get("X-A: b\r\n\tc\r\n"), 400},
      {"CTL in value", get("X-A: a\x01z\r\n"), 400},
      {"DEL in value", get("X-A: a\x7fz\r\n"), 400},
      {"CL not a number", get("Content-Length: abc\r\n"), 400},
      {"CL negative", get("Content-Length: -1\r\n"), 400},
      {"CL plus sign", get("Content-Length: +1\r\n"), 400},
      {"CL empty", get("Content-Length:\r\n"), 400},
      {"CL hex", get("Content-Length: 0x10\r\n"), 400},
      {"CL two numbers", get("Content-Length: 1 2\r\n"), 400},
      {"CL 2^63", get("Content-Length: 9223372036854775808\r\n"), 400},
      {"CL 20 digits", get("Content-Length: 99999999999999999999\r\n"), 400},
      {"CL differing fields", get("Content-Length: 5\r\nContent-Length: 6\r\n"), 400},
      {"CL differing list", get("Content-Length: 5, 6\r\n"), 400},
      {"CL trailing comma", get("Content-Length: 5,\r\n"), 400},
      {"CL with TE", get("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400},
      {"TE gzip only", get("Transfer-Encoding: gzip\r\n"), 400},
      {"TE identity", get("Transfer-Encoding: identity\r\n"), 400},
      {"TE chunked not last", get("Transfer-Encoding: chunked, gzip\r\n"), 400},
      {"TE chunked twice", get("Transfer-Encoding: chunked, chunked\r\n"), 400},
      {"TE chunked in two fields",
       get("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400},
      {"TE empty", get("Transfer-Encoding:\r\n"), 400},
      {"TE trailing comma", get("Transfer-Encoding: chunked,\r\n"), 400},
      {"TE chunked with parameter", get("Transfer-Encoding: chunked;q=1\r\n"), 400},
      {"TE gzip then chunked", get("Transfer-Encoding: gzip, chunked\r\n"), 501},
      {"TE on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"Connection not a token", get("Connection: close, @x\r\n"), 400},
      {"Expect unknown", get("Expect: something\r\n"), 417},
      {"Expect list", get("Expect: 100-continue, x\r\n"), 417},
      {"101 header fields", withHeaders(101), 431},
      {"request line 8193 bytes", withLineLength(kMaxRequestLine + 1), 414},
      {"head 64 KiB + 1", withHeadLength(kMaxHeadBytes + 1), 431},
      {"three leading CRLF", "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"leading bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
  };
}

class MalformedRequest : public ::testing::TestWithParam<BadRequest> {};

TEST_P(MalformedRequest, IsRefusedWithTheRightStatus) {
  auto h = std::make_unique<RequestHead>();
  EXPECT_EQ(requestStatus(GetParam().raw, *h), GetParam().status);
  EXPECT_EQ(parserOnlyStatus(GetParam().raw, *h), GetParam().status) << "parser alone";
}

INSTANTIATE_TEST_SUITE_P(Table, MalformedRequest, ::testing::ValuesIn(badRequests()),
                         [](const ::testing::TestParamInfo<BadRequest>& info) {
                           std::string name = info.param.name;
                           for (char& c : name) {
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(MalformedRequestTable, HasAtLeastFortyCases) { EXPECT_GE(badRequests().size(), 40u); }

class RequestParseTest : public ::testing::Test {
 protected:
  ParseResult parse(const std::string& raw) {
    raw_ = raw;
    return parseRequestHead(raw_.data(), raw_.size(), *h_);
  }
  const RequestHead& head() const { return *h_; }

  std::string raw_;
  std::unique_ptr<RequestHead> h_ = std::make_unique<RequestHead>();
};

TEST_F(RequestParseTest, SimpleGet) {
  ParseResult r = parse(
      "GET /users/7?x=1&y HTTP/1.1\r\nHost: api.example.com\r\n"
      "Accept:   */*  \r\nX-Empty:\r\n\r\n");
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_EQ(r.head_length, raw_.size());
  EXPECT_EQ(head().method, "GET");
  EXPECT_EQ(head().target, "/users/7?x=1&y");
  EXPECT_EQ(head().path, "/users/7");
  EXPECT_TRUE(head().has_query);
  EXPECT_EQ(head().query, "x=1&y");
  EXPECT_EQ(head().version_minor, 1);
  ASSERT_EQ(head().header_count, 3);
  EXPECT_EQ(head().headers[1].name, "Accept");
  EXPECT_EQ(head().headers[1].value, "*/*");
  EXPECT_EQ(head().headers[2].value, "");
  EXPECT_EQ(head().host, "api.example.com");
  EXPECT_EQ(head().framing, Framing::kNone);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_FALSE(head().expect_continue);
  EXPECT_FALSE(head().upgrade);
  ASSERT_NE(head().find("ACCEPT"), nullptr);
  EXPECT_EQ(head().find("accept")->value, "*/*");
  EXPECT_EQ(head().find("Missing"), nullptr);
}

TEST_F(RequestParseTest, EmptyQueryAndNoQuery) {
  ASSERT_EQ(parse("GET /a? HTTP/1.1\r\nHost: a\r\n\r\n").state, ParseState::kComplete);
  EXPECT_TRUE(head().has_query);
  EXPECT_EQ(head().query, "");
  ASSERT_EQ(parse("GET /a HTTP/1.1\r\nHost: a\r\n\r\n").state, ParseState::kComplete);
  EXPECT_FALSE(head().has_query);
  EXPECT_EQ(head().path, "/a");
}

TEST_F(RequestParseTest, PostWithContentLength) {
  ASSERT_EQ(parse("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n").state,
            ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kContentLength);
  EXPECT_EQ(head().content_length, 42u);
}

TEST_F(RequestParseTest, ContentLengthZeroAndLargest) {
  ASSERT_EQ(parse(get("Content-Length: 0\r\n")).state, ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kContentLength);
  EXPECT_EQ(head().content_length, 0u);
  ASSERT_EQ(parse(get("Content-Length: 9223372036854775807\r\n")).state, ParseState::kComplete);
  EXPECT_EQ(head().content_length, 9223372036854775807u);
}

TEST_F(RequestParseTest, IdenticalContentLengthsAreOne) {
  ASSERT_EQ(parse(get("Content-Length: 5 ,5\r\ncontent-length: 005\r\n")).state,
            ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kContentLength);
  EXPECT_EQ(head().content_length, 5u);
}

TEST_F(RequestParseTest, Chunked) {
  ASSERT_EQ(parse(get("Transfer-Encoding: Chunked\r\n")).state, ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kChunked);
  EXPECT_EQ(head().content_length, 0u);
}

TEST_F(RequestParseTest, PipelinedBytesAfterHeadAreLeftAlone) {
  std::string first = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
  std::string all = first + "hello" + "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  HeadScanner scanner(true);
  ParseResult r = scanner.scan(all.data(), all.size());
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.head_length, first.size());
  r = parseRequestHead(all.data(), all.size(), *h_);  // the parser stops at the head's end too
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.head_length, first.size());
  EXPECT_EQ(head().content_length, 5u);

  const char* next = all.data() + first.size() + 5;
  size_t next_len = all.size() - first.size() - 5;
  scanner.reset();
  r = scanner.scan(next, next_len);
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.head_length, next_len);
  ASSERT_EQ(parseRequestHead(next, r.head_length, *h_).state, ParseState::kComplete);
  EXPECT_EQ(head().path, "/b");
  EXPECT_EQ(head().framing, Framing::kNone);  // nothing left over from the previous head
}

TEST_F(RequestParseTest, Http10) {
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n").state, ParseState::kComplete);  // no Host needed
  EXPECT_EQ(head().version_minor, 0);
  EXPECT_FALSE(head().keep_alive);
  EXPECT_EQ(head().host, "");
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").state, ParseState::kComplete);
  EXPECT_TRUE(head().keep_alive);
  // 100-continue and Upgrade mean nothing in 1.0 (RFC 9110 §10.1.1, §7.8).
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: upgrade\r\n"
                  "Upgrade: websocket\r\n\r\n")
                .state,
            ParseState::kComplete);
  EXPECT_FALSE(head().expect_continue);
  EXPECT_FALSE(head().upgrade);
}

TEST_F(RequestParseTest, ConnectionOptions) {
  ASSERT_EQ(parse(get("Connection: close\r\n")).state, ParseState::kComplete);
  EXPECT_FALSE(head().keep_alive);
  ASSERT_EQ(parse(get("Connection: keep-alive, , Close\r\n")).state, ParseState::kComplete);
  EXPECT_FALSE(head().keep_alive);  // close wins
  ASSERT_EQ(parse(get("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n")).state,
            ParseState::kComplete);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_TRUE(head().upgrade);
  ASSERT_EQ(parse(get("Upgrade: websocket\r\n")).state, ParseState::kComplete);
  EXPECT_FALSE(head().upgrade);  // not without Connection: upgrade
}

TEST_F(RequestParseTest, ExpectContinue) {
  ASSERT_EQ(parse(get("Expect: 100-Continue\r\nContent-Length: 3\r\n")).state,
            ParseState::kComplete);
  EXPECT_TRUE(head().expect_continue);
}

TEST_F(RequestParseTest, OptionsAsterisk) {
  ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().path, "*");
  EXPECT_FALSE(head().has_query);
}

TEST_F(RequestParseTest, AbsoluteForm) {
  ASSERT_EQ(parse("GET HTTP://Api.Example.com:8080/v1/x?q=2 HTTP/1.1\r\n"
                  "Host: api.example.com:8080\r\n\r\n")
                .state,
            ParseState::kComplete);
  EXPECT_EQ(head().host, "Api.Example.com:8080");  // from the target (RFC 9112 §3.2.2)
  EXPECT_EQ(head().path, "/v1/x");
  EXPECT_EQ(head().query, "q=2");
  ASSERT_EQ(parse("GET https://a?z HTTP/1.1\r\nHost: a\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().path, "/");
  EXPECT_EQ(head().query, "z");
  ASSERT_EQ(parse("GET http://[::1]:80 HTTP/1.0\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().host, "[::1]:80");
  EXPECT_EQ(head().path, "/");
}

TEST_F(RequestParseTest, LenientButSafeInputs) {
  // obs-text is allowed in values; an empty Host is how RFC 9110 §7.2 says "no authority".
  ASSERT_EQ(parse(get("X-Name: caf\xc3\xa9\t!\r\n")).state, ParseState::kComplete);
  EXPECT_EQ(head().find("x-name")->value, "caf\xc3\xa9\t!");
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n").state, ParseState::kComplete);
  ASSERT_EQ(parse("GET //a/%7e/* HTTP/1.1\r\nHost:x_y.example-1.com:65535\r\n\r\n").state,
            ParseState::kComplete);
  EXPECT_EQ(head().path, "//a/%7e/*");
}

TEST_F(RequestParseTest, LeadingEmptyLinesAreSkipped) {
  ParseResult r = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.head_length, raw_.size());
  EXPECT_EQ(head().method, "GET");
  HeadScanner scanner(true);
  EXPECT_EQ(scanner.scan(raw_.data(), raw_.size()).head_length, raw_.size());
}

TEST_F(RequestParseTest, ExactlyOneHundredHeaders) {
  RequestHead& h = *h_;
  EXPECT_EQ(requestStatus(withHeaders(kMaxHeaders), h), kOk);
  EXPECT_EQ(h.header_count, kMaxHeaders);
  EXPECT_EQ(requestStatus(withHeaders(kMaxHeaders + 1), h), 431);
}

TEST_F(RequestParseTest, LimitsAtTheBoundary) {
  RequestHead& h = *h_;
  EXPECT_EQ(requestStatus(withLineLength(kMaxRequestLine), h), kOk);
  EXPECT_EQ(h.target.size(), kMaxRequestLine - 13);
  EXPECT_EQ(parserOnlyStatus(withLineLength(kMaxRequestLine), h), kOk);
  EXPECT_EQ(requestStatus(withHeadLength(kMaxHeadBytes), h), kOk);
  EXPECT_EQ(parserOnlyStatus(withHeadLength(kMaxHeadBytes), h), kOk);
}

TEST_F(RequestParseTest, ParserWantsMoreForATruncatedHead) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: a\r\n").state, ParseState::kIncomplete);
  EXPECT_EQ(parse("GET / HTT").state, ParseState::kIncomplete);
  EXPECT_EQ(parse("").state, ParseState::kIncomplete);
}

// Feeds `raw` one more byte per call, as a connection would, and returns the first verdict.
ParseResult scanByteByByte(const std::string& raw, bool is_request, size_t* calls) {
  HeadScanner scanner(is_request);
  ParseResult r;
  for (size_t n = 1; n <= raw.size(); ++n) {
    r = scanner.scan(raw.data(), n);
    *calls = n;
    if (r.state != ParseState::kIncomplete) break;
  }
  return r;
}

TEST(HeadScanner, ByteAtATimeMatchesOneShot) {
  std::vector<std::string> inputs = {
      "GET /a?b HTTP/1.1\r\nHost: a\r\nX: \t y\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nBODY",
      "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"s,
      "\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
      withLineLength(kMaxRequestLine),
      withLineLength(kMaxRequestLine + 1),
      withHeadLength(kMaxHeadBytes),
      withHeadLength(kMaxHeadBytes + 1),
  };
  for (const std::string& raw : inputs) {
    HeadScanner one_shot(true);
    ParseResult whole = one_shot.scan(raw.data(), raw.size());
    size_t calls = 0;
    ParseResult split = scanByteByByte(raw, true, &calls);
    EXPECT_EQ(split.state, whole.state) << raw.substr(0, 40);
    EXPECT_EQ(split.head_length, whole.head_length) << raw.substr(0, 40);
    EXPECT_EQ(split.error_status, whole.error_status) << raw.substr(0, 40);
    if (split.state == ParseState::kComplete) {
      EXPECT_EQ(calls, split.head_length);  // complete exactly when the last LF arrives
    }
  }
}

TEST(HeadScanner, LimitsHitBeforeTheHeadIsComplete) {
  std::string line = "GET /" + std::string(kMaxRequestLine, 'a');  // no CRLF yet
  HeadScanner scanner(true);
  ParseResult r = scanner.scan(line.data(), kMaxRequestLine);
  EXPECT_EQ(r.state, ParseState::kIncomplete);
  r = scanner.scan(line.data(), kMaxRequestLine + 1);
  EXPECT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 414);

  std::string big = withHeadLength(kMaxHeadBytes + 100).substr(0, kMaxHeadBytes - 1);
  scanner.reset();
  EXPECT_EQ(scanner.scan(big.data(), big.size()).state, ParseState::kIncomplete);
  big += "x";
  r = scanner.scan(big.data(), big.size());  // 64 KiB in and no end: it cannot fit any more
  EXPECT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 431);
}

TEST(HeadScanner, CrAtTheEndOfInputWaitsForItsLf) {
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  HeadScanner scanner(true);
  EXPECT_EQ(scanner.scan(raw.data(), 15).state, ParseState::kIncomplete);  // ends in CR
  EXPECT_EQ(scanner.scan(raw.data(), raw.size() - 1).state, ParseState::kIncomplete);
  ParseResult r = scanner.scan(raw.data(), raw.size());
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.head_length, raw.size());
}

TEST(HeadScanner, ResponsesGet502AndNoLeadingEmptyLines) {
  HeadScanner scanner(false);
  std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  ParseResult r = scanner.scan(ok.data(), ok.size());
  ASSERT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.head_length, ok.size());
  std::string bad = "\r\nHTTP/1.1 200 OK\r\n\r\n";
  scanner.reset();
  r = scanner.scan(bad.data(), bad.size());
  EXPECT_EQ(r.state, ParseState::kError);
  EXPECT_EQ(r.error_status, 502);
}

class ResponseParseTest : public ::testing::Test {
 protected:
  ParseResult parse(const std::string& raw, std::string_view method = "GET") {
    raw_ = raw;
    return parseResponseHead(raw_.data(), raw_.size(), method, *h_);
  }
  uint16_t errorOf(const std::string& raw, std::string_view method = "GET") {
    ParseResult r = parse(raw, method);
    return r.state == ParseState::kError ? r.error_status : 0;
  }
  const ResponseHead& head() const { return *h_; }

  std::string raw_;
  std::unique_ptr<ResponseHead> h_ = std::make_unique<ResponseHead>();
};

TEST_F(ResponseParseTest, ContentLength) {
  ParseResult r = parse("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nbody");
  ASSERT_EQ(r.state, ParseState::kComplete) << r.error;
  EXPECT_EQ(r.head_length, raw_.size() - 4);
  EXPECT_EQ(head().status, 200);
  EXPECT_EQ(head().reason, "OK");
  EXPECT_EQ(head().version_minor, 1);
  EXPECT_EQ(head().header_count, 2);
  EXPECT_EQ(head().framing, Framing::kContentLength);
  EXPECT_EQ(head().content_length, 12u);
  EXPECT_TRUE(head().keep_alive);
  EXPECT_EQ(head().find("server")->value, "x");
}

TEST_F(ResponseParseTest, ChunkedAndUntilClose) {
  ASSERT_EQ(parse("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n").state,
            ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kChunked);
  EXPECT_TRUE(head().keep_alive);
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kUntilClose);
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(ResponseParseTest, NoBodyResponses) {
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "HEAD").state,
            ParseState::kComplete);
  EXPECT_EQ(head().framing, Framing::kNone);
  EXPECT_TRUE(head().keep_alive);
  for (const char* line : {"HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified",
                           "HTTP/1.1 100 Continue", "HTTP/1.1 101 Switching Protocols"}) {
    ASSERT_EQ(parse(std::string(line) + "\r\nContent-Length: 7\r\n\r\n").state,
              ParseState::kComplete)
        << line;
    EXPECT_EQ(head().framing, Framing::kNone) << line;
  }
}

TEST_F(ResponseParseTest, Http10AndConnection) {
  ASSERT_EQ(parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().version_minor, 0);
  EXPECT_FALSE(head().keep_alive);
  ASSERT_EQ(parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n").state,
            ParseState::kComplete);
  EXPECT_TRUE(head().keep_alive);
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n").state,
            ParseState::kComplete);
  EXPECT_FALSE(head().keep_alive);
}

TEST_F(ResponseParseTest, ReasonPhraseVariants) {
  ASSERT_EQ(parse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().reason, "");
  ASSERT_EQ(parse("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().reason, "");
  ASSERT_EQ(parse("HTTP/1.1 599 Tr\xc3\xa8s  mal\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(head().reason, "Tr\xc3\xa8s  mal");
  EXPECT_EQ(head().status, 599);
}

TEST_F(ResponseParseTest, HostIsNotRequired) {
  ASSERT_EQ(parse("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b c\r\n\r\n").state, ParseState::kComplete);
}

TEST_F(ResponseParseTest, MalformedResponsesAre502) {
  const std::vector<std::string> bad = {
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 204 OK\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 600 High\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",
      "HTTP/2 200 OK\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",
      "http/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1 200 OK\nServer: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nServer : x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nServer: x\r\n y\r\n\r\n",
      "HTTP/1.1 200 OK\r\nServer: a\0b\r\n\r\n"s,
      "\r\nHTTP/1.1 200 OK\r\n\r\n",
  };
  for (const std::string& raw : bad) EXPECT_EQ(errorOf(raw), 502) << raw;

  std::string many = "HTTP/1.1 200 OK\r\n";
  for (size_t i = 0; i <= kMaxHeaders; ++i) many += "X: y\r\n";
  EXPECT_EQ(errorOf(many + "\r\n"), 502);
}

}  // namespace
}  // namespace sluice::http
