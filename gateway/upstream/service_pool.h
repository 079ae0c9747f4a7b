// Per-worker state of one service: its endpoints, load balancing, and the keep-alive
// pool of HTTP/1.1 connections to each endpoint. Never shared between workers (no locks).
#pragma once

#include <event2/event_struct.h>
#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "gateway/admin/metrics.h"
#include "gateway/server/tls_io.h"

struct evbuffer;

namespace sluice {

class Worker;
class ServicePool;

// A non-blocking TCP connection to one endpoint. It only moves bytes and reports events;
// the current owner (a ServiceCall, or the pool while idle) decides what they mean.
class UpstreamConnection {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual void onConnected() = 0;
    virtual void onConnectFailed(bool timed_out) = 0;
    virtual void onReadable() = 0;              // bytes are in in(); EOF and errors via onClosed
    virtual void onClosed(bool timed_out) = 0;  // peer closed, error, or read timeout
    virtual void onWritable() = 0;              // out() drained below the low watermark
  };

  UpstreamConnection(Worker& worker, size_t endpoint);
  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Starts a non-blocking connect (and, with `tls`, the TLS handshake after it, both
  // within `timeout`); false if it failed at once (errno set). onConnected comes once
  // the connection can carry requests.
  struct Tls {
    SSL_CTX* ctx = nullptr;             // null: plain TCP
    const std::string* host = nullptr;  // SNI and the name checked ("" for none)
    bool verify = true;
  };
  bool connect(const config::SocketAddress& address, config::Duration timeout, const Tls& tls);
  void setHandler(Handler* handler) { handler_ = handler; }
  // Reading with a timeout: if no byte arrives within `timeout`, onClosed(true).
  void readWithTimeout(const timeval* timeout);
  void pauseReading();
  void resumeReading();
  // Writes out(); false if the connection failed (the handler is not called).
  bool flush();

  evbuffer* in() { return in_; }
  evbuffer* out() { return out_; }
  size_t endpoint() const { return endpoint_; }
  bool connected() const { return connected_; }
  uint64_t requests = 0;  // served on this connection, for the logs

 private:
  static void onReadEvent(evutil_socket_t fd, short what, void* arg);
  static void onWriteEvent(evutil_socket_t fd, short what, void* arg);
  void handshake();
  void handshakeEvent(short what);  // a read or write event (or timeout) mid-handshake
  ssize_t readSome();
  int writeSome();

  Worker& worker_;
  size_t endpoint_;
  int fd_ = -1;
  event read_ev_;
  event write_ev_;
  evbuffer* in_;
  evbuffer* out_;
  Handler* handler_ = nullptr;
  const timeval* read_timeout_ = nullptr;
  bool connected_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool read_paused_ = false;
  Tls tls_;
  SSL* ssl_ = nullptr;
  bool handshaking_ = false;
  tls::EventIo io_;
  uint64_t deadline_us_ = 0;  // connect and handshake
};

class ServicePool {
 public:
  // `endpoint_metrics` holds one entry per endpoint of `service`.
  ServicePool(Worker& worker, const config::Service& service,
              std::vector<EndpointMetrics*> endpoint_metrics);
  ~ServicePool();

  const config::Service& service() const { return service_; }
  Worker& worker() { return worker_; }
  size_t endpointCount() const { return endpoints_.size(); }
  // Load-balancing choice; `avoid` (an endpoint index, or SIZE_MAX) is skipped when
  // another endpoint exists — used for the retry after a connect failure.
  size_t pickEndpoint(size_t avoid);
  // An idle keep-alive connection to `endpoint`, or null.
  std::unique_ptr<UpstreamConnection> takeIdle(size_t endpoint);
  // Returns a connection whose last response ended cleanly.
  void putIdle(std::unique_ptr<UpstreamConnection> conn);
  void requestStarted(size_t endpoint) { ++endpoints_[endpoint].active; }
  void requestEnded(size_t endpoint) { --endpoints_[endpoint].active; }
  const timeval* responseTimeout() const { return response_timeout_; }
  void countError(size_t endpoint, metrics::UpstreamError kind) {
    endpoint_metrics_[endpoint]->error(kind);
  }
  // How to connect to `endpoint` (TLS or not).
  UpstreamConnection::Tls tlsFor(size_t endpoint) const {
    if (ssl_ctx_ == nullptr) return {};
    return {ssl_ctx_, &tls_hosts_[endpoint], service_.tls_verify};
  }

 private:
  class IdleWatcher;
  struct Endpoint {
    uint32_t active = 0;
    std::vector<std::unique_ptr<IdleWatcher>> idle;
  };
  void dropIdle(IdleWatcher* watcher);

  Worker& worker_;
  const config::Service& service_;
  std::vector<Endpoint> endpoints_;
  std::vector<EndpointMetrics*> endpoint_metrics_;
  size_t next_ = 0;  // round-robin cursor
  const timeval* response_timeout_;
  const timeval* idle_timeout_;
  SSL_CTX* ssl_ctx_ = nullptr;          // `tls:` services only
  std::vector<std::string> tls_hosts_;  // by endpoint: SNI and the name checked
};

}  // namespace sluice
