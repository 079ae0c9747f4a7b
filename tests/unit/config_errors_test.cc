// Config errors: each class of mistake, with the exact FILE:LINE:COL a user would see.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::config {
namespace {

// The expected errors, for EXPECT_EQ against a vector (gtest prints both on failure).
template <typename... T>
std::vector<std::string> lines(T... items) {
  return {std::string(items)...};
}

// Every error of `yaml` as "FILE:LINE:COL: message".
std::vector<std::string> errorsOf(const std::string& yaml) {
  LoadResult result = loadString(yaml, "test.yaml");
  std::vector<std::string> out;
  for (const Error& e : result.errors) out.push_back(e.str());
  EXPECT_EQ(result.config == nullptr, !out.empty());
  return out;
}

constexpr const char* kListeners = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
)";

// --- YAML-level errors --------------------------------------------------------------

TEST(Errors, SyntaxErrorIsOneErrorAtParserMark) {
  auto errors = errorsOf("listeners:\n  - name: a\n    address: [1, 2\nroutes: []\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].starts_with("test.yaml:4:7: ")) << errors[0];
}

TEST(Errors, EmptyDocumentAndNonMapRoot) {
  EXPECT_EQ(errorsOf("# nothing here\n"), lines("test.yaml:1:1: the configuration is empty"));
  EXPECT_EQ(errorsOf("- a\n- b\n"), lines("test.yaml:1:1: expected a map"));
}

TEST(Errors, MoreThanOneDocument) {
  EXPECT_EQ(errorsOf(std::string(kListeners) + "routes: []\n---\nworkers: 2\n"),
            lines("test.yaml:5:1: expected one YAML document; this is the start of another one"));
}

// yaml-cpp 0.7's LoadAll loops forever on these; the loader must return an error.
TEST(Errors, StrayCommaIsASyntaxErrorNotAHang) {
  EXPECT_EQ(errorsOf(",\n"), lines("test.yaml:1:1: unexpected ','"));
  EXPECT_EQ(errorsOf(",orkers: 4\n"), lines("test.yaml:1:1: unexpected ','"));
  // YAML::Load alone would return the list and silently drop the ','.
  EXPECT_EQ(errorsOf("- a\n,\n"), lines("test.yaml:2:1: unexpected ','"));
}

TEST(Errors, DuplicateKeys) {
  EXPECT_EQ(errorsOf(std::string(kListeners) + "routes: []\nworkers: 1\nworkers: 2\n"),
            lines("test.yaml:6:1: duplicate key 'workers' (first at line 5)"));
}

// --- unknown and unsupported keys ---------------------------------------------------

TEST(Errors, UnknownTopLevelKeyWithHint) {
  EXPECT_EQ(errorsOf(std::string(kListeners) + "routes: []\nworker: 2\n"),
            lines("test.yaml:5:1: unknown key 'worker' (did you mean 'workers'?); "
                  "allowed keys: workers, drain_timeout, listeners, services, routes, filters, "
                  "plugins, admin, watch, api_keys, usage_plans, redis, functions, "
                  "function_pricing"));
}

TEST(Errors, UnknownNestedKeys) {
  auto errors = errorsOf(R"(listeners:
  - name: a
    adress: 127.0.0.1:1
routes:
  - name: r
    match: {path: /, verb: GET}
    response: {code: 200}
)");
  EXPECT_EQ(errors, lines("test.yaml:2:5: missing required key 'address'",
                          "test.yaml:3:5: unknown key 'adress' (did you mean 'address'?); "
                          "allowed keys: name, address, header_timeout, idle_timeout, "
                          "max_connections, stage, tls, h2c, http2",
                          "test.yaml:6:22: unknown key 'verb'; allowed keys: methods, path, host",
                          "test.yaml:7:16: unknown key 'code'; allowed keys: status, headers, "
                          "body"));
}

TEST(Errors, UnsupportedTopLevelKeys) {
  auto errors = errorsOf(std::string(kListeners) + R"(routes: []
admin: {address: 127.0.0.1:9901}
redis: {url: "redis://127.0.0.1"}
functions: {}
filters: []
plugins: []
)");
  EXPECT_EQ(errors, lines("test.yaml:9:1: 'plugins' needs the plugin loader, which this "
                          "program is built without"));
}

TEST(Errors, RouteHintListsOnlyWhatThisVersionSupports) {
  EXPECT_EQ(errorsOf(std::string(kListeners) + R"(routes:
  - name: r
    match: {path: /}
    response: {}
    timeout: 1s
)"),
            lines("test.yaml:8:5: unknown key 'timeout'; allowed keys: name, match, service, "
                  "function, response, max_body, filters, stage"));
}

TEST(Errors, UnsupportedNestedKeysAndBackends) {
  auto errors = errorsOf(R"(listeners:
  - name: a
    address: 127.0.0.1:1
routes:
  - name: f
    match: {path: /f}
    function: hello
    filters: [{api_key: {}}]
  - name: w
    match: {path: /w}
    websocket: chat
)");
  EXPECT_EQ(errors, lines("test.yaml:7:15: unknown function 'hello'; no functions are defined",
                          "test.yaml:8:16: unknown filter 'api_key' (known: none)",
                          "test.yaml:11:5: backend 'websocket' is not supported by this version "
                          "of sluice"));
}

// A listener's certificate and key are read when the config loads (tls_config_test has
// the rest); from a string, relative names are taken from the working directory.
TEST(Errors, ListenerTlsFilesAreReadAtLoad) {
  std::string cwd = std::filesystem::current_path().lexically_normal().string();
  if (cwd.size() > 1 && cwd.back() == '/') cwd.pop_back();
  auto errors = errorsOf(R"(listeners:
  - name: a
    address: 127.0.0.1:1
    tls: {certificate: no-such-c.pem, private_key: no-such-k.pem}
routes: []
)");
  EXPECT_EQ(errors, lines("test.yaml:4:24: cannot read certificate file 'no-such-c.pem' (" + cwd +
                              "/no-such-c.pem): No such file or directory",
                          "test.yaml:4:52: cannot read private key file 'no-such-k.pem' (" + cwd +
                              "/no-such-k.pem): No such file or directory"));
}

// --- wrong types and bad values -----------------------------------------------------

TEST(Errors, WrongTypes) {
  auto errors = errorsOf(R"(drain_timeout: [1s]
listeners: {name: a}
services:
  s:
    endpoints: 127.0.0.1:1
    max_idle_connections: many
routes:
  - name: r
    match: /x
    response: ok
)");
  EXPECT_EQ(errors, lines("test.yaml:1:16: expected a duration like 250ms, 3s, 10m, 2h",
                          "test.yaml:2:12: expected a list", "test.yaml:5:16: expected a list",
                          "test.yaml:6:27: expected an integer", "test.yaml:9:12: expected a map",
                          "test.yaml:10:15: expected a map"));
}

TEST(Errors, BareNumberDurationAndBadSize) {
  auto errors = errorsOf(R"(drain_timeout: 15
listeners:
  - name: a
    address: 127.0.0.1:1
    idle_timeout: 0s
routes:
  - name: r
    match: {path: /}
    response: {}
    max_body: 10 MiB
)");
  EXPECT_EQ(errors, lines("test.yaml:1:16: expected a duration like 250ms, 3s, 10m, 2h "
                          "(a bare number has no unit)",
                          "test.yaml:5:19: must be greater than 0",
                          "test.yaml:10:15: expected a size like 1048576, 512KiB, 10MiB, 1GB"));
}

TEST(Errors, EmptyValueIsReportedAtItsKey) {
  auto errors = errorsOf(R"(drain_timeout:
listeners:
  - name: a
    address:
routes: []
)");
  EXPECT_EQ(errors, lines("test.yaml:1:1: expected a duration like 250ms, 3s, 10m, 2h",
                          "test.yaml:4:5: expected an address like 127.0.0.1:8080"));
}

TEST(Errors, Workers) {
  auto with = [](const std::string& value) {
    return errorsOf("workers: " + value + "\n" + kListeners + "routes: []\n");
  };
  EXPECT_TRUE(with("1").empty());
  EXPECT_TRUE(with("256").empty());
  const std::string message = "test.yaml:1:10: expected 'auto' or an integer from 1 to 256";
  for (const char* bad : {"0", "257", "-1", "Auto", "two", "1.5", "[]", "99999999999999999999"}) {
    EXPECT_EQ(with(bad), lines(message)) << bad;
  }
}

TEST(Errors, IntegerRanges) {
  auto errors = errorsOf(R"(listeners:
  - name: a
    address: 127.0.0.1:1
    max_connections: 0
  - name: b
    address: 127.0.0.1:2
    max_connections: 4294967296
services:
  s:
    endpoints: [127.0.0.1:1]
    max_idle_connections: -1
    load_balancer: random
routes:
  - name: r
    match: {path: /}
    response: {status: 99}
  - name: q
    match: {path: /q}
    response: {status: 600}
)");
  EXPECT_EQ(errors,
            lines("test.yaml:4:22: must be at least 1", "test.yaml:7:22: must be at least 1",
                  "test.yaml:11:27: must be at least 0",
                  "test.yaml:12:20: unknown load balancer 'random'; expected "
                  "round_robin or least_request",
                  "test.yaml:16:24: must be between 100 and 599",
                  "test.yaml:19:24: must be between 100 and 599"));
}

TEST(Errors, MissingRequiredKeys) {
  EXPECT_EQ(errorsOf("workers: 1\n"), lines("test.yaml:1:1: missing required key 'listeners'",
                                            "test.yaml:1:1: missing required key 'routes'"));
  auto errors = errorsOf(R"(listeners:
  - address: 127.0.0.1:1
services:
  s: {}
routes:
  - match: {path: /}
    service: s
  - name: nomatch
    response: {}
  - name: nopath
    match: {host: a.com}
    response: {}
  - name: nobackend
    match: {path: /x}
)");
  EXPECT_EQ(errors, lines("test.yaml:2:5: missing required key 'name'",
                          "test.yaml:4:6: missing required key 'endpoints'",
                          "test.yaml:6:5: missing required key 'name'",
                          "test.yaml:8:5: missing required key 'match'",
                          "test.yaml:11:12: missing required key 'path'",
                          "test.yaml:13:5: missing backend: a route needs 'service', 'function' "
                          "or 'response'"));
}

TEST(Errors, EmptyListsAndBothBackends) {
  auto errors = errorsOf(R"(listeners: []
services:
  s: {endpoints: []}
routes:
  - name: r
    match: {path: /, methods: []}
    service: s
    response: {}
)");
  EXPECT_EQ(errors, lines("test.yaml:1:12: expected at least one listener",
                          "test.yaml:3:18: expected at least one endpoint",
                          "test.yaml:6:31: expected at least one method (leave out 'methods' to "
                          "match any)",
                          "test.yaml:8:5: a route has exactly one backend: 'service', "
                          "'function' or 'response', not several"));
}

TEST(Errors, EmptyListItemIsNamedAtTheList) {
  EXPECT_EQ(errorsOf(std::string(kListeners) + R"(routes:
  - name: r
    match: {path: /r}
    response: {}
  -
)"),
            lines("test.yaml:5:3: item 2 of the list is empty"));
}

TEST(Errors, DuplicateNamesAndAddresses) {
  auto errors = errorsOf(R"(listeners:
  - name: a
    address: 127.0.0.1:8080
  - name: a
    address: 127.0.0.1:8081
  - name: b
    address: 127.0.0.1:8080
  - name: c
    address: 127.0.0.1:0
  - name: d
    address: 127.0.0.1:0
routes:
  - name: r
    match: {path: /r}
    response: {}
  - name: r
    match: {path: /s}
    response: {}
)");
  EXPECT_EQ(errors, lines("test.yaml:4:11: duplicate listener name 'a' (first at line 2)",
                          "test.yaml:7:14: address 127.0.0.1:8080 is already used by listener "
                          "'a'",
                          "test.yaml:16:11: duplicate route name 'r' (first at line 13)"));
}

TEST(Errors, InvalidNames) {
  auto errors = errorsOf(R"(listeners:
  - name: "my listener"
    address: 127.0.0.1:1
services:
  "bad/name": {endpoints: [127.0.0.1:1]}
routes: []
)");
  EXPECT_EQ(errors, lines("test.yaml:2:11: invalid name 'my listener' (use letters, digits, "
                          "'_', '-' and '.')",
                          "test.yaml:5:3: invalid name 'bad/name' (use letters, digits, '_', "
                          "'-' and '.')"));
}

TEST(Errors, UnknownServiceAtServiceValue) {
  auto errors = errorsOf(std::string(kListeners) + R"(services:
  users: {endpoints: [127.0.0.1:9001]}
  orders: {endpoints: [127.0.0.1:9002]}
routes:
  - name: r
    match: {path: /}
    service: user
)");
  EXPECT_EQ(errors, lines("test.yaml:10:14: unknown service 'user'; defined services: "
                          "orders, users"));
  EXPECT_EQ(errorsOf(std::string(kListeners) +
                     "routes:\n  - name: r\n    match: {path: /}\n    service: x\n"),
            lines("test.yaml:7:14: unknown service 'x'; no services are defined"));
}

TEST(Errors, Methods) {
  auto errors = errorsOf(std::string(kListeners) + R"(routes:
  - name: r
    match: {path: /, methods: [get, "GE T", POST, POST, PURGE]}
    response: {}
)");
  EXPECT_EQ(errors, lines("test.yaml:6:32: methods are case-sensitive: write 'GET', not 'get'",
                          "test.yaml:6:37: invalid method 'GE T'",
                          "test.yaml:6:51: duplicate method 'POST'"));
}

TEST(Errors, PathAndHost) {
  auto errors = errorsOf(std::string(kListeners) + R"(routes:
  - name: r
    match: {path: users}
    response: {}
  - name: s
    match: {path: /s, host: "api.example.com:8080"}
    response: {}
  - name: t
    match: {path: /t, host: "*"}
    response: {}
)");
  EXPECT_EQ(errors, lines("test.yaml:6:19: path must start with '/'",
                          "test.yaml:9:29: invalid host 'api.example.com:8080' (expected a name "
                          "like api.example.com or *.example.com, without port)"));
}

TEST(Errors, StaticResponse) {
  auto errors = errorsOf(std::string(kListeners) + R"(routes:
  - name: r
    match: {path: /r}
    response:
      status: 204
      headers:
        "bad header": x
        Content-Length: "3"
        X-A: "a\r\nX-Injected: 1"
        x-b: 1
        X-B: 2
      body: abc
)");
  EXPECT_EQ(errors, lines("test.yaml:10:9: invalid header name 'bad header'",
                          "test.yaml:11:9: 'Content-Length' is set by sluice from the body",
                          "test.yaml:12:14: header values must not contain CR, LF or NUL",
                          "test.yaml:14:9: duplicate header 'X-B'",
                          "test.yaml:15:13: a 204 response cannot have a body"));
}

// --- addresses ----------------------------------------------------------------------

TEST(Addresses, ErrorsAtTheValue) {
  auto errors = errorsOf(R"(listeners:
  - name: a
    address: 127.0.0.1:70000
  - name: b
    address: 127.0.0.1:http
  - name: c
    address: 127.0.0.1
  - name: d
    address: ::1:8080
  - name: e
    address: "[::1]8080"
  - name: f
    address: "[::g]:80"
  - name: g
    address: ":80"
services:
  s: {endpoints: ["127.0.0.1:0", "[::1]:99999"]}
routes: []
)");
  EXPECT_EQ(errors,
            lines("test.yaml:3:14: invalid port '70000' (expected 0 to 65535)",
                  "test.yaml:5:14: invalid port 'http' (expected 0 to 65535)",
                  "test.yaml:7:14: expected host:port, like 127.0.0.1:8080, got '127.0.0.1'",
                  "test.yaml:9:14: IPv6 addresses must be written in brackets, like [::1]:8080",
                  "test.yaml:11:14: expected [IPv6]:port, like [::1]:8080, got '[::1]8080'",
                  "test.yaml:13:14: invalid IPv6 address '::g'",
                  "test.yaml:15:14: missing host in ':80' (use 0.0.0.0 or [::] for all "
                  "interfaces)",
                  "test.yaml:17:19: port 0 is not valid here",
                  "test.yaml:17:34: invalid port '99999' (expected 0 to 65535)"));
}

// --- errors collected together, router errors ---------------------------------------

TEST(Errors, AllCollectedInFileOrder) {
  auto errors = errorsOf(R"(routes:
  - name: r
    match: {path: /}
    service: nope
workers: zero
listeners:
  - name: a
    address: 127.0.0.1:99999
    header_timeout: soon
services:
  s: {endpoints: [127.0.0.1:1], colour: blue}
admin: {adress: 127.0.0.1:1}
)");
  EXPECT_EQ(errors, lines("test.yaml:4:14: unknown service 'nope'; defined services: s",
                          "test.yaml:5:10: expected 'auto' or an integer from 1 to 256",
                          "test.yaml:8:14: invalid port '99999' (expected 0 to 65535)",
                          "test.yaml:9:21: expected a duration like 250ms, 3s, 10m, 2h",
                          "test.yaml:11:33: unknown key 'colour'; allowed keys: endpoints, "
                          "load_balancer, connect_timeout, timeout, max_idle_connections, tls, "
                          "protocol",
                          "test.yaml:12:9: unknown key 'adress' (did you mean 'address'?); "
                          "allowed keys: address, token"));
}

TEST(Errors, AmbiguousRoutesAtTheLaterRoute) {
  LoadResult result = loadString(std::string(kListeners) + R"(routes:
  - name: first
    match: {path: "/users/{id}"}
    response: {}
  - name: other
    match: {path: /other}
    response: {}
  - name: second
    match: {path: "/users/{name}"}
    response: {}
)",
                                 "test.yaml");
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 11);
  EXPECT_EQ(result.errors[0].column, 5);
  EXPECT_NE(result.errors[0].message.find("first"), std::string::npos) << result.errors[0].str();
}

TEST(Errors, RouterTemplateErrorsAtTheRoute) {
  LoadResult result = loadString(std::string(kListeners) + R"(routes:
  - name: ok
    match: {path: /ok}
    response: {}
  - name: greedy
    match: {path: "/files/{rest+}/x"}
    response: {}
)",
                                 "test.yaml");
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 8);
  EXPECT_EQ(result.errors[0].column, 5);
}

}  // namespace
}  // namespace sluice::config
