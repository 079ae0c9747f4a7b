// Matching for the cors filter: allowed-origin patterns compiled at config load ("*",
// exact origins, "*.domain" subdomain wildcards) and checks of request header values.
// Matching never allocates, and an Origin that does not parse as one never matches a
// wildcard.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::cors {

// An origin split into its parts: scheme "://" host [":" port], nothing else (no path,
// no user info). Views into the text given to splitOrigin.
struct OriginParts {
  std::string_view scheme;
  std::string_view host;  // a name, an IPv4 address or a bracketed IPv6 address
  std::string_view port;  // digits, or empty
};
bool splitOrigin(std::string_view origin, OriginParts& out);

class OriginPattern {
 public:
  // "*"; an exact origin ("https://app.example.com", "http://localhost:3000", "null");
  // a subdomain wildcard "*.example.com" (http or https) or "https://*.example.com"
  // (that scheme only), with an optional ":port" that the origin must then carry.
  // On failure `error` says why.
  static bool parse(std::string_view text, OriginPattern& out, std::string& error);

  bool any() const { return kind_ == Kind::kAny; }
  bool matches(std::string_view origin) const;

 private:
  enum class Kind { kAny, kExact, kSubdomain };
  Kind kind_ = Kind::kExact;
  std::string scheme_;  // kSubdomain: lower case; empty means http or https
  std::string text_;    // kExact: the origin in lower case; kSubdomain: ".example.com"
  std::string port_;    // kSubdomain: the port the origin must have; empty: none
};

// True when every item of a comma-separated list (an Access-Control-Request-Headers
// value) is in `allowed` (lower-case names), ignoring case and empty items.
bool allHeadersAllowed(std::string_view requested, const std::vector<std::string>& allowed);

// True when the value is a comma-separated list of tokens (OWS around items allowed).
bool isTokenList(std::string_view value);

}  // namespace sluice::cors
