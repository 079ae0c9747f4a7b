// Metrics storage and the Prometheus text rendering of /metrics. Every counter has a
// single writer (one worker thread) and is summed over workers by the main thread on
// scrape, so the request path never takes a lock nor contends on an atomic. Storage is
// allocated by the main thread only, before a snapshot that uses it reaches a worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sluice {

// A counter written by one thread only: load + store instead of a locked fetch_add.
class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A per-writer gauge (goes up and down); the sum over writers is the gauge's value.
class Gauge {
 public:
  void add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

namespace metrics {

// Methods get a fixed label set so that a client sending odd methods cannot grow the
// number of series; anything else is "OTHER".
inline constexpr std::string_view kMethods[] = {"GET",   "HEAD",    "POST",  "PUT",  "DELETE",
                                                "PATCH", "OPTIONS", "TRACE", "OTHER"};
inline constexpr size_t kMethodCount = std::size(kMethods);
inline constexpr size_t kStatusClasses = 5;  // 1xx .. 5xx
// Upper bounds of the latency histogram, in microseconds (+Inf is implicit).
inline constexpr uint64_t kBucketsUs[] = {500,     1000,    2500,    5000,    10000,
                                          25000,   50000,   100000,  250000,  500000,
                                          1000000, 2500000, 5000000, 10000000};
inline constexpr size_t kBucketCount = std::size(kBucketsUs) + 1;

size_t methodIndex(std::string_view method);

// Appends `value` escaped for a label value of the Prometheus text format. Label values
// are names and paths, but one stray quote or newline would make the whole exposition
// unreadable. Inline so that filters can render their own series without the engine.
inline void appendEscapedLabel(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
}

// Label of requests that matched no route (not a valid route name, so no clash).
inline constexpr std::string_view kNoRoute = "(none)";

enum class UpstreamError : uint8_t { kConnect, kTimeout, kReset, kInvalid };
inline constexpr size_t kUpstreamErrorKinds = 4;

}  // namespace metrics

// One route on one worker.
struct RouteMetrics {
  Counter requests[metrics::kMethodCount][metrics::kStatusClasses];
  Counter buckets[metrics::kBucketCount];  // not cumulative; summed up on scrape
  Counter duration_us;

  void record(std::string_view method, uint16_t status, uint64_t duration_us);
};

// One endpoint of one service on one worker.
struct EndpointMetrics {
  Counter errors[metrics::kUpstreamErrorKinds];
  void error(metrics::UpstreamError kind) { errors[static_cast<size_t>(kind)].add(); }
};

// One listener on one worker.
struct ListenerMetrics {
  Counter accepted;
  Gauge active;
  Counter tls_handshakes_ok;      // TLS listeners only
  Counter tls_handshakes_failed;  // bad hello, protocol or certificate, timeout, reset
};

// One worker's Redis client(s) (gateway/redis): outcomes of commands, connections.
struct RedisMetrics {
  Counter replies;      // a reply (not an error reply)
  Counter errors;       // a Redis error reply
  Counter timeouts;     // no reply within command_timeout
  Counter unavailable;  // not connected, or the connection was lost
  Counter reconnects;   // connections (re)established after the first
  Gauge connected;      // connections ready now
};

// One function on one worker: what its invocations ended in, and how long they ran.
struct FunctionMetrics {
  Counter invocations;  // every invocation attempted (throttled ones included)
  Counter errors;       // function errors, crashes, malformed replies, invoke failures
  Counter throttles;    // refused for lack of capacity → 429
  Counter timeouts;     // past the function's timeout → 504
  Counter buckets[metrics::kBucketCount];  // duration histogram (not cumulative)
  Counter duration_us;
  Counter billed_mb_ms;  // duration rounded up to 1 ms, times memory_mb
  Gauge in_flight;       // invocations started and not yet answered
  void recordDuration(uint64_t duration_us, uint32_t memory_mb);
};

// One process-runtime function, written by the function host's thread only.
struct FunctionHostMetrics {
  Counter cold_starts;  // instances started
  Counter init_us;      // start to first /invocation/next, summed over cold starts
  Counter crashes;      // instances that exited on their own
  Counter killed;       // instances killed (timeout, memory, idle, reload)
  Gauge instances;      // alive now
  Gauge queued;         // invocations waiting for an instance
};

// Process-wide per-worker values.
struct WorkerMetrics {
  Gauge streams_active;
  RedisMetrics redis;
};

// What one worker needs to count the requests of one config snapshot: pointers into
// the registry's storage, by the snapshot's own indexes.
struct SnapshotMetrics {
  std::vector<RouteMetrics*> routes;  // by route id
  RouteMetrics* no_route = nullptr;
  std::map<std::string, std::vector<EndpointMetrics*>> services;  // by name, by endpoint
  std::vector<ListenerMetrics*> listeners;                        // by listener index
  std::map<std::string, FunctionMetrics*> functions;              // by function name
  std::map<std::string, FunctionHostMetrics*> function_hosts;     // process runtime only
};

// Owned and used by the main thread. Series are kept by name for the life of the
// process, so a counter survives reloads (and a route removed by a reload keeps its
// last values rather than vanishing and reappearing as a reset).
class MetricsRegistry {
 public:
  explicit MetricsRegistry(unsigned workers);
  ~MetricsRegistry();

  WorkerMetrics& worker(unsigned w) { return *workers_[w]->process; }
  // Allocates what `config` needs (new route, endpoint, listener names) for `worker`.
  SnapshotMetrics bind(const config::Config& config, unsigned worker);

  void reloadResult(bool success, uint64_t generation);

  // The whole exposition (text format 0.0.4), with the filters of `current` appending
  // their own metrics.
  std::string render(const config::Config& current) const;

 private:
  struct PerWorker {
    std::unique_ptr<WorkerMetrics> process = std::make_unique<WorkerMetrics>();
    std::vector<std::unique_ptr<RouteMetrics>> routes;        // by route slot
    std::vector<std::unique_ptr<EndpointMetrics>> endpoints;  // by endpoint slot
    std::vector<std::unique_ptr<ListenerMetrics>> listeners;  // by listener slot
    std::vector<std::unique_ptr<FunctionMetrics>> functions;  // by function slot
  };
  size_t slot(std::map<std::string, size_t>& slots, std::vector<std::string>& names,
              const std::string& name);
  void grow();
  void renderRequests(std::string& out) const;
  void renderUpstream(std::string& out) const;
  void renderGauges(std::string& out) const;
  void renderFunctions(std::string& out, const config::Config& current) const;

  std::vector<std::unique_ptr<PerWorker>> workers_;
  std::map<std::string, size_t> route_slots_;
  std::vector<std::string> route_names_;
  // Endpoint key: service name, '\n', endpoint text.
  std::map<std::string, size_t> endpoint_slots_;
  std::vector<std::string> endpoint_names_;
  std::map<std::string, size_t> listener_slots_;
  std::vector<std::string> listener_names_;
  std::set<std::string> tls_listeners_;  // names that were TLS listeners in some config
  std::map<std::string, size_t> function_slots_;
  std::vector<std::string> function_names_;
  // Written by the function host only; by function slot.
  std::vector<std::unique_ptr<FunctionHostMetrics>> function_hosts_;

  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;
  bool last_reload_ok_ = true;
  uint64_t generation_ = 1;
  double last_reload_time_ = 0;
  double start_time_ = 0;
};

}  // namespace sluice
