// headers: changes request headers on the way to the backend and response headers on
// the way to the client (remove, then set, then add), and rewrites the forwarded path
// (strip a prefix, or fill a template from the route's path parameters). Values are
// literal and checked when the config loads: nothing here can split a header or
// smuggle a request, and framing headers stay the proxy's business.
#include <string>
#include <vector>

#include "config/yaml_reader.h"
#include "filters/exchange.h"
#include "filters/filter.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;

struct HeaderOps {
  std::vector<std::string> remove;
  std::vector<std::pair<std::string, std::string>> set;
  std::vector<std::pair<std::string, std::string>> add;
  bool empty() const { return remove.empty() && set.empty() && add.empty(); }

  void apply(HeaderList& headers) const {
    for (const std::string& name : remove) headers.remove(name);
    for (const auto& [name, value] : set) headers.set(name, value);
    for (const auto& [name, value] : add) headers.add(name, value);
  }
};

// A rewrite template: literal text and parameter names, alternating.
struct Piece {
  bool param = false;
  std::string text;  // literal text, or the parameter's name
};

thread_local std::string t_path;

class HeadersFilter final : public Filter, public FilterFactory {
 public:
  HeadersFilter(HeaderOps request, HeaderOps response, std::string strip_prefix,
                std::vector<Piece> rewrite)
      : request_(std::move(request)),
        response_(std::move(response)),
        strip_prefix_(std::move(strip_prefix)),
        rewrite_(std::move(rewrite)) {}

  Filter* create(Exchange&) const override { return const_cast<HeadersFilter*>(this); }

  FilterStatus onRequest(Exchange& x) override {
    request_.apply(x.requestHeaders());
    if (!strip_prefix_.empty()) strip(x);
    if (!rewrite_.empty()) rewrite(x);
    return FilterStatus::kContinue;
  }

  FilterStatus onResponse(Exchange& x) override {
    response_.apply(x.responseHeaders());
    return FilterStatus::kContinue;
  }

 private:
  // Whole segments only: "/api" strips "/api/users" and "/api", not "/apiary".
  void strip(Exchange& x) const {
    std::string_view path = x.path();
    if (!path.starts_with(strip_prefix_)) return;
    std::string_view rest = path.substr(strip_prefix_.size());
    if (!rest.empty() && rest.front() != '/') return;
    // Copied first: setPath replaces the string `path` views.
    t_path.assign(rest.empty() ? std::string_view("/") : rest);
    x.setPath(t_path);
  }

  void rewrite(Exchange& x) const {
    std::string& out = t_path;
    out.clear();
    for (const Piece& p : rewrite_) {
      if (!p.param) {
        out.append(p.text);
      } else if (const std::string_view* value = x.param(p.text)) {
        out.append(*value);  // as matched: still normalised, reserved bytes still escaped
      }
    }
    x.setPath(out);
  }

  HeaderOps request_;
  HeaderOps response_;
  std::string strip_prefix_;
  std::vector<Piece> rewrite_;
};

// Headers whose meaning is the message framing or the connection: the proxy sets or
// drops them itself, so configuring them could only break or silently do nothing.
// (Host is handled by the caller: it may be set on requests, nothing else.)
bool managedHeader(std::string_view name) {
  static constexpr std::string_view kManaged[] = {
      "connection",        "keep-alive", "proxy-connection", "te",     "trailer",
      "transfer-encoding", "upgrade",    "content-length",   "expect", "host"};
  for (std::string_view m : kManaged) {
    if (http::iequals(name, m)) return true;
  }
  return false;
}

bool validValue(std::string_view value) {
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7F) return false;
  }
  return true;
}

// `host_ok`: a request's Host may be replaced (an upstream with its own virtual host),
// never removed or doubled.
bool readName(FilterParseContext& ctx, const Field& f, const std::string& name,
              bool host_ok = false) {
  if (name.empty() || !config::detail::isToken(name)) {
    ctx.reader.error(f, "'" + name + "' is not a valid header name");
    return false;
  }
  if (host_ok && http::iequals(name, "host")) return true;
  if (managedHeader(name)) {
    ctx.reader.error(f, "header '" + name + "' is managed by the proxy and cannot be changed");
    return false;
  }
  return true;
}

bool readPairs(FilterParseContext& ctx, const Field& field, bool host_ok,
               std::vector<std::pair<std::string, std::string>>& out) {
  static const Schema kAny{{}, {}, true};
  Fields fields;
  if (!ctx.reader.map(field, kAny, fields)) return false;
  bool ok = true;
  for (const Field& f : fields.all()) {
    if (!readName(ctx, f, f.name, host_ok)) {
      ok = false;
      continue;
    }
    std::optional<std::string> value = ctx.reader.string(f);
    if (!value) {
      ok = false;
      continue;
    }
    if (!validValue(*value)) {
      ctx.reader.error(f, "header values cannot contain control characters (CR, LF, NUL, ...)");
      ok = false;
      continue;
    }
    out.emplace_back(f.name, *value);
  }
  return ok;
}

bool readOps(FilterParseContext& ctx, const Field& field, bool request, HeaderOps& ops) {
  static const Schema kSchema{{"add", "set", "remove"}};
  Fields fields;
  if (!ctx.reader.map(field, kSchema, fields)) return false;
  bool ok = true;
  if (const Field* f = fields.get("add")) ok = readPairs(ctx, *f, false, ops.add) && ok;
  if (const Field* f = fields.get("set")) ok = readPairs(ctx, *f, request, ops.set) && ok;
  if (const Field* f = fields.get("remove")) {
    std::vector<Field> items;
    if (!ctx.reader.list(*f, items)) return false;
    for (const Field& item : items) {
      std::optional<std::string> name = ctx.reader.string(item);
      if (!name || !readName(ctx, item, *name)) {
        ok = false;
        continue;
      }
      ops.remove.push_back(*name);
    }
  }
  return ok;
}

bool pathChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~!$&'()*+,;=:@/%").find(c) != std::string_view::npos;
}

bool validPathText(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    if (!pathChar(text[i])) return false;
    if (text[i] == '%') {
      auto hex = [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      };
      if (i + 2 >= text.size() || !hex(text[i + 1]) || !hex(text[i + 2])) return false;
    }
  }
  return true;
}

bool readStripPrefix(FilterParseContext& ctx, const Field& f, std::string& out) {
  std::optional<std::string> value = ctx.reader.string(f);
  if (!value) return false;
  std::string prefix = *value;
  while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
  if (prefix.empty() || prefix.front() != '/' || prefix == "/" || !validPathText(prefix) ||
      prefix.find("//") != std::string::npos) {
    ctx.reader.error(f, "expected a path prefix like /api");
    return false;
  }
  out = std::move(prefix);
  return true;
}

// "/users/{id}/{rest}" into pieces; "{rest+}" is accepted for the greedy parameter too.
bool readRewrite(FilterParseContext& ctx, const Field& f, std::vector<Piece>& out) {
  std::optional<std::string> value = ctx.reader.string(f);
  if (!value) return false;
  std::string_view t = *value;
  auto fail = [&](const std::string& why) {
    ctx.reader.error(f, why + " (expected a path template like /users/{id}/{rest})");
    return false;
  };
  if (t.empty() || t.front() != '/') return fail("the rewrite must start with '/'");
  while (!t.empty()) {
    size_t open = t.find('{');
    std::string_view literal = t.substr(0, open);
    if (literal.find('}') != std::string_view::npos) return fail("unbalanced '}'");
    if (!validPathText(literal)) {
      return fail("'" + std::string(literal) + "' is not valid in a path");
    }
    if (!literal.empty()) out.push_back({false, std::string(literal)});
    if (open == std::string_view::npos) break;
    size_t close = t.find('}', open);
    if (close == std::string_view::npos) return fail("unbalanced '{'");
    std::string_view name = t.substr(open + 1, close - open - 1);
    if (name.ends_with('+')) name.remove_suffix(1);
    bool plausible = !name.empty();
    for (char c : name) {
      bool ok =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      if (!ok) plausible = false;
    }
    if (!plausible) {
      return fail("'{" + std::string(name) + "}' is not a parameter name ([A-Za-z0-9_])");
    }
    out.push_back({true, std::string(name)});
    t.remove_prefix(close + 1);
  }
  return true;
}

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"request", "response", "strip_prefix", "rewrite"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  HeaderOps request, response;
  std::string strip_prefix;
  std::vector<Piece> rewrite;
  bool ok = true;
  if (const Field* f = fields.get("request")) ok = readOps(ctx, *f, true, request) && ok;
  if (const Field* f = fields.get("response")) ok = readOps(ctx, *f, false, response) && ok;
  const Field* strip = fields.get("strip_prefix");
  const Field* rw = fields.get("rewrite");
  if (strip && rw) {
    ctx.reader.error(*rw, "use either strip_prefix or rewrite, not both");
    return nullptr;
  }
  if (strip) ok = readStripPrefix(ctx, *strip, strip_prefix) && ok;
  if (rw) ok = readRewrite(ctx, *rw, rewrite) && ok;
  if (!ok) return nullptr;
  if (request.empty() && response.empty() && strip_prefix.empty() && rewrite.empty()) {
    ctx.reader.error(ctx.field,
                     "headers needs at least one of request, response, strip_prefix, rewrite");
    return nullptr;
  }
  return std::make_shared<HeadersFilter>(std::move(request), std::move(response),
                                         std::move(strip_prefix), std::move(rewrite));
}

}  // namespace

SLUICE_REGISTER_FILTER("headers", parse);

}  // namespace sluice
