// Function config: `functions:` (runtime: process and runtime: lambda), `function_pricing:`,
// `stage:` on listeners and routes, and routes with a `function` backend. Valid configs
// into structs, and every error with the exact FILE:LINE:COL a user would see.
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config {
namespace {

using namespace std::chrono_literals;

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

std::shared_ptr<const Config> loadOk(const std::string& yaml) {
  LoadResult result = loadString(yaml, "test.yaml");
  for (const Error& e : result.errors) ADD_FAILURE() << e.str();
  return result.config;
}

// What follows the `functions:` section in most tests, so that the section starts at
// line 1 and the line numbers in expectations are those of the literal.
constexpr const char* kRest = R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes: []
)";

std::string withFunctions(const std::string& functions) { return functions + kRest; }

// A lambda function's required parts, for tests about something else.
constexpr const char* kCredentials =
    "credentials: {access_key_id: AKID, secret_access_key: SECRET}";

// Sets and unsets environment variables for one test; restores them after.
class EnvGuard {
 public:
  EnvGuard(std::initializer_list<const char*> names) {
    for (const char* name : names) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v != nullptr ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(name);
    }
  }
  ~EnvGuard() {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// The AWS credential variables, all unset for the test.
struct NoAwsEnv : EnvGuard {
  NoAwsEnv() : EnvGuard({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}) {}
};

// A fresh directory, removed with everything in it at the end of the test. `path` is
// canonical (what realpath gives).
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sluice-fn-config-XXXXXX";
    char* made = mkdtemp(tmpl);
    EXPECT_NE(made, nullptr);
    char resolved[PATH_MAX];
    path_ = made != nullptr && realpath(made, resolved) != nullptr ? resolved : tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
  std::string mkdir(const std::string& name) const {
    std::string dir = path_ + "/" + name;
    std::filesystem::create_directories(dir);
    return dir;
  }

 private:
  std::string path_;
};

// Runs the test in another working directory; goes back after.
class CwdGuard {
 public:
  explicit CwdGuard(const std::string& dir) {
    char buffer[PATH_MAX];
    EXPECT_NE(getcwd(buffer, sizeof(buffer)), nullptr);
    saved_ = buffer;
    EXPECT_EQ(chdir(dir.c_str()), 0) << dir;
  }
  ~CwdGuard() { EXPECT_EQ(chdir(saved_.c_str()), 0) << saved_; }
  CwdGuard(const CwdGuard&) = delete;
  CwdGuard& operator=(const CwdGuard&) = delete;

 private:
  std::string saved_;
};

std::string cwd() {
  char buffer[PATH_MAX];
  EXPECT_NE(getcwd(buffer, sizeof(buffer)), nullptr);
  char resolved[PATH_MAX];
  EXPECT_NE(realpath(buffer, resolved), nullptr);
  return resolved;
}

constexpr const char* kPem =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUZm9vYmFy\n-----END CERTIFICATE-----\n";

using Env = std::vector<std::pair<std::string, std::string>>;

// --- runtime: process ----------------------------------------------------------------

TEST(ProcessFunction, EveryKey) {
  TempDir dir;
  auto config = loadOk(withFunctions(R"(functions:
  hello:
    runtime: process
    payload_format: "1.0"
    timeout: 2500ms
    memory_mb: 256
    binary_media_types: [image/png, image/*, "*/*", application/octet-stream]
    command: [/bin/sh, bootstrap.sh, --flag]
    handler: app.lambda_handler
    working_dir: )" + dir.path() + R"(
    environment: {TABLE: users, B_2: "two words", EMPTY: "", _X: "1"}
    max_concurrency: 4
    max_queue: 0
    queue_timeout: 0s
    idle_timeout: 5m
    min_instances: 4
    init_timeout: 1.5s
)"));
  ASSERT_NE(config, nullptr);
  ASSERT_EQ(config->functions.size(), 1u);
  const Function& fn = config->functions.at("hello");
  EXPECT_EQ(fn.name, "hello");
  EXPECT_EQ(fn.runtime, FunctionRuntime::kProcess);
  EXPECT_EQ(fn.payload_format, PayloadFormat::kV1);
  EXPECT_EQ(fn.timeout, 2500ms);
  EXPECT_EQ(fn.memory_mb, 256u);
  EXPECT_EQ(fn.binary_media_types,
            (std::vector<std::string>{"image/png", "image/*", "*/*", "application/octet-stream"}));
  EXPECT_EQ(fn.command, (std::vector<std::string>{"/bin/sh", "bootstrap.sh", "--flag"}));
  EXPECT_EQ(fn.handler, "app.lambda_handler");
  EXPECT_EQ(fn.working_dir, dir.path());
  // Sorted by name.
  EXPECT_EQ(fn.environment,
            (Env{{"B_2", "two words"}, {"EMPTY", ""}, {"TABLE", "users"}, {"_X", "1"}}));
  EXPECT_EQ(fn.max_concurrency, 4u);
  EXPECT_EQ(fn.max_queue, 0u);
  EXPECT_EQ(fn.queue_timeout, 0ms);
  EXPECT_EQ(fn.idle_timeout, 300'000ms);
  EXPECT_EQ(fn.min_instances, 4u);
  EXPECT_EQ(fn.init_timeout, 1500ms);
  EXPECT_EQ(fn.mark.line, 2);
  EXPECT_EQ(fn.mark.column, 3);
  // Lambda settings are left alone.
  EXPECT_EQ(fn.endpoint, "");
  EXPECT_EQ(fn.function_name, "");
  EXPECT_EQ(fn.address.len, 0u);
}

TEST(ProcessFunction, Defaults) {
  auto config = loadOk(withFunctions(R"(functions:
  hello:
    runtime: process
    command: [/bin/sh]
)"));
  ASSERT_NE(config, nullptr);
  const Function& fn = config->functions.at("hello");
  EXPECT_EQ(fn.runtime, FunctionRuntime::kProcess);
  EXPECT_EQ(fn.payload_format, PayloadFormat::kV2);
  EXPECT_EQ(fn.timeout, 3000ms);
  EXPECT_EQ(fn.memory_mb, 128u);
  EXPECT_TRUE(fn.binary_media_types.empty());
  EXPECT_EQ(fn.command, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(fn.handler, "");
  // loadString has no file: its directory is ".", the working directory, made absolute.
  EXPECT_EQ(fn.working_dir, cwd());
  EXPECT_TRUE(fn.environment.empty());
  EXPECT_EQ(fn.max_concurrency, 10u);
  EXPECT_EQ(fn.max_queue, 100u);
  EXPECT_EQ(fn.queue_timeout, 0ms);
  EXPECT_EQ(fn.idle_timeout, 300'000ms);
  EXPECT_EQ(fn.min_instances, 0u);
  EXPECT_EQ(fn.init_timeout, 10'000ms);
  // Nothing of `function_pricing:` given: the defaults.
  EXPECT_DOUBLE_EQ(config->function_pricing.per_million_requests, 0.20);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_gb_second, 0.0000166667);
}

TEST(ProcessFunction, PayloadFormats) {
  for (auto [text, format] :
       {std::pair{"\"1.0\"", PayloadFormat::kV1}, std::pair{"\"2.0\"", PayloadFormat::kV2},
        std::pair{"'2.0'", PayloadFormat::kV2}, std::pair{"1.0", PayloadFormat::kV1},
        std::pair{"2.0", PayloadFormat::kV2}}) {
    auto config =
        loadOk(withFunctions(std::string("functions:\n  f:\n    runtime: process\n") +
                             "    command: [/bin/sh]\n    payload_format: " + text + "\n"));
    ASSERT_NE(config, nullptr) << text;
    EXPECT_EQ(config->functions.at("f").payload_format, format) << text;
  }
}

TEST(ProcessFunction, Bounds) {
  auto config = loadOk(withFunctions(R"(functions:
  low:
    runtime: process
    command: [/bin/sh]
    timeout: 15m
    memory_mb: 128
    max_concurrency: 1
    min_instances: 0
  high:
    runtime: process
    command: [/bin/sh]
    memory_mb: 10240
    max_concurrency: 10000
    max_queue: 1000000
    min_instances: 10000
)"));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("low").timeout, 900'000ms);
  EXPECT_EQ(config->functions.at("low").memory_mb, 128u);
  EXPECT_EQ(config->functions.at("high").memory_mb, 10240u);
  EXPECT_EQ(config->functions.at("high").max_concurrency, 10000u);
  EXPECT_EQ(config->functions.at("high").max_queue, 1'000'000u);
  EXPECT_EQ(config->functions.at("high").min_instances, 10000u);
}

// loadString's config directory is "." (the process's working directory).
TEST(ProcessFunction, RelativeWorkingDirOfAStringIsTheWorkingDirectory) {
  TempDir dir;
  dir.mkdir("code/python");
  CwdGuard in(dir.path());
  auto config = loadOk(withFunctions(R"(functions:
  a: {runtime: process, command: [/bin/sh], working_dir: code/python}
  b: {runtime: process, command: [/bin/sh], working_dir: ./code/../code}
  c: {runtime: process, command: [/bin/sh], working_dir: .}
  d: {runtime: process, command: [/bin/sh]}
)"));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("a").working_dir, dir.path() + "/code/python");
  EXPECT_EQ(config->functions.at("b").working_dir, dir.path() + "/code");
  EXPECT_EQ(config->functions.at("c").working_dir, dir.path());
  EXPECT_EQ(config->functions.at("d").working_dir, dir.path());
}

// loadFile: relative to the config file's directory, whatever the working directory is.
TEST(ProcessFunction, RelativeWorkingDirOfAFileIsTheFilesDirectory) {
  TempDir dir;
  dir.mkdir("etc/functions/python");
  std::string file = dir.write("etc/sluice.yaml", withFunctions(R"(functions:
  a: {runtime: process, command: [/bin/sh], working_dir: functions/python}
  b: {runtime: process, command: [/bin/sh]}
)"));
  LoadResult result = loadFile(file);
  for (const Error& e : result.errors) ADD_FAILURE() << e.str();
  ASSERT_NE(result.config, nullptr);
  EXPECT_EQ(result.config->functions.at("a").working_dir, dir.path() + "/etc/functions/python");
  EXPECT_EQ(result.config->functions.at("b").working_dir, dir.path() + "/etc");

  // The same name from elsewhere is not there.
  std::string missing = dir.write("sluice.yaml", withFunctions(R"(functions:
  a: {runtime: process, command: [/bin/sh], working_dir: functions/python}
)"));
  result = loadFile(missing);
  std::vector<std::string> errors;
  for (const Error& e : result.errors) errors.push_back(e.str());
  EXPECT_EQ(errors, lines(missing + ":2:58: working_dir 'functions/python' is not a directory"));
}

// --- runtime: lambda -----------------------------------------------------------------

TEST(LambdaFunction, EveryKey) {
  TempDir dir;
  std::string ca = dir.write("ca.pem", kPem);
  NoAwsEnv env;
  setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);  // not used: `credentials` is given
  setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
  auto config = loadOk(withFunctions(R"(functions:
  orders:
    runtime: lambda
    payload_format: "1.0"
    timeout: 15m
    memory_mb: 1024
    binary_media_types: [application/pdf]
    endpoint: https://127.0.0.1:8443
    function_name: arn:aws:lambda:eu-west-1:123456789012:function:orders-prod
    qualifier: $LATEST
    region: eu-west-1
    credentials:
      access_key_id: AKIDEXAMPLE
      secret_access_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
      session_token: FwoGZXIvYXdzE//token==
    invocation: event
    connect_timeout: 500ms
    max_idle_connections: 0
    tls: {ca: )" + ca + R"(, verify: false}
)"));
  ASSERT_NE(config, nullptr);
  const Function& fn = config->functions.at("orders");
  EXPECT_EQ(fn.name, "orders");
  EXPECT_EQ(fn.runtime, FunctionRuntime::kLambda);
  EXPECT_EQ(fn.payload_format, PayloadFormat::kV1);
  EXPECT_EQ(fn.timeout, 900'000ms);
  EXPECT_EQ(fn.memory_mb, 1024u);
  EXPECT_EQ(fn.binary_media_types, std::vector<std::string>{"application/pdf"});
  EXPECT_EQ(fn.endpoint, "https://127.0.0.1:8443");
  EXPECT_TRUE(fn.tls);
  EXPECT_EQ(fn.host, "127.0.0.1");
  EXPECT_EQ(fn.port, 8443);
  EXPECT_EQ(detail::numericAddress(fn.address), "127.0.0.1:8443");
  EXPECT_EQ(fn.function_name, "arn:aws:lambda:eu-west-1:123456789012:function:orders-prod");
  EXPECT_EQ(fn.qualifier, "$LATEST");
  EXPECT_EQ(fn.region, "eu-west-1");
  EXPECT_EQ(fn.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(fn.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
  EXPECT_EQ(fn.session_token, "FwoGZXIvYXdzE//token==");
  EXPECT_TRUE(fn.invocation_event);
  EXPECT_EQ(fn.connect_timeout, 500ms);
  EXPECT_EQ(fn.max_idle_connections, 0u);
  EXPECT_EQ(fn.tls_ca, ca);
  EXPECT_FALSE(fn.tls_verify);
  // Process settings are left alone.
  EXPECT_TRUE(fn.command.empty());
  EXPECT_EQ(fn.working_dir, "");
}

TEST(LambdaFunction, Defaults) {
  auto config = loadOk(withFunctions(std::string(R"(functions:
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1
    )") + kCredentials + "\n"));
  ASSERT_NE(config, nullptr);
  const Function& fn = config->functions.at("orders");
  EXPECT_EQ(fn.runtime, FunctionRuntime::kLambda);
  EXPECT_EQ(fn.payload_format, PayloadFormat::kV2);
  EXPECT_EQ(fn.timeout, 3000ms);
  EXPECT_EQ(fn.memory_mb, 128u);
  EXPECT_FALSE(fn.tls);
  EXPECT_EQ(fn.host, "127.0.0.1");
  EXPECT_EQ(fn.port, 80);
  EXPECT_EQ(fn.function_name, "orders");  // the key
  EXPECT_EQ(fn.qualifier, "");
  EXPECT_EQ(fn.region, "us-east-1");
  EXPECT_EQ(fn.access_key_id, "AKID");
  EXPECT_EQ(fn.secret_access_key, "SECRET");
  EXPECT_EQ(fn.session_token, "");
  EXPECT_FALSE(fn.invocation_event);
  EXPECT_EQ(fn.connect_timeout, 2000ms);
  EXPECT_EQ(fn.max_idle_connections, 16u);
  EXPECT_TRUE(fn.tls_verify);
  EXPECT_EQ(fn.tls_ca, "");
}

TEST(LambdaFunction, Endpoints) {
  struct {
    const char* url;
    bool tls;
    const char* host;
    uint16_t port;
    const char* address;
  } cases[] = {
      {"http://127.0.0.1", false, "127.0.0.1", 80, "127.0.0.1:80"},
      {"https://127.0.0.1", true, "127.0.0.1", 443, "127.0.0.1:443"},
      {"http://127.0.0.1:9001", false, "127.0.0.1", 9001, "127.0.0.1:9001"},
      {"https://127.0.0.1:8443/", true, "127.0.0.1", 8443, "127.0.0.1:8443"},
      {"HTTPS://127.0.0.1:1", true, "127.0.0.1", 1, "127.0.0.1:1"},
      {"http://127.0.0.1:65535", false, "127.0.0.1", 65535, "127.0.0.1:65535"},
      {"http://[::1]:9001", false, "::1", 9001, "[::1]:9001"},
      {"https://[::1]", true, "::1", 443, "[::1]:443"},
      {"http://localhost:4566", false, "localhost", 4566, nullptr},
  };
  for (const auto& c : cases) {
    auto config =
        loadOk(withFunctions(std::string("functions:\n  f:\n    runtime: lambda\n") +
                             "    endpoint: \"" + c.url + "\"\n    " + kCredentials + "\n"));
    ASSERT_NE(config, nullptr) << c.url;
    const Function& fn = config->functions.at("f");
    EXPECT_EQ(fn.endpoint, c.url);
    EXPECT_EQ(fn.tls, c.tls) << c.url;
    EXPECT_EQ(fn.host, c.host) << c.url;
    EXPECT_EQ(fn.port, c.port) << c.url;
    EXPECT_NE(fn.address.len, 0u) << c.url;
    EXPECT_EQ(detail::addressPort(fn.address), c.port) << c.url;
    if (c.address != nullptr) {
      EXPECT_EQ(detail::numericAddress(fn.address), c.address) << c.url;
    }
  }
}

TEST(LambdaFunction, Invocation) {
  for (auto [text, event] : {std::pair{"event", true}, std::pair{"request_response", false}}) {
    auto config = loadOk(withFunctions(std::string("functions:\n  f:\n    runtime: lambda\n") +
                                       "    endpoint: http://127.0.0.1:9001\n    " + kCredentials +
                                       "\n    invocation: " + text + "\n"));
    ASSERT_NE(config, nullptr) << text;
    EXPECT_EQ(config->functions.at("f").invocation_event, event) << text;
  }
}

TEST(LambdaFunction, CredentialsFromTheEnvironment) {
  NoAwsEnv env;
  setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "ENV/SECRET+KEY", 1);
  const std::string yaml = withFunctions(R"(functions:
  f:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
)");
  auto config = loadOk(yaml);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("f").access_key_id, "ENVKEY");
  EXPECT_EQ(config->functions.at("f").secret_access_key, "ENV/SECRET+KEY");
  EXPECT_EQ(config->functions.at("f").session_token, "");

  setenv("AWS_SESSION_TOKEN", "ENVTOKEN", 1);
  config = loadOk(yaml);
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("f").session_token, "ENVTOKEN");
}

TEST(LambdaFunction, CredentialsThroughSubstitution) {
  EnvGuard env({"SLUICE_TEST_KEY_ID", "SLUICE_TEST_SECRET", "SLUICE_TEST_TOKEN"});
  setenv("SLUICE_TEST_KEY_ID", "SUBKEY", 1);
  setenv("SLUICE_TEST_SECRET", "SUBSECRET", 1);
  auto config = loadOk(withFunctions(R"(functions:
  f:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials:
      access_key_id: "${SLUICE_TEST_KEY_ID}"
      secret_access_key: "${SLUICE_TEST_SECRET}"
      session_token: "${SLUICE_TEST_TOKEN:-}"
)"));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("f").access_key_id, "SUBKEY");
  EXPECT_EQ(config->functions.at("f").secret_access_key, "SUBSECRET");
  EXPECT_EQ(config->functions.at("f").session_token, "");
}

// Relative to the config file's directory.
TEST(LambdaFunction, RelativeCaFile) {
  TempDir dir;
  dir.mkdir("certs");
  std::string ca = dir.write("certs/ca.pem", std::string("# bundle\n") + kPem + kPem);
  std::string file = dir.write("sluice.yaml", withFunctions(std::string(R"(functions:
  f:
    runtime: lambda
    endpoint: https://127.0.0.1
    tls: {ca: certs/ca.pem}
    )") + kCredentials + "\n"));
  LoadResult result = loadFile(file);
  for (const Error& e : result.errors) ADD_FAILURE() << e.str();
  ASSERT_NE(result.config, nullptr);
  EXPECT_EQ(result.config->functions.at("f").tls_ca, ca);
  EXPECT_TRUE(result.config->functions.at("f").tls_verify);
}

// --- errors common to both runtimes --------------------------------------------------

TEST(FunctionErrors, NotAMapAndBadNames) {
  EXPECT_EQ(errorsOf(withFunctions("functions: [a]\n")), lines("test.yaml:1:12: expected a map"));
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a: process
  "b c": {runtime: process, command: [/bin/sh]}
  d:
)")),
            lines("test.yaml:2:6: expected a map",
                  "test.yaml:3:3: invalid name 'b c' (use letters, digits, '_', '-' and '.')",
                  "test.yaml:4:3: expected a map"));
}

TEST(FunctionErrors, MissingAndUnknownRuntime) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    command: [/bin/sh]
  b: {runtime: docker, command: [/bin/sh]}
  c: {runtime: Process, command: [/bin/sh]}
  d: {runtime: [process], command: [/bin/sh]}
)")),
            lines("test.yaml:3:5: missing required key 'runtime'",
                  "test.yaml:4:16: unknown runtime 'docker'; expected process or lambda",
                  "test.yaml:5:16: unknown runtime 'Process'; expected process or lambda",
                  "test.yaml:6:16: expected a string"));
}

TEST(FunctionErrors, UnknownKey) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    timout: 1s
)")),
            lines("test.yaml:5:5: unknown key 'timout' (did you mean 'timeout'?); allowed keys: "
                  "runtime, payload_format, timeout, memory_mb, binary_media_types, command, "
                  "handler, working_dir, environment, max_concurrency, max_queue, "
                  "queue_timeout, idle_timeout, min_instances, init_timeout, endpoint, "
                  "function_name, qualifier, region, credentials, invocation, connect_timeout, "
                  "max_idle_connections, tls"));
}

TEST(FunctionErrors, UnknownPayloadFormat) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    payload_format: "3.0"
  b:
    runtime: process
    command: [/bin/sh]
    payload_format: 2
)")),
            lines("test.yaml:5:21: unknown payload_format '3.0'; expected \"1.0\" or \"2.0\"",
                  "test.yaml:9:21: unknown payload_format '2'; expected \"1.0\" or \"2.0\""));
}

TEST(FunctionErrors, Timeout) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a: {runtime: process, command: [/bin/sh], timeout: 901s}
  b: {runtime: process, command: [/bin/sh], timeout: 16m}
  c: {runtime: process, command: [/bin/sh], timeout: 0s}
  d: {runtime: process, command: [/bin/sh], timeout: 3}
  e: {runtime: process, command: [/bin/sh], timeout: 15m}
)")),
            lines("test.yaml:2:54: timeout cannot exceed 15m (Lambda's limit)",
                  "test.yaml:3:54: timeout cannot exceed 15m (Lambda's limit)",
                  "test.yaml:4:54: must be greater than 0",
                  "test.yaml:5:54: expected a duration like 250ms, 3s, 10m, 2h (a bare number "
                  "has no unit)"));
}

TEST(FunctionErrors, MemoryOutOfRange) {
  EXPECT_EQ(
      errorsOf(withFunctions(R"(functions:
  a: {runtime: process, command: [/bin/sh], memory_mb: 127}
  b: {runtime: process, command: [/bin/sh], memory_mb: 10241}
  c: {runtime: process, command: [/bin/sh], memory_mb: 1GiB}
  d: {runtime: process, command: [/bin/sh], memory_mb: 0}
)")),
      lines("test.yaml:2:56: must be between 128 and 10240",
            "test.yaml:3:56: must be between 128 and 10240", "test.yaml:4:56: expected an integer",
            "test.yaml:5:56: must be between 128 and 10240"));
}

TEST(FunctionErrors, BadMediaTypes) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    binary_media_types: [image/png, png, /png, "image/", "/", [a/b]]
  b:
    runtime: process
    command: [/bin/sh]
    binary_media_types: image/png
)")),
            lines("test.yaml:5:37: invalid media type 'png' (like image/png, image/* or */*)",
                  "test.yaml:5:42: invalid media type '/png' (like image/png, image/* or */*)",
                  "test.yaml:5:48: invalid media type 'image/' (like image/png, image/* or */*)",
                  "test.yaml:5:58: invalid media type '/' (like image/png, image/* or */*)",
                  "test.yaml:5:63: expected a string", "test.yaml:9:25: expected a list"));
}

// --- runtime: process errors ---------------------------------------------------------

TEST(ProcessErrors, LambdaKeysOnAProcessFunction) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    endpoint: http://127.0.0.1:9001
    region: us-east-1
    tls: {verify: false}
)")),
            lines("test.yaml:5:5: 'endpoint' applies to runtime: lambda, not runtime: process",
                  "test.yaml:6:5: 'region' applies to runtime: lambda, not runtime: process",
                  "test.yaml:7:5: 'tls' applies to runtime: lambda, not runtime: process"));
}

TEST(ProcessErrors, Command) {
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: python3 bootstrap.py
  b:
    runtime: process
    command: []
  c:
    runtime: process
    handler: x.y
  d:
    runtime: process
    command: [/bin/sh, "", {a: b}]
  e:
    runtime: process
    command:
)")),
            lines("test.yaml:4:14: expected a list: [program, arg, ...]",
                  "test.yaml:7:14: expected at least the program to run",
                  "test.yaml:9:5: missing required key 'command'",
                  "test.yaml:13:24: expected a non-empty argument",
                  "test.yaml:13:28: expected a string", "test.yaml:16:5: expected a list"));
}

// The program is looked up as the process runtime will: in PATH for a bare name, from
// working_dir for a relative path.
TEST(ProcessFunction, CommandProgramIsFound) {
  TempDir dir;
  dir.mkdir("bin");
  dir.mkdir("code");
  std::string tool = dir.write("bin/sluice-test-tool", "#!/bin/sh\n");
  std::string bootstrap = dir.write("code/bootstrap", "#!/bin/sh\n");
  chmod(tool.c_str(), 0755);
  chmod(bootstrap.c_str(), 0755);
  EnvGuard env({"PATH"});
  setenv("PATH", ("/nonexistent/sluice:" + dir.path() + "/bin").c_str(), 1);
  auto config = loadOk(withFunctions(R"(functions:
  a: {runtime: process, command: [sluice-test-tool, arg]}
  b: {runtime: process, command: [./bootstrap], working_dir: )" +
                                     dir.path() + R"(/code}
  c: {runtime: process, command: [code/bootstrap], working_dir: )" +
                                     dir.path() + R"(}
  d: {runtime: process, command: [)" +
                                     bootstrap + R"(]}
)"));
  ASSERT_NE(config, nullptr);
  // As written: the runtime looks it up again when it starts an instance.
  EXPECT_EQ(config->functions.at("a").command,
            (std::vector<std::string>{"sluice-test-tool", "arg"}));
  EXPECT_EQ(config->functions.at("b").command, std::vector<std::string>{"./bootstrap"});
}

TEST(ProcessErrors, CommandProgramNotFound) {
  TempDir dir;
  dir.mkdir("bin");
  dir.mkdir("code/lib");
  std::string bootstrap = dir.write("code/bootstrap", "#!/bin/sh\n");
  std::string plain = dir.write("code/plain.txt", "x");
  chmod(bootstrap.c_str(), 0755);
  chmod(plain.c_str(), 0644);
  EnvGuard env({"PATH"});
  setenv("PATH", (dir.path() + "/bin").c_str(), 1);
  const std::string code = dir.path() + "/code";
  const std::string relative = " is not an executable file (relative paths start from working_dir)";
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a: {runtime: process, command: [sluice-no-such-program]}
  b: {runtime: process, command: [bootstrap], working_dir: )" +
                                   code + R"(}
  c: {runtime: process, command: [./plain.txt], working_dir: )" +
                                   code + R"(}
  d: {runtime: process, command: [./missing], working_dir: )" +
                                   code + R"(}
  e: {runtime: process, command: [/nonexistent/sluice/bootstrap]}
  f: {runtime: process, command: [)" +
                                   code + R"(/lib]}
  g: {runtime: process, command: [./lib], working_dir: )" +
                                   code + R"(}
  h: {runtime: process, command: [sh]}
)")),
            lines("test.yaml:2:34: command: program 'sluice-no-such-program' not found in PATH",
                  "test.yaml:3:34: command: program 'bootstrap' not found in PATH",
                  "test.yaml:4:34: command: './plain.txt'" + relative,
                  "test.yaml:5:34: command: './missing'" + relative,
                  "test.yaml:6:34: command: '/nonexistent/sluice/bootstrap'" + relative,
                  "test.yaml:7:34: command: '" + code + "/lib'" + relative,
                  "test.yaml:8:34: command: './lib'" + relative,
                  "test.yaml:9:34: command: program 'sh' not found in PATH"));
}

TEST(ProcessErrors, WorkingDirNotADirectory) {
  TempDir dir;
  std::string file = dir.write("file.txt", "x");
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a: {runtime: process, command: [/bin/sh], working_dir: /nonexistent/sluice/dir}
  b: {runtime: process, command: [/bin/sh], working_dir: )" +
                                   file + R"(}
  c: {runtime: process, command: [/bin/sh], working_dir: ""}
  d: {runtime: process, command: [/bin/sh], working_dir: sluice-no-such-dir}
)")),
            lines("test.yaml:2:58: working_dir '/nonexistent/sluice/dir' is not a directory",
                  "test.yaml:3:58: working_dir '" + file + "' is not a directory",
                  "test.yaml:4:58: working_dir '' is not a directory",
                  "test.yaml:5:58: working_dir 'sluice-no-such-dir' is not a directory"));
}

TEST(ProcessErrors, ReservedEnvironmentNames) {
  for (const char* name : {"AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT",
                           "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                           "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_LOG_GROUP_NAME",
                           "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE"}) {
    EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    environment:
      TABLE: users
      )") + name + ": x\n")),
              lines(std::string("test.yaml:6:7: '") + name +
                    "' is set by sluice; it cannot be set in 'environment'"));
  }
  // Not reserved: sluice sets AWS_REGION only when `environment` does not.
  auto config = loadOk(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    environment: {AWS_REGION: eu-west-1, HANDLER: x, aws_lambda_runtime_api: y}
)"));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("a").environment,
            (Env{{"AWS_REGION", "eu-west-1"}, {"HANDLER", "x"}, {"aws_lambda_runtime_api", "y"}}));
}

TEST(ProcessErrors, InvalidEnvironment) {
  EXPECT_EQ(
      errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    environment:
      1ST: x
      A-B: x
      A.B: x
      "A B": x
      "": x
      OK: [x]
      NULL_VALUE:
      FINE: x
  b:
    runtime: process
    command: [/bin/sh]
    environment: [A=1]
)")),
      lines("test.yaml:6:7: invalid environment variable name '1ST' (letters, digits and '_', "
            "not starting with a digit)",
            "test.yaml:7:7: invalid environment variable name 'A-B' (letters, digits and '_', "
            "not starting with a digit)",
            "test.yaml:8:7: invalid environment variable name 'A.B' (letters, digits and '_', "
            "not starting with a digit)",
            "test.yaml:9:7: invalid environment variable name 'A B' (letters, digits and '_', "
            "not starting with a digit)",
            "test.yaml:10:7: invalid environment variable name '' (letters, digits and '_', not "
            "starting with a digit)",
            "test.yaml:11:11: expected a string", "test.yaml:12:7: expected a string",
            "test.yaml:17:18: expected a map"));
}

TEST(ProcessErrors, Concurrency) {
  EXPECT_EQ(
      errorsOf(withFunctions(R"(functions:
  a:
    runtime: process
    command: [/bin/sh]
    max_concurrency: 2
    min_instances: 3
  b:
    runtime: process
    command: [/bin/sh]
    min_instances: 11
  c:
    runtime: process
    command: [/bin/sh]
    max_concurrency: 0
    max_queue: -1
    min_instances: 10001
  d:
    runtime: process
    command: [/bin/sh]
    queue_timeout: soon
    idle_timeout: 0s
    init_timeout: 0ms
)")),
      lines("test.yaml:6:20: min_instances (3) cannot exceed max_concurrency (2)",
            "test.yaml:10:20: min_instances (11) cannot exceed max_concurrency (10)",
            "test.yaml:14:22: must be between 1 and 10000",
            "test.yaml:15:16: must be between 0 and 1000000",
            "test.yaml:16:20: must be between 0 and 10000",
            "test.yaml:20:20: expected a duration like 250ms, 3s, 10m, 2h",
            "test.yaml:21:19: must be greater than 0", "test.yaml:22:19: must be greater than 0"));
}

// --- runtime: lambda errors ----------------------------------------------------------

TEST(LambdaErrors, ProcessKeysOnALambdaFunction) {
  EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )") + kCredentials + R"(
    command: [/bin/sh]
    working_dir: /tmp
    environment: {A: b}
    min_instances: 1
)")),
            lines("test.yaml:6:5: 'command' applies to runtime: process, not runtime: lambda",
                  "test.yaml:7:5: 'working_dir' applies to runtime: process, not runtime: lambda",
                  "test.yaml:8:5: 'environment' applies to runtime: process, not runtime: lambda",
                  "test.yaml:9:5: 'min_instances' applies to runtime: process, not runtime: "
                  "lambda"));
}

TEST(LambdaErrors, BadEndpoints) {
  const std::string hint =
      "expected a URL like https://lambda.us-east-1.amazonaws.com or http://127.0.0.1:9001";
  struct {
    const char* url;
    std::string message;
  } cases[] = {
      {"127.0.0.1:9001", hint},
      {"lambda.us-east-1.amazonaws.com", hint},
      {"ftp://127.0.0.1", hint},
      {"http:/127.0.0.1", hint},
      {"http://127.0.0.1:9001/2015-03-31/functions",
       "the endpoint is the service root: no path, query or user info (" + hint + ")"},
      {"http://127.0.0.1//",
       "the endpoint is the service root: no path, query or user info (" + hint + ")"},
      {"http://127.0.0.1?x=1",
       "the endpoint is the service root: no path, query or user info (" + hint + ")"},
      {"http://127.0.0.1#top",
       "the endpoint is the service root: no path, query or user info (" + hint + ")"},
      {"http://user:pw@127.0.0.1",
       "the endpoint is the service root: no path, query or user info (" + hint + ")"},
      {"http://127.0.0.1:0", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://127.0.0.1:65536", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://127.0.0.1:99999999999", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://127.0.0.1:http", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://127.0.0.1:-1", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://127.0.0.1:+80", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://127.0.0.1:", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://[::1]:", "invalid port in the endpoint (expected 1 to 65535)"},
      {"http://[::1", "missing ']' after the IPv6 address in the endpoint"},
      {"http://[::1:9001", "missing ']' after the IPv6 address in the endpoint"},
      {"http://[::1]9001", hint},
      {"http://", "missing host in the endpoint"},
      {"https://:443", "missing host in the endpoint"},
      {"http://[]:80", "missing host in the endpoint"},
      {"http://[zz]:80", "endpoint host: invalid IPv6 address 'zz'"},
      {"http://[127.0.0.1]:80", "endpoint host: invalid IPv6 address '127.0.0.1'"},
      {"https://[localhost]", "endpoint host: invalid IPv6 address 'localhost'"},
      {"http://[::zz]:80", "endpoint host: invalid IPv6 address '::zz'"},
      {"http://bad!host:80", "endpoint host: invalid host 'bad!host'"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(
        errorsOf(withFunctions(std::string("functions:\n  f:\n    runtime: lambda\n") +
                               "    endpoint: \"" + c.url + "\"\n    " + kCredentials + "\n")),
        lines("test.yaml:4:15: " + c.message))
        << c.url;
  }
}

TEST(LambdaErrors, UnresolvableEndpointHost) {
  auto errors = errorsOf(withFunctions(std::string(R"(functions:
  f:
    runtime: lambda
    endpoint: http://sluice-test.invalid:9001
    )") + kCredentials + "\n"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_TRUE(errors[0].starts_with(
      "test.yaml:4:15: endpoint host: cannot resolve host 'sluice-test.invalid': "))
      << errors[0];
}

// An endpoint that could not be read is not replaced by the default one (which would
// be looked up in DNS, and give an error that depends on the network).
TEST(LambdaErrors, UnreadableEndpointIsNotReplacedByTheDefault) {
  EnvGuard env({"SLUICE_TEST_UNSET_ENDPOINT"});
  EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: "${SLUICE_TEST_UNSET_ENDPOINT}"
    )") + kCredentials + R"(
  b:
    runtime: lambda
    endpoint: [http://127.0.0.1]
    )" + kCredentials + R"(
    tls: {verify: false}
)")),
            lines("test.yaml:4:15: environment variable SLUICE_TEST_UNSET_ENDPOINT is not set",
                  "test.yaml:8:15: expected a string"));
}

// A bad region is one error, not also one about the default endpoint built from it.
TEST(LambdaErrors, BadRegion) {
  EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    region: US-EAST-1
    )") + kCredentials + R"(
  b:
    runtime: lambda
    region: us east 1
    )" + kCredentials + R"(
  c:
    runtime: lambda
    region: ""
    )" + kCredentials + R"(
  d:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    region: us_east_1
    )" + kCredentials + R"(
)")),
            lines("test.yaml:4:13: invalid region 'US-EAST-1' (like us-east-1)",
                  "test.yaml:8:13: invalid region 'us east 1' (like us-east-1)",
                  "test.yaml:12:13: invalid region '' (like us-east-1)",
                  "test.yaml:17:13: invalid region 'us_east_1' (like us-east-1)"));
}

TEST(LambdaErrors, BadFunctionNameAndQualifier) {
  EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )") + kCredentials + R"(
    function_name: "orders/prod"
    qualifier: "v 1"
  b:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )" + kCredentials + R"(
    function_name: ""
    qualifier: ""
  c:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )" + kCredentials + R"(
    function_name: "a b"
    qualifier: live:1
  d:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )" + kCredentials + R"(
    function_name: "x%41?#"
    qualifier: )" + std::string(129, 'q') +
                                   R"(
)")),
            lines("test.yaml:6:20: invalid function name 'orders/prod' (a name, partial ARN or "
                  "ARN)",
                  "test.yaml:7:16: invalid qualifier 'v 1' (a version or alias)",
                  "test.yaml:12:20: invalid function name '' (a name, partial ARN or ARN)",
                  "test.yaml:13:16: invalid qualifier '' (a version or alias)",
                  "test.yaml:18:20: invalid function name 'a b' (a name, partial ARN or ARN)",
                  "test.yaml:19:16: invalid qualifier 'live:1' (a version or alias)",
                  "test.yaml:24:20: invalid function name 'x%41?#' (a name, partial ARN or ARN)",
                  "test.yaml:25:16: invalid qualifier '" + std::string(129, 'q') +
                      "' (a version or alias)"));
  // 170 characters is the longest name; 128 the longest qualifier.
  auto config = loadOk(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )") + kCredentials +
                                     "\n    function_name: " + std::string(170, 'n') +
                                     "\n    qualifier: " + std::string(128, 'q') + "\n"));
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->functions.at("a").function_name, std::string(170, 'n'));
  EXPECT_EQ(config->functions.at("a").qualifier, std::string(128, 'q'));
  EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )") + kCredentials +
                                   "\n    function_name: " + std::string(171, 'n') + "\n")),
            lines("test.yaml:6:20: invalid function name '" + std::string(171, 'n') +
                  "' (a name, partial ARN or ARN)"));
}

TEST(LambdaErrors, UnknownInvocation) {
  EXPECT_EQ(errorsOf(withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )") + kCredentials + R"(
    invocation: async
  b:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )" + kCredentials + R"(
    invocation: Event
)")),
            lines("test.yaml:6:17: unknown invocation 'async'; expected request_response or event",
                  "test.yaml:11:17: unknown invocation 'Event'; expected request_response or "
                  "event"));
}

TEST(LambdaErrors, MissingCredentials) {
  const std::string message =
      "needs AWS credentials: set 'credentials: {access_key_id, secret_access_key}' or "
      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
  const std::string yaml = withFunctions(R"(functions:
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
)");
  NoAwsEnv env;
  EXPECT_EQ(errorsOf(yaml), lines("test.yaml:2:3: function 'orders' " + message));
  // Half of them is not enough, and the half that is there is not shown.
  setenv("AWS_ACCESS_KEY_ID", "AKIDONLY", 1);
  setenv("AWS_SESSION_TOKEN", "TOKENONLY", 1);
  auto errors = errorsOf(yaml);
  EXPECT_EQ(errors, lines("test.yaml:2:3: function 'orders' " + message));
  for (const std::string& e : errors) {
    EXPECT_EQ(e.find("AKIDONLY"), std::string::npos) << e;
    EXPECT_EQ(e.find("TOKENONLY"), std::string::npos) << e;
  }
  unsetenv("AWS_ACCESS_KEY_ID");
  setenv("AWS_SECRET_ACCESS_KEY", "SECRETONLY", 1);
  errors = errorsOf(yaml);
  EXPECT_EQ(errors, lines("test.yaml:2:3: function 'orders' " + message));
  for (const std::string& e : errors) EXPECT_EQ(e.find("SECRETONLY"), std::string::npos) << e;
  // Empty is unset.
  setenv("AWS_ACCESS_KEY_ID", "", 1);
  EXPECT_EQ(errorsOf(yaml), lines("test.yaml:2:3: function 'orders' " + message));
}

TEST(LambdaErrors, IncompleteCredentials) {
  NoAwsEnv env;
  setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);  // not used: `credentials` is given
  auto errors = errorsOf(withFunctions(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials: {access_key_id: AKIDEXAMPLE}
  b:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials:
      secret_access_key: VERYSECRET
      session_token: TOKEN
      secret_key: OTHERSECRET
  c:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials: AKIDEXAMPLE:VERYSECRET
)"));
  EXPECT_EQ(errors, lines("test.yaml:5:18: missing required key 'secret_access_key'",
                          "test.yaml:10:7: missing required key 'access_key_id'",
                          "test.yaml:12:7: unknown key 'secret_key'; allowed keys: access_key_id, "
                          "secret_access_key, session_token",
                          "test.yaml:16:18: expected a map"));
  for (const std::string& e : errors) {
    for (const char* secret : {"VERYSECRET", "OTHERSECRET", "TOKEN", "ENVSECRET"}) {
      EXPECT_EQ(e.find(secret), std::string::npos) << e;
    }
  }
}

// `credentials` given with an empty key (an unset ${VAR:-}) would sign every request
// with nothing: an error, as when the environment variables are empty.
TEST(LambdaErrors, EmptyCredentials) {
  NoAwsEnv env;
  EXPECT_EQ(errorsOf(withFunctions(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials: {access_key_id: "", secret_access_key: VERYSECRET}
  b:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials: {access_key_id: AKID, secret_access_key: "${SLUICE_TEST_UNSET_SECRET:-}"}
)")),
            lines("test.yaml:5:34: 'access_key_id' is empty (leave 'credentials' out to use "
                  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                  "test.yaml:9:59: 'secret_access_key' is empty (leave 'credentials' out to use "
                  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"));
}

TEST(LambdaErrors, CredentialsWithSpacesAreNotEchoed) {
  const std::string message = "AWS credentials must be printable ASCII without spaces";
  NoAwsEnv env;
  auto errors = errorsOf(withFunctions(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials:
      access_key_id: AKIDEXAMPLE
      secret_access_key: "VERY SECRET"
  b:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials: {access_key_id: "AKID\tX", secret_access_key: SECRETB, session_token: "T\u00e9"}
)"));
  EXPECT_EQ(errors, lines("test.yaml:6:7: " + message, "test.yaml:11:18: " + message));
  for (const std::string& e : errors) {
    for (const char* secret : {"VERY", "SECRETB", "AKID", "T\xc3\xa9"}) {
      EXPECT_EQ(e.find(secret), std::string::npos) << e;
    }
  }
  // From the environment: reported at the function.
  setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "ENV SECRET", 1);
  errors = errorsOf(withFunctions(R"(functions:
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
)"));
  EXPECT_EQ(errors, lines("test.yaml:2:3: " + message));
  for (const std::string& e : errors) EXPECT_EQ(e.find("ENV SECRET"), std::string::npos) << e;
  setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
  setenv("AWS_SESSION_TOKEN", "ENV\nTOKEN", 1);
  errors = errorsOf(withFunctions(R"(functions:
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
)"));
  EXPECT_EQ(errors, lines("test.yaml:2:3: " + message));
  for (const std::string& e : errors) EXPECT_EQ(e.find("TOKEN"), std::string::npos) << e;
}

TEST(LambdaErrors, Tls) {
  TempDir dir;
  std::string not_pem = dir.write("not.pem", "just text\n");
  std::string empty = dir.write("empty.pem", "");
  std::string unreadable = dir.write("secret.pem", kPem);
  chmod(unreadable.c_str(), 0);
  bool root = geteuid() == 0;  // root reads it anyway
  std::string yaml = withFunctions(std::string(R"(functions:
  a:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    )") + kCredentials + R"(
    tls: {verify: false}
  b:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls:
      ca: /nonexistent/sluice/ca.pem
      verify: no
  c:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls: {ca: )" + not_pem + R"(, verify: true}
  d:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls: {ca: )" + empty + R"(}
  e:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls: {ca: "", certificate: x.pem}
  f:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls: {ca: )" + dir.path() + R"(}
  g:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls: {ca: )" + unreadable + R"(}
  h:
    runtime: lambda
    endpoint: https://127.0.0.1
    )" + kCredentials + R"(
    tls: true
)");
  std::vector<std::string> expected =
      lines("test.yaml:6:10: 'tls' settings apply to https:// endpoints only",
            "test.yaml:12:11: cannot read CA file '/nonexistent/sluice/ca.pem'",
            "test.yaml:13:15: expected true or false",
            "test.yaml:18:15: CA file '" + not_pem + "' holds no PEM certificate",
            "test.yaml:23:15: CA file '" + empty + "' holds no PEM certificate",
            "test.yaml:28:15: expected a file name",
            "test.yaml:28:19: unknown key 'certificate'; allowed keys: ca, verify",
            "test.yaml:33:15: CA file '" + dir.path() + "' is not a regular file");
  if (!root) expected.push_back("test.yaml:38:15: cannot read CA file '" + unreadable + "'");
  expected.push_back("test.yaml:43:10: expected a map");
  EXPECT_EQ(errorsOf(yaml), expected);
}

// --- function_pricing ----------------------------------------------------------------

TEST(FunctionPricing, Values) {
  auto config = loadOk(withFunctions(R"(function_pricing:
  per_million_requests: 0.25
  per_gb_second: 1.5e-5
)"));
  ASSERT_NE(config, nullptr);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_million_requests, 0.25);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_gb_second, 0.000015);

  config = loadOk(withFunctions("function_pricing: {per_gb_second: 0}\n"));
  ASSERT_NE(config, nullptr);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_million_requests, 0.20);  // default
  EXPECT_DOUBLE_EQ(config->function_pricing.per_gb_second, 0.0);

  config = loadOk(withFunctions("function_pricing: {per_million_requests: \"2\"}\n"));
  ASSERT_NE(config, nullptr);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_million_requests, 2.0);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_gb_second, 0.0000166667);  // default

  config = loadOk(withFunctions("function_pricing: {}\n"));
  ASSERT_NE(config, nullptr);
  EXPECT_DOUBLE_EQ(config->function_pricing.per_million_requests, 0.20);
}

TEST(FunctionPricing, Errors) {
  const std::string price = "expected a price in dollars (a number, 0 or more)";
  EXPECT_EQ(errorsOf(withFunctions(R"(function_pricing:
  per_million_requests: -0.2
  per_gb_second: cheap
)")),
            lines("test.yaml:2:25: " + price, "test.yaml:3:18: " + price));
  for (const char* text : {"\"\"", "nan", "inf", "1e10", "0.2$", "$0.2", "\"1,5\""}) {
    EXPECT_EQ(
        errorsOf(withFunctions(std::string("function_pricing: {per_gb_second: ") + text + "}\n")),
        lines("test.yaml:1:35: " + price))
        << text;
  }
  EXPECT_EQ(errorsOf(withFunctions("function_pricing: {per_request: 1}\n")),
            lines("test.yaml:1:20: unknown key 'per_request'; allowed keys: "
                  "per_million_requests, per_gb_second"));
  EXPECT_EQ(errorsOf(withFunctions("function_pricing: 0.2\n")),
            lines("test.yaml:1:19: expected a map"));
}

// --- routes with a function backend, and stages ---------------------------------------

constexpr const char* kTwoFunctions = R"(functions:
  hello: {runtime: process, command: [/bin/sh]}
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    credentials: {access_key_id: AKID, secret_access_key: SECRET}
)";

TEST(FunctionRoutes, TwoFunctionsReferenced) {
  auto config = loadOk(std::string(kTwoFunctions) + R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: hello
    match: {methods: [GET], path: "/hello/{name}"}
    function: hello
  - name: orders
    match: {path: /orders}
    function: orders
  - name: hello-again
    match: {path: /again}
    function: hello
  - name: other
    match: {path: /other}
    response: {status: 204}
)");
  ASSERT_NE(config, nullptr);
  ASSERT_EQ(config->routes.size(), 4u);
  EXPECT_EQ(config->routes[0].kind, BackendKind::kFunction);
  EXPECT_EQ(config->routes[0].function, "hello");
  EXPECT_EQ(config->routes[0].service, "");
  EXPECT_FALSE(config->routes[0].stage.set);
  EXPECT_EQ(config->routes[0].stage.name, "$default");
  EXPECT_EQ(config->routes[1].kind, BackendKind::kFunction);
  EXPECT_EQ(config->routes[1].function, "orders");
  EXPECT_EQ(config->routes[2].kind, BackendKind::kFunction);
  EXPECT_EQ(config->routes[2].function, "hello");
  EXPECT_EQ(config->routes[3].kind, BackendKind::kResponse);
  EXPECT_EQ(config->routes[3].function, "");
  EXPECT_EQ(config->functions.size(), 2u);
  EXPECT_EQ(config->functions.at("hello").runtime, FunctionRuntime::kProcess);
  EXPECT_EQ(config->functions.at("orders").runtime, FunctionRuntime::kLambda);
  EXPECT_NE(config->router, nullptr);
}

TEST(FunctionRoutes, UnknownFunction) {
  EXPECT_EQ(errorsOf(std::string(kTwoFunctions) + R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: r
    match: {path: /}
    function: helo
  - name: s
    match: {path: /s}
    function: [hello]
)"),
            lines("test.yaml:13:15: unknown function 'helo'; defined functions: hello, orders",
                  "test.yaml:16:15: expected a string"));
  EXPECT_EQ(errorsOf(R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: r
    match: {path: /}
    function: hello
)"),
            lines("test.yaml:7:15: unknown function 'hello'; no functions are defined"));
  // A service of that name is not a function.
  EXPECT_EQ(errorsOf(R"(listeners:
  - name: public
    address: 127.0.0.1:8080
services:
  hello: {endpoints: ["127.0.0.1:9000"]}
routes:
  - name: r
    match: {path: /}
    function: hello
)"),
            lines("test.yaml:9:15: unknown function 'hello'; no functions are defined"));
}

TEST(FunctionRoutes, OneBackendOnly) {
  EXPECT_EQ(errorsOf(std::string(kTwoFunctions) + R"(listeners:
  - name: public
    address: 127.0.0.1:8080
services:
  users: {endpoints: ["127.0.0.1:9000"]}
routes:
  - name: a
    match: {path: /a}
    function: hello
    service: users
  - name: b
    match: {path: /b}
    service: users
    function: hello
  - name: c
    match: {path: /c}
    response: {status: 200}
    function: orders
)"),
            lines("test.yaml:16:5: a route has exactly one backend: 'service', 'function' or "
                  "'response', not several",
                  "test.yaml:20:5: a route has exactly one backend: 'service', 'function' or "
                  "'response', not several",
                  "test.yaml:24:5: a route has exactly one backend: 'service', 'function' or "
                  "'response', not several"));
}

TEST(Stages, ListenerAndRoute) {
  auto config = loadOk(std::string(kTwoFunctions) + R"(listeners:
  - name: public
    address: 127.0.0.1:8080
    stage: prod
  - name: internal
    address: 127.0.0.1:8081
    stage: {name: v1-beta_2, variables: {zeta: z, Alpha.1: "a b", lambda-alias: live, empty: ""}}
  - name: plain
    address: 127.0.0.1:8082
routes:
  - name: a
    match: {path: /a}
    function: hello
    stage: dev
  - name: b
    match: {path: /b}
    function: orders
    stage:
      variables: {color: blue}
  - name: c
    match: {path: /c}
    function: orders
    stage: {name: $default}
)");
  ASSERT_NE(config, nullptr);
  ASSERT_EQ(config->listeners.size(), 3u);
  EXPECT_TRUE(config->listeners[0].stage.set);
  EXPECT_EQ(config->listeners[0].stage.name, "prod");
  EXPECT_TRUE(config->listeners[0].stage.variables.empty());
  EXPECT_TRUE(config->listeners[1].stage.set);
  EXPECT_EQ(config->listeners[1].stage.name, "v1-beta_2");
  // Sorted by name.
  EXPECT_EQ(config->listeners[1].stage.variables,
            (Env{{"Alpha.1", "a b"}, {"empty", ""}, {"lambda-alias", "live"}, {"zeta", "z"}}));
  EXPECT_FALSE(config->listeners[2].stage.set);
  EXPECT_EQ(config->listeners[2].stage.name, "$default");

  ASSERT_EQ(config->routes.size(), 3u);
  EXPECT_TRUE(config->routes[0].stage.set);
  EXPECT_EQ(config->routes[0].stage.name, "dev");
  EXPECT_TRUE(config->routes[1].stage.set);
  EXPECT_EQ(config->routes[1].stage.name, "$default");  // no name: the default
  EXPECT_EQ(config->routes[1].stage.variables, (Env{{"color", "blue"}}));
  EXPECT_TRUE(config->routes[2].stage.set);
  EXPECT_EQ(config->routes[2].stage.name, "$default");
}

TEST(Stages, Errors) {
  const std::string names = "(letters, digits, '_', '-')";
  EXPECT_EQ(
      errorsOf(std::string(kTwoFunctions) + R"(listeners:
  - name: public
    address: 127.0.0.1:8080
    stage: "prod 1"
  - name: internal
    address: 127.0.0.1:8081
    stage: {name: a/b, vars: {}}
routes:
  - name: a
    match: {path: /a}
    function: hello
    stage: ""
  - name: b
    match: {path: /b}
    function: hello
    stage: {name: [x], variables: {"a b": x, "ok": [y], "a:b": z}}
  - name: c
    match: {path: /c}
    function: hello
    stage: [prod]
  - name: d
    match: {path: /d}
    function: hello
    stage: {variables: [a=b]}
  - name: e
    match: {path: /e}
    function: hello
    stage: )" + std::string(129, 's') +
               R"(
)"),
      lines("test.yaml:10:12: invalid stage name 'prod 1' " + names,
            "test.yaml:13:19: invalid stage name 'a/b' " + names,
            "test.yaml:13:24: unknown key 'vars'; allowed keys: name, variables",
            "test.yaml:18:12: invalid stage name '' " + names, "test.yaml:22:19: expected a string",
            "test.yaml:22:36: invalid variable name 'a b' (letters, digits, '_', '-' and "
            "'.')",
            "test.yaml:22:52: expected a string",
            "test.yaml:22:57: invalid variable name 'a:b' (letters, digits, '_', '-' and "
            "'.')",
            "test.yaml:26:12: expected a map", "test.yaml:30:24: expected a map",
            "test.yaml:34:12: invalid stage name '" + std::string(129, 's') + "' " + names));
  // 128 characters is the longest name.
  auto config = loadOk(std::string(kTwoFunctions) + R"(listeners:
  - name: public
    address: 127.0.0.1:8080
    stage: )" + std::string(128, 's') +
                       "\nroutes: []\n");
  ASSERT_NE(config, nullptr);
  EXPECT_EQ(config->listeners[0].stage.name, std::string(128, 's'));
}

TEST(Stages, OnlyOnFunctionRoutes) {
  EXPECT_EQ(errorsOf(R"(listeners:
  - name: public
    address: 127.0.0.1:8080
services:
  users: {endpoints: ["127.0.0.1:9000"]}
routes:
  - name: a
    match: {path: /a}
    service: users
    stage: prod
  - name: b
    match: {path: /b}
    response: {status: 200}
    stage: {name: prod}
)"),
            lines("test.yaml:10:5: 'stage' applies to routes with a 'function' backend",
                  "test.yaml:14:5: 'stage' applies to routes with a 'function' backend"));
}

// `sluice validate`: functions and function routes, never a credential.
TEST(FunctionSummary, FunctionsAndRoutesWithoutSecrets) {
  NoAwsEnv env;
  setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "SECRETFROMENV", 1);
  setenv("AWS_SESSION_TOKEN", "TOKENFROMENV", 1);
  auto config = loadOk(R"(functions:
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
    function_name: orders-prod
    qualifier: live
    invocation: event
    credentials:
      access_key_id: AKIDINFILE
      secret_access_key: SECRETINFILE
      session_token: TOKENINFILE
  hello:
    runtime: process
    command: [/bin/sh, -c, "exec true"]
    handler: app.handler
    max_concurrency: 3
  plain:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: hello
    match: {methods: [GET], path: "/hello/{name}"}
    function: hello
  - name: orders
    match: {path: /orders}
    function: orders
    stage: prod
  - name: health
    match: {path: /health}
    response: {status: 204}
)");
  ASSERT_NE(config, nullptr);
  std::string text = summary(*config);
  EXPECT_EQ(text,
            "config OK\n"
            "workers: auto\n"
            "listener public on 127.0.0.1:8080\n"
            "function hello: process /bin/sh -c exec true (handler app.handler, "
            "max_concurrency 3)\n"
            "function orders: lambda orders-prod:live at http://127.0.0.1:9001 (event)\n"
            "function plain: lambda plain at http://127.0.0.1:9001\n"
            "route hello: GET /hello/{name} -> function hello\n"
            "route orders: * /orders -> function orders\n"
            "route health: * /health -> response 204\n");
  for (const char* secret : {"AKIDINFILE", "SECRETINFILE", "TOKENINFILE", "AKIDFROMENV",
                             "SECRETFROMENV", "TOKENFROMENV"}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << secret;
  }
}

// Every error of a file, in file order: functions come before the routes that use them.
TEST(FunctionErrors, ManyAtOnceInFileOrder) {
  NoAwsEnv env;
  EXPECT_EQ(errorsOf(R"(listeners:
  - name: public
    address: 127.0.0.1:8080
routes:
  - name: a
    match: {path: /a}
    function: nope
functions:
  orders:
    runtime: lambda
    endpoint: http://127.0.0.1:9001
  hello:
    runtime: process
    command: [/bin/sh]
    memory_mb: 64
function_pricing: {per_gb_second: -1}
)"),
            lines("test.yaml:7:15: unknown function 'nope'; defined functions: hello, orders",
                  "test.yaml:9:3: function 'orders' needs AWS credentials: set 'credentials: "
                  "{access_key_id, secret_access_key}' or AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY",
                  "test.yaml:15:16: must be between 128 and 10240",
                  "test.yaml:16:35: expected a price in dollars (a number, 0 or more)"));
}

}  // namespace
}  // namespace sluice::config
