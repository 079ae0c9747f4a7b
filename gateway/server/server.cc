#include "gateway/server/server.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "config/yaml_reader.h"
#include "filters/filter.h"
#include "gateway/admin/admin_server.h"
#include "gateway/admin/config_watcher.h"
#include "gateway/admin/metrics.h"
#include "gateway/function/process_host.h"
#include "gateway/server/log.h"
#include "gateway/server/mailbox.h"
#include "gateway/server/tls_server.h"
#include "gateway/server/worker.h"

namespace sluice {
namespace {

int openListenSocket(const config::Listener& l, std::string& error) {
  int fd = ::socket(l.address.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Every worker binds its own socket to the address; the kernel spreads connections.
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (l.address.addr.ss_family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&l.address.addr), l.address.len) < 0 ||
      ::listen(fd, 4096) < 0) {
    error = std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool sameAddress(const config::SocketAddress& a, const config::SocketAddress& b) {
  return a.len == b.len && std::memcmp(&a.addr, &b.addr, a.len) == 0;
}

// A listener of the new config keeps the socket of the old one with the same address
// (a rename does not reopen it). Port 0 means "any port" and is kept by name only.
size_t keptListener(const config::Config& old, const config::Listener& l,
                    const std::set<size_t>& taken) {
  for (size_t j = 0; j < old.listeners.size(); ++j) {
    const config::Listener& o = old.listeners[j];
    if (taken.count(j) || !sameAddress(o.address, l.address)) continue;
    if (config::detail::addressPort(l.address) == 0 && o.name != l.name) continue;
    return j;
  }
  return SIZE_MAX;
}

class Server final : public AdminHost {
 public:
  explicit Server(std::shared_ptr<const config::Config> config) : config_(std::move(config)) {
    workers_count_ = config_->workers;
    if (workers_count_ == 0) workers_count_ = std::max(1u, std::thread::hardware_concurrency());
  }

  int run();

  // AdminHost
  bool ready() const override { return started_ && !draining_; }
  std::shared_ptr<const config::Config> currentConfig() const override { return config_; }
  uint64_t generation() const override { return generation_; }
  std::string metricsText() override { return metrics_->render(*config_); }
  void reload(const char* source, ReloadDone done) override;

 private:
  static void onSignal(evutil_socket_t fd, short, void* arg);
  static void onPoll(evutil_socket_t, short, void* arg);
  static void onDrainTimeout(evutil_socket_t, short, void* arg);
  void handleSignal(int sig);
  void startDrain(const char* why);
  void startReload();
  void onWorkerSwitched();
  void finishReload(const ReloadOutcome& outcome);
  void applyWatch();
  void reopenFiles();

  std::shared_ptr<const config::Config> config_;  // serving new streams (after the switch)
  unsigned workers_count_ = 1;
  event_base* base_ = nullptr;
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<Mailbox> mailbox_;
  std::unique_ptr<function::Host> functions_;  // declared first: outlives the workers
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<ConfigWatcher> watcher_;
  bool started_ = false;
  bool draining_ = false;
  uint64_t generation_ = 1;
  event* drain_timer_ = nullptr;

  // The reload in progress (at most one), and the requests that came during it: those
  // are served together by one more reload, since it reads the file as it is then.
  bool reloading_ = false;
  std::vector<ReloadDone> waiting_;
  bool again_ = false;
  const char* again_source_ = "";
  std::vector<ReloadDone> queued_;
  std::shared_ptr<const config::Config> next_;
  size_t pending_acks_ = 0;
  int next_admin_fd_ = -1;
};

void Server::reload(const char* source, ReloadDone done) {
  if (draining_) {
    LOG_WARN("%s: not reloading while draining", source);
    if (done) done({false, 503, {"sluice is draining; reload refused"}, generation_});
    return;
  }
  if (reloading_) {
    again_ = true;
    again_source_ = source;
    if (done) queued_.push_back(std::move(done));
    return;
  }
  reloading_ = true;
  if (done) waiting_.push_back(std::move(done));
  LOG_INFO("%s: reloading %s", source, config_->file.c_str());
  startReload();
}

void Server::startReload() {
  config::LoadResult result = config::loadFile(config_->file);
  if (!result.config) {
    std::vector<std::string> errors;
    for (const config::Error& e : result.errors) {
      errors.push_back(e.str());
      LOG_ERROR("reload: %s", errors.back().c_str());
    }
    LOG_ERROR("reload failed (%zu errors); still serving generation %llu", errors.size(),
              static_cast<unsigned long long>(generation_));
    finishReload({false, 400, std::move(errors), generation_});
    return;
  }
  std::shared_ptr<const config::Config> next = result.config;
  unsigned wanted =
      next->workers == 0 ? std::max(1u, std::thread::hardware_concurrency()) : next->workers;
  if (wanted != workers_count_) {
    LOG_WARN("reload: workers changed to %u; that needs a restart, keeping %u", wanted,
             workers_count_);
  }

  // Open what is new before anything changes, so that a port in use fails the reload
  // rather than half-applying it.
  std::vector<std::vector<Worker::ListenerPlan>> plans(
      workers_count_, std::vector<Worker::ListenerPlan>(next->listeners.size()));
  std::vector<int> opened;
  std::vector<std::string> errors;
  std::set<size_t> taken;
  // Certificates are read again on every reload (a renewed certificate under the same
  // file name is picked up); one set of contexts per listener, shared by the workers.
  for (size_t i = 0; i < next->listeners.size(); ++i) {
    const config::Listener& l = next->listeners[i];
    if (!l.tls.enabled) continue;
    std::string error;
    auto ctx = tls::ServerContext::make(l.tls, error);
    if (!ctx) {
      errors.push_back(config::Error{next->file, l.tls.mark.line, l.tls.mark.column,
                                     "listener " + l.name + ": " + error}
                           .str());
      continue;
    }
    for (auto& p : plans) p[i].tls = ctx;
  }
  for (size_t i = 0; i < next->listeners.size() && errors.empty(); ++i) {
    const config::Listener& l = next->listeners[i];
    size_t keep = keptListener(*config_, l, taken);
    if (keep != SIZE_MAX) {
      taken.insert(keep);
      for (auto& p : plans) p[i].keep = keep;
      continue;
    }
    for (unsigned w = 0; w < workers_count_; ++w) {
      std::string error;
      int fd = openListenSocket(l, error);
      if (fd < 0) {
        errors.push_back(config::Error{
            next->file, l.mark.line, l.mark.column,
            "listener " + l.name + ": cannot listen on " + l.address.text + ": " + error}
                             .str());
        break;
      }
      opened.push_back(fd);
      plans[w][i].fd = fd;
    }
  }
  int admin_fd = -1;
  const config::Admin& admin = next->admin;
  if (errors.empty() && admin.enabled &&
      !(config_->admin.enabled && sameAddress(config_->admin.address, admin.address))) {
    std::string error;
    admin_fd = AdminServer::openSocket(admin.address, error);
    if (admin_fd < 0) {
      errors.push_back(config::Error{next->file, admin.mark.line, admin.mark.column,
                                     "admin: cannot listen on " + admin.address.text + ": " + error}
                           .str());
    }
  }
  if (!errors.empty()) {
    for (int fd : opened) ::close(fd);
    for (const std::string& e : errors) LOG_ERROR("reload: %s", e.c_str());
    finishReload({false, 500, std::move(errors), generation_});
    return;
  }

  next_ = std::move(next);
  next_admin_fd_ = admin_fd;
  pending_acks_ = workers_count_;
  for (unsigned w = 0; w < workers_count_; ++w) {
    Worker::Plan plan{next_, metrics_->bind(*next_, w), std::move(plans[w]), functions_.get()};
    workers_[w]->apply(std::move(plan), [this] { mailbox_->post([this] { onWorkerSwitched(); }); });
  }
}

void Server::onWorkerSwitched() {
  if (--pending_acks_ > 0) return;
  // Every worker now starts new streams on the new snapshot.
  std::set<size_t> kept;
  for (const config::Listener& l : next_->listeners) {
    size_t j = keptListener(*config_, l, kept);
    if (j == SIZE_MAX) {
      LOG_INFO("reload: listener %s on %s opened", l.name.c_str(), l.address.text.c_str());
    } else {
      kept.insert(j);
    }
  }
  for (size_t j = 0; j < config_->listeners.size(); ++j) {
    const config::Listener& l = config_->listeners[j];
    if (!kept.count(j)) {
      LOG_INFO("reload: listener %s on %s closed", l.name.c_str(), l.address.text.c_str());
    }
  }
  config_ = std::move(next_);
  ++generation_;
  const config::Admin& admin = config_->admin;
  if (admin.enabled) {
    if (!admin_) admin_ = std::make_unique<AdminServer>(base_, *this);
    if (next_admin_fd_ >= 0) admin_->listen(next_admin_fd_, admin.address.text);
    admin_->setToken(admin.token);
  } else if (admin_) {
    admin_->stopListening();  // connections still open (this reload's caller) finish
  }
  next_admin_fd_ = -1;
  applyWatch();
  metrics_->reloadResult(true, generation_);
  LOG_INFO("reload done: generation %llu (%zu listeners, %zu routes)",
           static_cast<unsigned long long>(generation_), config_->listeners.size(),
           config_->routes.size());
  finishReload({true, 200, {}, generation_});
}

void Server::finishReload(const ReloadOutcome& outcome) {
  if (!outcome.ok) metrics_->reloadResult(false, generation_);
  std::vector<ReloadDone> waiting;
  waiting.swap(waiting_);
  reloading_ = false;
  for (auto& done : waiting) done(outcome);
  if (again_ && !reloading_) {
    again_ = false;
    std::vector<ReloadDone> queued;
    queued.swap(queued_);
    reloading_ = true;
    waiting_ = std::move(queued);
    LOG_INFO("%s: reloading %s", again_source_, config_->file.c_str());
    startReload();
  }
}

void Server::applyWatch() {
  if (!config_->watch) {
    watcher_.reset();
  } else if (!watcher_) {
    watcher_ =
        std::make_unique<ConfigWatcher>(base_, config_->file, [this] { reload("watch", nullptr); });
  }
}

void Server::reopenFiles() {
  std::set<const FilterFactory*> seen;
  auto each = [&](const auto& chain) {
    for (const auto& f : chain) {
      if (seen.insert(f.get()).second) f->reopen();
    }
  };
  each(config_->global_chain);
  for (const auto& r : config_->routes) each(r.chain);
}

void Server::onPoll(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  for (auto& w : self->workers_) {
    if (!w->finished()) return;
  }
  event_base_loopexit(self->base_, nullptr);
}

void Server::onDrainTimeout(evutil_socket_t, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  LOG_WARN("drain timeout reached; closing remaining connections");
  for (auto& w : self->workers_) w->stop();
}

void Server::onSignal(evutil_socket_t fd, short, void* arg) {
  auto* self = static_cast<Server*>(arg);
  signalfd_siginfo info;
  while (::read(fd, &info, sizeof info) == sizeof info) {
    self->handleSignal(static_cast<int>(info.ssi_signo));
  }
}

void Server::startDrain(const char* why) {
  draining_ = true;
  watcher_.reset();
  LOG_INFO("%s received: draining (up to %lld ms)", why,
           static_cast<long long>(config_->drain_timeout.count()));
  for (auto& w : workers_) w->drain();
  auto d = config_->drain_timeout;
  timeval tv{static_cast<time_t>(d.count() / 1000),
             static_cast<suseconds_t>((d.count() % 1000) * 1000)};
  drain_timer_ = evtimer_new(base_, &onDrainTimeout, this);
  evtimer_add(drain_timer_, &tv);
}

void Server::handleSignal(int sig) {
  if (sig == SIGTERM || sig == SIGINT) {
    const char* name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
    if (draining_) {
      LOG_WARN("second %s: stopping now", name);
      for (auto& w : workers_) w->stop();
      return;
    }
    startDrain(name);
  } else if (sig == SIGUSR1) {
    // Log rotation: filters that write files reopen them.
    LOG_INFO("SIGUSR1: reopening log files");
    reopenFiles();
  } else if (sig == SIGHUP) {
    reload("SIGHUP", nullptr);
  }
}

int Server::run() {
  const config::Config& config = *config_;
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGUSR1);
  // Blocked before anything listens (a signal sent as soon as a port answers is not
  // lost) and before the workers start, so that they inherit the mask and every signal
  // arrives through the signalfd.
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  // Bind everything first so that a port in use fails the start, not a worker. The
  // admin socket comes first: once a listener answers, the admin port does too.
  int admin_fd = -1;
  if (config.admin.enabled) {
    std::string error;
    admin_fd = AdminServer::openSocket(config.admin.address, error);
    if (admin_fd < 0) {
      LOG_ERROR("admin: cannot listen on %s: %s", config.admin.address.text.c_str(), error.c_str());
      ::close(sfd);
      return 1;
    }
  }
  std::vector<std::vector<Worker::ListenerPlan>> plans(workers_count_);
  std::vector<std::shared_ptr<const tls::ServerContext>> contexts;  // by listener
  for (const config::Listener& l : config.listeners) {
    contexts.emplace_back();
    if (!l.tls.enabled) continue;
    std::string error;
    contexts.back() = tls::ServerContext::make(l.tls, error);
    if (!contexts.back()) {
      LOG_ERROR("listener %s: %s", l.name.c_str(), error.c_str());
      if (admin_fd >= 0) ::close(admin_fd);
      ::close(sfd);
      return 1;
    }
  }
  auto closeAll = [&] {
    for (auto& list : plans)
      for (const auto& p : list) ::close(p.fd);
    if (admin_fd >= 0) ::close(admin_fd);
    ::close(sfd);
  };
  for (size_t i = 0; i < config.listeners.size(); ++i) {
    const config::Listener& l = config.listeners[i];
    for (unsigned w = 0; w < workers_count_; ++w) {
      std::string error;
      int fd = openListenSocket(l, error);
      if (fd < 0) {
        LOG_ERROR("listener %s: cannot listen on %s: %s", l.name.c_str(), l.address.text.c_str(),
                  error.c_str());
        closeAll();
        return 1;
      }
      plans[w].push_back({fd, SIZE_MAX, contexts[i]});
    }
  }

  base_ = event_base_new();
  mailbox_ = std::make_unique<Mailbox>(base_);
  metrics_ = std::make_unique<MetricsRegistry>(workers_count_);
  // Started after the signal mask is set (it inherits it) and before the workers that
  // use it; stopped after them.
  functions_ = std::make_unique<function::Host>();
  functions_->start();
  for (unsigned w = 0; w < workers_count_; ++w) {
    Worker::Plan plan{config_, metrics_->bind(config, w), std::move(plans[w]), functions_.get()};
    workers_.push_back(std::make_unique<Worker>(w, metrics_->worker(w), std::move(plan)));
  }
  for (auto& w : workers_) w->start();
  for (const config::Listener& l : config.listeners) {
    LOG_INFO("listener %s on %s (%u workers)", l.name.c_str(), l.address.text.c_str(),
             workers_count_);
  }
  applyWatch();
  if (admin_fd >= 0) {
    admin_ = std::make_unique<AdminServer>(base_, *this);
    admin_->setToken(config.admin.token);
    admin_->listen(admin_fd, config.admin.address.text);
  }
  started_ = true;

  event* sig_ev = event_new(base_, sfd, EV_READ | EV_PERSIST, &onSignal, this);
  event_add(sig_ev, nullptr);
  event* poll_ev = event_new(base_, -1, EV_PERSIST, &onPoll, this);
  timeval poll{0, 50'000};
  event_add(poll_ev, &poll);

  event_base_dispatch(base_);

  for (auto& w : workers_) w->join();
  functions_->stop();
  workers_.clear();
  functions_.reset();
  watcher_.reset();
  admin_.reset();
  waiting_.clear();
  queued_.clear();
  if (next_admin_fd_ >= 0) ::close(next_admin_fd_);
  mailbox_.reset();
  event_free(sig_ev);
  event_free(poll_ev);
  if (drain_timer_) event_free(drain_timer_);
  event_base_free(base_);
  ::close(sfd);
  LOG_INFO("stopped");
  return 0;
}

}  // namespace

int runServer(std::shared_ptr<const config::Config> config) {
  Server server(std::move(config));
  return server.run();
}

}  // namespace sluice
