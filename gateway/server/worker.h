// A worker: one thread, one event_base, its own SO_REUSEPORT listening sockets, and
// every connection it accepts for that connection's whole life. Nothing in a worker is
// shared with another worker, so the request path takes no locks. The only way in from
// outside is the mailbox (post()), used for rare control messages: drain, stop, and the
// switch to a reloaded config, which never touches a connection or a stream in flight.
#pragma once

#include <event2/event_struct.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/config.h"
#include "gateway/admin/metrics.h"
#include "gateway/server/deferred.h"
#include "gateway/server/listener_info.h"

struct event_base;

namespace sluice {

class Http1Connection;
class Mailbox;
class ServicePool;
namespace limits {
class Limiter;
}
namespace redis {
class Client;
}
namespace function {
class Host;
class Invoker;
}  // namespace function
namespace tls {
class ServerContext;
}  // namespace tls

class Worker {
 public:
  // One listener of a new config, as this worker should have it.
  struct ListenerPlan {
    int fd = -1;             // a new socket, bound by the main thread; or -1 and:
    size_t keep = SIZE_MAX;  // the index of the socket to keep, in the config replaced
    std::shared_ptr<const tls::ServerContext> tls;  // null: plain HTTP
  };
  // A config snapshot to serve, with what the worker needs for it.
  struct Plan {
    std::shared_ptr<const config::Config> config;
    SnapshotMetrics metrics;
    std::vector<ListenerPlan> listeners;  // by listener index in `config`
    function::Host* functions = nullptr;  // the process runtime's host (process-wide)
  };
  // A function route's backend in one snapshot.
  struct FunctionBinding {
    const config::Function* fn = nullptr;
    function::Invoker* invoker = nullptr;
    FunctionMetrics* metrics = nullptr;
  };

  // The initial plan has only new sockets (fd set for every listener).
  Worker(unsigned id, WorkerMetrics& metrics, Plan initial);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();  // spawns the thread
  void join();
  // Runs `fn` on the worker's thread. Thread-safe.
  void post(std::function<void()> fn);
  // New streams use `plan.config` from now on; streams in flight finish on the snapshot
  // they started with (its service pools stay alive until the last one ends). Listeners
  // not in the plan stop accepting; their connections finish their current request.
  // `done` runs on the worker's thread once the switch is made. Thread-safe.
  void apply(Plan plan, std::function<void()> done);
  // Stop accepting, let in-flight requests finish, close idle connections, and let the
  // thread exit when no connection is left.
  void drain();
  // Close everything now (after the drain timeout).
  void stop();
  bool finished() const { return finished_.load(); }

  event_base* base() const { return base_; }
  unsigned id() const { return id_; }
  const config::Config& config() const { return *config_; }
  // The current snapshot. Its control block belongs to this worker, so the copies
  // streams take do not bounce a cache line between threads.
  const std::shared_ptr<const config::Config>& configPtr() const { return config_; }
  bool draining() const { return draining_; }
  // The service pool of a route in the stream's own snapshot `config` (which may be
  // older than the current one); null for non-service routes.
  ServicePool* poolForRoute(const config::Config* config, size_t route_id);
  // The token-bucket limiter of the stream's snapshot `config` (rate_limit, api_key).
  limits::Limiter* limiterFor(const config::Config* config);
  // The Redis client of the stream's snapshot `config`; null without `redis:`.
  redis::Client* redisFor(const config::Config* config);
  // The function backend of a function route in the stream's snapshot `config`.
  const FunctionBinding& functionForRoute(const config::Config* config, size_t route_id);

  // Metrics hooks of the stream's life. `route_id` is SIZE_MAX when no route matched.
  void streamStarted() { metrics_.streams_active.add(1); }
  void streamEnded(const config::Config* config, size_t route_id, std::string_view method,
                   uint16_t status, uint64_t duration_us);

  // A request the codec refused before it reached the router (malformed head, 408, 414,
  // 431): counted under the "(none)" route, method OTHER, so that /metrics shows broken
  // clients and probes although no stream ran.
  void requestRefused(uint16_t status) { current_->metrics.no_route->record("OTHER", status, 0); }

  // Scratch space for building heads: one per worker, reused for every request.
  std::string& scratch() { return scratch_; }

  // Destroys `obj` on the next loop iteration, after every callback on the stack has
  // returned (objects often die inside their own callbacks).
  void deferDelete(std::unique_ptr<Deferred> obj);

  void onConnectionClosed(Http1Connection* conn);

 private:
  struct ListenSocket {
    Worker* worker;
    const config::Listener* config = nullptr;  // null once retired
    int fd = -1;
    event ev;
    bool active = false;
    size_t connections = 0;
    const timeval* header_timeout = nullptr;
    const timeval* idle_timeout = nullptr;
    ListenerMetrics* metrics = nullptr;
    std::shared_ptr<const tls::ServerContext> tls;  // this config's; null: plain HTTP
    std::shared_ptr<const ListenerInfo> info;       // what its connections share
  };
  // What one config snapshot needs on this worker. Alive while the worker serves it
  // or any stream started on it is in flight.
  struct Snapshot : Deferred {
    std::shared_ptr<const config::Config> config;
    SnapshotMetrics metrics;
    std::vector<std::unique_ptr<ServicePool>> pools;
    std::vector<ServicePool*> route_pools;  // by route id; null for non-service routes
    // Shared with the next snapshot when its `redis:` is the same (no reconnect on
    // reload). Declared before the users of it, so it dies after them.
    std::shared_ptr<redis::Client> redis;
    std::unique_ptr<limits::Limiter> limiter;
    std::vector<std::unique_ptr<function::Invoker>> invokers;  // one per function
    std::vector<FunctionBinding> route_functions;              // by route id
    ~Snapshot() override;
  };

  void run();
  void startFilters();
  static void onAccept(evutil_socket_t fd, short what, void* arg);
  static void onReap(evutil_socket_t fd, short what, void* arg);
  void install(Plan& plan);
  std::shared_ptr<Snapshot> makeSnapshot(Plan& plan);
  void configureListener(ListenSocket& ls, const config::Listener& config,
                         ListenerMetrics* metrics);
  void retireListener(std::unique_ptr<ListenSocket> ls);
  Snapshot* snapshotFor(const config::Config* config);
  // False when the socket has nothing more to accept now.
  bool acceptFrom(ListenSocket& ls, bool ignore_limit);
  void closeListeners();
  void maybeFinish();
  void reapAll();

  unsigned id_;
  WorkerMetrics& metrics_;
  event_base* base_ = nullptr;
  std::unique_ptr<Mailbox> mailbox_;
  std::shared_ptr<Snapshot> current_;
  std::shared_ptr<const config::Config> config_;  // aliases current_
  std::vector<Snapshot*> live_;                   // every snapshot alive, current included
  bool filters_started_ = false;
  std::vector<std::unique_ptr<ListenSocket>> listeners_;  // by index in the current config
  std::vector<std::unique_ptr<ListenSocket>> retired_;    // closed, with connections left
  std::thread thread_;
  std::atomic<bool> finished_{false};
  bool draining_ = false;

  Http1Connection* connections_ = nullptr;  // intrusive list head
  size_t connection_count_ = 0;

  std::vector<std::unique_ptr<Deferred>> graveyard_;
  event reap_ev_;

  std::string scratch_;
};

}  // namespace sluice
