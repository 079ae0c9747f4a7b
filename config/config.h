// The typed, validated configuration. A Config is built whole by the loader and then
// never changes: workers share it as std::shared_ptr<const Config>, and a reload makes
// a new one. Nothing here touches sockets or the event loop.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gateway/router/router.h"

namespace sluice {
class FilterFactory;
}

namespace sluice::config {

using Duration = std::chrono::milliseconds;

// Where a value came from in the YAML file (1-based), for error messages.
struct Mark {
  int line = 0;
  int column = 0;
};

// A resolved socket address ("127.0.0.1:8080", "[::1]:8080", "localhost:8080").
struct SocketAddress {
  std::string text;  // as written
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// API Gateway's stage, as function events carry it (`stage`, `stageVariables`). Set on
// a listener and/or a route; the route's wins. `set` false = not given here.
struct Stage {
  bool set = false;
  std::string name = "$default";
  std::vector<std::pair<std::string, std::string>> variables;  // sorted by name
};

// One certificate of a TLS listener: the chain and key files (PEM), and the names it
// serves (from its subjectAltName DNS entries, else its CN; "*.example.com" wildcards
// included), read when the config loads.
struct TlsCertificate {
  std::string certificate;  // path (absolute)
  std::string private_key;  // path (absolute); its content is never logged or shown
  std::vector<std::string> names;
  Mark mark;
};

enum class ClientAuth { kNone, kOptional, kRequire };

// A listener's `tls:`. Absent = `enabled` false (plain HTTP).
struct ListenerTls {
  bool enabled = false;
  std::vector<TlsCertificate> certificates;   // [0] is the default (no or unknown SNI)
  int min_version = 0x0303;                   // TLS1_2_VERSION; "1.3" → 0x0304
  std::string ciphers;                        // TLS 1.2 cipher list; "" = sluice's default
  std::vector<std::string> alpn{"http/1.1"};  // offered protocols, in preference order
  std::string client_ca;                      // path; "" = no client certificates asked
  ClientAuth client_auth = ClientAuth::kNone;
  bool session_tickets = true;
  Duration handshake_timeout{10'000};
  std::string ocsp_staple;  // path to a DER OCSP response for certificates[0]; "" = none
  Mark mark;
};

// HTTP/2 limits of a listener (`http2:`); the defaults are Envoy's edge defaults.
struct Http2Settings {
  uint32_t max_concurrent_streams = 100;
  uint32_t max_header_list_size = 64 * 1024;
  uint32_t initial_stream_window = 65'535;
  uint32_t connection_window = 1 << 20;
};

struct Listener {
  std::string name;
  SocketAddress address;
  Stage stage;
  ListenerTls tls;
  bool h2c = false;  // cleartext HTTP/2 with prior knowledge (next to HTTP/1.1)
  Http2Settings http2;
  Duration header_timeout{10'000};    // whole request head must arrive in this time → 408
  Duration idle_timeout{60'000};      // keep-alive connection with no request → closed
  uint32_t max_connections = 10'000;  // per worker; beyond it, accepting pauses
  Mark mark;
};

enum class LoadBalancer { kRoundRobin, kLeastRequest };

struct Service {
  std::string name;
  std::vector<SocketAddress> endpoints;
  LoadBalancer load_balancer = LoadBalancer::kRoundRobin;
  Duration connect_timeout{2'000};
  Duration timeout{30'000};            // waiting for the response head, and between reads after
  uint32_t max_idle_connections = 64;  // per endpoint and worker, kept for keep-alive
  // `tls:`: HTTPS to the endpoints. The certificate is checked against `tls_ca` (or the
  // system store) for the name `tls_sni`, else each endpoint's host name (its IP for
  // an IP endpoint).
  bool tls = false;
  bool tls_verify = true;
  std::string tls_ca;
  std::string tls_sni;
  Mark mark;
};

struct StaticResponse {
  uint16_t status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

enum class FunctionRuntime { kProcess, kLambda };
enum class PayloadFormat { kV1, kV2 };  // API Gateway payload format "1.0" / "2.0"

// A `functions:` entry: a Lambda-style function reached through the Lambda Invoke API
// (kLambda) or run by sluice itself behind the Lambda Runtime API (kProcess).
struct Function {
  std::string name;
  FunctionRuntime runtime = FunctionRuntime::kProcess;
  PayloadFormat payload_format = PayloadFormat::kV2;
  Duration timeout{3'000};  // one invocation, end to end → 504
  uint32_t memory_mb = 128;
  // Content types whose bodies travel base64-encoded ("image/png", "image/*", "*/*").
  // Bodies that are not valid UTF-8 are always base64-encoded.
  std::vector<std::string> binary_media_types;

  // kProcess
  std::vector<std::string> command;  // argv, as written
  std::string program;      // command[0] resolved when the config loads (PATH, working_dir)
  std::string handler;      // _HANDLER
  std::string working_dir;  // LAMBDA_TASK_ROOT and cwd; default: config file's dir
  std::vector<std::pair<std::string, std::string>> environment;
  uint32_t max_concurrency = 10;   // busy instances at once
  uint32_t max_queue = 100;        // requests waiting for an instance; beyond → 429
  Duration queue_timeout{0};       // longest wait for an instance (0 = until `timeout`)
  Duration idle_timeout{300'000};  // an idle instance is stopped after this
  uint32_t min_instances = 0;      // kept warm even when idle
  Duration init_timeout{10'000};   // start to first /invocation/next

  // kLambda
  std::string endpoint;  // as written ("https://lambda.us-east-1.amazonaws.com")
  bool tls = false;
  std::string host;  // for Host and SNI
  uint16_t port = 0;
  SocketAddress address;      // resolved when the config loads
  std::string function_name;  // name or ARN, as in the invoke path
  std::string qualifier;      // version or alias; "" = none
  std::string region = "us-east-1";
  std::string access_key_id;      // "" = from AWS_ACCESS_KEY_ID at load time
  std::string secret_access_key;  // never logged or shown
  std::string session_token;      // never logged or shown
  bool invocation_event = false;  // `invocation: event` (async, client gets 202)
  Duration connect_timeout{2'000};
  uint32_t max_idle_connections = 16;  // per worker
  bool tls_verify = true;
  std::string tls_ca;  // CA bundle ("" = system default)
  Mark mark;
};

// `function_pricing:` — for the estimated-cost metric.
struct FunctionPricing {
  double per_million_requests = 0.20;
  double per_gb_second = 0.0000166667;
};

enum class BackendKind { kService, kResponse, kFunction };

struct Route {
  std::string name;
  // match:
  std::string host;                  // "" = any
  std::vector<std::string> methods;  // upper-case; empty = any
  std::string path;                  // template
  // backend (exactly one):
  BackendKind kind = BackendKind::kResponse;
  std::string service;      // kService: key into Config::services
  std::string function;     // kFunction: key into Config::functions
  Stage stage;              // for function events (falls back to the listener's)
  StaticResponse response;  // kResponse
  uint64_t max_body = 10ull * 1024 * 1024;
  // The whole filter chain of this route: global filters (minus those the route
  // disables, with the route's overrides in their place), then the route's own.
  std::vector<std::shared_ptr<const FilterFactory>> chain;
  Mark mark;
};

// The admin listener (/metrics, /healthz, /ready, /config, /routes, POST /reload). It
// exists only when the config has an `admin:` key.
struct Admin {
  bool enabled = false;
  SocketAddress address;  // default 127.0.0.1:9901
  std::string token;      // bearer token; "" = no authentication. Never log or show it.
  Mark mark;
};

// The `redis:` section: one connection per worker (or `pool` of them), shared by every
// filter that keeps state in Redis. Absent = `enabled` false.
struct Redis {
  bool enabled = false;
  std::string url;   // as written, with any password in it replaced by "***" (for /config)
  bool tls = false;  // rediss://
  std::string host;
  uint16_t port = 6379;
  SocketAddress address;  // host:port resolved when the config loads (workers never do DNS)
  std::string username;   // ACL user; "" = default
  std::string password;   // never logged or shown
  unsigned db = 0;
  Duration connect_timeout{1'000};
  Duration command_timeout{50};
  unsigned pool = 1;   // connections per worker
  std::string tls_ca;  // CA bundle for rediss:// ("" = system default)
  bool tls_verify = true;
  Mark mark;
  // Same server and settings (a reload keeps the connections when this holds).
  bool sameAs(const Redis& o) const {
    return enabled == o.enabled && tls == o.tls && host == o.host && port == o.port &&
           address.len == o.address.len &&
           std::memcmp(&address.addr, &o.address.addr, address.len) == 0 &&
           username == o.username && password == o.password && db == o.db &&
           connect_timeout == o.connect_timeout && command_timeout == o.command_timeout &&
           pool == o.pool && tls_ca == o.tls_ca && tls_verify == o.tls_verify;
  }
};

// A usage plan's throttle: token bucket (rate per second, burst). `set` false = none.
struct Throttle {
  bool set = false;
  double rate = 0;
  double burst = 0;
  Mark mark;
};

enum class QuotaPeriod { kDay, kWeek, kMonth, kCustom };

// A usage plan's quota: `limit` requests per period. Periods start at UTC midnight
// (DAY), on the weekday `offset` (WEEK, 0 = Sunday), on day `offset`+1 of the month
// (MONTH); kCustom is a fixed-length window (`length`) from the epoch — for tests and
// short windows.
struct Quota {
  bool set = false;
  uint64_t limit = 0;
  QuotaPeriod period = QuotaPeriod::kDay;
  int offset = 0;
  Duration length{0};  // kCustom only
};

struct UsagePlan {
  std::string name;
  Throttle throttle;
  Quota quota;
  std::map<std::string, Throttle> route_throttles;  // `routes: {NAME: {throttle: ...}}`
  Mark mark;
};

struct ApiKey {
  std::string name;
  std::string usage_plan;  // "" = none (no throttle, no quota)
  bool enabled = true;
  std::string sha256;  // 32 raw bytes: the key's SHA-256 (the key itself is not kept)
  Mark mark;
};

struct Config {
  std::string file;      // path it was loaded from ("" for inline)
  unsigned workers = 0;  // 0 = auto (number of cores)
  Duration drain_timeout{15'000};
  std::vector<Listener> listeners;
  std::map<std::string, Service> services;
  std::map<std::string, Function> functions;
  FunctionPricing function_pricing;
  std::vector<Route> routes;                     // index == router id
  std::shared_ptr<const router::Router> router;  // compiled from routes
  // Global filters: the chain of requests that match no route.
  std::vector<std::shared_ptr<const FilterFactory>> global_chain;
  Admin admin;
  bool watch = false;  // reload when the config file changes
  Redis redis;
  std::vector<ApiKey> api_keys;                  // in file order
  std::map<std::string, UsagePlan> usage_plans;  // by name
};

struct Error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string message;
  std::string str() const;  // "FILE:LINE:COL: message" ("FILE: message" without a mark)
};

struct LoadResult {
  std::shared_ptr<const Config> config;  // null when there are errors
  std::vector<Error> errors;             // every error found, in file order
};

// Reads, substitutes ${VAR} / ${VAR:-default} from the environment, parses, validates
// (unknown keys, wrong types, bad values, dangling service names, ambiguous routes).
LoadResult loadFile(const std::string& path);
// Same, from a string; `name` is used as FILE in errors.
LoadResult loadString(const std::string& yaml, const std::string& name);

// Parses "250ms", "3s", "10m", "2h" (also "1.5s"); false if malformed.
bool parseDuration(const std::string& text, Duration& out);
// Parses "10MiB", "512KiB", "1GiB", "1048576", "10MB", "1KB"; false if malformed.
bool parseSize(const std::string& text, uint64_t& out);

// "listener public on 127.0.0.1:8080" … lines for `sluice validate`.
std::string summary(const Config& config);

}  // namespace sluice::config
