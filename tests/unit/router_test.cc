#include "gateway/router/router.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

// Counts heap allocations so the no-allocation promise of match() is tested, not assumed.
// Every form of new/delete is replaced so that all of them agree on malloc/free.
namespace {
std::atomic<size_t> g_allocations{0};

void* countedAlloc(std::size_t size) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}

void* countedAllocOrThrow(std::size_t size) {
  if (void* p = countedAlloc(size)) return p;
  throw std::bad_alloc();
}
}  // namespace

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) { return countedAllocOrThrow(size); }
void* operator new[](std::size_t size) { return countedAllocOrThrow(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return countedAlloc(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return countedAlloc(size);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace sluice::router {
namespace {

RouteSpec route(std::string name, std::string path, std::vector<std::string> methods = {},
                std::string host = "") {
  RouteSpec spec;
  spec.name = std::move(name);
  spec.path = std::move(path);
  spec.methods = std::move(methods);
  spec.host = std::move(host);
  return spec;
}

// A router over `specs` (ids are their indexes) with a compact way to ask what matched.
class Table {
 public:
  explicit Table(std::vector<RouteSpec> specs) : specs_(std::move(specs)) {
    for (size_t i = 0; i < specs_.size(); ++i) specs_[i].id = i;
    router_ = Router::build(specs_, errors_);
    for (const BuildError& e : errors_) ADD_FAILURE() << e.message;
  }

  // The matched route's name, "404", or "405 <allow>".
  std::string get(std::string_view method, std::string_view path, std::string_view host = "") {
    if (!router_) return "no router";
    router_->match(host, method, path, last_);
    switch (last_.result) {
      case Match::Result::kFound:
        return specs_.at(last_.id).name;
      case Match::Result::kNotFound:
        return "404";
      case Match::Result::kMethodNotAllowed:
        return "405 " + last_.allow;
    }
    return "?";
  }

  // "name=value,name=value" from the last match.
  std::string params() const {
    std::string out;
    for (size_t i = 0; i < last_.param_count; ++i) {
      if (!out.empty()) out += ',';
      out += std::string(last_.params[i].name) + "=" + std::string(last_.params[i].value);
    }
    return out;
  }

  const Router& router() const { return *router_; }
  const Match& last() const { return last_; }

 private:
  std::vector<RouteSpec> specs_;
  std::vector<BuildError> errors_;
  std::unique_ptr<Router> router_;
  Match last_;
};

std::vector<BuildError> buildErrors(std::vector<RouteSpec> specs) {
  for (size_t i = 0; i < specs.size(); ++i) specs[i].id = i;
  std::vector<BuildError> errors;
  std::unique_ptr<Router> router = Router::build(specs, errors);
  EXPECT_EQ(router == nullptr, !errors.empty());
  return errors;
}

TEST(RouterPrecedence, LiteralBeatsParam) {
  Table t({route("user", "/users/{id}"), route("me", "/users/me")});
  EXPECT_EQ(t.get("GET", "/users/me"), "me");
  EXPECT_EQ(t.params(), "");
  EXPECT_EQ(t.get("GET", "/users/42"), "user");
  EXPECT_EQ(t.params(), "id=42");
}

TEST(RouterPrecedence, ParamBeatsGreedy) {
  Table t({route("any", "/files/{path+}"), route("one", "/files/{name}")});
  EXPECT_EQ(t.get("GET", "/files/a"), "one");
  EXPECT_EQ(t.params(), "name=a");
  EXPECT_EQ(t.get("GET", "/files/a/b"), "any");
  EXPECT_EQ(t.params(), "path=a/b");
}

TEST(RouterPrecedence, LeftmostSegmentDecides) {
  Table t({route("right", "/{x}/b"), route("left", "/a/{y}")});
  EXPECT_EQ(t.get("GET", "/a/b"), "left");
  EXPECT_EQ(t.params(), "y=b");
  EXPECT_EQ(t.get("GET", "/z/b"), "right");
  EXPECT_EQ(t.params(), "x=z");
}

TEST(RouterPrecedence, BacktracksFromLiteralToParam) {
  Table t({route("abc", "/a/b/c"), route("axd", "/a/{x}/d")});
  EXPECT_EQ(t.get("GET", "/a/b/c"), "abc");
  EXPECT_EQ(t.get("GET", "/a/b/d"), "axd");
  EXPECT_EQ(t.params(), "x=b");
  EXPECT_EQ(t.get("GET", "/a/b/e"), "404");
}

TEST(RouterPrecedence, BacktracksAcrossSeveralLevelsAndToGreedy) {
  Table t({route("deep", "/a/b/c/d"), route("mid", "/a/{x}/c/e"), route("top", "/{y}/b/{z}/f"),
           route("rest", "/a/{p+}")});
  EXPECT_EQ(t.get("GET", "/a/b/c/d"), "deep");
  EXPECT_EQ(t.get("GET", "/a/b/c/e"), "mid");
  EXPECT_EQ(t.params(), "x=b");
  EXPECT_EQ(t.get("GET", "/a/b/c/f"), "rest");
  EXPECT_EQ(t.params(), "p=b/c/f");
  EXPECT_EQ(t.get("GET", "/q/b/c/f"), "top");
  EXPECT_EQ(t.params(), "y=q,z=c");
  // A failed deeper branch must not leave its parameters behind.
  EXPECT_EQ(t.get("GET", "/a/b/c/g"), "rest");
  EXPECT_EQ(t.last().param_count, 1u);
}

TEST(RouterPrecedence, MethodListBeatsNoMethods) {
  Table t({route("any", "/x"), route("get", "/x", {"GET"})});
  EXPECT_EQ(t.get("GET", "/x"), "get");
  EXPECT_EQ(t.get("POST", "/x"), "any");
}

TEST(RouterPrecedence, ShapeBeatsMethodList) {
  Table t({route("param-get", "/a/{x}", {"GET"}), route("literal-any", "/a/b")});
  EXPECT_EQ(t.get("GET", "/a/b"), "literal-any");
  EXPECT_EQ(t.get("GET", "/a/c"), "param-get");
}

TEST(RouterPrecedence, MethodMismatchFallsBackToLessSpecificShape) {
  Table t({route("literal", "/a/b", {"GET"}), route("param", "/a/{x}", {"POST"})});
  EXPECT_EQ(t.get("POST", "/a/b"), "param");
  EXPECT_EQ(t.params(), "x=b");
  EXPECT_EQ(t.get("GET", "/a/b"), "literal");
  EXPECT_EQ(t.params(), "");
}

TEST(RouterPrecedence, SameShapeDifferentMethodsKeepTheirOwnParamNames) {
  Table t({route("get", "/u/{id}", {"GET"}), route("delete", "/u/{user}", {"DELETE"})});
  EXPECT_EQ(t.get("GET", "/u/7"), "get");
  EXPECT_EQ(t.params(), "id=7");
  EXPECT_EQ(t.get("DELETE", "/u/7"), "delete");
  EXPECT_EQ(t.params(), "user=7");
}

TEST(RouterHosts, ExactBeatsWildcardBeatsAny) {
  Table t({route("any", "/p"), route("wild", "/p", {}, "*.example.com"),
           route("exact", "/p", {}, "api.example.com")});
  EXPECT_EQ(t.get("GET", "/p", "api.example.com"), "exact");
  EXPECT_EQ(t.get("GET", "/p", "www.example.com"), "wild");
  EXPECT_EQ(t.get("GET", "/p", "a.b.example.com"), "wild");
  EXPECT_EQ(t.get("GET", "/p", "example.com"), "any");
  EXPECT_EQ(t.get("GET", "/p", "other.org"), "any");
  EXPECT_EQ(t.get("GET", "/p", ""), "any");
  EXPECT_EQ(t.get("GET", "/p", "xexample.com"), "any");
}

TEST(RouterHosts, LongestWildcardSuffixFirst) {
  Table t({route("short", "/p", {}, "*.example.com"), route("long", "/p", {}, "*.eu.example.com")});
  EXPECT_EQ(t.get("GET", "/p", "x.eu.example.com"), "long");
  EXPECT_EQ(t.get("GET", "/p", "eu.example.com"), "short");
  EXPECT_EQ(t.get("GET", "/p", "x.us.example.com"), "short");
}

TEST(RouterHosts, HostGroupPrecedesShape) {
  // The exact host's param route wins over a host-less literal one.
  Table t({route("any-literal", "/u/me"), route("host-param", "/u/{id}", {}, "api.example.com")});
  EXPECT_EQ(t.get("GET", "/u/me", "api.example.com"), "host-param");
  EXPECT_EQ(t.get("GET", "/u/me", "other.example.com"), "any-literal");
}

TEST(RouterHosts, PathMissInHostGroupFallsThrough) {
  Table t({route("host", "/only-here", {}, "api.example.com"), route("any", "/elsewhere")});
  EXPECT_EQ(t.get("GET", "/elsewhere", "api.example.com"), "any");
  EXPECT_EQ(t.get("GET", "/only-here", "other.com"), "404");
}

TEST(RouterHosts, MethodMissInHostGroupFallsThroughThen405) {
  Table t({route("host-get", "/p", {"GET"}, "api.example.com"), route("any-post", "/p", {"POST"})});
  EXPECT_EQ(t.get("GET", "/p", "api.example.com"), "host-get");
  EXPECT_EQ(t.get("POST", "/p", "api.example.com"), "any-post");
  EXPECT_EQ(t.get("DELETE", "/p", "api.example.com"), "405 GET, POST");
  EXPECT_EQ(t.get("GET", "/p", "other.com"), "405 POST");
}

TEST(RouterHosts, OnlyHostGroupHasPath405) {
  Table t({route("host-get", "/p", {"GET"}, "*.example.com"), route("any", "/q")});
  EXPECT_EQ(t.get("PUT", "/p", "a.example.com"), "405 GET");
  EXPECT_EQ(t.get("PUT", "/p", "a.example.org"), "404");
}

TEST(RouterHosts, CaseAndPortAreIgnored) {
  Table t({route("exact", "/p", {}, "API.Example.com"), route("wild", "/p", {}, "*.Example.ORG"),
           route("v6", "/p", {}, "[::1]"), route("v4", "/p", {}, "127.0.0.1")});
  EXPECT_EQ(t.get("GET", "/p", "api.example.com"), "exact");
  EXPECT_EQ(t.get("GET", "/p", "API.EXAMPLE.COM:8443"), "exact");
  EXPECT_EQ(t.get("GET", "/p", "api.example.com."), "exact");
  EXPECT_EQ(t.get("GET", "/p", "api.example.com.:80"), "exact");
  EXPECT_EQ(t.get("GET", "/p", "Www.EXAMPLE.org:80"), "wild");
  EXPECT_EQ(t.get("GET", "/p", "[::1]:8080"), "v6");
  EXPECT_EQ(t.get("GET", "/p", "[::1]"), "v6");
  EXPECT_EQ(t.get("GET", "/p", "127.0.0.1:9000"), "v4");
  EXPECT_EQ(t.get("GET", "/p", "[::2]:8080"), "404");
}

TEST(RouterHosts, ManyExactHostsAreSearched) {
  std::vector<RouteSpec> specs;
  for (int i = 0; i < 50; ++i) {
    const std::string host = "h" + std::to_string(i) + ".example.com";
    specs.push_back(route(host, "/", {}, host));
  }
  Table t(specs);
  for (int i = 0; i < 50; ++i) {
    const std::string host = "H" + std::to_string(i) + ".Example.com";
    EXPECT_EQ(t.get("GET", "/", host), "h" + std::to_string(i) + ".example.com");
  }
  EXPECT_EQ(t.get("GET", "/", "h50.example.com"), "404");
}

TEST(RouterParams, ValuesAndNames) {
  Table t({route("post", "/users/{uid}/posts/{pid}")});
  EXPECT_EQ(t.get("GET", "/users/alice/posts/7"), "post");
  EXPECT_EQ(t.params(), "uid=alice,pid=7");
}

TEST(RouterParams, ValuesAreViewsIntoThePath) {
  Table t({route("user", "/users/{id}")});
  const std::string path = "/users/42";
  EXPECT_EQ(t.get("GET", path), "user");
  EXPECT_EQ(t.last().params[0].value.data(), path.data() + 7);
}

TEST(RouterParams, Greedy) {
  Table t({route("files", "/files/{p+}")});
  EXPECT_EQ(t.get("GET", "/files/a"), "files");
  EXPECT_EQ(t.params(), "p=a");
  EXPECT_EQ(t.get("GET", "/files/a/b/c.txt"), "files");
  EXPECT_EQ(t.params(), "p=a/b/c.txt");
  EXPECT_EQ(t.get("GET", "/files/a/b/"), "files");
  EXPECT_EQ(t.params(), "p=a/b/");
  EXPECT_EQ(t.get("GET", "/files"), "404");
  EXPECT_EQ(t.get("GET", "/files/"), "404");
  EXPECT_EQ(t.get("GET", "/filesx/a"), "404");
}

TEST(RouterParams, GreedyAtRoot) {
  Table t({route("all", "/{proxy+}")});
  EXPECT_EQ(t.get("GET", "/a/b"), "all");
  EXPECT_EQ(t.params(), "proxy=a/b");
  EXPECT_EQ(t.get("GET", "/"), "404");
}

TEST(RouterParams, ParamNeedsANonEmptySegment) {
  Table t({route("a", "/a/{x}/b")});
  EXPECT_EQ(t.get("GET", "/a/x/b"), "a");
  EXPECT_EQ(t.get("GET", "/a//b"), "404");
  EXPECT_EQ(t.get("GET", "/a/b"), "404");
}

TEST(RouterPaths, RootAndTrailingSlash) {
  Table t({route("root", "/"), route("a", "/a/"), route("b", "/b"), route("cx", "/c/{x}/")});
  EXPECT_EQ(t.get("GET", "/"), "root");
  EXPECT_EQ(t.get("GET", "/a"), "a");
  EXPECT_EQ(t.get("GET", "/a/"), "a");
  EXPECT_EQ(t.get("GET", "/b"), "b");
  EXPECT_EQ(t.get("GET", "/b/"), "b");
  EXPECT_EQ(t.get("GET", "/c/1/"), "cx");
  EXPECT_EQ(t.params(), "x=1");
  EXPECT_EQ(t.get("GET", "/c/1"), "cx");
  EXPECT_EQ(t.get("GET", "/d"), "404");
}

TEST(RouterPaths, LiteralsAreCaseSensitiveAndPercentNormalised) {
  Table t({route("users", "/users"), route("tilde", "/%7euser"), route("slash", "/a%2fb")});
  EXPECT_EQ(t.get("GET", "/users"), "users");
  EXPECT_EQ(t.get("GET", "/Users"), "404");
  EXPECT_EQ(t.get("GET", "/~user"), "tilde");
  EXPECT_EQ(t.get("GET", "/a%2Fb"), "slash");
  EXPECT_EQ(t.get("GET", "/a/b"), "404");
}

TEST(RouterPaths, NotOriginForm) {
  Table t({route("all", "/{p+}"), route("root", "/")});
  EXPECT_EQ(t.get("OPTIONS", "*"), "404");
  EXPECT_EQ(t.get("GET", ""), "404");
}

TEST(RouterMethods, NotFoundVersusMethodNotAllowed) {
  Table t(
      {route("read", "/x", {"POST", "GET"}), route("delete", "/x", {"DELETE"}), route("y", "/y")});
  EXPECT_EQ(t.get("GET", "/x"), "read");
  EXPECT_EQ(t.get("DELETE", "/x"), "delete");
  EXPECT_EQ(t.get("PUT", "/x"), "405 DELETE, GET, POST");
  EXPECT_EQ(t.get("PUT", "/y"), "y");
  EXPECT_EQ(t.get("PUT", "/z"), "404");
  EXPECT_EQ(t.last().allow, "");
}

TEST(RouterMethods, AllowIsTheUnionOverMatchingShapes) {
  Table t({route("literal", "/a/b", {"GET", "PATCH"}), route("param", "/a/{x}", {"POST", "GET"}),
           route("other", "/c", {"DELETE"})});
  EXPECT_EQ(t.get("PUT", "/a/b"), "405 GET, PATCH, POST");
  EXPECT_EQ(t.last().param_count, 0u);
  EXPECT_EQ(t.get("PUT", "/a/c"), "405 GET, POST");
}

TEST(RouterMethods, HeadIsNotImpliedByGet) {
  Table t({route("get", "/x", {"GET"})});
  EXPECT_EQ(t.get("HEAD", "/x"), "405 GET");
  EXPECT_EQ(t.get("get", "/x"), "405 GET");
}

TEST(RouterMethods, MatchResetsAPreviousResult) {
  Table t({route("get", "/x/{id}", {"GET"})});
  EXPECT_EQ(t.get("PUT", "/x/1"), "405 GET");
  EXPECT_EQ(t.get("GET", "/x/1"), "get");
  EXPECT_EQ(t.last().allow, "");
  EXPECT_EQ(t.get("GET", "/nothing"), "404");
  EXPECT_EQ(t.last().param_count, 0u);
}

TEST(RouterBuild, EmptyRouter) {
  Table t({});
  EXPECT_EQ(t.get("GET", "/"), "404");
  EXPECT_TRUE(t.router().describe().empty());
}

TEST(RouterBuild, AmbiguousRoutesNameBoth) {
  const auto errors = buildErrors({route("a", "/u/{id}"), route("b", "/u/{uid}")});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].id, 1u);
  EXPECT_EQ(errors[0].message,
            "route \"b\" is ambiguous with route \"a\": same host, path shape and methods");
}

TEST(RouterBuild, AmbiguityCases) {
  // Overlapping method sets.
  EXPECT_EQ(
      buildErrors({route("a", "/x", {"GET", "POST"}), route("b", "/x", {"PUT", "POST"})}).size(),
      1u);
  // Trailing slash and percent spelling do not make a different template.
  EXPECT_EQ(buildErrors({route("a", "/x/"), route("b", "/x")}).size(), 1u);
  EXPECT_EQ(buildErrors({route("a", "/%7ex"), route("b", "/~x")}).size(), 1u);
  // Host case does not make a different host.
  EXPECT_EQ(buildErrors({route("a", "/x", {}, "A.com"), route("b", "/x", {}, "a.com")}).size(), 1u);
  EXPECT_EQ(buildErrors({route("a", "/x", {}, ""), route("b", "/x", {}, "*")}).size(), 1u);
  // Greedy names are ignored too.
  EXPECT_EQ(buildErrors({route("a", "/f/{p+}"), route("b", "/f/{q+}")}).size(), 1u);
}

TEST(RouterBuild, NotAmbiguous) {
  EXPECT_TRUE(buildErrors({route("a", "/x", {"GET"}), route("b", "/x", {"POST"})}).empty());
  EXPECT_TRUE(buildErrors({route("a", "/x", {"GET"}), route("b", "/x")}).empty());
  EXPECT_TRUE(buildErrors({route("a", "/x", {}, "a.com"), route("b", "/x")}).empty());
  EXPECT_TRUE(
      buildErrors({route("a", "/x", {}, "*.a.com"), route("b", "/x", {}, "x.a.com")}).empty());
  EXPECT_TRUE(buildErrors({route("a", "/{x}"), route("b", "/{x+}")}).empty());
  EXPECT_TRUE(buildErrors({route("a", "/x"), route("b", "/X")}).empty());
  EXPECT_TRUE(buildErrors({route("a", "/x", {"GET", "GET"}), route("b", "/x", {"PUT"})}).empty());
}

TEST(RouterBuild, AllErrorsAreReported) {
  const auto errors = buildErrors({route("a", "/x"), route("bad", "nope"), route("c", "/x"),
                                   route("d", "/x"), route("ok", "/y")});
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].id, 1u);
  EXPECT_EQ(errors[1].id, 2u);
  EXPECT_EQ(errors[2].id, 3u);
  EXPECT_NE(errors[2].message.find("route \"d\" is ambiguous with route \"a\""), std::string::npos);
}

struct BadTemplate {
  const char* path;
  const char* reason;  // a fragment the message must contain
};

TEST(RouterBuild, InvalidTemplates) {
  std::string seventeen;
  for (int i = 0; i < 17; ++i) seventeen += "/{p" + std::to_string(i) + "}";
  const BadTemplate cases[] = {
      {"", "must start with '/'"},
      {"users", "must start with '/'"},
      {"//", "empty segment"},
      {"/a//b", "empty segment"},
      {"/a{b}", "no mixed segments"},
      {"/{a}b", "no mixed segments"},
      {"/{a", "no mixed segments"},
      {"/a}", "no mixed segments"},
      {"/{{a}}", "no mixed segments"},
      {"/{}", "has no name"},
      {"/{+}", "has no name"},
      {"/{a-b}", "A-Z, a-z, 0-9 and _"},
      {"/{a+b}", "A-Z, a-z, 0-9 and _"},
      {"/{a}/{a}", "duplicate parameter name \"a\""},
      {"/{a}/{a+}", "duplicate parameter name \"a\""},
      {"/{p+}/x", "must be the last segment"},
      {"/.", "dot segment"},
      {"/a/../b", "dot segment"},
      {"/%2e", "dot segment"},
      {"/%zz", "bad or control-character escape"},
      {"/a%00", "bad or control-character escape"},
      {"/a b", "control character"},
      {"/a?b", "'?' or '#'"},
      {seventeen.c_str(), "more than 16 parameters"},
  };
  for (const BadTemplate& c : cases) {
    const auto errors = buildErrors({route("r", c.path)});
    ASSERT_EQ(errors.size(), 1u) << c.path;
    EXPECT_NE(errors[0].message.find("route \"r\": path \"" + std::string(c.path) + "\""),
              std::string::npos)
        << errors[0].message;
    EXPECT_NE(errors[0].message.find(c.reason), std::string::npos) << errors[0].message;
  }
}

TEST(RouterBuild, SixteenParamsAreFine) {
  std::string path;
  for (int i = 0; i < 16; ++i) {
    path += "/{p" + std::to_string(i) + "}";
  }
  Table t({route("many", path)});
  EXPECT_EQ(t.get("GET", "/0/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15"), "many");
  EXPECT_EQ(t.last().param_count, 16u);
  EXPECT_EQ(t.last().params[15].name, "p15");
  EXPECT_EQ(t.last().params[15].value, "15");
}

TEST(RouterBuild, InvalidHostsAndMethods) {
  const char* bad_hosts[] = {"a.com:80", "a.*.com", "*a.com",  "*.",  "a..com",
                             ".a.com",   "[::1",    "*.[::1]", "a b", "[::1]:80"};
  for (const char* host : bad_hosts) {
    const auto errors = buildErrors({route("r", "/", {}, host)});
    ASSERT_EQ(errors.size(), 1u) << host;
    EXPECT_NE(errors[0].message.find("route \"r\": host \"" + std::string(host) + "\""),
              std::string::npos)
        << errors[0].message;
  }
  for (const char* method : {"get", "", "GE T", "GET\r"}) {
    const auto errors = buildErrors({route("r", "/", {method})});
    ASSERT_EQ(errors.size(), 1u) << method;
    EXPECT_NE(errors[0].message.find("is not an upper-case token"), std::string::npos);
  }
  EXPECT_TRUE(buildErrors({route("r", "/", {"M-SEARCH", "PROPFIND"}, "my_host.local.")}).empty());
}

TEST(RouterDescribe, OneLinePerRouteInPrecedenceOrder) {
  Table t({route("any", "/{p+}"), route("users", "/users/{id}", {"POST", "GET"}, "API.example.com"),
           route("wild", "/", {}, "*.example.com"), route("me", "/users/me"),
           route("trail", "/t/")});
  const std::vector<std::string> want = {
      "[1] users api.example.com GET,POST /users/{id}",
      "[2] wild *.example.com * /",
      "[4] trail * * /t",
      "[3] me * * /users/me",
      "[0] any * * /{p+}",
  };
  EXPECT_EQ(t.router().describe(), want);
}

TEST(RouterPerformance, MatchDoesNotAllocate) {
  std::vector<RouteSpec> specs;
  for (const char* name : {"users", "orders", "items", "carts", "payments"}) {
    const std::string base = std::string("/v1/") + name;
    specs.push_back(route(std::string(name) + "-list", base, {"GET"}));
    specs.push_back(route(std::string(name) + "-create", base, {"POST"}));
    specs.push_back(route(std::string(name) + "-get", base + "/{id}", {"GET"}, "api.example.com"));
    specs.push_back(route(std::string(name) + "-rest", base + "/{id}/{rest+}"));
  }
  Table t(specs);
  Match match;
  const Router& router = t.router();
  const size_t before = g_allocations.load();
  router.match("api.example.com:443", "GET", "/v1/orders/42", match);
  EXPECT_EQ(match.result, Match::Result::kFound);
  router.match("other", "GET", "/v1/payments/7/refunds/3", match);
  EXPECT_EQ(match.result, Match::Result::kFound);
  router.match("API.EXAMPLE.COM", "POST", "/v1/carts", match);
  EXPECT_EQ(match.result, Match::Result::kFound);
  router.match("x.example.com", "GET", "/v2/nothing/here", match);
  EXPECT_EQ(match.result, Match::Result::kNotFound);
  EXPECT_EQ(g_allocations.load(), before);
  // The counter works: building Allow for a 405 is allowed to allocate, and does.
  router.match("", "DELETE", "/v1/users", match);
  EXPECT_EQ(match.result, Match::Result::kMethodNotAllowed);
  EXPECT_GT(g_allocations.load(), before);
}

}  // namespace
}  // namespace sluice::router
