#include "filters/access_log/log_writer.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "filters/access_log/line_queue.h"
#include "gateway/admin/metrics.h"
#include "gateway/server/log.h"

namespace sluice::access_log {
namespace {

using Clock = std::chrono::steady_clock;

// The writer wakes this often while lines keep coming, and backs off to the maximum
// when idle: a burst that arrives during the longest sleep must fit in the cap (at
// 100k lines/s of 300 bytes, 100 ms is 3 MB against 8 MiB per worker by default).
constexpr auto kMinInterval = std::chrono::milliseconds(4);
constexpr auto kMaxInterval = std::chrono::milliseconds(100);
// A batch this large is written at once rather than after the next sleep.
constexpr size_t kBatchBytes = 256 * 1024;
constexpr size_t kMaxIov = IOV_MAX < 512 ? IOV_MAX : 512;
// At shutdown, an output that accepts nothing for this long is given up (a pipe whose
// reader stopped reading must not hang the exit).
constexpr auto kStopGiveUp = std::chrono::seconds(2);
constexpr auto kWarnEvery = std::chrono::seconds(10);

}  // namespace

// The state of one output, shared by its LogWriter and its thread.
class WriterCore {
 public:
  WriterCore(std::string output, uint64_t id) : output_(std::move(output)), id_(id) {
    if (output_ == "stdout") {
      fd_ = STDOUT_FILENO;
      owns_fd_ = false;
    } else if (output_ == "stderr") {
      fd_ = STDERR_FILENO;
      owns_fd_ = false;
    }
  }
  ~WriterCore() {
    if (owns_fd_ && fd_ >= 0) ::close(fd_);
  }

  void start() {
    // The thread must never take a process signal (SIGTERM, SIGHUP, ...): the server
    // reads them from a signalfd and blocks them only once the config is loaded, after
    // this thread exists. Threads inherit the creator's mask.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  LineQueue* addQueue() {
    std::lock_guard lock(mu_);
    if (stop_) return nullptr;
    queues_.push_back(std::make_unique<LineQueue>());
    return queues_.back().get();
  }

  void requestStop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    stopping_.store(true);
    cv_.notify_one();
  }

  void requestReopen() {
    reopen_.store(true);
    cv_.notify_one();
  }

  std::thread takeThread() { return std::move(thread_); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  const std::string& output() const { return output_; }
  uint64_t id() const { return id_; }

  uint64_t lines() {
    std::lock_guard lock(mu_);
    uint64_t n = 0;
    for (const auto& s : queues_) n += s->lines();
    return n;
  }
  uint64_t dropped() {
    std::lock_guard lock(mu_);
    uint64_t n = lost_.load(std::memory_order_relaxed);
    for (const auto& s : queues_) n += s->dropped();
    return n;
  }

 private:
  void run() {
    auto interval = kMinInterval;
    std::vector<LineQueue*> queues;
    for (;;) {
      bool stopping;
      {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, interval, [this] { return stop_ || reopen_.load(); });
        stopping = stop_;
        queues.clear();
        for (const auto& s : queues_) queues.push_back(s.get());
      }
      bool wrote = drain(queues);
      reportDrops(queues);
      if (stopping) {
        // Producers are gone (the last owner released the writer); one more pass
        // catches lines that raced with the stop.
        drain(queues);
        break;
      }
      interval = wrote ? kMinInterval : std::min(interval * 2, kMaxInterval);
    }
    uint64_t refused = 0;
    for (const LineQueue* s : queues) refused += s->dropped();
    if (refused + lost_.load() > 0) {  // a last word, whatever the rate limit
      LOG_WARN("access_log %s: %llu lines dropped, %llu lost to write errors", output_.c_str(),
               static_cast<unsigned long long>(refused),
               static_cast<unsigned long long>(lost_.load()));
    }
    finished_.store(true, std::memory_order_release);
  }

  // Writes what the queues hold; true if anything was there.
  bool drain(const std::vector<LineQueue*>& queues) {
    bool any = false;
    for (;;) {
      iov_.clear();
      size_t bytes = 0;
      for (LineQueue* s : queues) {
        size_t before = iov_.size();
        s->collect(iov_, kMaxIov);
        for (size_t i = before; i < iov_.size(); ++i) bytes += iov_[i].iov_len;
      }
      // After collecting: a line queued after a reopen request (and so collected now)
      // goes to the new file.
      if (reopen_.exchange(false)) reopenFile();
      if (iov_.empty()) break;
      any = true;
      waiting_queues_ = &queues;
      writeAll();
      waiting_queues_ = nullptr;
      for (LineQueue* s : queues) s->consume();
      if (bytes < kBatchBytes && iov_.size() < kMaxIov) break;
    }
    return any;
  }

  // Workers count the lines they refuse; say so on stderr (at most every 10 s), since
  // a growing counter nobody scrapes helps no one.
  void reportDrops(const std::vector<LineQueue*>& queues) {
    uint64_t refused = 0;
    for (const LineQueue* s : queues) refused += s->dropped();
    if (refused == reported_drops_ || Clock::now() < warn_after_) return;
    warn(std::to_string(refused) + " lines dropped so far: the output is falling behind");
    reported_drops_ = refused;
  }

  void reopenFile() {
    if (!owns_fd_) return;
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
      openFile();  // now, so that the new file exists even before the next line
    }
  }

  bool openFile() {
    // O_NONBLOCK: opening a FIFO without a reader fails instead of hanging; writes to
    // a full pipe are waited for below. It changes nothing for regular files.
    fd_ = ::open(output_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd_ < 0) {
      warn(std::string("cannot open: ") + std::strerror(errno));
      return false;
    }
    return true;
  }

  // Writes iov_ completely, or counts its lines as lost.
  void writeAll() {
    iovec* iov = iov_.data();
    size_t count = iov_.size();
    if (fd_ < 0 && !openFile()) {
      lose(iov, count);
      return;
    }
    auto stalled_since = Clock::now();
    while (count > 0) {
      ssize_t k = ::writev(fd_, iov, static_cast<int>(count));
      if (k < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          if (stopping_.load() && Clock::now() - stalled_since > kStopGiveUp) {
            warn("output not accepting data at shutdown; giving up");
            lose(iov, count);
            return;
          }
          if (waiting_queues_) reportDrops(*waiting_queues_);
          pollfd p{fd_, POLLOUT, 0};
          ::poll(&p, 1, 100);
          continue;
        }
        warn(std::string("write failed: ") + std::strerror(errno));
        lose(iov, count);
        return;
      }
      stalled_since = Clock::now();
      auto left = static_cast<size_t>(k);
      while (count > 0 && left >= iov->iov_len) {
        left -= iov->iov_len;
        ++iov;
        --count;
      }
      if (count > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + left;
        iov->iov_len -= left;
      }
    }
  }

  void lose(const iovec* iov, size_t count) {
    uint64_t lines = 0;
    for (size_t i = 0; i < count; ++i) {
      const char* p = static_cast<const char*>(iov[i].iov_base);
      lines += static_cast<uint64_t>(std::count(p, p + iov[i].iov_len, '\n'));
    }
    lost_.fetch_add(lines, std::memory_order_relaxed);
  }

  // Rare (at most every kWarnEvery), so building the text costs nothing that matters.
  void warn(const std::string& what) {
    auto now = Clock::now();
    if (now < warn_after_) return;
    warn_after_ = now + kWarnEvery;
    LOG_WARN("access_log %s: %s", output_.c_str(), what.c_str());
  }

  const std::string output_;
  const uint64_t id_;
  int fd_ = -1;  // writer thread only (after start)
  bool owns_fd_ = true;
  std::thread thread_;
  std::vector<iovec> iov_;
  Clock::time_point warn_after_{};
  uint64_t reported_drops_ = 0;
  const std::vector<LineQueue*>* waiting_queues_ = nullptr;  // during writeAll(), for reportDrops()

  std::mutex mu_;  // queues_ and stop_; never taken on the request path
  std::condition_variable cv_;
  std::vector<std::unique_ptr<LineQueue>> queues_;
  bool stop_ = false;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> reopen_{false};
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> lost_{0};
};

namespace {

// Writer threads of released writers, joined once they are done and at the latest at
// process exit. The last owner of a writer may be a worker releasing an old snapshot
// after a reload: it must not wait for the final write.
class Reaper {
 public:
  static Reaper& instance() {
    static Reaper reaper;
    return reaper;
  }
  void adopt(std::thread thread, std::shared_ptr<WriterCore> core) {
    std::lock_guard lock(mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second->finished()) {
        it->first.join();  // returns at once: the thread has finished
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    pending_.emplace_back(std::move(thread), std::move(core));
  }
  ~Reaper() {
    for (auto& [thread, core] : pending_) thread.join();
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::thread, std::shared_ptr<WriterCore>>> pending_;
};

struct Registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<LogWriter>, std::less<>> writers;
  uint64_t next_id = 1;
};

Registry& registry() {
  static Registry r;
  return r;
}

// Per thread: the queue of each writer it has written to, by writer id (ids are never
// reused, so an entry of a writer that is gone is never matched again).
struct QueueCache {
  struct Entry {
    uint64_t id = 0;
    LineQueue* queue = nullptr;
  };
  std::array<Entry, 8> entries{};
  size_t next_victim = 0;

  LineQueue* find(uint64_t id) {
    for (const Entry& e : entries) {
      if (e.id == id) return e.queue;
    }
    return nullptr;
  }
  void insert(uint64_t id, LineQueue* queue) {
    for (Entry& e : entries) {
      if (e.id == 0) {
        e = {id, queue};
        return;
      }
    }
    // Full (many reloads with different outputs): forget one; if its writer is still
    // live, this thread gets a second queue there, which is harmless.
    entries[next_victim] = {id, queue};
    next_victim = (next_victim + 1) % entries.size();
  }
};
thread_local QueueCache t_queues;

}  // namespace

std::shared_ptr<LogWriter> LogWriter::forOutput(const std::string& output) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (auto it = r.writers.begin(); it != r.writers.end();) {
    it = it->second.expired() ? r.writers.erase(it) : std::next(it);
  }
  if (auto it = r.writers.find(output); it != r.writers.end()) {
    if (auto live = it->second.lock()) return live;
  }
  auto core = std::make_shared<WriterCore>(output, r.next_id++);
  core->start();
  auto writer = std::make_shared<LogWriter>(Key{}, std::move(core));
  r.writers[output] = writer;
  return writer;
}

LogWriter::LogWriter(Key, std::shared_ptr<WriterCore> core) : core_(std::move(core)) {}

LogWriter::~LogWriter() {
  core_->requestStop();
  std::thread thread = core_->takeThread();
  if (thread.joinable()) Reaper::instance().adopt(std::move(thread), core_);
}

bool LogWriter::append(std::string_view line, size_t max_pending) {
  const uint64_t id = core_->id();
  LineQueue* queue = t_queues.find(id);
  if (!queue) {
    queue = core_->addQueue();
    if (!queue) return false;  // closed
    t_queues.insert(id, queue);
  }
  return queue->push(line, max_pending);
}

void LogWriter::reopen() { core_->requestReopen(); }

void LogWriter::close() {
  core_->requestStop();
  std::thread thread = core_->takeThread();
  if (thread.joinable()) thread.join();
}

const std::string& LogWriter::output() const { return core_->output(); }
uint64_t LogWriter::lines() const { return core_->lines(); }
uint64_t LogWriter::dropped() const { return core_->dropped(); }

void LogWriter::appendMetrics(std::string& out) {
  std::vector<std::shared_ptr<LogWriter>> live;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mu);
    for (const auto& [name, weak] : r.writers) {
      if (auto w = weak.lock()) live.push_back(std::move(w));
    }
  }
  out.append(
      "# HELP sluice_access_log_lines_total Access log lines queued for writing, by output.\n"
      "# TYPE sluice_access_log_lines_total counter\n");
  for (const auto& w : live) {
    out.append("sluice_access_log_lines_total{output=\"");
    metrics::appendEscapedLabel(out, w->output());
    out.append("\"} ").append(std::to_string(w->lines())).push_back('\n');
  }
  out.append(
      "# HELP sluice_access_log_dropped_total Access log lines dropped because the output fell "
      "behind or a write failed, by output.\n"
      "# TYPE sluice_access_log_dropped_total counter\n");
  for (const auto& w : live) {
    out.append("sluice_access_log_dropped_total{output=\"");
    metrics::appendEscapedLabel(out, w->output());
    out.append("\"} ").append(std::to_string(w->dropped())).push_back('\n');
  }
}

}  // namespace sluice::access_log
