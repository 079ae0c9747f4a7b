#include "gateway/server/worker.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "filters/filter.h"
#include "gateway/function/lambda_invoker.h"
#include "gateway/function/process_host.h"
#include "gateway/limits/limiter.h"
#include "gateway/redis/redis_client.h"
#include "gateway/server/clock.h"
#include "gateway/server/http1_connection.h"
#include "gateway/server/log.h"
#include "gateway/server/mailbox.h"
#include "gateway/server/tls_server.h"
#include "gateway/upstream/service_pool.h"

namespace sluice {
namespace {
// Accept at most this many connections per readiness event so that one busy listener
// cannot starve the connections already on this worker.
constexpr int kAcceptBatch = 64;

}  // namespace

Worker::Worker(unsigned id, WorkerMetrics& metrics, Plan initial) : id_(id), metrics_(metrics) {
  event_config* cfg = event_config_new();
  // Each worker's base is touched by its own thread only (control messages arrive
  // through the mailbox), so libevent's internal locking is not needed.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  // Connections re-arm their events several times per request (timers change, pooled
  // upstream connections change owner); the changelist folds those into at most one
  // epoll_ctl per fd and loop iteration, and usually none.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);
  event_assign(&reap_ev_, base_, -1, 0, &onReap, this);
  mailbox_ = std::make_unique<Mailbox>(base_);
  scratch_.reserve(4096);
  install(initial);
}

Worker::~Worker() {
  stop();
  // Normally run() released everything on the worker's thread; this is for a worker
  // whose thread never ran.
  config_.reset();
  current_.reset();
  for (auto& ls : listeners_) {
    if (ls->fd < 0) continue;
    if (ls->active) event_del(&ls->ev);
    ::close(ls->fd);
  }
  reapAll();
  mailbox_.reset();
  event_del(&reap_ev_);
  event_base_free(base_);
}

void Worker::start() {
  for (auto& ls : listeners_) {
    event_add(&ls->ev, nullptr);
    ls->active = true;
  }
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

// Each filter factory of the current snapshot once (global filters also sit in every
// route's chain).
void Worker::startFilters() {
  std::set<const FilterFactory*> seen;
  auto each = [&](const auto& chain) {
    for (const auto& f : chain) {
      if (seen.insert(f.get()).second) f->startWorker(*this);
    }
  };
  each(config_->global_chain);
  for (const config::Route& r : config_->routes) each(r.chain);
}

void Worker::run() {
  if (!filters_started_) {
    filters_started_ = true;
    startFilters();
  }
  event_base_dispatch(base_);
  // Closing connections here (rather than in the destructor on another thread) keeps
  // every touch of this base on this thread.
  while (connections_) connections_->close();
  config_.reset();
  current_.reset();
  reapAll();
  finished_.store(true);
}

void Worker::reapAll() {
  // Destructors may defer more objects (a snapshot's pools close their connections).
  while (!graveyard_.empty()) {
    std::vector<std::unique_ptr<Deferred>> dead;
    dead.swap(graveyard_);
    dead.clear();
  }
}

void Worker::post(std::function<void()> fn) { mailbox_->post(std::move(fn)); }

// Out of line: the header only forward-declares Limiter.
Worker::Snapshot::~Snapshot() = default;

std::shared_ptr<Worker::Snapshot> Worker::makeSnapshot(Plan& plan) {
  auto owned = std::make_unique<Snapshot>();
  owned->config = plan.config;
  owned->metrics = std::move(plan.metrics);
  const config::Config& cfg = *owned->config;
  owned->pools.reserve(cfg.services.size());
  std::map<std::string, ServicePool*> by_name;
  for (const auto& [name, service] : cfg.services) {
    owned->pools.push_back(
        std::make_unique<ServicePool>(*this, service, owned->metrics.services[name]));
    by_name[name] = owned->pools.back().get();
  }
  owned->route_pools.assign(cfg.routes.size(), nullptr);
  for (size_t i = 0; i < cfg.routes.size(); ++i) {
    const config::Route& r = cfg.routes[i];
    if (r.kind == config::BackendKind::kService) owned->route_pools[i] = by_name.at(r.service);
  }
  if (cfg.redis.enabled) {
    // Made on this worker's base (before start(), the thread does not run yet).
    if (current_ && current_->redis && current_->config->redis.sameAs(cfg.redis)) {
      owned->redis = current_->redis;
    } else {
      owned->redis = redis::makeClient(base_, cfg.redis, &metrics_.redis);
    }
  }
  owned->limiter = limits::makeLimiter(owned->redis.get());
  std::map<std::string, FunctionBinding> functions;
  for (const auto& [name, fn] : cfg.functions) {
    FunctionBinding& b = functions[name];
    b.fn = &fn;
    b.metrics = owned->metrics.functions.at(name);
    if (fn.runtime == config::FunctionRuntime::kLambda) {
      owned->invokers.push_back(function::makeLambdaInvoker(base_, fn));
    } else {
      owned->invokers.push_back(
          plan.functions->makeInvoker(*this, fn, owned->metrics.function_hosts.at(name)));
    }
    b.invoker = owned->invokers.back().get();
  }
  owned->route_functions.resize(cfg.routes.size());
  for (size_t i = 0; i < cfg.routes.size(); ++i) {
    const config::Route& r = cfg.routes[i];
    if (r.kind == config::BackendKind::kFunction) {
      owned->route_functions[i] = functions.at(r.function);
    }
  }
  live_.push_back(owned.get());
  // The last stream of an old snapshot may end deep inside a callback of one of its
  // pools' connections: the snapshot dies on the next loop iteration, not there.
  return std::shared_ptr<Snapshot>(owned.release(), [this](Snapshot* s) {
    live_.erase(std::find(live_.begin(), live_.end(), s));
    deferDelete(std::unique_ptr<Deferred>(s));
  });
}

void Worker::install(Plan& plan) {
  std::shared_ptr<Snapshot> next = makeSnapshot(plan);
  const config::Config& cfg = *next->config;
  std::vector<std::unique_ptr<ListenSocket>> sockets;
  for (size_t i = 0; i < cfg.listeners.size(); ++i) {
    const ListenerPlan& lp = plan.listeners[i];
    std::unique_ptr<ListenSocket> ls;
    if (lp.fd < 0 && lp.keep < listeners_.size() && listeners_[lp.keep]) {
      ls = std::move(listeners_[lp.keep]);
    } else {
      ls = std::make_unique<ListenSocket>();
      ls->worker = this;
      ls->fd = lp.fd;
      event_assign(&ls->ev, base_, ls->fd, EV_READ | EV_PERSIST, &onAccept, ls.get());
      // Before start() the thread adds the events itself.
      if (thread_.joinable() && !draining_) {
        event_add(&ls->ev, nullptr);
        ls->active = true;
      }
    }
    // New connections take the new settings and certificates; open ones keep theirs.
    ls->tls = lp.tls;
    configureListener(*ls, cfg.listeners[i], next->metrics.listeners[i]);
    sockets.push_back(std::move(ls));
  }
  // Retired while the old config (which their settings point into) is still alive.
  for (auto& ls : listeners_) {
    if (ls) retireListener(std::move(ls));
  }
  listeners_ = std::move(sockets);
  current_ = std::move(next);
  config_ = std::shared_ptr<const config::Config>(current_, current_->config.get());
}

void Worker::configureListener(ListenSocket& ls, const config::Listener& config,
                               ListenerMetrics* metrics) {
  ls.config = &config;
  // Common timeouts keep thousands of identical connection timers in O(1) queues; a
  // duration seen before reuses its queue.
  timeval header_tv = toTimeval(config.header_timeout);
  timeval idle_tv = toTimeval(config.idle_timeout);
  ls.header_timeout = event_base_init_common_timeout(base_, &header_tv);
  ls.idle_timeout = event_base_init_common_timeout(base_, &idle_tv);
  auto info = std::make_shared<ListenerInfo>();
  info->header_timeout_ms = config.header_timeout;
  info->idle_timeout_ms = config.idle_timeout;
  info->header_timeout = ls.header_timeout;
  info->idle_timeout = ls.idle_timeout;
  info->name = config.name;
  info->tls = ls.tls;
  info->metrics = metrics;
  info->h2c = config.h2c;
  info->http2 = config.http2;
  ls.info = std::move(info);
  if (ls.metrics != metrics) {
    // A renamed listener: its open connections now count under the new name.
    if (ls.metrics) ls.metrics->active.add(-static_cast<int64_t>(ls.connections));
    metrics->active.add(static_cast<int64_t>(ls.connections));
    ls.metrics = metrics;
  }
  // max_connections may have grown past the point where accepting was paused.
  if (!ls.active && ls.fd >= 0 && thread_.joinable() && !draining_ &&
      ls.connections < config.max_connections) {
    event_add(&ls.ev, nullptr);
    ls.active = true;
  }
}

void Worker::retireListener(std::unique_ptr<ListenSocket> ls) {
  if (ls->active) event_del(&ls->ev);
  ls->active = false;
  if (ls->fd >= 0) {
    // Connections already in this socket's backlog would be reset by close(): take
    // them first, they are served like any other.
    if (!draining_) {
      while (acceptFrom(*ls, true)) {
      }
    }
    ::close(ls->fd);
    ls->fd = -1;
  }
  LOG_DEBUG("worker %u: listener %s closed", id_, ls->config->name.c_str());
  ls->config = nullptr;
  for (Http1Connection* c = connections_; c;) {
    Http1Connection* next = c->next;
    if (c->listenerTag() == ls.get()) c->drain();
    c = next;
  }
  if (ls->connections > 0) retired_.push_back(std::move(ls));
}

void Worker::apply(Plan plan, std::function<void()> done) {
  auto shared = std::make_shared<Plan>(std::move(plan));
  post([this, shared, done = std::move(done)] {
    if (draining_) {
      // Shutting down: nothing new will be served; only give back the new sockets.
      for (const ListenerPlan& lp : shared->listeners) {
        if (lp.fd >= 0) ::close(lp.fd);
      }
      done();
      return;
    }
    install(*shared);
    startFilters();
    done();
  });
}

Worker::Snapshot* Worker::snapshotFor(const config::Config* config) {
  if (current_->config.get() == config) return current_.get();
  for (Snapshot* s : live_) {
    if (s->config.get() == config) return s;
  }
  return current_.get();  // unreachable: a stream's snapshot lives as long as the stream
}

ServicePool* Worker::poolForRoute(const config::Config* config, size_t route_id) {
  return snapshotFor(config)->route_pools[route_id];
}

limits::Limiter* Worker::limiterFor(const config::Config* config) {
  return snapshotFor(config)->limiter.get();
}

redis::Client* Worker::redisFor(const config::Config* config) {
  return snapshotFor(config)->redis.get();
}

const Worker::FunctionBinding& Worker::functionForRoute(const config::Config* config,
                                                        size_t route_id) {
  return snapshotFor(config)->route_functions[route_id];
}

void Worker::streamEnded(const config::Config* config, size_t route_id, std::string_view method,
                         uint16_t status, uint64_t duration_us) {
  metrics_.streams_active.add(-1);
  const SnapshotMetrics& m = snapshotFor(config)->metrics;
  RouteMetrics* r = route_id < m.routes.size() ? m.routes[route_id] : m.no_route;
  r->record(method, status, duration_us);
}

void Worker::drain() {
  post([this] {
    draining_ = true;
    closeListeners();
    for (Http1Connection* c = connections_; c;) {
      Http1Connection* next = c->next;
      c->drain();
      c = next;
    }
    maybeFinish();
  });
}

void Worker::stop() {
  if (thread_.joinable()) {
    post([this] { event_base_loopbreak(base_); });
  }
}

void Worker::closeListeners() {
  for (auto& ls : listeners_) {
    if (ls->fd < 0) continue;
    if (ls->active) event_del(&ls->ev);
    ls->active = false;
    ::close(ls->fd);
    ls->fd = -1;
  }
}

void Worker::maybeFinish() {
  if (draining_ && connections_ == nullptr) event_base_loopexit(base_, nullptr);
}

void Worker::onAccept(evutil_socket_t, short, void* arg) {
  auto* ls = static_cast<ListenSocket*>(arg);
  ls->worker->acceptFrom(*ls, false);
}

bool Worker::acceptFrom(ListenSocket& ls, bool ignore_limit) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    if (!ignore_limit && ls.connections >= ls.config->max_connections) {
      // Leave further clients in the kernel's backlog until a connection closes.
      event_del(&ls.ev);
      ls.active = false;
      return false;
    }
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(ls.fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        LOG_WARN("worker %u: accept: out of file descriptors", id_);
      }
      return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto conn = std::make_unique<Http1Connection>(*this, fd, peer, ls.info, &ls);
    Http1Connection* c = conn.release();  // owned by the intrusive list until closed
    c->next = connections_;
    if (connections_) connections_->prev = c;
    connections_ = c;
    ++connection_count_;
    ++ls.connections;
    ls.metrics->accepted.add();
    ls.metrics->active.add(1);
    c->start();
  }
  return true;
}

void Worker::onConnectionClosed(Http1Connection* conn) {
  if (conn->prev) conn->prev->next = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  if (connections_ == conn) connections_ = conn->next;
  conn->prev = conn->next = nullptr;
  --connection_count_;
  auto* ls = static_cast<ListenSocket*>(conn->listenerTag());
  --ls->connections;
  ls->metrics->active.add(-1);
  if (ls->config == nullptr) {
    // The last connection of a listener a reload removed.
    if (ls->connections == 0) {
      retired_.erase(std::find_if(retired_.begin(), retired_.end(),
                                  [ls](const auto& p) { return p.get() == ls; }));
    }
  } else if (!ls->active && ls->fd >= 0 && !draining_) {
    event_add(&ls->ev, nullptr);
    ls->active = true;
  }
  deferDelete(std::unique_ptr<Deferred>(conn));
  maybeFinish();
}

void Worker::deferDelete(std::unique_ptr<Deferred> obj) {
  if (graveyard_.empty()) event_active(&reap_ev_, 0, 0);
  graveyard_.push_back(std::move(obj));
}

void Worker::onReap(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  // Destructors may defer more objects; swap so those land in a fresh list.
  std::vector<std::unique_ptr<Deferred>> dead;
  dead.swap(self->graveyard_);
  dead.clear();
  if (self->graveyard_.empty()) self->graveyard_.swap(dead);  // keep the capacity
}

}  // namespace sluice
