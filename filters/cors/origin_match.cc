#include "filters/cors/origin_match.h"

#include <algorithm>

namespace sluice::cors {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isOws(char c) { return c == ' ' || c == '\t'; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

bool isTokenChar(char c) {
  static constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return isAlpha(c) || isDigit(c) || kSpecials.find(c) != std::string_view::npos;
}

// Dot-separated labels of letters, digits, '-' and '_', none empty.
bool isDomain(std::string_view s) {
  if (s.empty()) return false;
  bool label_empty = true;
  for (char c : s) {
    if (c == '.') {
      if (label_empty) return false;
      label_empty = true;
    } else if (isAlpha(c) || isDigit(c) || c == '-' || c == '_') {
      label_empty = false;
    } else {
      return false;
    }
  }
  return !label_empty;
}

bool isPort(std::string_view s) {
  return !s.empty() && s.size() <= 5 && std::all_of(s.begin(), s.end(), isDigit);
}

bool isScheme(std::string_view s) {
  if (s.empty() || !isAlpha(s[0])) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return isAlpha(c) || isDigit(c) || c == '+' || c == '-' || c == '.';
  });
}

// Splits "host[:port]" (host possibly "[v6]"); false if anything else is there.
bool splitAuthority(std::string_view authority, std::string_view& host, std::string_view& port) {
  size_t colon;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    std::string_view inside = authority.substr(1, close - 1);
    bool hex = std::all_of(inside.begin(), inside.end(), [](char c) {
      return isDigit(c) || (lower(c) >= 'a' && lower(c) <= 'f') || c == ':' || c == '.';
    });
    if (!hex) return false;
    host = authority.substr(0, close + 1);
    std::string_view rest = authority.substr(close + 1);
    if (rest.empty()) {
      port = {};
      return true;
    }
    if (rest[0] != ':') return false;
    port = rest.substr(1);
    return isPort(port);
  }
  colon = authority.find(':');
  host = authority.substr(0, colon);
  port = colon == std::string_view::npos ? std::string_view() : authority.substr(colon + 1);
  return isDomain(host) && (colon == std::string_view::npos || isPort(port));
}

}  // namespace

bool splitOrigin(std::string_view origin, OriginParts& out) {
  size_t sep = origin.find("://");
  if (sep == std::string_view::npos) return false;
  out.scheme = origin.substr(0, sep);
  if (!isScheme(out.scheme)) return false;
  return splitAuthority(origin.substr(sep + 3), out.host, out.port);
}

bool OriginPattern::parse(std::string_view text, OriginPattern& out, std::string& error) {
  static constexpr std::string_view kHint =
      "expected an origin like https://app.example.com, a wildcard like \"*.example.com\", "
      "or \"*\"";
  out = OriginPattern();
  if (text == "*") {
    out.kind_ = Kind::kAny;
    return true;
  }
  if (text == "null") {
    out.text_ = "null";
    return true;
  }
  std::string_view rest = text;
  std::string_view scheme;
  if (size_t sep = rest.find("://"); sep != std::string_view::npos) {
    scheme = rest.substr(0, sep);
    rest = rest.substr(sep + 3);
    if (!isScheme(scheme)) {
      error = std::string(kHint) + ", not '" + std::string(text) + "'";
      return false;
    }
  }
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    error = "an origin has no path: write '" +
            std::string(text.substr(0, text.size() - rest.size() + slash)) + "'";
    return false;
  }
  if (rest.size() >= 2 && rest[0] == '*' && rest[1] == '.') {
    std::string_view host, port;
    if (!splitAuthority(rest.substr(2), host, port) || host[0] == '[') {
      error = "a wildcard origin is '*.' followed by a domain (like \"*.example.com\"), not '" +
              std::string(text) + "'";
      return false;
    }
    out.kind_ = Kind::kSubdomain;
    out.scheme_ = lowerCopy(scheme);
    out.text_ = "." + lowerCopy(host);
    out.port_ = std::string(port);
    return true;
  }
  std::string_view host, port;
  if (scheme.empty() || !splitAuthority(rest, host, port)) {
    error = std::string(kHint) + ", not '" + std::string(text) + "'";
    return false;
  }
  out.text_ = lowerCopy(text);
  return true;
}

bool OriginPattern::matches(std::string_view origin) const {
  switch (kind_) {
    case Kind::kAny:
      return true;
    case Kind::kExact:
      return iequals(origin, text_);
    case Kind::kSubdomain:
      break;
  }
  OriginParts parts;
  if (!splitOrigin(origin, parts)) return false;
  if (scheme_.empty()) {
    if (!iequals(parts.scheme, "http") && !iequals(parts.scheme, "https")) return false;
  } else if (!iequals(parts.scheme, scheme_)) {
    return false;
  }
  if (parts.port != port_) return false;
  // At least one whole label before the suffix: "example.com" and "evil-example.com"
  // are not subdomains of example.com. splitOrigin already refused empty labels.
  const std::string_view host = parts.host;
  if (host.size() <= text_.size()) return false;
  return iequals(host.substr(host.size() - text_.size()), text_);
}

bool allHeadersAllowed(std::string_view requested, const std::vector<std::string>& allowed) {
  while (!requested.empty()) {
    size_t comma = requested.find(',');
    std::string_view item = trimOws(requested.substr(0, comma));
    if (!item.empty()) {
      bool found = std::any_of(allowed.begin(), allowed.end(),
                               [&](const std::string& a) { return iequals(item, a); });
      if (!found) return false;
    }
    if (comma == std::string_view::npos) break;
    requested.remove_prefix(comma + 1);
  }
  return true;
}

bool isTokenList(std::string_view value) {
  while (true) {
    size_t comma = value.find(',');
    std::string_view item = trimOws(value.substr(0, comma));
    if (!std::all_of(item.begin(), item.end(), isTokenChar)) return false;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

}  // namespace sluice::cors
