#include "gateway/router/router.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <utility>

#include "gateway/router/path.h"

namespace sluice::router {
namespace {

constexpr uint32_t kNoNode = UINT32_MAX;

char toLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Route keys are stored lower-case, so only the request side needs folding; doing it
// on the fly keeps match() free of a lower-cased copy of the Host header.
bool equalsIgnoreCase(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (toLower(s[i]) != lower[i]) return false;
  }
  return true;
}

// Orders like the lower-cased strings (the order `exact` is sorted in). The comparator
// folds both sides because lexicographical_compare calls it both ways round.
bool lessIgnoreCase(std::string_view a, std::string_view b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return static_cast<unsigned char>(toLower(x)) < static_cast<unsigned char>(toLower(y));
  });
}

bool isNameChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// RFC 9110 tchar without lower-case letters: methods are case-sensitive, and a
// lower-case "get" in a config is a typo that would silently never match.
bool isMethodChar(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool isHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string_view hostWithoutPort(std::string_view host) {
  if (!host.empty() && host[0] == '[') {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  host = host.substr(0, host.find(':'));
  // "api.example.com." names the same host; without this it would fall through to
  // host-less routes and skip the filters of the host's own routes.
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

enum class HostKind : uint8_t { kAny, kExact, kWildcard };

struct HostKey {
  HostKind kind = HostKind::kAny;
  std::string key;  // exact: "api.example.com"; wildcard: ".example.com"; any: ""
};

// Returns an error message, empty when `raw` is a valid host pattern.
std::string parseHost(std::string_view raw, HostKey& out) {
  std::string host(raw);
  for (char& c : host) c = toLower(c);
  if (host.empty() || host == "*") {
    out = {HostKind::kAny, ""};
    return {};
  }
  std::string_view name = host;
  HostKind kind = HostKind::kExact;
  if (name.starts_with("*.")) {
    kind = HostKind::kWildcard;
    name.remove_prefix(2);
  }
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return "has no name";
  if (name.front() == '[') {
    if (kind == HostKind::kWildcard) return "a wildcard cannot apply to an IP literal";
    if (name.back() != ']' || name.size() < 3) return "IPv6 literal must be \"[address]\", no port";
    for (char c : name.substr(1, name.size() - 2)) {
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return "IPv6 literal must be \"[address]\", no port";
      }
    }
  } else {
    size_t label = 0;
    for (char c : name) {
      if (c == ':') return "must not include a port (the Host header's port is ignored)";
      if (c == '*') return "a wildcard is only allowed as a leading \"*.\"";
      if (c == '.') {
        if (label == 0) return "has an empty label";
        label = 0;
      } else if (!isHostChar(c)) {
        return "may only contain letters, digits, '-', '_' and '.'";
      } else {
        ++label;
      }
    }
    if (label == 0) return "has an empty label";
  }
  out = {kind, kind == HostKind::kWildcard ? "." + std::string(name) : std::string(name)};
  return {};
}

// Returns an error message, empty when `raw` is valid; `canonical` is the template
// with the trailing slash dropped and literals percent-normalised like request paths.
std::string parseTemplate(std::string_view raw, std::string& canonical) {
  if (raw.empty() || raw[0] != '/') return "must start with '/'";
  if (raw.find("//") != std::string_view::npos) return "has an empty segment (\"//\")";
  std::string_view body = raw.substr(1);
  if (!body.empty() && body.back() == '/') body.remove_suffix(1);
  canonical = "/";
  std::vector<std::string_view> names;
  std::string scratch;
  size_t pos = 0;
  while (!body.empty()) {
    size_t end = body.find('/', pos);
    const bool last = end == std::string_view::npos;
    if (last) end = body.size();
    const std::string_view seg = body.substr(pos, end - pos);
    const std::string quoted = "segment \"" + std::string(seg) + "\"";
    if (canonical.size() > 1) canonical += '/';
    if (seg.find_first_of("{}") != std::string_view::npos) {
      if (seg.size() < 2 || seg.front() != '{' || seg.find_first_of("{}", 1) != seg.size() - 1) {
        return quoted + " must be a literal, \"{name}\" or \"{name+}\" (no mixed segments)";
      }
      std::string_view name = seg.substr(1, seg.size() - 2);
      const bool greedy = !name.empty() && name.back() == '+';
      if (greedy) name.remove_suffix(1);
      if (name.empty()) return quoted + ": parameter has no name";
      if (!std::all_of(name.begin(), name.end(), isNameChar)) {
        return quoted + ": parameter names may only contain A-Z, a-z, 0-9 and _";
      }
      if (greedy && !last) return quoted + ": a greedy parameter must be the last segment";
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        return "duplicate parameter name \"" + std::string(name) + "\"";
      }
      if (names.size() == kMaxParams) {
        return "more than " + std::to_string(kMaxParams) + " parameters";  // Match's capacity
      }
      names.push_back(name);
      canonical += seg;
      if (last) break;
      pos = end + 1;
      continue;
    }
    for (char c : seg) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7F || c == '?' || c == '#') {
        return quoted + " contains a space, a control character, '?' or '#'";
      }
    }
    const std::string dot_error = quoted + " is a dot segment, which a normalised path never has";
    if (seg == "." || seg == "..") return dot_error;
    if (seg.find('%') == std::string_view::npos) {
      canonical += seg;
    } else {
      // Request paths arrive normalised, so a literal must be spelled the same way.
      const PathStatus status = normalizePath("/" + std::string(seg), scratch);
      if (status == PathStatus::kEscapesRoot || (status == PathStatus::kOk && scratch == "/")) {
        return dot_error;
      }
      if (status != PathStatus::kOk) return quoted + " has a bad or control-character escape";
      canonical.append(scratch, 1);
    }
    if (last) break;
    pos = end + 1;
  }
  return {};
}

struct Segment {
  enum class Kind : uint8_t { kLiteral, kParam, kGreedy };
  Kind kind;
  std::string_view text;  // literal text or parameter name
};

// `path` is a canonical template from parseTemplate(); views point into it.
std::vector<Segment> splitTemplate(std::string_view path) {
  std::vector<Segment> segments;
  size_t pos = 1;
  while (pos < path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(pos, end - pos);
    if (seg.front() == '{') {
      seg = seg.substr(1, seg.size() - 2);
      if (seg.back() == '+') {
        seg.remove_suffix(1);
        segments.push_back({Segment::Kind::kGreedy, seg});
      } else {
        segments.push_back({Segment::Kind::kParam, seg});
      }
    } else {
      segments.push_back({Segment::Kind::kLiteral, seg});
    }
    pos = end + 1;
  }
  return segments;
}

bool methodsOverlap(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  // A method list is more specific than none, so only two method-less routes clash.
  if (a.empty() || b.empty()) return a.empty() && b.empty();
  for (const std::string& m : a) {
    if (std::binary_search(b.begin(), b.end(), m)) return true;
  }
  return false;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

// Path segments and methods are short: word-at-a-time compares inline to a couple of
// loads, where memcmp would cost a call for every sibling literal tried.
inline bool sameText(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x;
    uint64_t y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    if (x != y) return false;
  }
  for (; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

using Literals = std::vector<std::pair<std::string_view, uint32_t>>;  // sorted by text

inline uint32_t findLiteral(const Literals& literals, std::string_view seg) {
  // Most nodes have a handful of children, where a scan beats a binary search.
  if (literals.size() <= 8) {
    for (const auto& [text, child] : literals) {
      if (sameText(text, seg)) return child;
    }
    return kNoNode;
  }
  auto it = std::lower_bound(literals.begin(), literals.end(), seg,
                             [](const auto& e, std::string_view s) { return e.first < s; });
  return it != literals.end() && it->first == seg ? it->second : kNoNode;
}

}  // namespace

struct Router::Impl {
  struct Route {
    size_t id = 0;
    std::string name;
    std::string host;  // as written, lower-cased; for describe()
    HostKey host_key;
    std::vector<std::string> methods;           // sorted, unique; empty = any
    std::string path;                           // canonical template
    std::vector<std::string_view> param_names;  // views into `path`, in segment order
  };

  // One node per distinct template prefix, so a path segment is compared with each
  // node at most once however many routes share the prefix.
  struct Node {
    Literals literals;
    uint32_t param = kNoNode;
    uint32_t greedy = kNoNode;
    std::vector<uint32_t> routes;  // routes ending here; those listing methods first
  };

  struct Group {
    std::string key;
    std::vector<Node> nodes = std::vector<Node>(1);  // nodes[0] is the root
  };

  std::vector<Route> routes;
  std::vector<Group> exact;     // sorted by key, searched with the Host header
  std::vector<Group> wildcard;  // longest suffix first: the most specific host wins
  Group any;

  std::string insert(Group& group, uint32_t index);
  template <typename Fn>
  bool forEachGroup(std::string_view host, Fn&& fn) const;
  void describeNode(const Group& group, uint32_t node, std::vector<std::string>& lines) const;
};

std::string Router::Impl::insert(Group& group, uint32_t index) {
  const Route& route = routes[index];
  uint32_t node = 0;
  for (const Segment& seg : splitTemplate(route.path)) {
    const auto fresh = static_cast<uint32_t>(group.nodes.size());
    uint32_t next = kNoNode;
    switch (seg.kind) {
      case Segment::Kind::kLiteral: {
        auto& literals = group.nodes[node].literals;
        auto it = std::lower_bound(literals.begin(), literals.end(), seg.text,
                                   [](const auto& e, std::string_view s) { return e.first < s; });
        if (it != literals.end() && it->first == seg.text) {
          next = it->second;
        } else {
          literals.insert(it, {seg.text, fresh});
          next = fresh;
        }
        break;
      }
      case Segment::Kind::kParam:
        if (group.nodes[node].param == kNoNode) group.nodes[node].param = fresh;
        next = group.nodes[node].param;
        break;
      case Segment::Kind::kGreedy:
        if (group.nodes[node].greedy == kNoNode) group.nodes[node].greedy = fresh;
        next = group.nodes[node].greedy;
        break;
    }
    if (next == fresh) group.nodes.emplace_back();
    node = next;
  }

  std::vector<uint32_t>& ending = group.nodes[node].routes;
  for (uint32_t other : ending) {
    if (methodsOverlap(routes[other].methods, route.methods)) {
      return "route \"" + route.name + "\" is ambiguous with route \"" + routes[other].name +
             "\": same host, path shape and methods";
    }
  }
  if (route.methods.empty()) {
    ending.push_back(index);
  } else {
    auto first_any = std::find_if(ending.begin(), ending.end(),
                                  [&](uint32_t i) { return routes[i].methods.empty(); });
    ending.insert(first_any, index);
  }
  return {};
}

template <typename Fn>
bool Router::Impl::forEachGroup(std::string_view host, Fn&& fn) const {
  if (!host.empty() && !exact.empty()) {
    auto it = std::lower_bound(
        exact.begin(), exact.end(), host,
        [](const Group& g, std::string_view h) { return lessIgnoreCase(g.key, h); });
    if (it != exact.end() && equalsIgnoreCase(host, it->key) && fn(*it)) return true;
  }
  for (const Group& group : wildcard) {
    // The key starts with '.', so a longer host has at least one label in front of it.
    if (host.size() > group.key.size() &&
        equalsIgnoreCase(host.substr(host.size() - group.key.size()), group.key) && fn(group)) {
      return true;
    }
  }
  return fn(any);
}

void Router::Impl::describeNode(const Group& group, uint32_t index,
                                std::vector<std::string>& lines) const {
  const Node& node = group.nodes[index];
  for (uint32_t i : node.routes) {
    const Route& r = routes[i];
    lines.push_back("[" + std::to_string(r.id) + "] " + r.name + " " +
                    (r.host.empty() ? "*" : r.host) + " " +
                    (r.methods.empty() ? "*" : join(r.methods, ",")) + " " + r.path);
  }
  for (const auto& literal : node.literals) describeNode(group, literal.second, lines);
  if (node.param != kNoNode) describeNode(group, node.param, lines);
  if (node.greedy != kNoNode) describeNode(group, node.greedy, lines);
}

std::unique_ptr<Router> Router::build(const std::vector<RouteSpec>& specs,
                                      std::vector<BuildError>& errors) {
  const size_t errors_before = errors.size();
  auto impl = std::make_unique<Impl>();
  impl->routes.reserve(specs.size());
  for (const RouteSpec& spec : specs) {
    const std::string prefix = "route \"" + spec.name + "\": ";
    Impl::Route route;
    route.id = spec.id;
    route.name = spec.name;
    bool ok = true;
    if (std::string err = parseHost(spec.host, route.host_key); !err.empty()) {
      errors.push_back({spec.id, prefix + "host \"" + spec.host + "\" " + err});
      ok = false;
    }
    for (const std::string& method : spec.methods) {
      if (method.empty() || !std::all_of(method.begin(), method.end(), isMethodChar)) {
        errors.push_back(
            {spec.id, prefix + "method \"" + method + "\" is not an upper-case token"});
        ok = false;
      }
    }
    if (std::string err = parseTemplate(spec.path, route.path); !err.empty()) {
      errors.push_back({spec.id, prefix + "path \"" + spec.path + "\" " + err});
      ok = false;
    }
    if (!ok) continue;
    switch (route.host_key.kind) {
      case HostKind::kAny:
        break;
      case HostKind::kExact:
        route.host = route.host_key.key;
        break;
      case HostKind::kWildcard:
        route.host = "*" + route.host_key.key;
        break;
    }
    route.methods = spec.methods;
    std::sort(route.methods.begin(), route.methods.end());
    route.methods.erase(std::unique(route.methods.begin(), route.methods.end()),
                        route.methods.end());
    impl->routes.push_back(std::move(route));
  }

  // `routes` no longer grows, so views into its strings stay valid from here on.
  std::map<std::string, Impl::Group> exact;
  std::map<std::string, Impl::Group> wildcard;
  for (uint32_t i = 0; i < impl->routes.size(); ++i) {
    Impl::Route& route = impl->routes[i];
    for (const Segment& seg : splitTemplate(route.path)) {
      if (seg.kind != Segment::Kind::kLiteral) route.param_names.push_back(seg.text);
    }
    const HostKey& key = route.host_key;
    Impl::Group& group = key.kind == HostKind::kExact      ? exact[key.key]
                         : key.kind == HostKind::kWildcard ? wildcard[key.key]
                                                           : impl->any;
    group.key = key.key;
    if (std::string err = impl->insert(group, i); !err.empty()) {
      errors.push_back({route.id, std::move(err)});
    }
  }
  if (errors.size() != errors_before) return nullptr;

  for (auto& entry : exact) impl->exact.push_back(std::move(entry.second));
  for (auto& entry : wildcard) impl->wildcard.push_back(std::move(entry.second));
  std::stable_sort(
      impl->wildcard.begin(), impl->wildcard.end(),
      [](const Impl::Group& a, const Impl::Group& b) { return a.key.size() > b.key.size(); });
  auto router = std::make_unique<Router>();
  router->impl_ = std::move(impl);
  return router;
}

Router::~Router() = default;

namespace {

// Depth-first in precedence order (literal, then {param}, then {param+}); a failed
// branch backtracks, so "/a/{x}/d" is still found for "/a/b/d" next to "/a/b/c".
// A struct so that each level of the recursion passes a node and a position, not the
// seven values a free function would need.
template <typename Visit>
struct Walker {
  const Router::Impl::Node* nodes;
  std::string_view path;
  Match& out;
  Visit& visit;

  bool descend(uint32_t index, size_t pos) {
    const Router::Impl::Node& node = nodes[index];
    // Past the end, or just past a trailing slash: "/a/" is matched like "/a".
    if (pos >= path.size()) return visit(node, out);
    // Segments are short: a plain loop beats a call to memchr.
    size_t end = pos;
    while (end < path.size() && path[end] != '/') ++end;
    if (end == pos) return false;  // empty segment: templates have none
    const std::string_view seg(path.data() + pos, end - pos);
    const size_t next = end < path.size() ? end + 1 : end;

    if (const uint32_t child = findLiteral(node.literals, seg);
        child != kNoNode && descend(child, next)) {
      return true;
    }
    if (node.param != kNoNode) {
      out.params[out.param_count++].value = seg;
      if (descend(node.param, next)) return true;
      --out.param_count;
    }
    if (node.greedy != kNoNode) {
      out.params[out.param_count++].value = std::string_view(path.data() + pos, path.size() - pos);
      if (visit(nodes[node.greedy], out)) return true;
      --out.param_count;
    }
    return false;
  }
};

template <typename Visit>
bool walk(const Router::Impl::Group& group, std::string_view path, Match& out, Visit& visit) {
  return Walker<Visit>{group.nodes.data(), path, out, visit}.descend(0, 1);
}

struct FindVisitor {
  const Router::Impl& impl;
  std::string_view method;
  bool path_matched = false;

  template <typename Node>
  bool operator()(const Node& node, Match& out) {
    for (uint32_t i : node.routes) {
      const auto& route = impl.routes[i];
      const bool accepts = route.methods.empty() ||
                           std::any_of(route.methods.begin(), route.methods.end(),
                                       [&](const std::string& m) { return sameText(m, method); });
      if (!accepts) continue;
      out.result = Match::Result::kFound;
      out.id = route.id;
      for (size_t p = 0; p < out.param_count; ++p) out.params[p].name = route.param_names[p];
      return true;
    }
    if (!node.routes.empty()) path_matched = true;
    return false;
  }
};

// Only runs for a 405, off the hot path, so it may allocate.
struct AllowVisitor {
  const Router::Impl& impl;
  std::vector<std::string_view> methods;

  template <typename Node>
  bool operator()(const Node& node, Match&) {
    for (uint32_t i : node.routes) {
      for (const std::string& m : impl.routes[i].methods) methods.push_back(m);
    }
    return false;  // keep walking: Allow lists every method that would have matched
  }
};

}  // namespace

void Router::match(std::string_view host, std::string_view method, std::string_view path,
                   Match& out) const {
  out.result = Match::Result::kNotFound;
  out.id = 0;
  out.param_count = 0;
  out.allow.clear();
  if (path.empty() || path[0] != '/') return;
  host = hostWithoutPort(host);

  FindVisitor find{*impl_, method};
  const bool found = impl_->forEachGroup(
      host, [&](const Impl::Group& group) { return walk(group, path, out, find); });
  if (found || !find.path_matched) return;

  AllowVisitor allow{*impl_, {}};
  impl_->forEachGroup(host,
                      [&](const Impl::Group& group) { return walk(group, path, out, allow); });
  out.param_count = 0;
  std::sort(allow.methods.begin(), allow.methods.end());
  allow.methods.erase(std::unique(allow.methods.begin(), allow.methods.end()), allow.methods.end());
  for (std::string_view m : allow.methods) {
    if (!out.allow.empty()) out.allow += ", ";
    out.allow += m;
  }
  out.result = Match::Result::kMethodNotAllowed;
}

std::vector<std::string> Router::describe() const {
  std::vector<std::string> lines;
  for (const Impl::Group& group : impl_->exact) impl_->describeNode(group, 0, lines);
  for (const Impl::Group& group : impl_->wildcard) impl_->describeNode(group, 0, lines);
  impl_->describeNode(impl_->any, 0, lines);
  return lines;
}

}  // namespace sluice::router
