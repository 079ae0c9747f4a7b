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
  return {{"type", "response"}, {"status", r.response.status}};
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
  }
  c["listeners"] = listeners;
  if (config.admin.enabled) {
    json admin{{"address", config.admin.address.text}};
    if (!config.admin.token.empty()) admin["token"] = kRedacted;
    c["admin"] = admin;
  }
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
  json routes = json::array();
  for (const config::Route& r : config.routes) {
    json route{{"name", r.name}, {"match", match(r)}, {"max_body", r.max_body}};
    if (r.kind == config::BackendKind::kService) {
      route["service"] = r.service;
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
