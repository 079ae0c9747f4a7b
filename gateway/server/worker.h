// A worker: one thread, one event_base, its own SO_REUSEPORT listening sockets, and
// every connection it accepts for that connection's whole life. Nothing in a worker is
// shared with another worker, so the request path takes no locks. The only way in from
// outside is post(), used for rare control messages (drain, stop).
#pragma once

#include <event2/event_struct.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "gateway/server/deferred.h"

struct event_base;

namespace sluice {

class Http1Connection;
class ServicePool;

class Worker {
 public:
  // `listen_fds[i]` is this worker's socket for config->listeners[i].
  Worker(unsigned id, std::shared_ptr<const config::Config> config, std::vector<int> listen_fds);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();  // spawns the thread
  void join();
  // Runs `fn` on the worker's thread. Thread-safe.
  void post(std::function<void()> fn);
  // Stop accepting, let in-flight requests finish, close idle connections, and let the
  // thread exit when no connection is left.
  void drain();
  // Close everything now (after the drain timeout).
  void stop();
  bool finished() const { return finished_.load(); }

  event_base* base() const { return base_; }
  unsigned id() const { return id_; }
  const config::Config& config() const { return *config_; }
  const std::shared_ptr<const config::Config>& configPtr() const { return config_; }
  bool draining() const { return draining_; }
  ServicePool* poolForRoute(size_t route_id) const { return route_pools_[route_id]; }

  // Scratch space for building heads: one per worker, reused for every request.
  std::string& scratch() { return scratch_; }

  // Destroys `obj` on the next loop iteration, after every callback on the stack has
  // returned (objects often die inside their own callbacks).
  void deferDelete(std::unique_ptr<Deferred> obj);

  void onConnectionClosed(Http1Connection* conn);

 private:
  struct ListenSocket {
    Worker* worker;
    const config::Listener* config;
    int fd;
    event ev;
    bool active;
    size_t connections = 0;
    const timeval* header_timeout = nullptr;
    const timeval* idle_timeout = nullptr;
  };

  void run();
  static void onAccept(evutil_socket_t fd, short what, void* arg);
  static void onControl(evutil_socket_t fd, short what, void* arg);
  static void onReap(evutil_socket_t fd, short what, void* arg);
  void acceptFrom(ListenSocket& ls);
  void pauseAccepting();
  void resumeAccepting();
  void closeListeners();
  void maybeFinish();

  unsigned id_;
  std::shared_ptr<const config::Config> config_;
  event_base* base_ = nullptr;
  std::vector<std::unique_ptr<ListenSocket>> listeners_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  bool draining_ = false;
  bool accepting_paused_ = false;

  Http1Connection* connections_ = nullptr;  // intrusive list head
  size_t connection_count_ = 0;

  std::vector<std::unique_ptr<ServicePool>> pools_;
  std::vector<ServicePool*> route_pools_;  // by route id; null for non-service routes

  std::vector<std::unique_ptr<Deferred>> graveyard_;
  event reap_ev_;

  int control_fd_ = -1;  // eventfd
  event control_ev_;
  std::mutex control_mu_;
  std::vector<std::function<void()>> control_queue_;

  std::string scratch_;
};

}  // namespace sluice
