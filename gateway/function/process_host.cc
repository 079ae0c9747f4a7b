#include "gateway/function/process_host.h"

#include <dirent.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "filters/uuid.h"
#include "gateway/admin/metrics.h"
#include "gateway/function/function_call.h"
#include "gateway/server/clock.h"
#include "gateway/server/log.h"
#include "gateway/server/mailbox.h"
#include "gateway/server/worker.h"

extern char** environ;

namespace sluice::function {
namespace {

constexpr std::string_view kApiPrefix = "/2018-06-01/runtime/";
// Replies above Lambda's limit are refused by us (a clear function error), so evhttp
// must let them through rather than answer 413 to the runtime on its own.
constexpr ssize_t kMaxRuntimeBody = 2 * kMaxPayload;
constexpr size_t kMaxLogLine = 4096;
constexpr int kMemoryCheckMs = 100;
// How long an instance that answered is expected to take to ask for the next
// invocation (a runtime does that at once).
constexpr uint64_t kFinishingUs = 200'000;
constexpr uint64_t kZombiePollUs = 20'000;

uint64_t monoMicros() { return nowMicros(CLOCK_MONOTONIC); }
uint64_t wallMillis() { return nowMicros(CLOCK_REALTIME) / 1000; }

// Everything that makes two instances interchangeable: invokers of configs that agree
// on these share instances across reloads.
std::string fingerprint(const config::Function& fn) {
  std::string key = fn.name;
  auto add = [&key](std::string_view part) {
    key.push_back('\0');
    key.append(part);
  };
  for (const std::string& arg : fn.command) add(arg);
  add("|");
  add(fn.handler);
  add(fn.working_dir);
  for (const auto& [k, v] : fn.environment) {
    add(k);
    add(v);
  }
  add("|");
  for (uint64_t n :
       {static_cast<uint64_t>(fn.memory_mb), static_cast<uint64_t>(fn.timeout.count()),
        static_cast<uint64_t>(fn.max_concurrency), static_cast<uint64_t>(fn.max_queue),
        static_cast<uint64_t>(fn.queue_timeout.count()),
        static_cast<uint64_t>(fn.idle_timeout.count()), static_cast<uint64_t>(fn.min_instances),
        static_cast<uint64_t>(fn.init_timeout.count())}) {
    add(std::to_string(n));
  }
  return key;
}

struct Invocation;

// Where the worker wants the result: its loop, and the invoker's table of tickets.
struct InvokerState {
  struct Pending {
    InvokeHandler* handler;
    std::shared_ptr<Invocation> invocation;
  };
  std::unordered_map<uint64_t, Pending> pending;
  uint64_t next_ticket = 1;
};

struct Invocation {
  // Set by the worker when the client went away: a queued invocation is then dropped
  // instead of run (one that already runs goes on, as on Lambda). Written by the
  // worker, read by the host: an atomic, no lock.
  std::atomic<bool> cancelled{false};
  uint64_t ticket = 0;
  std::string payload;
  std::string request_id;  // the gateway's, for log lines
  Worker* worker = nullptr;
  std::weak_ptr<InvokerState> state;
  uint64_t queued_us = 0;
  std::string aws_request_id;  // Lambda-Runtime-Aws-Request-Id
};

void deliver(Invocation& inv, Result&& result) {
  Worker* worker = inv.worker;
  worker->post([state = inv.state, ticket = inv.ticket, result = std::move(result)]() mutable {
    std::shared_ptr<InvokerState> s = state.lock();
    if (!s) return;
    auto it = s->pending.find(ticket);
    if (it == s->pending.end()) return;  // cancelled: the client went away
    InvokeHandler* handler = it->second.handler;
    s->pending.erase(it);
    handler->onInvokeResult(std::move(result));
  });
}

// The inode of the client socket of a loopback TCP connection, from /proc/net/tcp: the
// line whose local end is the connection's peer and whose remote end is our side.
std::string clientSocketInode(const sockaddr_in& client, const sockaddr_in& server) {
  char local[32], remote[32];
  // /proc/net/tcp prints the address as the raw 32-bit value in hex and the port in
  // host order.
  std::snprintf(local, sizeof local, "%08X:%04X", client.sin_addr.s_addr, ntohs(client.sin_port));
  std::snprintf(remote, sizeof remote, "%08X:%04X", server.sin_addr.s_addr, ntohs(server.sin_port));
  FILE* f = std::fopen("/proc/net/tcp", "re");
  if (f == nullptr) return {};
  char line[512];
  std::string inode;
  while (inode.empty() && std::fgets(line, sizeof line, f) != nullptr) {
    char l[64], r[64], ino[32];
    unsigned long long skip;
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
    if (std::sscanf(line, " %llu: %63s %63s %*s %*s %*s %*s %*s %*s %31s", &skip, l, r, ino) == 4 &&
        std::strcmp(l, local) == 0 && std::strcmp(r, remote) == 0) {
      inode = ino;
    }
  }
  std::fclose(f);
  return inode;
}

bool pidHoldsSocket(pid_t pid, const std::string& target) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  char link[64];
  while (!found) {
    dirent* e = readdir(d);
    if (e == nullptr) break;
    std::string path = dir + "/" + e->d_name;
    ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = '\0';
    found = target == link;
  }
  closedir(d);
  return found;
}

// Whether the client end of the accepted loopback connection `fd` is held by a process
// of process group `pgid` (the instance, and whatever it started).
bool peerInGroup(int fd, pid_t pgid) {
  sockaddr_in client{}, server{};
  socklen_t len = sizeof client;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&client), &len) != 0 ||
      client.sin_family != AF_INET) {
    return false;
  }
  len = sizeof server;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&server), &len) != 0) return false;
  std::string inode = clientSocketInode(client, server);
  if (inode.empty()) return false;
  std::string target = "socket:[" + inode + "]";
  if (pidHoldsSocket(pgid, target)) return true;
  // A wrapper (`sh -c ...`) may have started the runtime: look at the whole group.
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return false;
  bool found = false;
  while (!found) {
    dirent* e = readdir(proc);
    if (e == nullptr) break;
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == pgid) continue;
    std::string stat_path = std::string("/proc/") + e->d_name + "/stat";
    FILE* f = std::fopen(stat_path.c_str(), "re");
    if (f == nullptr) continue;
    char buf[512];
    size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    const char* close = std::strrchr(buf, ')');
    long pgrp = 0;
    if (close != nullptr && std::sscanf(close + 1, " %*c %*d %ld", &pgrp) == 1 && pgrp == pgid) {
      found = pidHoldsSocket(static_cast<pid_t>(pid), target);
    }
  }
  closedir(proc);
  return found;
}

}  // namespace

class Host::Impl {
 public:
  struct Pool;

  struct Instance {
    // kFinishing: answered, and about to ask for the next invocation. Counted as
    // soon-free for a moment, so that a request arriving in that gap waits for this warm
    // instance instead of cold-starting another one.
    enum class State : uint8_t { kStarting, kIdle, kBusy, kFinishing, kDead };
    Impl* host = nullptr;
    Pool* pool = nullptr;
    uint64_t id = 0;
    pid_t pid = -1;
    int pidfd = -1;
    event* exit_ev = nullptr;
    event* out_ev = nullptr;
    event* err_ev = nullptr;
    int out_fd = -1;
    int err_fd = -1;
    std::string out_line;
    std::string err_line;
    evhttp* http = nullptr;
    std::string api;  // "127.0.0.1:PORT"
    State state = State::kStarting;
    uint64_t started_us = 0;
    evhttp_request* next_req = nullptr;  // the pending long poll, when idle
    evhttp_connection* next_conn = nullptr;
    std::vector<evhttp_connection*> trusted;  // connections from the instance's processes
    std::shared_ptr<Invocation> current;
    // Output read after the reply (pipes are read when the loop gets to them) belongs
    // to the invocation that just ended: it keeps that request's id in the log.
    std::string last_request_id = "-";
    uint64_t assigned_us = 0;
    event* timer = nullptr;      // init timeout, invocation deadline, or idle timeout
    event* mem_timer = nullptr;  // RSS check
  };

  struct Pool {
    Impl* host = nullptr;
    std::string key;
    config::Function fn;  // a copy: the pool may outlive the config it came from
    FunctionHostMetrics* metrics = nullptr;
    std::string arn;
    unsigned refs = 0;  // invokers alive
    std::list<std::unique_ptr<Instance>> instances;
    std::deque<std::shared_ptr<Invocation>> queue;
    event* queue_timer = nullptr;
    event* retry_timer = nullptr;  // min_instances after a failed start
    uint64_t retry_after_us = 0;
    unsigned starting = 0;
    unsigned alive = 0;
  };

  Impl() {
    base_ = event_base_new();
    mailbox_ = std::make_unique<Mailbox>(base_);
    reap_ev_ = evtimer_new(base_, &onReap, this);
    zombie_timer_ = evtimer_new(base_, &onZombieTimer, this);
  }

  ~Impl() {
    stop();
    reap();
    for (auto& [key, pool] : pools_) freePool(*pool);
    pools_.clear();
    // Everything got SIGKILL in stop(): wait a little for the kernel to finish them,
    // but never hang the exit on a process stuck in uninterruptible sleep.
    for (int i = 0; i < 200 && !reapZombies(); ++i) usleep(10'000);
    event_free(zombie_timer_);
    event_free(reap_ev_);
    mailbox_.reset();
    event_base_free(base_);
  }

  void start() {
    thread_ = std::thread([this] {
      // The host's children inherit this thread's signal mask: nothing blocked for them
      // is done in the child after fork; here, the server's blocked set stays blocked.
      event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
    });
  }

  void stop() {
    if (!thread_.joinable()) return;
    mailbox_->post([this] {
      shutting_down_ = true;
      for (auto& [key, pool] : pools_) {
        while (!pool->queue.empty()) {
          std::shared_ptr<Invocation> inv = std::move(pool->queue.front());
          pool->queue.pop_front();
          deliver(*inv, {Outcome::kFailed, {}, "sluice is stopping", 0});
        }
        while (!pool->instances.empty()) {
          kill(*pool->instances.front(), "sluice is stopping", Outcome::kFailed);
        }
      }
      event_base_loopbreak(base_);
    });
    thread_.join();
  }

  void post(std::function<void()> fn) { mailbox_->post(std::move(fn)); }

  // ---- on the host thread ----

  void attach(const std::string& key, const config::Function& fn, FunctionHostMetrics* metrics) {
    std::unique_ptr<Pool>& slot = pools_[key];
    if (!slot) {
      slot = std::make_unique<Pool>();
      slot->host = this;
      slot->key = key;
      slot->fn = fn;
      slot->metrics = metrics;
      const char* region = std::getenv("AWS_REGION");
      slot->arn = "arn:aws:lambda:" + std::string(region && *region ? region : "us-east-1") +
                  ":000000000000:function:" + fn.name;
      slot->queue_timer = evtimer_new(base_, &onQueueTimer, slot.get());
      slot->retry_timer = evtimer_new(base_, &onRetryTimer, slot.get());
    }
    ++slot->refs;
    schedule(*slot);
  }

  void detach(const std::string& key) {
    auto it = pools_.find(key);
    if (it == pools_.end()) return;
    Pool& pool = *it->second;
    if (--pool.refs == 0) {
      // Retiring: idle instances stop now, busy ones once their invocation ends.
      std::vector<Instance*> idle;
      for (auto& i : pool.instances) {
        if (i->state == Instance::State::kIdle || i->state == Instance::State::kStarting) {
          idle.push_back(i.get());
        }
      }
      for (Instance* i : idle) {
        if (pool.queue.empty()) kill(*i, "function configuration replaced", Outcome::kFailed);
      }
      scheduleReap();
    }
  }

  void invoke(const std::string& key, std::shared_ptr<Invocation> inv) {
    auto it = pools_.find(key);
    if (it == pools_.end() || shutting_down_) {
      deliver(*inv, {Outcome::kFailed, {}, "function instances are not available", 0});
      return;
    }
    Pool& pool = *it->second;
    // Room: idle instances, instances starting, instances that may still start, and
    // then max_queue waiting beyond all of those.
    size_t room = idleCount(pool) + pool.starting + finishingCount(pool) +
                  (pool.fn.max_concurrency - pool.alive) + pool.fn.max_queue;
    if (pool.queue.size() >= room) {
      deliver(*inv,
              {Outcome::kThrottled,
               {},
               "max_concurrency " + std::to_string(pool.fn.max_concurrency) +
                   " reached and the queue of " + std::to_string(pool.fn.max_queue) + " is full",
               0});
      return;
    }
    inv->queued_us = monoMicros();
    newUuid(inv->aws_request_id);
    pool.queue.push_back(std::move(inv));
    pool.metrics->queued.add(1);
    schedule(pool);
  }

 private:
  // Idle and blocked in /invocation/next (a runtime whose long poll broke is idle but
  // cannot take work until it asks again).
  static bool ready(const Instance& i) {
    return i.state == Instance::State::kIdle && i.next_req != nullptr;
  }

  static size_t finishingCount(const Pool& pool) {
    unsigned n = 0;
    for (const auto& i : pool.instances) n += i->state == Instance::State::kFinishing;
    return n;
  }

  static unsigned idleCount(const Pool& pool) {
    unsigned n = 0;
    for (const auto& i : pool.instances) n += ready(*i);
    return n;
  }

  uint64_t queueTimeoutUs(const Pool& pool) const {
    auto ms = pool.fn.queue_timeout.count() > 0 ? pool.fn.queue_timeout : pool.fn.timeout;
    return static_cast<uint64_t>(ms.count()) * 1000;
  }

  // Hands queued invocations to idle instances, starts instances for the rest (up to
  // max_concurrency), keeps min_instances warm, and arms the queue timer.
  void schedule(Pool& pool) {
    if (shutting_down_) return;
    dropCancelled(pool);
    for (auto& i : pool.instances) {
      if (pool.queue.empty()) break;
      if (ready(*i) && liveNext(*i)) assign(*i, popFront(pool));
    }
    size_t soon = pool.starting + finishingCount(pool);
    size_t wanted = pool.queue.size() > soon ? pool.queue.size() - soon : 0;
    while (wanted > 0 && pool.alive < pool.fn.max_concurrency) {
      if (!spawn(pool)) break;
      --wanted;
    }
    if (pool.refs > 0 && pool.alive < pool.fn.min_instances) {
      uint64_t now = monoMicros();
      if (now < pool.retry_after_us) {
        // A warm instance failed to start a moment ago: retry later, not in a loop.
        timeval tv = microsToTimeval(pool.retry_after_us - now);
        evtimer_add(pool.retry_timer, &tv);
      } else {
        while (pool.alive < pool.fn.min_instances) {
          if (!spawn(pool)) break;
        }
      }
    }
    if (!pool.queue.empty() && wanted > 0 && pool.alive == 0) {
      // Nothing could be started at all (spawn failed): answer rather than wait.
      while (!pool.queue.empty()) {
        deliver(*popFront(pool), {Outcome::kFailed, {}, "could not start an instance", 0});
      }
    }
    armQueueTimer(pool);
  }

  std::shared_ptr<Invocation> popFront(Pool& pool) {
    std::shared_ptr<Invocation> inv = std::move(pool.queue.front());
    pool.queue.pop_front();
    pool.metrics->queued.add(-1);
    return inv;
  }

  // Invocations whose client went away are never run.
  void dropCancelled(Pool& pool) {
    for (auto it = pool.queue.begin(); it != pool.queue.end();) {
      if ((*it)->cancelled.load(std::memory_order_relaxed)) {
        it = pool.queue.erase(it);
        pool.metrics->queued.add(-1);
      } else {
        ++it;
      }
    }
  }

  // The first invocations of the queue have an instance on its way (starting, or about
  // to ask for more): they wait for it — bounded by init_timeout — and queue_timeout
  // applies only to those behind them, which wait for capacity.
  size_t covered(const Pool& pool) const { return pool.starting + finishingCount(pool); }

  void armQueueTimer(Pool& pool) {
    size_t first = covered(pool);
    if (pool.queue.size() <= first) {
      evtimer_del(pool.queue_timer);
      return;
    }
    uint64_t expiry = pool.queue[first]->queued_us + queueTimeoutUs(pool);
    uint64_t now = monoMicros();
    timeval tv = microsToTimeval(expiry > now ? expiry - now : 0);
    evtimer_add(pool.queue_timer, &tv);
  }

  static void onRetryTimer(evutil_socket_t, short, void* arg) {
    auto* pool = static_cast<Pool*>(arg);
    pool->host->schedule(*pool);
  }

  static void onQueueTimer(evutil_socket_t, short, void* arg) {
    auto* pool = static_cast<Pool*>(arg);
    uint64_t now = monoMicros();
    Impl* host = pool->host;
    host->dropCancelled(*pool);
    // Invocations wait in arrival order with one timeout, so the expired ones among
    // those not covered by an instance on its way come first.
    size_t first = host->covered(*pool);
    while (pool->queue.size() > first &&
           pool->queue[first]->queued_us + host->queueTimeoutUs(*pool) <= now) {
      std::shared_ptr<Invocation> inv = std::move(pool->queue[first]);
      pool->queue.erase(pool->queue.begin() + static_cast<ptrdiff_t>(first));
      pool->metrics->queued.add(-1);
      deliver(*inv, {Outcome::kThrottled,
                     {},
                     "no instance became free within the queue timeout (max_concurrency " +
                         std::to_string(pool->fn.max_concurrency) + ")",
                     0});
    }
    host->armQueueTimer(*pool);
  }

  bool spawn(Pool& pool) {
    auto owned = std::make_unique<Instance>();
    Instance& inst = *owned;
    inst.host = this;
    inst.pool = &pool;
    inst.id = ++next_instance_;
    inst.http = evhttp_new(base_);
    evhttp_set_gencb(inst.http, &onRuntimeRequest, &inst);
    evhttp_set_max_body_size(inst.http, kMaxRuntimeBody);
    evhttp_set_max_headers_size(inst.http, 64 * 1024);
    evhttp_set_allowed_methods(inst.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    // The runtime's long poll for the next invocation may wait as long as the
    // instance stays idle: only our own child is on the other end.
    evhttp_set_timeout(inst.http, 24 * 3600);
    evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(inst.http, "127.0.0.1", 0);
    if (bound == nullptr) {
      LOG_ERROR("function %s: cannot open a Runtime API port: %s", pool.fn.name.c_str(),
                std::strerror(errno));
      evhttp_free(inst.http);
      return false;
    }
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len);
    inst.api = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

    if (!startProcess(pool, inst)) {
      evhttp_free(inst.http);
      return false;
    }
    inst.started_us = monoMicros();
    inst.timer = evtimer_new(base_, &onInstanceTimer, &inst);
    inst.mem_timer = event_new(base_, -1, EV_PERSIST, &onMemoryTimer, &inst);
    timeval mem = microsToTimeval(kMemoryCheckMs * 1000);
    evtimer_add(inst.mem_timer, &mem);
    timeval init = microsToTimeval(static_cast<uint64_t>(pool.fn.init_timeout.count()) * 1000);
    evtimer_add(inst.timer, &init);
    ++pool.starting;
    ++pool.alive;
    pool.metrics->cold_starts.add();
    pool.metrics->instances.add(1);
    LOG_DEBUG("function %s: instance %d starting (runtime API %s)", pool.fn.name.c_str(),
              static_cast<int>(inst.pid), inst.api.c_str());
    pool.instances.push_back(std::move(owned));
    return true;
  }

  bool startProcess(Pool& pool, Instance& inst) {
    const config::Function& fn = pool.fn;
    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls.
    const std::string& program = fn.program;  // resolved by the config loader
    // sluice's variables first; `environment` replaces any of them it names (TZ, PATH,
    // AWS_REGION...) except the reserved ones, which the config loader refuses.
    std::map<std::string, std::string> vars;
    for (const char* name : {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}) {
      if (const char* v = std::getenv(name)) vars[name] = v;
    }
    const char* region = std::getenv("AWS_REGION");
    std::string region_text = region && *region ? region : "us-east-1";
    vars["TZ"] = ":UTC";
    vars["AWS_REGION"] = region_text;
    vars["AWS_DEFAULT_REGION"] = region_text;
    vars["AWS_LAMBDA_RUNTIME_API"] = inst.api;
    vars["_HANDLER"] = fn.handler;
    vars["LAMBDA_TASK_ROOT"] = fn.working_dir;
    vars["AWS_LAMBDA_FUNCTION_NAME"] = fn.name;
    vars["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = std::to_string(fn.memory_mb);
    vars["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST";
    vars["AWS_LAMBDA_LOG_GROUP_NAME"] = "/aws/lambda/" + fn.name;
    vars["AWS_LAMBDA_LOG_STREAM_NAME"] = "sluice/" + std::to_string(inst.id);
    vars["AWS_LAMBDA_INITIALIZATION_TYPE"] = "on-demand";
    bool default_region = true;
    for (const auto& [k, v] : fn.environment) {
      vars[k] = v;
      default_region = default_region && k != "AWS_DEFAULT_REGION";
    }
    if (default_region) vars["AWS_DEFAULT_REGION"] = vars["AWS_REGION"];
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : vars) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = fn.command;
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    if (pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      return false;
    }
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    rlimit files{};
    int max_fd = getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < 65536
                     ? static_cast<int>(files.rlim_cur)
                     : 65536;
    const char* dir = fn.working_dir.c_str();
    pid_t pid = fork();
    if (pid == 0) {
      // Child. Dies with sluice even on SIGKILL (the host thread forked it, and lives
      // as long as the process), in its own process group so that a kill reaches
      // whatever it starts.
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGPIPE, SIG_DFL);
      if (devnull >= 0) {
        dup2(devnull, 0);
      } else {
        ::close(0);
      }
      dup2(out[1], 1);
      dup2(err[1], 2);
      // Nothing else of sluice's reaches the function: libevent creates some sockets
      // (Lambda, Redis, upstream connections) without close-on-exec.
      if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
        for (int fd = 3; fd < max_fd; ++fd) ::close(fd);
      }
      if (chdir(dir) != 0) _exit(126);
      execve(program.c_str(), argv.data(), envp.data());
      static const char kMsg[] = "sluice: cannot execute the function's command\n";
      ssize_t ignored = ::write(2, kMsg, sizeof kMsg - 1);
      (void)ignored;
      _exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    if (devnull >= 0) ::close(devnull);
    if (pid < 0) {
      LOG_ERROR("function %s: fork failed: %s", fn.name.c_str(), std::strerror(errno));
      ::close(out[0]);
      ::close(err[0]);
      return false;
    }
    inst.pid = pid;
    inst.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (inst.pidfd >= 0) {
      inst.exit_ev = event_new(base_, inst.pidfd, EV_READ, &onExit, &inst);
    } else {
      // Kernels before 5.3: poll for the exit instead.
      inst.exit_ev = event_new(base_, -1, EV_PERSIST, &onExit, &inst);
    }
    timeval poll = microsToTimeval(50'000);
    event_add(inst.exit_ev, inst.pidfd >= 0 ? nullptr : &poll);
    inst.out_fd = out[0];
    inst.err_fd = err[0];
    fcntl(inst.out_fd, F_SETFL, O_NONBLOCK);
    fcntl(inst.err_fd, F_SETFL, O_NONBLOCK);
    inst.out_ev = event_new(base_, inst.out_fd, EV_READ | EV_PERSIST, &onOutput, &inst);
    inst.err_ev = event_new(base_, inst.err_fd, EV_READ | EV_PERSIST, &onOutput, &inst);
    event_add(inst.out_ev, nullptr);
    event_add(inst.err_ev, nullptr);
    return true;
  }

  void assign(Instance& inst, std::shared_ptr<Invocation> inv) {
    Pool& pool = *inst.pool;
    evhttp_request* req = inst.next_req;
    inst.next_req = nullptr;
    inst.next_conn = nullptr;
    inst.state = Instance::State::kBusy;
    inst.assigned_us = monoMicros();
    uint64_t timeout_us = static_cast<uint64_t>(pool.fn.timeout.count()) * 1000;
    evkeyvalq* headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evhttp_add_header(headers, "Lambda-Runtime-Aws-Request-Id", inv->aws_request_id.c_str());
    evhttp_add_header(headers, "Lambda-Runtime-Deadline-Ms",
                      std::to_string(wallMillis() + timeout_us / 1000).c_str());
    evhttp_add_header(headers, "Lambda-Runtime-Invoked-Function-Arn", pool.arn.c_str());
    // X-Ray's format: Root=1-<8 hex seconds>-<24 hex>; taken from the invocation id.
    char trace[96];
    std::string hex;
    for (char c : inv->aws_request_id) {
      if (c != '-') hex.push_back(c);
    }
    std::snprintf(trace, sizeof trace, "Root=1-%08llx-%.24s;Parent=%.16s;Sampled=0",
                  static_cast<unsigned long long>(wallMillis() / 1000), hex.c_str(),
                  hex.c_str() + 16);
    evhttp_add_header(headers, "Lambda-Runtime-Trace-Id", trace);
    evbuffer* body = evbuffer_new();
    evbuffer_add(body, inv->payload.data(), inv->payload.size());
    inst.last_request_id = inv->request_id.empty() ? "-" : inv->request_id;
    inst.current = std::move(inv);
    timeval tv = microsToTimeval(timeout_us);
    evtimer_add(inst.timer, &tv);
    evhttp_send_reply(req, 200, "OK", body);
    evbuffer_free(body);
  }

  // The end of an invocation: the result goes to the worker; the instance stays busy
  // until it asks for the next one (as on Lambda).
  void finish(Instance& inst, Outcome outcome, std::string payload, std::string detail) {
    std::shared_ptr<Invocation> inv = std::move(inst.current);
    inst.current.reset();
    evtimer_del(inst.timer);
    if (inst.state == Instance::State::kBusy) {
      inst.state = Instance::State::kFinishing;
      timeval tv = microsToTimeval(kFinishingUs);
      evtimer_add(inst.timer, &tv);
    }
    if (!inv) return;
    uint64_t duration = monoMicros() - inst.assigned_us;
    deliver(*inv, {outcome, std::move(payload), std::move(detail), duration == 0 ? 1 : duration});
  }

  // Stops an instance now. Its invocation, if any, ends with `outcome`.
  void kill(Instance& inst, const std::string& why, Outcome outcome) {
    if (inst.current) finish(inst, outcome, {}, why);
    if (inst.pid > 0 && inst.state != Instance::State::kDead) {
      ::kill(-inst.pid, SIGKILL);
      ::kill(inst.pid, SIGKILL);
      inst.pool->metrics->killed.add();
    }
    remove(inst);
  }

  // Forgets a dead or killed instance and reaps its process. The Instance and its
  // evhttp are freed on the next loop iteration: this often runs inside one of their
  // own callbacks (a Runtime API request, a timer, the exit event).
  void remove(Instance& inst) {
    Pool& pool = *inst.pool;
    if (inst.state == Instance::State::kStarting) {
      --pool.starting;
      pool.retry_after_us = monoMicros() + 1'000'000;
    }
    inst.state = Instance::State::kDead;
    --pool.alive;
    pool.metrics->instances.add(-1);
    if (inst.pid > 0) {
      // Killed, not yet reaped: reaped from a timer, never waited for here (a process
      // stuck in the kernel must not stall every other function).
      zombies_.push_back(inst.pid);
      if (!evtimer_pending(zombie_timer_, nullptr)) {
        timeval tv = microsToTimeval(kZombiePollUs);
        evtimer_add(zombie_timer_, &tv);
      }
      inst.pid = -1;
    }
    drainOutput(inst, inst.out_fd, inst.out_line, false);
    drainOutput(inst, inst.err_fd, inst.err_line, true);
    for (event* e : {inst.exit_ev, inst.out_ev, inst.err_ev, inst.timer, inst.mem_timer}) {
      if (e) event_del(e);
    }
    inst.next_req = nullptr;
    inst.next_conn = nullptr;
    for (auto it = pool.instances.begin(); it != pool.instances.end(); ++it) {
      if (it->get() == &inst) {
        graveyard_.push_back(std::move(*it));
        pool.instances.erase(it);
        break;
      }
    }
    scheduleReap();
    if (!shutting_down_) schedule(pool);
  }

  // True when none is left.
  bool reapZombies() {
    std::erase_if(zombies_, [](pid_t pid) {
      int status = 0;
      return waitpid(pid, &status, WNOHANG) != 0;  // reaped, or not ours any more
    });
    return zombies_.empty();
  }

  static void onZombieTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    if (!self->reapZombies()) {
      timeval tv = microsToTimeval(kZombiePollUs);
      evtimer_add(self->zombie_timer_, &tv);
    }
  }

  void scheduleReap() {
    timeval zero{0, 0};
    evtimer_add(reap_ev_, &zero);
  }

  static void onReap(evutil_socket_t, short, void* arg) { static_cast<Impl*>(arg)->reap(); }

  void reap() {
    std::vector<std::unique_ptr<Instance>> dead;
    dead.swap(graveyard_);
    for (auto& inst : dead) {
      // Closes the runtime's connections; onConnectionClosed sees a dead instance.
      evhttp_free(inst->http);
      for (event* e : {inst->exit_ev, inst->out_ev, inst->err_ev, inst->timer, inst->mem_timer}) {
        if (e) event_free(e);
      }
      for (int fd : {inst->pidfd, inst->out_fd, inst->err_fd}) {
        if (fd >= 0) ::close(fd);
      }
    }
    if (shutting_down_) return;  // the destructor frees the pools
    for (auto it = pools_.begin(); it != pools_.end();) {
      Pool& pool = *it->second;
      if (pool.refs == 0 && pool.instances.empty() && pool.queue.empty()) {
        freePool(pool);
        it = pools_.erase(it);
      } else {
        ++it;
      }
    }
  }

  static void freePool(Pool& pool) {
    for (event* e : {pool.queue_timer, pool.retry_timer}) {
      if (e) event_free(e);
    }
    pool.queue_timer = pool.retry_timer = nullptr;
  }

  // ---- callbacks ----

  static void onExit(evutil_socket_t, short, void* arg) {
    auto& inst = *static_cast<Instance*>(arg);
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(inst.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == 0) {
      return;  // polling fallback: still running
    }
    // Whatever the instance started goes with it. Before reaping: until then the exited
    // leader keeps its process group id from being reused.
    ::kill(-inst.pid, SIGKILL);
    int status = 0;
    pid_t r = waitpid(inst.pid, &status, WNOHANG);
    Impl& host = *inst.host;
    std::string why;
    if (r > 0 && WIFSIGNALED(status)) {
      why = "instance exited on signal " + std::to_string(WTERMSIG(status));
    } else if (r > 0) {
      why = "instance exited with status " + std::to_string(WEXITSTATUS(status));
    } else {
      why = "instance vanished";
    }
    LOG_WARN("function %s: instance %d: %s%s", inst.pool->fn.name.c_str(),
             static_cast<int>(inst.pid), why.c_str(),
             inst.current ? (" during request " + inst.current->request_id).c_str() : "");
    inst.pool->metrics->crashes.add();
    bool was_starting = inst.state == Instance::State::kStarting;
    inst.pid = -1;  // reaped
    if (inst.current) {
      host.finish(inst, Outcome::kFunctionError, {}, why);
    } else if (was_starting) {
      host.failOneQueued(*inst.pool, "instance failed to start: " + why);
    }
    host.remove(inst);
  }

  // An instance that cannot start answers the invocation that was waiting for it (the
  // oldest): otherwise a broken function would keep every request for its queue timeout.
  void failOneQueued(Pool& pool, const std::string& why) {
    dropCancelled(pool);
    if (pool.queue.empty()) return;
    deliver(*popFront(pool), {Outcome::kFunctionError, {}, why, 0});
  }

  static void onInstanceTimer(evutil_socket_t, short, void* arg) {
    auto& inst = *static_cast<Instance*>(arg);
    Impl& host = *inst.host;
    Pool& pool = *inst.pool;
    switch (inst.state) {
      case Instance::State::kStarting:
        LOG_WARN("function %s: instance %d did not ask for work within init_timeout",
                 pool.fn.name.c_str(), static_cast<int>(inst.pid));
        host.failOneQueued(pool, "instance did not initialise within init_timeout");
        host.kill(inst, "init timeout", Outcome::kFailed);
        return;
      case Instance::State::kBusy:
        if (!inst.current) {
          LOG_WARN(
              "function %s: instance %d answered but never asked for the next "
              "invocation; replacing it",
              pool.fn.name.c_str(), static_cast<int>(inst.pid));
          host.kill(inst, "stalled", Outcome::kFailed);
          return;
        }
        LOG_WARN("function %s: request %s: timed out after %lld ms; killing instance %d",
                 pool.fn.name.c_str(), inst.current ? inst.current->request_id.c_str() : "-",
                 static_cast<long long>(pool.fn.timeout.count()), static_cast<int>(inst.pid));
        host.kill(inst, "function timed out", Outcome::kTimeout);
        return;
      case Instance::State::kIdle:
        if (pool.alive > pool.fn.min_instances || pool.refs == 0) {
          LOG_DEBUG("function %s: instance %d idle for idle_timeout; stopping",
                    pool.fn.name.c_str(), static_cast<int>(inst.pid));
          host.kill(inst, "idle", Outcome::kFailed);
        }
        return;
      case Instance::State::kFinishing: {
        // Slow to ask for more work: stop counting on it, start others if needed, and
        // give it until init_timeout before it is replaced.
        inst.state = Instance::State::kBusy;
        timeval tv = microsToTimeval(static_cast<uint64_t>(pool.fn.init_timeout.count()) * 1000);
        evtimer_add(inst.timer, &tv);
        host.schedule(pool);
        return;
      }
      case Instance::State::kDead:
        return;
    }
  }

  static void onMemoryTimer(evutil_socket_t, short, void* arg) {
    auto& inst = *static_cast<Instance*>(arg);
    if (inst.pid <= 0) return;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(inst.pid));
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char buf[128];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return;
    uint64_t rss = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t limit = static_cast<uint64_t>(inst.pool->fn.memory_mb) * 1024 * 1024;
    if (rss <= limit) return;
    LOG_WARN("function %s: instance %d uses %llu MiB, over memory_mb %u; killing it%s%s",
             inst.pool->fn.name.c_str(), static_cast<int>(inst.pid),
             static_cast<unsigned long long>(rss >> 20), inst.pool->fn.memory_mb,
             inst.current ? " during request " : "",
             inst.current ? inst.current->request_id.c_str() : "");
    inst.host->kill(inst, "memory limit exceeded", Outcome::kFunctionError);
  }

  static void onOutput(evutil_socket_t fd, short, void* arg) {
    auto& inst = *static_cast<Instance*>(arg);
    bool is_err = fd == inst.err_fd;
    inst.host->drainOutput(inst, fd, is_err ? inst.err_line : inst.out_line, is_err);
  }

  // Function output goes to sluice's log line by line, tagged with the function, the
  // instance and the request it was serving.
  void drainOutput(Instance& inst, int fd, std::string& line, bool is_err) {
    if (fd < 0) return;
    char buf[8192];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          event* ev = is_err ? inst.err_ev : inst.out_ev;
          if (ev) event_del(ev);
        }
        if (n < 0 && errno == EINTR) continue;
        break;
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (buf[i] == '\n' || line.size() >= kMaxLogLine) {
          emit(inst, line, is_err);
          line.clear();
          if (buf[i] == '\n') continue;
        }
        line.push_back(buf[i]);
      }
    }
    if (inst.state == Instance::State::kDead && !line.empty()) {
      emit(inst, line, is_err);
      line.clear();
    }
  }

  void emit(Instance& inst, std::string& line, bool is_err) {
    // A function's bytes must not forge log lines or drive a terminal.
    for (char& c : line) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
    }
    const char* request = inst.last_request_id.c_str();
    LOG_INFO("function %s[%d] %s %s: %s", inst.pool->fn.name.c_str(), static_cast<int>(inst.pid),
             request, is_err ? "stderr" : "stdout", line.c_str());
  }

  static void onConnectionClosed(evhttp_connection* conn, void* arg) {
    auto& inst = *static_cast<Instance*>(arg);
    if (inst.next_conn == conn) {
      inst.next_req = nullptr;
      inst.next_conn = nullptr;
    }
    std::erase(inst.trusted, conn);
  }

  // Frees the connection of the pending long poll (and with it the request).
  void dropNext(Instance& inst) {
    evhttp_connection* conn = inst.next_conn;
    inst.next_req = nullptr;
    inst.next_conn = nullptr;
    if (conn != nullptr) evhttp_connection_free(conn);  // runs onConnectionClosed
  }

  // Whether the runtime still waits on its long poll: a peek at the socket finds a
  // runtime that closed it (else the invocation would be written into a dead socket
  // and wait for its timeout).
  bool liveNext(Instance& inst) {
    if (inst.next_conn == nullptr) return false;
    int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(inst.next_conn));
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
      return true;
    }
    dropNext(inst);
    return false;
  }

  // Only the instance's own processes may speak its Runtime API: any local user could
  // otherwise connect, take invocations (with their headers and bodies) and answer
  // them. Loopback TCP has no peer credentials, so the client socket is looked up in
  // /proc (once per connection; runtimes keep theirs open).
  bool trusted(Instance& inst, evhttp_request* req) {
    evhttp_connection* conn = evhttp_request_get_connection(req);
    if (std::find(inst.trusted.begin(), inst.trusted.end(), conn) != inst.trusted.end()) {
      return true;
    }
    int fd = bufferevent_getfd(evhttp_connection_get_bufferevent(conn));
    if (inst.pid <= 0 || !peerInGroup(fd, inst.pid)) return false;
    inst.trusted.push_back(conn);
    evhttp_connection_set_closecb(conn, &onConnectionClosed, &inst);
    return true;
  }

  static void reply(evhttp_request* req, int code, const char* reason, std::string_view json) {
    evbuffer* body = evbuffer_new();
    evbuffer_add(body, json.data(), json.size());
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, body);
    evbuffer_free(body);
  }

  static void onRuntimeRequest(evhttp_request* req, void* arg) {
    auto& inst = *static_cast<Instance*>(arg);
    inst.host->handleRuntime(inst, req);
  }

  void handleRuntime(Instance& inst, evhttp_request* req) {
    Pool& pool = *inst.pool;
    if (inst.state == Instance::State::kDead) {
      reply(req, 410, "Gone", R"({"errorMessage":"instance stopped","errorType":"Gone"})");
      return;
    }
    if (!trusted(inst, req)) {
      LOG_WARN("function %s: refused a Runtime API connection that is not from instance %d",
               pool.fn.name.c_str(), static_cast<int>(inst.pid));
      evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
      reply(req, 403, "Forbidden",
            R"({"errorMessage":"not this instance's runtime","errorType":"Forbidden"})");
      return;
    }
    std::string_view uri = evhttp_request_get_uri(req);
    if (size_t q = uri.find('?'); q != std::string_view::npos) uri = uri.substr(0, q);
    if (!uri.starts_with(kApiPrefix)) {
      reply(req, 404, "Not Found", R"({"errorMessage":"unknown path","errorType":"NotFound"})");
      return;
    }
    std::string_view rest = uri.substr(kApiPrefix.size());
    evhttp_cmd_type method = evhttp_request_get_command(req);
    if (rest == "invocation/next" && method == EVHTTP_REQ_GET) {
      if (inst.next_req != nullptr) {
        // A connection answers one request at a time, so a second long poll comes on
        // another connection: the runtime gave up on the first one (libevent does not
        // tell us when a client leaves a request unanswered). Forget that one.
        dropNext(inst);
      }
      if (inst.state == Instance::State::kStarting) {
        --pool.starting;
        uint64_t init = monoMicros() - inst.started_us;
        pool.metrics->init_us.add(init);
        LOG_DEBUG("function %s: instance %d ready after %llu ms", pool.fn.name.c_str(),
                  static_cast<int>(inst.pid), static_cast<unsigned long long>(init / 1000));
      } else if (inst.current) {
        // Asked for more work without answering: Lambda treats that as no reply.
        finish(inst, Outcome::kFunctionError, {},
               "the runtime asked for the next invocation "
               "without answering this one");
      }
      inst.state = Instance::State::kIdle;
      inst.next_req = req;
      inst.next_conn = evhttp_request_get_connection(req);
      dropCancelled(pool);
      if (!pool.queue.empty() && !shutting_down_) {
        assign(inst, popFront(pool));
        armQueueTimer(pool);
        return;
      }
      if (pool.refs == 0) {
        kill(inst, "function configuration replaced", Outcome::kFailed);
        return;
      }
      timeval idle = microsToTimeval(static_cast<uint64_t>(pool.fn.idle_timeout.count()) * 1000);
      evtimer_add(inst.timer, &idle);
      return;
    }
    if (method != EVHTTP_REQ_POST) {
      reply(req, 405, "Method Not Allowed",
            R"({"errorMessage":"method not allowed","errorType":"MethodNotAllowed"})");
      return;
    }
    if (rest == "init/error") {
      std::string body = bodyOf(req);
      LOG_WARN("function %s: instance %d failed to initialise: %.1024s", pool.fn.name.c_str(),
               static_cast<int>(inst.pid), body.c_str());
      reply(req, 202, "Accepted", R"({"status":"OK"})");
      failOneQueued(pool, "init error");
      if (inst.current) finish(inst, Outcome::kFunctionError, body, "init error");
      kill(inst, "init error", Outcome::kFunctionError);
      return;
    }
    constexpr std::string_view kInvocation = "invocation/";
    if (rest.starts_with(kInvocation)) {
      std::string_view tail = rest.substr(kInvocation.size());
      size_t slash = tail.find('/');
      std::string_view id = tail.substr(0, slash);
      std::string_view what = slash == std::string_view::npos ? "" : tail.substr(slash + 1);
      if (what != "response" && what != "error") {
        reply(req, 404, "Not Found", R"({"errorMessage":"unknown path","errorType":"NotFound"})");
        return;
      }
      if (!inst.current || inst.current->aws_request_id != id) {
        reply(req, 400, "Bad Request",
              R"({"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"})");
        return;
      }
      std::string body = bodyOf(req);
      if (what == "response") {
        if (body.size() > kMaxPayload) {
          reply(
              req, 413, "Payload Too Large",
              R"({"errorMessage":"Response payload size exceeded maximum allowed payload size (6291556 bytes).","errorType":"RequestEntityTooLarge"})");
          finish(inst, Outcome::kFunctionError, {},
                 "reply of " + std::to_string(body.size()) + " bytes exceeds the payload limit");
          return;
        }
        reply(req, 202, "Accepted", R"({"status":"OK"})");
        finish(inst, Outcome::kOk, std::move(body), {});
      } else {
        const char* type = evhttp_find_header(evhttp_request_get_input_headers(req),
                                              "Lambda-Runtime-Function-Error-Type");
        reply(req, 202, "Accepted", R"({"status":"OK"})");
        finish(inst, Outcome::kFunctionError, std::move(body),
               std::string("function error") + (type ? std::string(" (") + type + ")" : ""));
      }
      return;
    }
    reply(req, 404, "Not Found", R"({"errorMessage":"unknown path","errorType":"NotFound"})");
  }

  static std::string bodyOf(evhttp_request* req) {
    evbuffer* in = evhttp_request_get_input_buffer(req);
    std::string body(evbuffer_get_length(in), '\0');
    evbuffer_remove(in, body.data(), body.size());
    return body;
  }

  event_base* base_ = nullptr;
  event* reap_ev_ = nullptr;
  event* zombie_timer_ = nullptr;
  std::vector<pid_t> zombies_;  // killed instances not yet reaped
  std::vector<std::unique_ptr<Instance>> graveyard_;
  std::unique_ptr<Mailbox> mailbox_;
  std::thread thread_;
  std::map<std::string, std::unique_ptr<Pool>> pools_;
  uint64_t next_instance_ = 0;
  bool shutting_down_ = false;
};

namespace {

class ProcessInvoker final : public Invoker {
 public:
  ProcessInvoker(Host::Impl& host, Worker& worker, const config::Function& fn,
                 FunctionHostMetrics* metrics)
      : host_(host),
        worker_(worker),
        key_(fingerprint(fn)),
        state_(std::make_shared<InvokerState>()) {
    host_.post([&host = host_, key = key_, fn, metrics] { host.attach(key, fn, metrics); });
  }

  ~ProcessInvoker() override {
    host_.post([&host = host_, key = key_] { host.detach(key); });
  }

  uint64_t invoke(std::string&& payload, std::string_view request_id,
                  InvokeHandler* handler) override {
    uint64_t ticket = state_->next_ticket++;
    auto inv = std::make_shared<Invocation>();
    state_->pending.emplace(ticket, InvokerState::Pending{handler, inv});
    inv->ticket = ticket;
    inv->payload = std::move(payload);
    inv->request_id = request_id;
    inv->worker = &worker_;
    inv->state = state_;
    host_.post([&host = host_, key = key_, inv = std::move(inv)]() mutable {
      host.invoke(key, std::move(inv));
    });
    return ticket;
  }

  void cancel(uint64_t ticket) override {
    auto it = state_->pending.find(ticket);
    if (it == state_->pending.end()) return;
    it->second.invocation->cancelled.store(true, std::memory_order_relaxed);
    state_->pending.erase(it);
  }

 private:
  Host::Impl& host_;
  Worker& worker_;
  std::string key_;
  std::shared_ptr<InvokerState> state_;
};

}  // namespace

Host::Host() : impl_(std::make_unique<Impl>()) {}

Host::~Host() { impl_->stop(); }

void Host::start() { impl_->start(); }

void Host::stop() { impl_->stop(); }

std::unique_ptr<Invoker> Host::makeInvoker(Worker& worker, const config::Function& fn,
                                           FunctionHostMetrics* metrics) {
  return std::make_unique<ProcessInvoker>(*impl_, worker, fn, metrics);
}

}  // namespace sluice::function
