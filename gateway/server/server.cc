#include "gateway/server/server.h"

#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "filters/filter.h"
#include "gateway/server/log.h"
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

struct MainLoop {
  event_base* base = nullptr;
  std::vector<std::unique_ptr<Worker>> workers;
  const config::Config* config = nullptr;
  bool draining = false;
  event* drain_timer = nullptr;
  event* poll_timer = nullptr;
};

void onPoll(evutil_socket_t, short, void* arg) {
  auto* m = static_cast<MainLoop*>(arg);
  for (auto& w : m->workers) {
    if (!w->finished()) return;
  }
  event_base_loopexit(m->base, nullptr);
}

void onDrainTimeout(evutil_socket_t, short, void* arg) {
  auto* m = static_cast<MainLoop*>(arg);
  LOG_WARN("drain timeout reached; closing remaining connections");
  for (auto& w : m->workers) w->stop();
}

void onSignal(evutil_socket_t fd, short, void* arg) {
  auto* m = static_cast<MainLoop*>(arg);
  signalfd_siginfo info;
  while (::read(fd, &info, sizeof info) == sizeof info) {
    int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGTERM || sig == SIGINT) {
      if (m->draining) {
        LOG_WARN("second %s: stopping now", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        for (auto& w : m->workers) w->stop();
        continue;
      }
      m->draining = true;
      LOG_INFO("%s received: draining (up to %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               static_cast<long long>(m->config->drain_timeout.count()));
      for (auto& w : m->workers) w->drain();
      auto d = m->config->drain_timeout;
      timeval tv{static_cast<time_t>(d.count() / 1000),
                 static_cast<suseconds_t>((d.count() % 1000) * 1000)};
      m->drain_timer = evtimer_new(m->base, &onDrainTimeout, m);
      evtimer_add(m->drain_timer, &tv);
    } else if (sig == SIGUSR1) {
      // Log rotation: filters that write files reopen them.
      LOG_INFO("SIGUSR1: reopening log files");
      for (const auto& f : m->config->global_chain) f->reopen();
      for (const auto& r : m->config->routes) {
        for (const auto& f : r.chain) f->reopen();
      }
    } else if (sig == SIGHUP) {
      LOG_WARN("SIGHUP: configuration reload is not supported by this version; ignored");
    }
  }
}

}  // namespace

int runServer(std::shared_ptr<const config::Config> config) {
  unsigned workers = config->workers;
  if (workers == 0) workers = std::max(1u, std::thread::hardware_concurrency());

  // Bind everything first so that a port in use fails the start, not a worker.
  std::vector<std::vector<int>> fds(workers);
  for (const config::Listener& l : config->listeners) {
    for (unsigned w = 0; w < workers; ++w) {
      std::string error;
      int fd = openListenSocket(l, error);
      if (fd < 0) {
        LOG_ERROR("listener %s: cannot listen on %s: %s", l.name.c_str(), l.address.text.c_str(),
                  error.c_str());
        for (auto& list : fds)
          for (int f : list) ::close(f);
        return 1;
      }
      fds[w].push_back(fd);
    }
  }

  ::signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGUSR1);
  // Blocked before the workers start, so that they inherit the mask and every signal
  // arrives through the signalfd below.
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

  MainLoop m;
  m.base = event_base_new();
  m.config = config.get();
  for (unsigned w = 0; w < workers; ++w) {
    m.workers.push_back(std::make_unique<Worker>(w, config, std::move(fds[w])));
  }
  for (auto& w : m.workers) w->start();
  for (const config::Listener& l : config->listeners) {
    LOG_INFO("listener %s on %s (%u workers)", l.name.c_str(), l.address.text.c_str(), workers);
  }

  event* sig_ev = event_new(m.base, sfd, EV_READ | EV_PERSIST, &onSignal, &m);
  event_add(sig_ev, nullptr);
  m.poll_timer = event_new(m.base, -1, EV_PERSIST, &onPoll, &m);
  timeval poll{0, 50'000};
  event_add(m.poll_timer, &poll);

  event_base_dispatch(m.base);

  for (auto& w : m.workers) w->join();
  m.workers.clear();
  event_free(sig_ev);
  event_free(m.poll_timer);
  if (m.drain_timer) event_free(m.drain_timer);
  event_base_free(m.base);
  ::close(sfd);
  LOG_INFO("stopped");
  return 0;
}

}  // namespace sluice
