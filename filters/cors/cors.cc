// cors: cross-origin resource sharing as Amazon API Gateway (HTTP APIs) does it. The
// filter answers preflights itself (the backend never sees them) and adds the CORS
// headers to responses for allowed origins. Never echoes an origin it was not told to
// allow, and leaves requests without an Origin alone.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "config/yaml_reader.h"
#include "filters/cors/origin_match.h"
#include "filters/exchange.h"
#include "filters/filter.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;
using cors::OriginPattern;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view kForbiddenBody = "{\"message\":\"Forbidden\"}";

struct CorsSettings {
  std::vector<OriginPattern> origins;
  bool any_origin = false;
  std::vector<std::string> methods;
  bool any_method = false;
  std::string methods_value;         // Access-Control-Allow-Methods
  std::vector<std::string> headers;  // lower case
  bool any_header = false;
  std::string headers_value;  // Access-Control-Allow-Headers ("" when none)
  std::string expose_value;   // Access-Control-Expose-Headers ("" when none)
  bool credentials = false;
  std::string max_age;  // seconds; "" = not sent
};

// True when some Vary field of the response already names Origin (or is "*").
bool varyHasOrigin(const HeaderList& headers) {
  for (const http::Header& h : headers) {
    if (!http::iequals(h.name, "vary")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view item = v.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (item == "*" || http::iequals(item, "origin")) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

class CorsFilter final : public Filter, public FilterFactory {
 public:
  explicit CorsFilter(CorsSettings s) : s_(std::move(s)) {}

  Filter* create(Exchange&) const override { return const_cast<CorsFilter*>(this); }

  FilterStatus onRequest(Exchange& x) override {
    if (x.method() != "OPTIONS") return FilterStatus::kContinue;
    const std::string_view* origin = x.requestHeaders().get("origin");
    const std::string_view* method = x.requestHeaders().get("access-control-request-method");
    if (!origin || !method) return FilterStatus::kContinue;  // a plain OPTIONS request
    preflight(x, *origin, *method);
    return FilterStatus::kStop;
  }

  FilterStatus onResponse(Exchange& x) override {
    const std::string_view* origin = x.requestHeaders().get("origin");
    if (!origin) return FilterStatus::kContinue;
    HeaderList& out = x.responseHeaders();
    // The answer depends on the Origin unless every origin gets "*": caches must know.
    if (!s_.any_origin && !varyHasOrigin(out)) out.add("Vary", "Origin");
    if (!originAllowed(*origin)) return FilterStatus::kContinue;
    out.set("Access-Control-Allow-Origin", s_.any_origin ? std::string_view("*") : *origin);
    if (s_.credentials) out.set("Access-Control-Allow-Credentials", "true");
    if (!s_.expose_value.empty()) out.set("Access-Control-Expose-Headers", s_.expose_value);
    return FilterStatus::kContinue;
  }

 private:
  bool originAllowed(std::string_view origin) const {
    if (s_.any_origin) return true;
    return std::any_of(s_.origins.begin(), s_.origins.end(),
                       [&](const OriginPattern& p) { return p.matches(origin); });
  }

  bool methodAllowed(std::string_view method) const {
    if (method.empty() || !config::detail::isToken(method)) return false;
    if (s_.any_method) return true;
    return std::find(s_.methods.begin(), s_.methods.end(), method) != s_.methods.end();
  }

  // Denied preflights get 403 and no CORS headers: the browser fails the actual
  // request either way, and a 403 tells whoever debugs it (and the access log) why.
  void preflight(Exchange& x, std::string_view origin, std::string_view method) {
    const std::string_view* requested = x.requestHeaders().get("access-control-request-headers");
    std::string_view req_headers = requested ? *requested : std::string_view();
    bool headers_ok = cors::isTokenList(req_headers) &&
                      (s_.any_header || cors::allHeadersAllowed(req_headers, s_.headers));
    Headers h;
    if (!originAllowed(origin) || !methodAllowed(method) || !headers_ok) {
      h.emplace_back("Content-Type", "application/json");
      if (!s_.any_origin) h.emplace_back("Vary", "Origin");
      x.replyWith(403, h, kForbiddenBody);
      return;
    }
    h.emplace_back("Access-Control-Allow-Origin", s_.any_origin ? "*" : std::string(origin));
    if (s_.credentials) h.emplace_back("Access-Control-Allow-Credentials", "true");
    // "*" lists are answered with what was asked: a literal "*" is not a wildcard for
    // browsers when credentials are allowed, the echo works in both cases.
    h.emplace_back("Access-Control-Allow-Methods",
                   s_.any_method ? std::string(method) : s_.methods_value);
    if (s_.any_header) {
      if (!req_headers.empty()) h.emplace_back("Access-Control-Allow-Headers", req_headers);
    } else if (!s_.headers_value.empty()) {
      h.emplace_back("Access-Control-Allow-Headers", s_.headers_value);
    }
    if (!s_.max_age.empty()) h.emplace_back("Access-Control-Max-Age", s_.max_age);
    // What the answer depends on, for caches: the origin when it is echoed, and the
    // request method and headers when "*" makes the answer echo them.
    std::string vary;
    auto varyOn = [&vary](std::string_view name) {
      if (!vary.empty()) vary += ", ";
      vary += name;
    };
    if (!s_.any_origin) varyOn("Origin");
    if (s_.any_method) varyOn("Access-Control-Request-Method");
    if (s_.any_header) varyOn("Access-Control-Request-Headers");
    if (!vary.empty()) h.emplace_back("Vary", std::move(vary));
    x.replyWith(204, h, {});
  }

  CorsSettings s_;
};

// ---- Config ----

// A list of strings, or the single string "*" (written without brackets).
bool readItems(FilterParseContext& ctx, const Field& field,
               std::vector<std::pair<std::string, Field>>& out) {
  std::vector<Field> items;
  if (field.value.IsScalar()) {
    items.push_back(field);
  } else if (!ctx.reader.list(field, items)) {
    return false;
  }
  bool ok = true;
  for (const Field& item : items) {
    std::optional<std::string> text = ctx.reader.string(item);
    if (!text) {
      ok = false;
      continue;
    }
    if (field.value.IsScalar() && *text != "*") {
      ctx.reader.error(field, "expected a list, or \"*\"");
      return false;
    }
    out.emplace_back(std::move(*text), item);
  }
  return ok;
}

// A star alone means "any"; next to other items it would hide them, so it is an error.
bool readStarOr(FilterParseContext& ctx, const Field& field, bool& any,
                std::vector<std::pair<std::string, Field>>& items) {
  if (!readItems(ctx, field, items)) return false;
  for (const auto& [text, item] : items) {
    if (text == "*" && items.size() > 1) {
      ctx.reader.error(item, "\"*\" allows everything; list nothing else with it");
      return false;
    }
  }
  any = items.size() == 1 && items[0].first == "*";
  return true;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

bool readHeaderNames(FilterParseContext& ctx, const Field& field, bool& any,
                     std::vector<std::string>& out) {
  std::vector<std::pair<std::string, Field>> items;
  if (!readStarOr(ctx, field, any, items)) return false;
  if (any) return true;
  bool ok = true;
  for (auto& [text, item] : items) {
    if (text.empty() || !config::detail::isToken(text)) {
      ctx.reader.error(item, "expected a header name, not '" + text + "'");
      ok = false;
      continue;
    }
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::find(out.begin(), out.end(), text) == out.end()) out.push_back(text);
  }
  return ok;
}

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"allow_origins", "allow_methods", "allow_headers", "expose_headers",
                               "allow_credentials", "max_age"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  CorsSettings s;
  bool ok = true;

  const Field* origins_field = ctx.reader.required(ctx.field, fields, "allow_origins");
  std::vector<std::pair<std::string, Field>> origins;
  if (!origins_field) {
    ok = false;
  } else if (readStarOr(ctx, *origins_field, s.any_origin, origins)) {
    if (origins.empty()) {
      ctx.reader.error(*origins_field, "'allow_origins' is empty: no origin would be allowed");
      ok = false;
    }
    for (const auto& [text, item] : origins) {
      OriginPattern pattern;
      std::string error;
      if (!OriginPattern::parse(text, pattern, error)) {
        ctx.reader.error(item, error);
        ok = false;
        continue;
      }
      s.origins.push_back(std::move(pattern));
    }
  } else {
    ok = false;
  }

  if (const Field* f = fields.get("allow_methods")) {
    std::vector<std::pair<std::string, Field>> methods;
    if (readStarOr(ctx, *f, s.any_method, methods)) {
      for (const auto& [text, item] : methods) {
        if (s.any_method) break;
        bool upper =
            std::none_of(text.begin(), text.end(), [](char c) { return c >= 'a' && c <= 'z'; });
        if (text.empty() || !config::detail::isToken(text) || !upper) {
          ctx.reader.error(item, "expected an upper-case method like GET, not '" + text + "'");
          ok = false;
          continue;
        }
        if (std::find(s.methods.begin(), s.methods.end(), text) == s.methods.end()) {
          s.methods.push_back(text);
        }
      }
      if (methods.empty()) {
        ctx.reader.error(*f, "'allow_methods' is empty: every preflight would be refused");
        ok = false;
      }
    } else {
      ok = false;
    }
  } else {
    s.methods = {"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"};
  }
  s.methods_value = join(s.methods);

  if (const Field* f = fields.get("allow_headers")) {
    ok = readHeaderNames(ctx, *f, s.any_header, s.headers) && ok;
  }
  s.headers_value = join(s.headers);

  bool expose_any = false;
  std::vector<std::string> expose;
  if (const Field* f = fields.get("expose_headers")) {
    ok = readHeaderNames(ctx, *f, expose_any, expose) && ok;
  }
  s.expose_value = expose_any ? "*" : join(expose);

  if (const Field* f = fields.get("allow_credentials")) {
    std::optional<std::string> text = ctx.reader.string(*f);
    if (!text || (*text != "true" && *text != "false")) {
      if (text) ctx.reader.error(*f, "expected true or false");
      ok = false;
    } else {
      s.credentials = *text == "true";
    }
  }
  if (s.credentials && s.any_origin) {
    ctx.reader.error(*fields.get("allow_credentials"),
                     "allow_credentials cannot be combined with allow_origins \"*\" (browsers "
                     "refuse it): list the origins");
    ok = false;
  }
  if (s.credentials && expose_any) {
    ctx.reader.error(*fields.get("expose_headers"),
                     "expose_headers \"*\" is not a wildcard for browsers when credentials are "
                     "allowed: list the headers");
    ok = false;
  }

  if (const Field* f = fields.get("max_age")) {
    config::Duration d;
    if (!ctx.reader.duration(*f, true, d)) {
      ok = false;
    } else if (d.count() % 1000 != 0) {
      ctx.reader.error(*f, "max_age is sent in whole seconds (like 600s or 10m)");
      ok = false;
    } else {
      s.max_age = std::to_string(d.count() / 1000);
    }
  }
  if (!ok) return nullptr;
  return std::make_shared<CorsFilter>(std::move(s));
}

}  // namespace

SLUICE_REGISTER_FILTER("cors", parse);

}  // namespace sluice
