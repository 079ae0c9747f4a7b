#include "gateway/admin/metrics.h"

#include <time.h>

#include <cstdio>
#include <set>

#include "filters/filter.h"

namespace sluice {
namespace metrics {

size_t methodIndex(std::string_view method) {
  for (size_t i = 0; i + 1 < kMethodCount; ++i) {
    if (method == kMethods[i]) return i;
  }
  return kMethodCount - 1;
}

}  // namespace metrics

namespace {

double wallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void appendLabel(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append("=\"");
  metrics::appendEscapedLabel(out, value);
  out.push_back('"');
}

void appendHeader(std::string& out, const char* name, const char* type, const char* help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void appendValue(std::string& out, uint64_t value) {
  out.push_back(' ');
  out.append(std::to_string(value));
  out.push_back('\n');
}

void appendValue(std::string& out, int64_t value) {
  out.push_back(' ');
  out.append(std::to_string(value));
  out.push_back('\n');
}

void appendDouble(std::string& out, double value, const char* format = "%.6f") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  out.push_back(' ');
  out.append(buf);
  out.push_back('\n');
}

constexpr const char* kErrorKinds[metrics::kUpstreamErrorKinds] = {"connect", "timeout", "reset",
                                                                   "invalid"};

// Two uses of one filter (say rate_limit on two routes) each append the same metric
// family; the text format wants one HELP/TYPE per family and its samples together.
void mergeFamilies(std::string_view text, std::string& out) {
  struct Family {
    std::string help, type, samples;
  };
  std::vector<std::string> order;
  std::map<std::string, Family, std::less<>> families;
  auto family = [&](std::string_view name) -> Family& {
    auto it = families.find(name);
    if (it == families.end()) {
      order.emplace_back(name);
      it = families.emplace(std::string(name), Family{}).first;
    }
    return it->second;
  };
  std::string current;  // family of the last HELP/TYPE line
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty()) continue;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      std::string_view rest = line.substr(7);
      std::string_view name = rest.substr(0, rest.find(' '));
      Family& f = family(name);
      std::string& slot = line[2] == 'H' ? f.help : f.type;
      if (slot.empty()) slot.assign(line).push_back('\n');
      current.assign(name);
      continue;
    }
    if (line.front() == '#') continue;
    std::string_view name = line.substr(0, line.find_first_of("{ "));
    // Histogram and summary samples (_bucket, _sum, _count) belong to the typed family.
    Family& f = !current.empty() && name.starts_with(current) ? family(current) : family(name);
    f.samples.append(line).push_back('\n');
  }
  for (const std::string& name : order) {
    const Family& f = families.find(name)->second;
    out.append(f.help).append(f.type).append(f.samples);
  }
}

// One series of a latency histogram over kBucketsUs: `buckets` are per-bucket counts
// (not cumulative), `sum_us` the total in microseconds.
void appendHistogram(std::string& out, std::string_view family, std::string_view label,
                     std::string_view value, const uint64_t (&buckets)[metrics::kBucketCount],
                     uint64_t sum_us) {
  uint64_t cumulative = 0;
  for (size_t b = 0; b < metrics::kBucketCount; ++b) {
    cumulative += buckets[b];
    out.append(family).append("_bucket{");
    appendLabel(out, label, value);
    out.push_back(',');
    char le[32];
    if (b + 1 < metrics::kBucketCount) {
      std::snprintf(le, sizeof le, "%g", static_cast<double>(metrics::kBucketsUs[b]) / 1e6);
    } else {
      std::snprintf(le, sizeof le, "+Inf");
    }
    appendLabel(out, "le", le);
    out.push_back('}');
    appendValue(out, cumulative);
  }
  out.append(family).append("_sum{");
  appendLabel(out, label, value);
  out.push_back('}');
  appendDouble(out, static_cast<double>(sum_us) / 1e6);
  out.append(family).append("_count{");
  appendLabel(out, label, value);
  out.push_back('}');
  appendValue(out, cumulative);
}

}  // namespace

void RouteMetrics::record(std::string_view method, uint16_t status, uint64_t duration) {
  size_t cls = status >= 100 && status < 600 ? status / 100 - 1 : 4;
  requests[metrics::methodIndex(method)][cls].add();
  size_t b = 0;
  while (b < std::size(metrics::kBucketsUs) && duration > metrics::kBucketsUs[b]) ++b;
  buckets[b].add();
  duration_us.add(duration);
}

void FunctionMetrics::recordDuration(uint64_t duration, uint32_t memory_mb) {
  size_t b = 0;
  while (b < std::size(metrics::kBucketsUs) && duration > metrics::kBucketsUs[b]) ++b;
  buckets[b].add();
  duration_us.add(duration);
  billed_mb_ms.add((duration + 999) / 1000 * memory_mb);
}

MetricsRegistry::MetricsRegistry(unsigned workers) : start_time_(wallSeconds()) {
  last_reload_time_ = start_time_;
  for (unsigned i = 0; i < workers; ++i) workers_.push_back(std::make_unique<PerWorker>());
}

MetricsRegistry::~MetricsRegistry() = default;

size_t MetricsRegistry::slot(std::map<std::string, size_t>& slots, std::vector<std::string>& names,
                             const std::string& name) {
  auto [it, added] = slots.emplace(name, names.size());
  if (added) {
    names.push_back(name);
    grow();
  }
  return it->second;
}

void MetricsRegistry::grow() {
  for (auto& w : workers_) {
    while (w->routes.size() < route_names_.size()) {
      w->routes.push_back(std::make_unique<RouteMetrics>());
    }
    while (w->endpoints.size() < endpoint_names_.size()) {
      w->endpoints.push_back(std::make_unique<EndpointMetrics>());
    }
    while (w->listeners.size() < listener_names_.size()) {
      w->listeners.push_back(std::make_unique<ListenerMetrics>());
    }
    while (w->functions.size() < function_names_.size()) {
      w->functions.push_back(std::make_unique<FunctionMetrics>());
    }
  }
  while (function_hosts_.size() < function_names_.size()) {
    function_hosts_.push_back(std::make_unique<FunctionHostMetrics>());
  }
}

SnapshotMetrics MetricsRegistry::bind(const config::Config& config, unsigned worker) {
  SnapshotMetrics out;
  PerWorker& w = *workers_[worker];
  for (const config::Route& r : config.routes) {
    size_t s = slot(route_slots_, route_names_, r.name);
    out.routes.push_back(w.routes[s].get());
  }
  out.no_route = w.routes[slot(route_slots_, route_names_, std::string(metrics::kNoRoute))].get();
  for (const auto& [name, service] : config.services) {
    auto& list = out.services[name];
    for (const config::SocketAddress& ep : service.endpoints) {
      size_t s = slot(endpoint_slots_, endpoint_names_, name + "\n" + ep.text);
      list.push_back(w.endpoints[s].get());
    }
  }
  for (const config::Listener& l : config.listeners) {
    out.listeners.push_back(w.listeners[slot(listener_slots_, listener_names_, l.name)].get());
    if (l.tls.enabled) tls_listeners_.insert(l.name);
  }
  for (const auto& [name, fn] : config.functions) {
    size_t s = slot(function_slots_, function_names_, name);
    out.functions[name] = w.functions[s].get();
    if (fn.runtime == config::FunctionRuntime::kProcess) {
      out.function_hosts[name] = function_hosts_[s].get();
    }
  }
  return out;
}

void MetricsRegistry::reloadResult(bool success, uint64_t generation) {
  (success ? reloads_ok_ : reloads_failed_)++;
  last_reload_ok_ = success;
  generation_ = generation;
  last_reload_time_ = wallSeconds();
}

void MetricsRegistry::renderRequests(std::string& out) const {
  appendHeader(out, "sluice_requests_total", "counter",
               "Requests answered, by route, method and status class.");
  for (size_t r = 0; r < route_names_.size(); ++r) {
    for (size_t m = 0; m < metrics::kMethodCount; ++m) {
      for (size_t c = 0; c < metrics::kStatusClasses; ++c) {
        uint64_t n = 0;
        for (const auto& w : workers_) n += w->routes[r]->requests[m][c].get();
        if (n == 0) continue;
        out.append("sluice_requests_total{");
        appendLabel(out, "route", route_names_[r]);
        out.push_back(',');
        appendLabel(out, "method", metrics::kMethods[m]);
        out.push_back(',');
        char cls[4] = {static_cast<char>('1' + c), 'x', 'x', '\0'};
        appendLabel(out, "status_class", cls);
        out.push_back('}');
        appendValue(out, n);
      }
    }
  }
  appendHeader(out, "sluice_request_duration_seconds", "histogram",
               "Time from the request head to the end of the response, by route.");
  for (size_t r = 0; r < route_names_.size(); ++r) {
    uint64_t buckets[metrics::kBucketCount] = {};
    uint64_t sum_us = 0;
    for (const auto& w : workers_) {
      for (size_t b = 0; b < metrics::kBucketCount; ++b)
        buckets[b] += w->routes[r]->buckets[b].get();
      sum_us += w->routes[r]->duration_us.get();
    }
    appendHistogram(out, "sluice_request_duration_seconds", "route", route_names_[r], buckets,
                    sum_us);
  }
}

void MetricsRegistry::renderUpstream(std::string& out) const {
  appendHeader(out, "sluice_upstream_errors_total", "counter",
               "Failed upstream exchanges, by service, endpoint and kind "
               "(connect, timeout, reset, invalid).");
  for (size_t e = 0; e < endpoint_names_.size(); ++e) {
    const std::string& key = endpoint_names_[e];
    size_t nl = key.find('\n');
    std::string_view service(key.data(), nl);
    std::string_view endpoint(key.data() + nl + 1, key.size() - nl - 1);
    for (size_t k = 0; k < metrics::kUpstreamErrorKinds; ++k) {
      uint64_t n = 0;
      for (const auto& w : workers_) n += w->endpoints[e]->errors[k].get();
      out.append("sluice_upstream_errors_total{");
      appendLabel(out, "service", service);
      out.push_back(',');
      appendLabel(out, "endpoint", endpoint);
      out.push_back(',');
      appendLabel(out, "kind", kErrorKinds[k]);
      out.push_back('}');
      appendValue(out, n);
    }
  }
}

void MetricsRegistry::renderGauges(std::string& out) const {
  appendHeader(out, "sluice_connections_active", "gauge", "Open client connections, by listener.");
  for (size_t l = 0; l < listener_names_.size(); ++l) {
    int64_t n = 0;
    for (const auto& w : workers_) n += w->listeners[l]->active.get();
    out.append("sluice_connections_active{");
    appendLabel(out, "listener", listener_names_[l]);
    out.push_back('}');
    appendValue(out, n);
  }
  appendHeader(out, "sluice_connections_accepted_total", "counter",
               "Client connections accepted, by listener.");
  for (size_t l = 0; l < listener_names_.size(); ++l) {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->listeners[l]->accepted.get();
    out.append("sluice_connections_accepted_total{");
    appendLabel(out, "listener", listener_names_[l]);
    out.push_back('}');
    appendValue(out, n);
  }
  appendHeader(out, "sluice_tls_handshakes_total", "counter",
               "TLS handshakes on TLS listeners, by listener and result (success, failure).");
  for (size_t l = 0; l < listener_names_.size(); ++l) {
    uint64_t ok = 0, failed = 0;
    for (const auto& w : workers_) {
      ok += w->listeners[l]->tls_handshakes_ok.get();
      failed += w->listeners[l]->tls_handshakes_failed.get();
    }
    if (ok == 0 && failed == 0 && !tls_listeners_.count(listener_names_[l])) continue;
    for (auto [result, n] : {std::pair{"success", ok}, std::pair{"failure", failed}}) {
      out.append("sluice_tls_handshakes_total{");
      appendLabel(out, "listener", listener_names_[l]);
      out.push_back(',');
      appendLabel(out, "result", result);
      out.push_back('}');
      appendValue(out, n);
    }
  }
  appendHeader(out, "sluice_streams_active", "gauge", "Requests in flight.");
  int64_t streams = 0;
  for (const auto& w : workers_) streams += w->process->streams_active.get();
  out.append("sluice_streams_active");
  appendValue(out, streams);

  appendHeader(out, "sluice_config_reloads_total", "counter",
               "Configuration reloads, by result (success, failure).");
  out.append("sluice_config_reloads_total{result=\"success\"}");
  appendValue(out, reloads_ok_);
  out.append("sluice_config_reloads_total{result=\"failure\"}");
  appendValue(out, reloads_failed_);
  appendHeader(out, "sluice_config_last_reload_success", "gauge",
               "1 if the last reload succeeded (or none was tried), else 0.");
  out.append("sluice_config_last_reload_success");
  appendValue(out, static_cast<uint64_t>(last_reload_ok_ ? 1 : 0));
  appendHeader(out, "sluice_config_last_reload_timestamp_seconds", "gauge",
               "When the configuration was last loaded or a reload was last tried.");
  out.append("sluice_config_last_reload_timestamp_seconds");
  appendDouble(out, last_reload_time_, "%.3f");
  appendHeader(out, "sluice_config_generation", "gauge",
               "Number of the configuration serving new requests (1 at start).");
  out.append("sluice_config_generation");
  appendValue(out, generation_);
  appendHeader(out, "sluice_workers", "gauge", "Worker threads.");
  out.append("sluice_workers");
  appendValue(out, static_cast<uint64_t>(workers_.size()));
  appendHeader(out, "process_start_time_seconds", "gauge",
               "Start time of the process since the Unix epoch in seconds.");
  out.append("process_start_time_seconds");
  appendDouble(out, start_time_, "%.3f");
}

void MetricsRegistry::renderFunctions(std::string& out, const config::Config& current) const {
  if (function_names_.empty()) return;
  auto sum = [&](size_t f, auto member) {
    uint64_t n = 0;
    for (const auto& w : workers_) n += (w->functions[f].get()->*member).get();
    return n;
  };
  auto series = [&](const char* name, size_t f) {
    out.append(name).append("{");
    appendLabel(out, "function", function_names_[f]);
    out.push_back('}');
  };
  struct CounterFamily {
    const char* name;
    const char* help;
    Counter FunctionMetrics::*member;
  };
  const CounterFamily kCounters[] = {
      {"sluice_function_invocations_total", "Function invocations (throttled ones included).",
       &FunctionMetrics::invocations},
      {"sluice_function_errors_total",
       "Invocations that ended in a function error, a crash, a malformed reply or a failed "
       "invoke (502).",
       &FunctionMetrics::errors},
      {"sluice_function_throttles_total", "Invocations refused for lack of capacity (429).",
       &FunctionMetrics::throttles},
      {"sluice_function_timeouts_total", "Invocations past the function's timeout (504).",
       &FunctionMetrics::timeouts},
  };
  for (const CounterFamily& c : kCounters) {
    appendHeader(out, c.name, "counter", c.help);
    for (size_t f = 0; f < function_names_.size(); ++f) {
      series(c.name, f);
      appendValue(out, sum(f, c.member));
    }
  }
  appendHeader(out, "sluice_function_duration_seconds", "histogram",
               "Duration of function invocations (execution time for the process runtime, "
               "round trip for the lambda runtime).");
  for (size_t f = 0; f < function_names_.size(); ++f) {
    uint64_t buckets[metrics::kBucketCount] = {};
    for (const auto& w : workers_) {
      for (size_t b = 0; b < metrics::kBucketCount; ++b) {
        buckets[b] += w->functions[f]->buckets[b].get();
      }
    }
    appendHistogram(out, "sluice_function_duration_seconds", "function", function_names_[f],
                    buckets, sum(f, &FunctionMetrics::duration_us));
  }
  appendHeader(out, "sluice_function_concurrent_executions", "gauge",
               "Invocations in flight: from the request's invoke to its result (waiting for an "
               "instance included).");
  for (size_t f = 0; f < function_names_.size(); ++f) {
    int64_t n = 0;
    for (const auto& w : workers_) n += w->functions[f]->in_flight.get();
    series("sluice_function_concurrent_executions", f);
    appendValue(out, n);
  }
  appendHeader(out, "sluice_function_billed_gigabyte_seconds_total", "counter",
               "Billed GB-seconds: each duration rounded up to 1 ms, times memory_mb / 1024.");
  for (size_t f = 0; f < function_names_.size(); ++f) {
    series("sluice_function_billed_gigabyte_seconds_total", f);
    appendDouble(out, static_cast<double>(sum(f, &FunctionMetrics::billed_mb_ms)) / 1024.0 / 1000.0,
                 "%.9g");
  }
  appendHeader(out, "sluice_function_estimated_cost_dollars_total", "counter",
               "Estimated Lambda cost: requests and GB-seconds at function_pricing's prices.");
  const config::FunctionPricing& price = current.function_pricing;
  for (size_t f = 0; f < function_names_.size(); ++f) {
    double gbs = static_cast<double>(sum(f, &FunctionMetrics::billed_mb_ms)) / 1024.0 / 1000.0;
    double requests = static_cast<double>(sum(f, &FunctionMetrics::invocations) -
                                          sum(f, &FunctionMetrics::throttles));
    series("sluice_function_estimated_cost_dollars_total", f);
    appendDouble(out, requests * price.per_million_requests / 1e6 + gbs * price.per_gb_second,
                 "%.9g");
  }
  struct HostFamily {
    const char* name;
    const char* type;
    const char* help;
    bool gauge;
    Counter FunctionHostMetrics::*counter;
    Gauge FunctionHostMetrics::*value;
  };
  const HostFamily kHost[] = {
      {"sluice_function_cold_starts_total", "counter", "Instances started (process runtime).",
       false, &FunctionHostMetrics::cold_starts, nullptr},
      {"sluice_function_instance_crashes_total", "counter",
       "Instances that exited on their own (process runtime).", false,
       &FunctionHostMetrics::crashes, nullptr},
      {"sluice_function_instances_killed_total", "counter",
       "Instances stopped by sluice: timeout, memory, idle, reload (process runtime).", false,
       &FunctionHostMetrics::killed, nullptr},
      {"sluice_function_instances", "gauge", "Instances alive (process runtime).", true, nullptr,
       &FunctionHostMetrics::instances},
      {"sluice_function_queued", "gauge", "Invocations waiting for an instance (process runtime).",
       true, nullptr, &FunctionHostMetrics::queued},
  };
  for (const HostFamily& h : kHost) {
    appendHeader(out, h.name, h.type, h.help);
    for (size_t f = 0; f < function_names_.size(); ++f) {
      auto it = current.functions.find(function_names_[f]);
      if (it == current.functions.end() ||
          it->second.runtime != config::FunctionRuntime::kProcess) {
        continue;
      }
      series(h.name, f);
      if (h.gauge) {
        appendValue(out, (function_hosts_[f].get()->*h.value).get());
      } else {
        appendValue(out, (function_hosts_[f].get()->*h.counter).get());
      }
    }
  }
  appendHeader(out, "sluice_function_init_duration_seconds_total", "counter",
               "Time from instance start to its first /invocation/next, summed (process "
               "runtime; divide by cold starts for the mean).");
  for (size_t f = 0; f < function_names_.size(); ++f) {
    auto it = current.functions.find(function_names_[f]);
    if (it == current.functions.end() || it->second.runtime != config::FunctionRuntime::kProcess) {
      continue;
    }
    series("sluice_function_init_duration_seconds_total", f);
    appendDouble(out, static_cast<double>(function_hosts_[f]->init_us.get()) / 1e6);
  }
}

std::string MetricsRegistry::render(const config::Config& current) const {
  std::string out;
  out.reserve(16 * 1024);
  renderRequests(out);
  renderUpstream(out);
  renderGauges(out);
  renderFunctions(out, current);
  if (current.redis.enabled) {
    // The Redis client's counters (gateway/redis), summed over workers.
    uint64_t outcomes[4] = {0, 0, 0, 0};
    uint64_t reconnects = 0;
    int64_t connected = 0;
    for (const auto& w : workers_) {
      const RedisMetrics& r = w->process->redis;
      outcomes[0] += r.replies.get();
      outcomes[1] += r.errors.get();
      outcomes[2] += r.timeouts.get();
      outcomes[3] += r.unavailable.get();
      reconnects += r.reconnects.get();
      connected += r.connected.get();
    }
    appendHeader(out, "sluice_redis_commands_total", "counter",
                 "Redis commands by outcome (reply, error reply, timeout, unavailable).");
    const char* kOutcomes[] = {"reply", "error", "timeout", "unavailable"};
    for (size_t i = 0; i < 4; ++i) {
      out.append("sluice_redis_commands_total{");
      appendLabel(out, "outcome", kOutcomes[i]);
      out.push_back('}');
      appendValue(out, outcomes[i]);
    }
    appendHeader(out, "sluice_redis_connected", "gauge", "Redis connections ready now.");
    out.append("sluice_redis_connected");
    appendValue(out, connected);
    appendHeader(out, "sluice_redis_reconnects_total", "counter",
                 "Redis connections made again after a failure.");
    out.append("sluice_redis_reconnects_total");
    appendValue(out, reconnects);
  }
  // A factory used by several routes (a global filter) appears once.
  std::set<const FilterFactory*> seen;
  std::string filters;
  auto each = [&](const std::vector<std::shared_ptr<const FilterFactory>>& chain) {
    for (const auto& f : chain) {
      if (seen.insert(f.get()).second) f->appendMetrics(filters);
    }
  };
  each(current.global_chain);
  for (const config::Route& r : current.routes) each(r.chain);
  mergeFamilies(filters, out);
  return out;
}

}  // namespace sluice
