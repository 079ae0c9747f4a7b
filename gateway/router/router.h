// Route matching on host, method and path template. Built once per config snapshot
// (immutable afterwards, shared read-only by all workers); matching never allocates.
// Knows nothing of backends or filters: a match is just an index into the route list.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::router {

inline constexpr size_t kMaxParams = 16;

struct RouteSpec {
  size_t id = 0;                     // returned by match(); usually the route's index
  std::string name;                  // for error messages
  std::string host;                  // "" = any; "api.example.com"; "*.example.com"
  std::vector<std::string> methods;  // empty = any method
  std::string path;                  // "/users/{id}/posts", "/files/{path+}", "/"
};

struct BuildError {
  size_t id;  // which spec (the later of two ambiguous routes)
  std::string message;
};

struct Param {
  std::string_view name;   // view into the Router (lives as long as it)
  std::string_view value;  // view into the path passed to match()
};

struct Match {
  enum class Result : uint8_t { kFound, kNotFound, kMethodNotAllowed };
  Result result = Result::kNotFound;
  size_t id = 0;
  Param params[kMaxParams];
  size_t param_count = 0;
  // kMethodNotAllowed: the methods that would have matched, "GET, POST" (for Allow).
  std::string allow;
};

class Router {
 public:
  // Validates templates (segments, `{name}`, greedy `{name+}` only as the last
  // segment, no duplicate parameter names) and rejects ambiguous routes: same host,
  // same template shape, overlapping methods. Returns null if errors were added.
  //
  // Templates: a segment is a literal, `{name}` (one non-empty segment) or `{name+}`
  // (one or more segments; its value is the rest of the path, slashes included, and a
  // trailing slash of the path too). Names are [A-Za-z0-9_]. No empty segments, no
  // mixed segments ("a{b}"), no "." or ".." (a normalised path never has them). A
  // trailing slash is not significant: "/a/" is the template "/a" and both "/a" and
  // "/a/" match it. Literals are case-sensitive and compared after the same
  // percent-escape normalisation as request paths ("%7e" is "~").
  // Hosts: "" or "*" (any), "api.example.com", "*.example.com" (one or more labels
  // before ".example.com", not "example.com" itself); case-insensitive, no port.
  // Methods: upper-case tokens, compared exactly (GET does not imply HEAD).
  static std::unique_ptr<Router> build(const std::vector<RouteSpec>& specs,
                                       std::vector<BuildError>& errors);

  // `host` is the Host header (a port suffix and a trailing dot are ignored, compared
  // case-insensitively);
  // `path` must already be normalised (see path.h). Precedence: exact host, then
  // wildcard host, then host-less routes; within those, per segment from the left a
  // literal beats {param} beats {param+}; then a route listing the method beats one
  // with no method list. A route whose path matches but whose methods do not makes
  // the search go on (to another shape, then to a less specific host group); only if
  // nothing accepts the method is the result kMethodNotAllowed, with `allow` the union
  // of the methods of every route whose host and path matched.
  void match(std::string_view host, std::string_view method, std::string_view path,
             Match& out) const;

  // One line per route, in precedence order: for `sluice validate` and /routes.
  std::vector<std::string> describe() const;

  ~Router();
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::router
