#include "gateway/admin/config_json.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

namespace sluice {
namespace {

using json = nlohmann::ordered_json;

constexpr const char* kRedacted = "[redacted]";

// The way a user writes durations: 15s rather than 15000ms.
std::string duration(config::Duration d) {
  int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

json match(const config::Route& r) {
  json m;
  m["path"] = r.path;
  if (!r.methods.empty()) m["methods"] = r.methods;
  if (!r.host.empty()) m["host"] = r.host;
  return m;
}

json backend(const config::Config& config, const config::Route& r) {
  if (r.kind == config::BackendKind::kService) {
    json endpoints = json::array();
    auto it = config.services.find(r.service);
    if (it != config.services.end()) {
      for (const auto& ep : it->second.endpoints) endpoints.push_back(ep.text);
    }
    return {{"type", "service"}, {"service", r.service}, {"endpoints", endpoints}};
  }
  if (r.kind == config::BackendKind::kFunction) {
    auto it = config.functions.find(r.function);
    const char* runtime =
        it != config.functions.end() && it->second.runtime == config::FunctionRuntime::kLambda
            ? "lambda"
            : "process";
    return {{"type", "function"}, {"function", r.function}, {"runtime", runtime}};
  }
  return {{"type", "response"}, {"status", r.response.status}};
}

json stage(const config::Stage& s) {
  json vars = json::object();
  for (const auto& [k, v] : s.variables) vars[k] = v;
  return {{"name", s.name}, {"variables", vars}};
}

// File names and what was read from them; never the content of a key.
json tls(const config::ListenerTls& t) {
  json certificates = json::array();
  for (const config::TlsCertificate& c : t.certificates) {
    certificates.push_back(
        {{"certificate", c.certificate}, {"private_key", c.private_key}, {"names", c.names}});
  }
  static const char* const kClientAuth[] = {"none", "optional", "require"};
  return {{"certificates", certificates},
          {"min_version", t.min_version == 0x0304 ? "1.3" : "1.2"},
          {"ciphers", t.ciphers.empty() ? json(nullptr) : json(t.ciphers)},
          {"alpn", t.alpn},
          {"client_ca", t.client_ca.empty() ? json(nullptr) : json(t.client_ca)},
          {"client_auth", kClientAuth[static_cast<size_t>(t.client_auth)]},
          {"session_tickets", t.session_tickets},
          {"handshake_timeout", duration(t.handshake_timeout)},
          {"ocsp_staple", t.ocsp_staple.empty() ? json(nullptr) : json(t.ocsp_staple)}};
}

// Everything but the secret access key and session token (shown redacted when set).
json function(const config::Function& f) {
  json types = f.binary_media_types;
  json out{{"runtime", f.runtime == config::FunctionRuntime::kLambda ? "lambda" : "process"},
           {"payload_format", f.payload_format == config::PayloadFormat::kV1 ? "1.0" : "2.0"},
           {"timeout", duration(f.timeout)},
           {"memory_mb", f.memory_mb},
           {"binary_media_types", types}};
  if (f.runtime == config::FunctionRuntime::kProcess) {
    json env = json::object();
    // Functions keep secrets in their environment as often as not: names only.
    for (const auto& [k, v] : f.environment) env[k] = kRedacted;
    out["command"] = f.command;
    out["handler"] = f.handler;
    out["working_dir"] = f.working_dir;
    out["environment"] = env;
    out["max_concurrency"] = f.max_concurrency;
    out["max_queue"] = f.max_queue;
    out["queue_timeout"] = duration(f.queue_timeout);
    out["idle_timeout"] = duration(f.idle_timeout);
    out["min_instances"] = f.min_instances;
    out["init_timeout"] = duration(f.init_timeout);
  } else {
    out["endpoint"] = f.endpoint;
    out["function_name"] = f.function_name;
    out["qualifier"] = f.qualifier.empty() ? json(nullptr) : json(f.qualifier);
    out["region"] = f.region;
    out["credentials"] = {
        {"access_key_id", f.access_key_id},
        {"secret_access_key", f.secret_access_key.empty() ? json(nullptr) : json(kRedacted)},
        {"session_token", f.session_token.empty() ? json(nullptr) : json(kRedacted)}};
    out["invocation"] = f.invocation_event ? "event" : "request_response";
    out["connect_timeout"] = duration(f.connect_timeout);
    out["max_idle_connections"] = f.max_idle_connections;
    if (f.tls) {
      out["tls"] = {{"ca", f.tls_ca.empty() ? json(nullptr) : json(f.tls_ca)},
                    {"verify", f.tls_verify}};
    }
  }
  return out;
}

json throttle(const config::Throttle& t) { return {{"rate", t.rate}, {"burst", t.burst}}; }

json usagePlans(const config::Config& config) {
  json plans = json::object();
  for (const auto& [name, p] : config.usage_plans) {
    json plan = json::object();
    if (p.throttle.set) plan["throttle"] = throttle(p.throttle);
    if (p.quota.set) {
      static const char* const kPeriods[] = {"DAY", "WEEK", "MONTH"};
      size_t i = static_cast<size_t>(p.quota.period);
      plan["quota"] = {{"limit", p.quota.limit},
                       {"period", i < 3 ? json(kPeriods[i]) : json(duration(p.quota.length))},
                       {"offset", p.quota.offset}};
    }
    for (const auto& [route, t] : p.route_throttles) {
      plan["routes"][route] = {{"throttle", throttle(t)}};
    }
    plans[name] = plan;
  }
  return plans;
}

}  // namespace

std::string configJson(const config::Config& config, uint64_t generation) {
  json c;
  c["workers"] = config.workers == 0 ? json("auto") : json(config.workers);
  c["drain_timeout"] = duration(config.drain_timeout);
  c["watch"] = config.watch;
  json listeners = json::array();
  for (const config::Listener& l : config.listeners) {
    listeners.push_back({{"name", l.name},
                         {"address", l.address.text},
                         {"header_timeout", duration(l.header_timeout)},
                         {"idle_timeout", duration(l.idle_timeout)},
                         {"max_connections", l.max_connections}});
    if (l.stage.set) listeners.back()["stage"] = stage(l.stage);
    if (l.tls.enabled) listeners.back()["tls"] = tls(l.tls);
  }
  c["listeners"] = listeners;
  if (config.admin.enabled) {
    json admin{{"address", config.admin.address.text}};
    if (!config.admin.token.empty()) admin["token"] = kRedacted;
    c["admin"] = admin;
  }
  if (config.redis.enabled) {
    const config::Redis& r = config.redis;
    json redis{{"url", r.url}};  // already without its password
    if (!r.username.empty()) redis["username"] = r.username;
    if (!r.password.empty()) redis["password"] = kRedacted;
    redis["db"] = r.db;
    redis["connect_timeout"] = duration(r.connect_timeout);
    redis["command_timeout"] = duration(r.command_timeout);
    redis["pool"] = r.pool;
    if (r.tls) {
      redis["tls"] = {{"ca", r.tls_ca.empty() ? json(nullptr) : json(r.tls_ca)},
                      {"verify", r.tls_verify}};
    }
    c["redis"] = redis;
  }
  // API keys by name and plan only: never a key, never a key's hash.
  if (!config.api_keys.empty()) {
    json keys = json::array();
    for (const config::ApiKey& k : config.api_keys) {
      keys.push_back({{"name", k.name},
                      {"usage_plan", k.usage_plan.empty() ? json(nullptr) : json(k.usage_plan)},
                      {"enabled", k.enabled}});
    }
    c["api_keys"] = keys;
  }
  if (!config.usage_plans.empty()) c["usage_plans"] = usagePlans(config);
  json services = json::object();
  for (const auto& [name, s] : config.services) {
    json endpoints = json::array();
    for (const auto& ep : s.endpoints) endpoints.push_back(ep.text);
    services[name] = {
        {"endpoints", endpoints},
        {"load_balancer",
         s.load_balancer == config::LoadBalancer::kRoundRobin ? "round_robin" : "least_request"},
        {"connect_timeout", duration(s.connect_timeout)},
        {"timeout", duration(s.timeout)},
        {"max_idle_connections", s.max_idle_connections}};
  }
  c["services"] = services;
  if (!config.functions.empty()) {
    json functions = json::object();
    for (const auto& [name, f] : config.functions) functions[name] = function(f);
    c["functions"] = functions;
    c["function_pricing"] = {{"per_million_requests", config.function_pricing.per_million_requests},
                             {"per_gb_second", config.function_pricing.per_gb_second}};
  }
  json routes = json::array();
  for (const config::Route& r : config.routes) {
    json route{{"name", r.name}, {"match", match(r)}, {"max_body", r.max_body}};
    if (r.kind == config::BackendKind::kService) {
      route["service"] = r.service;
    } else if (r.kind == config::BackendKind::kFunction) {
      route["function"] = r.function;
      if (r.stage.set) route["stage"] = stage(r.stage);
    } else {
      json headers = json::object();
      for (const auto& [name, value] : r.response.headers) headers[name] = value;
      route["response"] = {
          {"status", r.response.status}, {"headers", headers}, {"body", r.response.body}};
    }
    routes.push_back(route);
  }
  c["routes"] = routes;
  json out{{"file", config.file}, {"generation", generation}, {"config", c}};
  return out.dump(2) + "\n";
}

std::string routesJson(const config::Config& config) {
  json routes = json::array();
  // describe() lists routes in precedence order as "[id] name host methods path".
  for (const std::string& line : config.router->describe()) {
    size_t id = std::strtoul(line.c_str() + 1, nullptr, 10);
    if (id >= config.routes.size()) continue;
    const config::Route& r = config.routes[id];
    json route{{"name", r.name},
               {"host", r.host.empty() ? "*" : r.host},
               {"methods", r.methods.empty() ? json("*") : json(r.methods)},
               {"path", r.path},
               {"backend", backend(config, r)},
               {"filters", r.chain.size()}};
    routes.push_back(route);
  }
  return json{{"routes", routes}}.dump(2) + "\n";
}

}  // namespace sluice
