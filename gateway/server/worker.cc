#include "gateway/server/worker.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "gateway/server/http1_connection.h"
#include "gateway/server/log.h"
#include "gateway/upstream/service_pool.h"

namespace sluice {
namespace {
// Accept at most this many connections per readiness event so that one busy listener
// cannot starve the connections already on this worker.
constexpr int kAcceptBatch = 64;
}  // namespace

Worker::Worker(unsigned id, std::shared_ptr<const config::Config> config,
               std::vector<int> listen_fds)
    : id_(id), config_(std::move(config)) {
  event_config* cfg = event_config_new();
  // Each worker's base is touched by its own thread only (control messages arrive
  // through an eventfd), so libevent's internal locking is not needed.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
  // Connections re-arm their events several times per request (timers change, pooled
  // upstream connections change owner); the changelist folds those into at most one
  // epoll_ctl per fd and loop iteration, and usually none.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
  base_ = event_base_new_with_config(cfg);
  event_config_free(cfg);

  for (size_t i = 0; i < listen_fds.size(); ++i) {
    auto ls = std::make_unique<ListenSocket>();
    ls->worker = this;
    ls->config = &config_->listeners[i];
    ls->fd = listen_fds[i];
    ls->active = false;
    timeval header_tv{}, idle_tv{};
    auto to_tv = [](config::Duration d) {
      return timeval{static_cast<time_t>(d.count() / 1000),
                     static_cast<suseconds_t>((d.count() % 1000) * 1000)};
    };
    header_tv = to_tv(ls->config->header_timeout);
    idle_tv = to_tv(ls->config->idle_timeout);
    // Common timeouts keep thousands of identical connection timers in O(1) queues.
    ls->header_timeout = event_base_init_common_timeout(base_, &header_tv);
    ls->idle_timeout = event_base_init_common_timeout(base_, &idle_tv);
    event_assign(&ls->ev, base_, ls->fd, EV_READ | EV_PERSIST, &onAccept, ls.get());
    listeners_.push_back(std::move(ls));
  }

  pools_.reserve(config_->services.size());
  std::map<std::string, ServicePool*> by_name;
  for (const auto& [name, service] : config_->services) {
    pools_.push_back(std::make_unique<ServicePool>(*this, service));
    by_name[name] = pools_.back().get();
  }
  route_pools_.assign(config_->routes.size(), nullptr);
  for (size_t i = 0; i < config_->routes.size(); ++i) {
    const config::Route& r = config_->routes[i];
    if (r.kind == config::BackendKind::kService) route_pools_[i] = by_name.at(r.service);
  }

  event_assign(&reap_ev_, base_, -1, 0, &onReap, this);
  control_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  event_assign(&control_ev_, base_, control_fd_, EV_READ | EV_PERSIST, &onControl, this);
  event_add(&control_ev_, nullptr);
  scratch_.reserve(4096);
}

Worker::~Worker() {
  stop();
  graveyard_.clear();
  pools_.clear();
  event_del(&control_ev_);
  event_del(&reap_ev_);
  if (control_fd_ >= 0) ::close(control_fd_);
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

void Worker::run() {
  event_base_dispatch(base_);
  // Closing connections here (rather than in the destructor on another thread) keeps
  // every touch of this base on this thread.
  while (connections_) connections_->close();
  graveyard_.clear();
  pools_.clear();
  finished_.store(true);
}

void Worker::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(control_mu_);
    control_queue_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  ssize_t ignored = ::write(control_fd_, &one, sizeof one);
  (void)ignored;
}

void Worker::onControl(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<Worker*>(arg);
  uint64_t value;
  ssize_t ignored = ::read(fd, &value, sizeof value);
  (void)ignored;
  std::vector<std::function<void()>> queue;
  {
    std::lock_guard<std::mutex> lock(self->control_mu_);
    queue.swap(self->control_queue_);
  }
  for (auto& fn : queue) fn();
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
  ls->worker->acceptFrom(*ls);
}

void Worker::acceptFrom(ListenSocket& ls) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    if (ls.connections >= ls.config->max_connections) {
      // Leave further clients in the kernel's backlog until a connection closes.
      event_del(&ls.ev);
      ls.active = false;
      return;
    }
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof peer;
    int fd = ::accept4(ls.fd, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if (errno == EMFILE || errno == ENFILE) {
        LOG_WARN("worker %u: accept: out of file descriptors", id_);
        return;
      }
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Http1Connection::ListenerInfo info{ls.config, ls.header_timeout, ls.idle_timeout};
    auto conn = std::make_unique<Http1Connection>(*this, fd, peer, info, &ls);
    Http1Connection* c = conn.release();  // owned by the intrusive list until closed
    c->next = connections_;
    if (connections_) connections_->prev = c;
    connections_ = c;
    ++connection_count_;
    ++ls.connections;
    c->start();
  }
}

void Worker::onConnectionClosed(Http1Connection* conn) {
  if (conn->prev) conn->prev->next = conn->next;
  if (conn->next) conn->next->prev = conn->prev;
  if (connections_ == conn) connections_ = conn->next;
  conn->prev = conn->next = nullptr;
  --connection_count_;
  auto* ls = static_cast<ListenSocket*>(conn->listenerTag());
  --ls->connections;
  if (!ls->active && ls->fd >= 0 && !draining_) {
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
