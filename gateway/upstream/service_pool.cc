#include "gateway/upstream/service_pool.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "gateway/server/clock.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"
#include "gateway/server/stream.h"
#include "gateway/server/tls_client.h"
#include "gateway/server/tls_io.h"
#include "gateway/server/worker.h"

namespace sluice {
namespace {
constexpr size_t kReadSize = 16 * 1024;
// An idle upstream connection is closed after this long unused; upstream servers
// usually close sooner, which we notice as EOF while idle.
constexpr int kIdleSeconds = 30;

}  // namespace

UpstreamConnection::UpstreamConnection(Worker& worker, size_t endpoint)
    : worker_(worker), endpoint_(endpoint), in_(evbuffer_new()), out_(evbuffer_new()) {}

UpstreamConnection::~UpstreamConnection() {
  if (ssl_) SSL_free(ssl_);
  if (fd_ >= 0) {
    event_del(&read_ev_);
    event_del(&write_ev_);
    ::close(fd_);
  }
  evbuffer_free(in_);
  evbuffer_free(out_);
}

bool UpstreamConnection::connect(const config::SocketAddress& address, config::Duration timeout,
                                 const Tls& tls) {
  tls_ = tls;
  deadline_us_ = nowMicros(CLOCK_MONOTONIC) + static_cast<uint64_t>(timeout.count()) * 1000;
  fd_ = ::socket(address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return false;
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  event_assign(&read_ev_, worker_.base(), fd_, EV_READ | EV_PERSIST, &onReadEvent, this);
  event_assign(&write_ev_, worker_.base(), fd_, EV_WRITE | EV_PERSIST, &onWriteEvent, this);
  int r = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address.addr), address.len);
  if (r < 0 && errno != EINPROGRESS) return false;
  timeval tv = toTimeval(timeout);
  event_add(&write_ev_, &tv);
  writing_ = true;
  return true;
}

void UpstreamConnection::readWithTimeout(const timeval* timeout) {
  read_timeout_ = timeout;
  read_paused_ = false;
  // Re-adding a pending event only moves its timer (no epoll_ctl).
  event_add(&read_ev_, timeout);
  reading_ = true;
}

void UpstreamConnection::pauseReading() {
  if (reading_) event_del(&read_ev_);
  reading_ = false;
  read_paused_ = true;
}

void UpstreamConnection::resumeReading() {
  if (!read_paused_) return;
  read_paused_ = false;
  event_add(&read_ev_, read_timeout_);
  reading_ = true;
}

ssize_t UpstreamConnection::readSome() {
  return io_.read(fd_, ssl_, in_, kReadSize, &read_ev_, &write_ev_, writing_);
}

int UpstreamConnection::writeSome() { return io_.write(fd_, ssl_, out_); }

void UpstreamConnection::handshakeEvent(short what) {
  if (what & EV_TIMEOUT) {
    handshaking_ = false;
    event_del(&read_ev_);
    event_del(&write_ev_);
    handler_->onConnectFailed(true);
    return;
  }
  handshake();
}

// The TLS handshake after the TCP connect, within what is left of connect_timeout.
void UpstreamConnection::handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshaking_ = false;
    event_del(&read_ev_);
    event_del(&write_ev_);
    reading_ = writing_ = false;
    connected_ = true;
    handler_->onConnected();
    return;
  }
  int err = SSL_get_error(ssl_, r);
  uint64_t now = nowMicros(CLOCK_MONOTONIC);
  if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && now < deadline_us_) {
    timeval tv = microsToTimeval(deadline_us_ - now);
    event* wait = err == SSL_ERROR_WANT_READ ? &read_ev_ : &write_ev_;
    event* other = err == SSL_ERROR_WANT_READ ? &write_ev_ : &read_ev_;
    event_del(other);
    event_add(wait, &tv);
    return;
  }
  bool timed_out = now >= deadline_us_;
  if (!timed_out) {
    // The upstream's certificate or protocol is wrong: an operator's problem, worth a
    // line (connections to a service are few, unlike clients' handshakes).
    long verify = SSL_get_verify_result(ssl_);
    unsigned long e = ERR_peek_error();
    char text[256] = "connection closed";
    if (e != 0) ERR_error_string_n(e, text, sizeof text);
    LOG_WARN("upstream TLS handshake with %s failed: %s%s%s", tls_.host->c_str(), text,
             verify != X509_V_OK ? ": " : "",
             verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "");
  }
  ERR_clear_error();
  handshaking_ = false;
  event_del(&read_ev_);
  event_del(&write_ev_);
  errno = timed_out ? ETIMEDOUT : ECONNREFUSED;
  handler_->onConnectFailed(timed_out);
}

bool UpstreamConnection::flush() {
  if (!connected_ || writing_ || evbuffer_get_length(out_) == 0) return true;
  int n = writeSome();
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
  if (evbuffer_get_length(out_) > 0) {
    event_add(&write_ev_, nullptr);
    writing_ = true;
  }
  return true;
}

void UpstreamConnection::onWriteEvent(evutil_socket_t fd, short what, void* arg) {
  auto* self = static_cast<UpstreamConnection*>(arg);
  if (self->handshaking_) {
    self->handshakeEvent(what);
    return;
  }
  if (!self->connected_) {
    event_del(&self->write_ev_);
    self->writing_ = false;
    if (what & EV_TIMEOUT) {
      self->handler_->onConnectFailed(true);
      return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      errno = err;
      self->handler_->onConnectFailed(false);
      return;
    }
    if (self->tls_.ctx != nullptr) {
      self->ssl_ = tls::newClientSession(self->tls_.ctx, *self->tls_.host, self->tls_.verify, fd);
      if (self->ssl_ == nullptr) {
        errno = ENOMEM;
        self->handler_->onConnectFailed(false);
        return;
      }
      self->handshaking_ = true;
      self->handshake();
      return;
    }
    self->connected_ = true;
    self->handler_->onConnected();
    return;
  }
  int n = self->writeSome();
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    event_del(&self->write_ev_);
    self->writing_ = false;
    self->handler_->onClosed(false);
    return;
  }
  size_t left = evbuffer_get_length(self->out_);
  if (left == 0) {
    event_del(&self->write_ev_);
    self->writing_ = false;
  }
  if (left < kLowWatermark) self->handler_->onWritable();
}

void UpstreamConnection::onReadEvent(evutil_socket_t fd, short what, void* arg) {
  auto* self = static_cast<UpstreamConnection*>(arg);
  if (self->handshaking_) {
    self->handshakeEvent(what);
    return;
  }
  if (what & EV_TIMEOUT) {
    self->handler_->onClosed(true);
    return;
  }
  ssize_t n = self->readSome();
  if (n > 0) {
    self->handler_->onReadable();
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  event_del(&self->read_ev_);
  self->reading_ = false;
  self->handler_->onClosed(false);
}

// Watches an idle pooled connection: any byte or EOF while idle means the connection
// cannot be reused (the upstream closed it, or sent something unsolicited).
class ServicePool::IdleWatcher final : public UpstreamConnection::Handler {
 public:
  IdleWatcher(ServicePool& pool, std::unique_ptr<UpstreamConnection> conn)
      : pool_(pool), conn_(std::move(conn)) {
    conn_->setHandler(this);
    conn_->readWithTimeout(pool_.idle_timeout_);
  }
  // The new owner sets itself as handler at once; the read event stays armed so that
  // handing a connection over costs no epoll_ctl.
  std::unique_ptr<UpstreamConnection> take() { return std::move(conn_); }
  void onConnected() override {}
  void onConnectFailed(bool) override {}
  void onReadable() override { pool_.dropIdle(this); }
  void onClosed(bool) override { pool_.dropIdle(this); }
  void onWritable() override {}

 private:
  ServicePool& pool_;
  std::unique_ptr<UpstreamConnection> conn_;
};

ServicePool::ServicePool(Worker& worker, const config::Service& service,
                         std::vector<EndpointMetrics*> endpoint_metrics)
    : worker_(worker),
      service_(service),
      endpoints_(service.endpoints.size()),
      endpoint_metrics_(std::move(endpoint_metrics)) {
  timeval response = toTimeval(service.timeout);
  response_timeout_ = event_base_init_common_timeout(worker.base(), &response);
  timeval idle{kIdleSeconds, 0};
  idle_timeout_ = event_base_init_common_timeout(worker.base(), &idle);
  // Start each worker at a different endpoint so that workers do not move in lockstep.
  next_ = worker.id();
  if (service.tls) {
    ssl_ctx_ = tls::makeClientContext(service.tls_verify, service.tls_ca,
                                      ("service " + service.name).c_str());
    for (const config::SocketAddress& ep : service.endpoints) {
      // The endpoint as written, without its port: a name for SNI and the check, or
      // an IP address checked against the certificate's IP entries.
      std::string host = ep.text.substr(0, ep.text.rfind(':'));
      if (host.size() > 1 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
      }
      tls_hosts_.push_back(service.tls_sni.empty() ? host : service.tls_sni);
    }
  }
}

ServicePool::~ServicePool() {
  if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
}

size_t ServicePool::pickEndpoint(size_t avoid) {
  size_t n = endpoints_.size();
  if (service_.load_balancer == config::LoadBalancer::kLeastRequest) {
    size_t best = SIZE_MAX;
    for (size_t k = 0; k < n; ++k) {
      size_t i = (next_ + k) % n;
      if (i == avoid && n > 1) continue;
      if (best == SIZE_MAX || endpoints_[i].active < endpoints_[best].active) best = i;
    }
    ++next_;
    return best;
  }
  size_t i = next_++ % n;
  if (i == avoid && n > 1) i = next_++ % n;
  return i;
}

std::unique_ptr<UpstreamConnection> ServicePool::takeIdle(size_t endpoint) {
  auto& idle = endpoints_[endpoint].idle;
  if (idle.empty()) return nullptr;
  // Most recently used first: it is the least likely to have been closed by the peer.
  std::unique_ptr<IdleWatcher> watcher = std::move(idle.back());
  idle.pop_back();
  return watcher->take();
}

void ServicePool::putIdle(std::unique_ptr<UpstreamConnection> conn) {
  auto& idle = endpoints_[conn->endpoint()].idle;
  if (idle.size() >= service_.max_idle_connections) return;  // closes it
  idle.push_back(std::make_unique<IdleWatcher>(*this, std::move(conn)));
}

void ServicePool::dropIdle(IdleWatcher* watcher) {
  for (auto& ep : endpoints_) {
    auto it = std::find_if(ep.idle.begin(), ep.idle.end(),
                           [watcher](const auto& w) { return w.get() == watcher; });
    if (it != ep.idle.end()) {
      // We are inside the watcher's own callback: let it die after the stack unwinds.
      struct Holder : Deferred {
        std::unique_ptr<IdleWatcher> w;
      };
      auto holder = std::make_unique<Holder>();
      holder->w = std::move(*it);
      ep.idle.erase(it);
      holder->w->take();  // closes the connection now
      worker_.deferDelete(std::move(holder));
      return;
    }
  }
}

}  // namespace sluice
