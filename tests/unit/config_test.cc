// Config loading: value parsers, valid configs into structs, summary, files, addresses
// and environment substitution. Error reporting is in config_errors_test.cc.
#include "config/config.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "config/yaml_reader.h"

namespace sluice::config {
namespace {

// The expected errors, for EXPECT_EQ against a vector (gtest prints both on failure).
template <typename... T>
std::vector<std::string> lines(T... items) {
  return {std::string(items)...};
}

using namespace std::chrono_literals;

// Every error of `yaml` as "FILE:LINE:COL: message".
std::vector<std::string> errorsOf(const std::string& yaml) {
  LoadResult result = loadString(yaml, "test.yaml");
  std::vector<std::string> out;
  for (const Error& e : result.errors) out.push_back(e.str());
  EXPECT_EQ(result.config == nullptr, !out.empty());
  return out;
}

std::shared_ptr<const Config> loadOk(const std::string& yaml) {
  LoadResult result = loadString(yaml, "test.yaml");
  for (const Error& e : result.errors) ADD_FAILURE() << e.str();
  return result.config;
}

constexpr const char* kListeners = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
)";

// --- durations, sizes, Error::str ---------------------------------------------------

TEST(ParseDuration, Valid) {
  struct {
    const char* text;
    int64_t ms;
  } cases[] = {
      {"0ms", 0},       {"0s", 0},     {"250ms", 250},  {"1s", 1000},
      {"1.5s", 1500},   {"0.001s", 1}, {"10m", 600000}, {"2h", 7200000},
      {"1.25m", 75000}, {"1.0ms", 1},  {"007s", 7000},  {"0.5h", 1800000},
  };
  for (const auto& c : cases) {
    Duration d{-1};
    EXPECT_TRUE(parseDuration(c.text, d)) << c.text;
    EXPECT_EQ(d.count(), c.ms) << c.text;
  }
}

TEST(ParseDuration, Invalid) {
  for (const char* text : {"",
                           "10",
                           "1.5",
                           "s",
                           "ms",
                           "-1s",
                           "+1s",
                           "1 s",
                           " 1s",
                           "1s ",
                           "1S",
                           "1sec",
                           "1d",
                           "1.s",
                           ".5s",
                           "1..5s",
                           "1.5ms",
                           "0.0001s",
                           "1e3ms",
                           "1s1",
                           "99999999999999999999h",
                           "5124095576030432h"}) {
    Duration d{};
    EXPECT_FALSE(parseDuration(text, d)) << text;
  }
}

TEST(ParseSize, Valid) {
  struct {
    const char* text;
    uint64_t bytes;
  } cases[] = {
      {"0", 0},
      {"1048576", 1048576},
      {"1KB", 1000},
      {"10MB", 10'000'000},
      {"1GB", 1'000'000'000},
      {"512KiB", 512 * 1024},
      {"10MiB", 10 * 1024 * 1024},
      {"1GiB", 1024ull * 1024 * 1024},
      {"16384GiB", 16384ull * 1024 * 1024 * 1024},
  };
  for (const auto& c : cases) {
    uint64_t size = 7;
    EXPECT_TRUE(parseSize(c.text, size)) << c.text;
    EXPECT_EQ(size, c.bytes) << c.text;
  }
}

TEST(ParseSize, Invalid) {
  for (const char* text : {"", "MiB", "1.5MiB", "-1", "10 MiB", "10mib", "10kb", "10K", "10B",
                           "10TiB", "1e6", "18446744073709551616", "18446744073709551615KB"}) {
    uint64_t size = 0;
    EXPECT_FALSE(parseSize(text, size)) << text;
  }
}

TEST(ErrorStr, Formats) {
  EXPECT_EQ((Error{"a.yaml", 3, 7, "boom"}).str(), "a.yaml:3:7: boom");
  EXPECT_EQ((Error{"a.yaml", 3, 0, "boom"}).str(), "a.yaml:3: boom");
  EXPECT_EQ((Error{"a.yaml", 0, 0, "boom"}).str(), "a.yaml: boom");
}

// --- valid configs ------------------------------------------------------------------

constexpr const char* kFull = R"(workers: 4
drain_timeout: 0s
listeners:
  - name: public
    address: 127.0.0.1:8080
    header_timeout: 5s
    idle_timeout: 1.5m
    max_connections: 500
  - name: v6
    address: "[::1]:0"
services:
  users:
    endpoints: [127.0.0.1:9001, "[::1]:9002"]
    load_balancer: least_request
    connect_timeout: 250ms
    timeout: 1h
    max_idle_connections: 0
  orders:
    endpoints:
      - 127.0.0.1:9003
routes:
  - name: hello
    match: {methods: [GET, HEAD], path: "/hello/{name}", host: API.Example.com}
    response:
      status: 201
      headers: {content-type: text/plain, X-Thing: "a b"}
      body: "hi"
    max_body: 1KiB
  - name: users
    match: {path: "/users/{proxy+}"}
    service: users
)";

TEST(Load, FullConfigRoundTrip) {
  auto config = loadOk(kFull);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->file, "");
  EXPECT_EQ(config->workers, 4u);
  EXPECT_EQ(config->drain_timeout, 0ms);

  ASSERT_EQ(config->listeners.size(), 2u);
  const Listener& pub = config->listeners[0];
  EXPECT_EQ(pub.name, "public");
  EXPECT_EQ(pub.address.text, "127.0.0.1:8080");
  ASSERT_EQ(pub.address.addr.ss_family, AF_INET);
  EXPECT_EQ(pub.address.len, sizeof(sockaddr_in));
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&pub.address.addr);
  EXPECT_EQ(ntohs(v4->sin_port), 8080);
  EXPECT_EQ(ntohl(v4->sin_addr.s_addr), 0x7f000001u);
  EXPECT_EQ(pub.header_timeout, 5s);
  EXPECT_EQ(pub.idle_timeout, 90s);
  EXPECT_EQ(pub.max_connections, 500u);
  EXPECT_EQ(pub.mark.line, 4);
  EXPECT_EQ(pub.mark.column, 5);
  const Listener& v6 = config->listeners[1];
  ASSERT_EQ(v6.address.addr.ss_family, AF_INET6);
  EXPECT_EQ(v6.address.len, sizeof(sockaddr_in6));
  const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&v6.address.addr);
  EXPECT_EQ(ntohs(a6->sin6_port), 0);
  EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr));
  EXPECT_EQ(v6.header_timeout, 10s);  // defaults
  EXPECT_EQ(v6.idle_timeout, 60s);
  EXPECT_EQ(v6.max_connections, 10000u);

  ASSERT_EQ(config->services.size(), 2u);
  const Service& users = config->services.at("users");
  EXPECT_EQ(users.name, "users");
  ASSERT_EQ(users.endpoints.size(), 2u);
  EXPECT_EQ(users.endpoints[0].text, "127.0.0.1:9001");
  EXPECT_EQ(users.endpoints[1].text, "[::1]:9002");
  EXPECT_EQ(users.endpoints[1].addr.ss_family, AF_INET6);
  EXPECT_EQ(users.load_balancer, LoadBalancer::kLeastRequest);
  EXPECT_EQ(users.connect_timeout, 250ms);
  EXPECT_EQ(users.timeout, 1h);
  EXPECT_EQ(users.max_idle_connections, 0u);
  EXPECT_EQ(users.mark.line, 12);
  const Service& orders = config->services.at("orders");
  EXPECT_EQ(orders.load_balancer, LoadBalancer::kRoundRobin);
  EXPECT_EQ(orders.connect_timeout, 2s);
  EXPECT_EQ(orders.timeout, 30s);
  EXPECT_EQ(orders.max_idle_connections, 64u);

  ASSERT_EQ(config->routes.size(), 2u);
  const Route& hello = config->routes[0];
  EXPECT_EQ(hello.name, "hello");
  EXPECT_EQ(hello.host, "api.example.com");  // hosts are case-insensitive
  EXPECT_EQ(hello.methods, (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_EQ(hello.path, "/hello/{name}");
  EXPECT_EQ(hello.kind, BackendKind::kResponse);
  EXPECT_EQ(hello.response.status, 201);
  EXPECT_EQ(hello.response.headers, (std::vector<std::pair<std::string, std::string>>{
                                        {"content-type", "text/plain"}, {"X-Thing", "a b"}}));
  EXPECT_EQ(hello.response.body, "hi");
  EXPECT_EQ(hello.max_body, 1024u);
  EXPECT_EQ(hello.mark.line, 22);
  EXPECT_EQ(hello.mark.column, 5);
  const Route& route = config->routes[1];
  EXPECT_EQ(route.kind, BackendKind::kService);
  EXPECT_EQ(route.service, "users");
  EXPECT_TRUE(route.methods.empty());
  EXPECT_EQ(route.host, "");
  EXPECT_EQ(route.max_body, 10u * 1024 * 1024);
  EXPECT_NE(config->router, nullptr);
}

TEST(Load, DefaultsAndAutoWorkers) {
  auto config = loadOk(std::string("workers: auto\n") + kListeners + "routes: []\n");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->workers, 0u);
  EXPECT_EQ(config->drain_timeout, 15s);
  EXPECT_TRUE(config->services.empty());
  EXPECT_TRUE(config->routes.empty());
  EXPECT_EQ(config->routes.size(), 0u);
}

TEST(Load, RouterMatchesCompiledRoutes) {
  auto config = loadOk(kFull);
  ASSERT_NE(config, nullptr);
  ASSERT_NE(config->router, nullptr);
  router::Match match;
  config->router->match("localhost", "GET", "/users/7/x", match);
  ASSERT_EQ(match.result, router::Match::Result::kFound);
  EXPECT_EQ(config->routes[match.id].name, "users");
}

TEST(Summary, Format) {
  auto config = loadOk(std::string(R"(workers: 2
listeners:
  - name: public
    address: 127.0.0.1:8080
services:
  upstream:
    endpoints: [127.0.0.1:9001, 127.0.0.1:9002]
routes:
  - name: ping
    match: {methods: [GET], path: /ping}
    response: {body: pong}
  - name: users
    match: {path: "/users/{proxy+}", host: api.example.com}
    service: upstream
  - name: teapot
    match: {methods: [GET, POST], path: /tea}
    response: {status: 418}
)"));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(summary(*config),
            "config OK\n"
            "workers: 2\n"
            "listener public on 127.0.0.1:8080\n"
            "service upstream: 127.0.0.1:9001, 127.0.0.1:9002 (round_robin)\n"
            "route ping: GET /ping -> response 200\n"
            "route users: * /users/{proxy+} (host api.example.com) -> service upstream\n"
            "route teapot: GET,POST /tea -> response 418\n");
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/sluice_config_test_XXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    path_ = name;
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    close(fd);
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(LoadFile, ReadsFileAndNamesItInSummaryAndErrors) {
  TempFile good(std::string(kListeners) + "routes: []\n");
  LoadResult ok = loadFile(good.path());
  ASSERT_TRUE(ok.errors.empty());
  ASSERT_NE(ok.config, nullptr);
  EXPECT_EQ(ok.config->file, good.path());
  EXPECT_EQ(summary(*ok.config),
            "config OK: " + good.path() + "\nworkers: auto\nlistener public on 127.0.0.1:8080\n");

  TempFile bad(std::string(kListeners) + "routes: []\nbogus: 1\n");
  LoadResult result = loadFile(bad.path());
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].file, bad.path());
  EXPECT_EQ(result.errors[0].line, 5);
  EXPECT_EQ(result.errors[0].column, 1);
}

TEST(LoadFile, MissingFile) {
  LoadResult result = loadFile("/nonexistent/sluice.yaml");
  EXPECT_EQ(result.config, nullptr);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 0);
  EXPECT_EQ(result.errors[0].str(),
            "/nonexistent/sluice.yaml: cannot read: No such file or directory");
}

// --- addresses ----------------------------------------------------------------------

TEST(Addresses, ValidForms) {
  struct {
    const char* text;
    int family;
    uint16_t port;
    std::string numeric;
  } cases[] = {
      {"127.0.0.1:8080", AF_INET, 8080, "127.0.0.1:8080"},
      {"0.0.0.0:0", AF_INET, 0, "0.0.0.0:0"},
      {"10.1.2.3:65535", AF_INET, 65535, "10.1.2.3:65535"},
      {"[::1]:8080", AF_INET6, 8080, "[::1]:8080"},
      {"[::]:443", AF_INET6, 443, "[::]:443"},
      {"[2001:db8::1]:80", AF_INET6, 80, "[2001:db8::1]:80"},
  };
  for (const auto& c : cases) {
    SocketAddress address;
    std::string error;
    ASSERT_TRUE(detail::resolveAddress(c.text, address, error)) << c.text << ": " << error;
    EXPECT_EQ(address.text, c.text);
    EXPECT_EQ(address.addr.ss_family, c.family) << c.text;
    EXPECT_EQ(detail::addressPort(address), c.port) << c.text;
    EXPECT_EQ(detail::numericAddress(address), c.numeric);
  }
}

TEST(Addresses, HostnameIsResolved) {
  SocketAddress address;
  std::string error;
  ASSERT_TRUE(detail::resolveAddress("localhost:8080", address, error)) << error;
  EXPECT_TRUE(address.addr.ss_family == AF_INET || address.addr.ss_family == AF_INET6);
  EXPECT_EQ(detail::addressPort(address), 8080);
  EXPECT_EQ(address.text, "localhost:8080");
}

// --- environment substitution -------------------------------------------------------

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("SLUICE_TEST_PORT", "9100", 1);
    setenv("SLUICE_TEST_EMPTY", "", 1);
    unsetenv("SLUICE_TEST_UNSET");
  }
  void TearDown() override {
    unsetenv("SLUICE_TEST_PORT");
    unsetenv("SLUICE_TEST_EMPTY");
  }
};

TEST_F(EnvTest, SubstituteTable) {
  struct {
    const char* in;
    const char* out;
  } cases[] = {
      {"plain", "plain"},
      {"${SLUICE_TEST_PORT}", "9100"},
      {"a${SLUICE_TEST_PORT}b${SLUICE_TEST_PORT}", "a9100b9100"},
      {"${SLUICE_TEST_UNSET:-dflt}", "dflt"},
      {"${SLUICE_TEST_UNSET:-}", ""},
      {"${SLUICE_TEST_PORT:-1}", "9100"},
      {"${SLUICE_TEST_EMPTY}", ""},
      {"${SLUICE_TEST_EMPTY:-used}", "used"},
      {"$${SLUICE_TEST_PORT}", "${SLUICE_TEST_PORT}"},
      {"$$x $ {} $", "$$x $ {} $"},
      {"${SLUICE_TEST_UNSET:-a:-b}", "a:-b"},
  };
  for (const auto& c : cases) {
    std::string out;
    std::vector<std::string> errors;
    EXPECT_TRUE(detail::substituteEnv(c.in, out, errors)) << c.in;
    EXPECT_EQ(out, c.out) << c.in;
    EXPECT_TRUE(errors.empty()) << c.in;
  }
}

TEST_F(EnvTest, SubstituteErrors) {
  std::string out;
  std::vector<std::string> errors;
  EXPECT_FALSE(detail::substituteEnv("${SLUICE_TEST_UNSET}/${1BAD}/${A B}", out, errors));
  EXPECT_EQ(errors, lines("environment variable SLUICE_TEST_UNSET is not set",
                          "invalid environment variable name '1BAD' (expected ${NAME} "
                          "or ${NAME:-default})",
                          "invalid environment variable name 'A B' (expected ${NAME} "
                          "or ${NAME:-default})"));
  errors.clear();
  EXPECT_FALSE(detail::substituteEnv("x${OPEN", out, errors));
  EXPECT_EQ(errors, lines("unterminated '${' (write '$${' for a literal '${')"));
}

TEST_F(EnvTest, InConfigValues) {
  auto config = loadOk(R"(workers: ${SLUICE_TEST_UNSET:-auto}
listeners:
  - name: ${SLUICE_TEST_UNSET:-public}
    address: 127.0.0.1:${SLUICE_TEST_PORT}
routes:
  - name: r
    match: {path: /r}
    response: {body: "$${literal} port ${SLUICE_TEST_PORT}"}
)");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->workers, 0u);
  EXPECT_EQ(config->listeners[0].name, "public");
  EXPECT_EQ(config->listeners[0].address.text, "127.0.0.1:9100");
  EXPECT_EQ(detail::addressPort(config->listeners[0].address), 9100);
  EXPECT_EQ(config->routes[0].response.body, "${literal} port 9100");
}

TEST_F(EnvTest, MissingVariableIsAnErrorAtTheScalarAndMarksStayExact) {
  auto errors = errorsOf(R"(listeners:
  - name: public
    address: 127.0.0.1:${SLUICE_TEST_UNSET}
    idle_timeout: ${SLUICE_TEST_PORT}
routes: []
bogus: 1
)");
  EXPECT_EQ(errors,
            lines("test.yaml:3:14: environment variable SLUICE_TEST_UNSET is not set",
                  "test.yaml:4:19: expected a duration like 250ms, 3s, 10m, 2h (a bare "
                  "number has no unit)",
                  "test.yaml:6:1: unknown key 'bogus'; allowed keys: workers, "
                  "drain_timeout, listeners, services, routes, filters, plugins, "
                  "admin, watch, api_keys, usage_plans, redis, functions, function_pricing"));
}

TEST(Errors, SameShapeWithDifferentHostsOrMethodsIsFine) {
  auto config = loadOk(std::string(kListeners) + R"(routes:
  - name: a
    match: {path: "/u/{id}", methods: [GET]}
    response: {}
  - name: b
    match: {path: "/u/{name}", methods: [POST]}
    response: {}
  - name: c
    match: {path: "/u/{id}", host: x.example.com}
    response: {}
)");
  EXPECT_NE(config, nullptr);
}

}  // namespace
}  // namespace sluice::config
