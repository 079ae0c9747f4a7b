// Types shared by the HTTP codecs and everything above them: a parsed message head
// whose strings are views into a buffer the owner keeps alive. Plain data only —
// nothing here allocates, so a head can be reused for every request on a connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::http {

inline constexpr size_t kMaxHeaders = 100;
inline constexpr size_t kMaxRequestLine = 8 * 1024;
inline constexpr size_t kMaxHeadBytes = 64 * 1024;

struct Header {
  std::string_view name;   // as received (case preserved); compare with iequals()
  std::string_view value;  // leading/trailing OWS removed
};

// How the body that follows a head is delimited.
enum class Framing : uint8_t {
  kNone,           // no body (requests without CL/TE, HEAD responses, 1xx/204/304)
  kContentLength,  // exactly content_length bytes
  kChunked,        // chunked transfer coding
  kUntilClose,     // responses only: body ends when the peer closes
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // request-target as received
  std::string_view path;    // target up to '?' (origin-form); "*" for OPTIONS *;
                            // absolute-form: its path, or "/" (static) when it has none
  std::string_view query;   // after '?', without it; empty if none
  bool has_query = false;
  uint8_t version_minor = 1;  // HTTP/1.<minor>; only 1.0 and 1.1 are accepted
  Header headers[kMaxHeaders];
  uint16_t header_count = 0;

  // Derived while parsing, so later stages never re-scan headers for these.
  std::string_view host;  // Host header value (required on 1.1); absolute-form: its authority
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;  // set only with kContentLength (which includes CL: 0)
  bool keep_alive = true;       // after Connection: close/keep-alive and version defaults
  bool expect_continue = false;
  bool upgrade = false;  // Connection: upgrade + Upgrade header present

  const Header* find(std::string_view name) const;  // first header with that name
};

struct ResponseHead {
  uint16_t status = 0;
  std::string_view reason;
  uint8_t version_minor = 1;
  Header headers[kMaxHeaders];
  uint16_t header_count = 0;

  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;

  const Header* find(std::string_view name) const;
};

// The value of an ASCII hex digit; -1 for any other byte (percent-escapes, chunk sizes).
constexpr int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// ASCII lower case (header, host and scheme names); other bytes stay as they are.
inline std::string asciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// ASCII case-insensitive equality for header names and tokens.
bool iequals(std::string_view a, std::string_view b);

// tchar (RFC 9110 §5.6.2): the bytes allowed in methods, field names and coding names.
constexpr bool isTokenChar(unsigned char c) {
  const unsigned char folded = c | 0x20;  // maps 'A'-'Z' onto 'a'-'z' and nothing else there
  return (c >= '0' && c <= '9') || (folded >= 'a' && folded <= 'z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

}  // namespace sluice::http
